#!/usr/bin/python
# Copyright (c) krios-testbed contributors
# Apache License 2.0 (see the repository's pyproject.toml)

from __future__ import annotations

DOCUMENTATION = r"""
module: krios_netem
author:
  - krios-testbed contributors
short_description: Per-destination delay with tc netem (htb root, netem leaf, u32 filter per IP)
version_added: 0.1.0
requirements:
  - the C(krios) Python package (this repository) importable by the target's Python
    (set C(ansible_python_interpreter) to the venv that has it)
  - C(tc) and C(ip) from iproute2; root privileges (C(become))
  - a kernel with the C(sch_netem) qdisc for O(state=present) to succeed
description:
  - Shapes the egress traffic of one network interface so that packets to each destination IPv4 address
    are delayed by its own amount, as the Krios client's link to each satellite node.
  - "Layout: a root C(htb) qdisc with handle C(1:) whose unclassified traffic is not shaped; per destination
    an htb class C(1:<m>), a C(netem) qdisc C(<m>:) under it and a C(u32) filter (preference C(m)) matching
    C(ip dst <ip>/32)."
  - Reads the current state (C(tc -j qdisc show), C(tc class show), C(tc -j filter show)) and runs only the
    commands needed (C(tc qdisc change) for a new delay, so there is no moment without delay);
    reports C(changed) only when there was something to do. The same code runs C(krios netem apply).
  - Commands are run as argument lists, never through a shell.
  - Refuses to touch an interface whose root qdisc was configured by something else.
options:
  dev:
    description:
      - Egress interface. Default is the interface of the route to the first destination (C(ip route get)).
      - Required with O(state=absent).
    type: str
  destinations:
    description:
      - Destinations and their delays. An empty list with O(state=present) removes the shaping.
    type: list
    elements: dict
    default: []
    suboptions:
      ip:
        description: Destination IPv4 address.
        type: str
        required: true
      delay_ms:
        description: Delay added to every packet to O(destinations[].ip), milliseconds.
        type: float
        required: true
      jitter_ms:
        description: Random variation (plus or minus), milliseconds.
        type: float
        default: 0.0
  state:
    description:
      - V(present) makes the interface match O(destinations) exactly (destinations not listed lose their delay).
      - V(absent) removes krios's shaping (the root qdisc) from O(dev).
    type: str
    choices: [present, absent]
    default: present
  netns:
    description:
      - Network namespace (C(ip netns exec)) holding O(dev), for tests and containers.
    type: str
attributes:
  check_mode:
    support: full
    description: Reports the commands it would run (RV(commands)) without running them.
  diff_mode:
    support: none
    description: No diff; RV(commands) lists the changes.
notes:
  - Kernels without C(sch_netem) fail O(state=present) when a netem qdisc is added; the error names the command.
seealso:
  - name: tc-netem(8)
    description: The netem qdisc.
    link: https://man7.org/linux/man-pages/man8/tc-netem.8.html
"""

EXAMPLES = r"""
- name: Delay the client's traffic to two satellite nodes
  krios.testbed.krios_netem:
    dev: eth1
    destinations:
      - ip: 10.10.1.2
        delay_ms: 31.4
      - ip: 10.10.1.3
        delay_ms: 45.0
        jitter_ms: 1.0
  become: true

- name: Remove the shaping
  krios.testbed.krios_netem:
    dev: eth1
    state: absent
  become: true
"""

RETURN = r"""
commands:
  description: The tc commands run (or, in check mode, that would be run), each an argument list.
  returned: always
  type: list
  elements: list
  sample: [["tc", "qdisc", "change", "dev", "eth1", "parent", "1:10", "handle", "10:", "netem", "delay", "31.4ms"]]
dev:
  description: The interface shaped.
  returned: when known
  type: str
  sample: eth1
"""

import traceback  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

try:
    from krios.emulation import netem
    from krios.errors import KriosError
except ImportError:
    netem = None
    IMPORT_ERROR = traceback.format_exc()
else:
    IMPORT_ERROR = None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dev": {"type": "str"},
            "destinations": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "ip": {"type": "str", "required": True},
                    "delay_ms": {"type": "float", "required": True},
                    "jitter_ms": {"type": "float", "default": 0.0},
                },
            },
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "netns": {"type": "str"},
        },
        required_if=[("state", "absent", ("dev",))],
        supports_check_mode=True,
    )
    if netem is None:
        import sys

        module.fail_json(
            msg=f"the krios Python package is not importable by {sys.executable}; install it there "
            "or set ansible_python_interpreter",
            exception=IMPORT_ERROR,
        )
    p = module.params
    try:
        dests = netem.normalise(p["destinations"])
        dev = p["dev"] or (netem.egress_device([dests[0].ip], netns=p["netns"]) if dests else None)
        if dev is None:
            module.fail_json(msg="dev is required when destinations is empty")
        tc = netem.Tc(dev, netns=p["netns"])
        if p["state"] == "absent":
            cmds = tc.clear(dry_run=module.check_mode)
        else:
            cmds = tc.apply(dests, dry_run=module.check_mode)
    except KriosError as err:
        module.fail_json(msg=str(err))
    module.exit_json(changed=bool(cmds), commands=cmds, dev=dev)


if __name__ == "__main__":
    main()
