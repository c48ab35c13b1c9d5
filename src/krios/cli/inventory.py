"""``krios inventory``: which node is control, worker, client for a scenario.

The same parsing as the Ansible inventory plugin ``krios.testbed.krios``
(:mod:`krios.config.inventory`), for a quick look without Ansible or for scripts (``--json``).
"""

from __future__ import annotations

import argparse
import json

from krios.config import inventory

#: Where option errors are said to come from.
OPTIONS = "krios inventory"


def register(sub: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inventory",
        help="show the roles of an experiment's nodes (ip_mapping.json or CloudLab manifest.xml)",
        description="Read the experiment's nodes from ip_mapping.json or a CloudLab manifest and "
        "print which is the control node, the workers and the client for a scenario. Give "
        "exactly one of --ip-mapping and --manifest.",
    )
    p.add_argument("--ip-mapping", metavar="FILE", help="JSON: fully-qualified hostname -> public IPv4")
    p.add_argument("--manifest", metavar="FILE", help="CloudLab/GENI manifest RSpec (XML)")
    p.add_argument("--scenario", required=True, help="scenario name (scenarios/<name>.yml) or file")
    p.add_argument("--base-node-idx", type=int, metavar="N",
                   help="index of the control node; workers take the next indices (default: lowest)")
    p.add_argument("--client", metavar="HOST",
                   help="client node: hostname, first label, client_id or index (default: highest index)")
    p.add_argument("--ansible-user", metavar="USER",
                   help="SSH user; with --manifest also picks which <login> to use")
    p.add_argument("--node-network", choices=inventory.NODE_NETWORKS, default="experiment",
                   help="address for kubelet/Calico: experiment LAN when present (default) or control")
    p.add_argument("--json", action="store_true", help="print groups and host variables as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    roles = inventory.build(
        scenario=args.scenario,
        ip_mapping=args.ip_mapping,
        manifest=args.manifest,
        base_node_idx=args.base_node_idx,
        client=args.client,
        ansible_user=args.ansible_user,
        node_network=args.node_network,
        options=OPTIONS,
    )
    if args.json:
        print(json.dumps(roles.to_dict(args.ansible_user), indent=2))
        return 0
    print(format_roles(roles))
    return 0


def format_roles(roles: inventory.Roles) -> str:
    """A plain-text table: role, index, hostname, node IP, public IP, SSH endpoint."""
    sc = roles.scenario
    lines = [
        f"scenario {sc.name}: {sc.workers} workers, zone {sc.leozone}; "
        f"nodes from {roles.source}; node_network {roles.node_network}"
    ]
    rows = [("role", "index", "host", "node_ip", "public_ip", "ssh")]
    for role, node in roles.nodes():
        ssh = node.ssh_host or node.public_ip
        if node.ssh_port is not None:
            ssh = f"{ssh}:{node.ssh_port}"
        rows.append((role, str(node.index), node.hostname, node.node_ip(roles.node_network),
                     node.public_ip, ssh))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [c.rjust(w) if i == 1 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
