"""``krios lab up|status|down``: real nodes on one machine (podman node containers).

See :mod:`krios.lab`. ``up`` prints where the inputs a CloudLab user would have
were written (``ip_mapping.json``, ``manifest.xml``, ``krios.yml``), so that the
next command is ``ansible-playbook playbooks/site.yml -i <state-dir>/krios.yml``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DEFAULT_STATE_DIR = Path(".krios/lab")


def register(sub: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    lab = sub.add_parser("lab", help="real Kubernetes nodes on this machine (podman node containers)")
    cmds = lab.add_subparsers(dest="lab_command", metavar="ACTION")
    lab.set_defaults(func=lambda _args: (lab.print_help(), 2)[1])

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                       help="where the lab records what it made and writes the inventory (default: .krios/lab)")

    up = cmds.add_parser("up", help="build the node image, the network and the node containers (no-op if up)")
    common(up)
    up.add_argument("--workers", type=int, default=2, help="worker nodes (satellites), default 2")
    up.add_argument("--clients", type=int, default=1, help="client nodes, default 1")
    up.add_argument("--subnet", default="10.213.0.0/24", help="the lab's own subnet (default 10.213.0.0/24)")
    up.add_argument("--name", default="krios-lab", help="container/network name prefix (default krios-lab)")
    up.add_argument("--scenario", default=None,
                    help="scenario named in krios.yml (default: a lab_<N>workers scenario written beside it)")
    up.set_defaults(func=_up)

    st = cmds.add_parser("status", help="each node's container state, address and SSH reachability")
    common(st)
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=_status)

    down = cmds.add_parser("down", help="remove every container, network, volume and file the lab made")
    common(down)
    down.set_defaults(func=_down)


def _up(args: argparse.Namespace) -> int:
    from krios import lab

    t0 = time.monotonic()
    state = lab.up(workers=args.workers, clients=args.clients, state_dir=args.state_dir, subnet=args.subnet,
                   name=args.name, scenario=args.scenario)
    print(f"lab {state.name} up in {time.monotonic() - t0:.1f} s: {len(state.nodes)} nodes on {state.subnet}")
    for node in state.nodes:
        print(f"  {node.hostname:8s} {node.role:8s} {node.address:15s} {node.container}")
    print(f"inventory: {state.inventory}")
    print(f"next: ansible-playbook playbooks/site.yml -i {state.inventory}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from krios import lab

    info = lab.status(args.state_dir)
    if args.json:
        print(json.dumps(info, indent=2))
    elif not info.get("nodes"):
        print(f"no lab in {args.state_dir}")
    else:
        print(f"lab {info['name']} ({info['subnet']}): {'up' if info['up'] else 'NOT all up'}")
        for host, n in info["nodes"].items():
            print(f"  {host:8s} {n['role']:8s} {n['address']:15s} {n['state']:8s} ssh={'yes' if n['ssh'] else 'no'}")
    return 0 if info.get("up") else 1


def _down(args: argparse.Namespace) -> int:
    from krios import lab

    if lab.down(args.state_dir):
        print(f"lab in {args.state_dir} removed")
    else:
        print(f"no lab in {args.state_dir}; nothing removed")
    return 0
