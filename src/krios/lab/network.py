"""The lab's podman bridge network: a subnet of its own, fixed node addresses.

The host is the bridge's gateway (``.1``); node ``i`` gets ``.10 + i``. Podman
(netavark) masquerades the subnet so that apt inside the nodes reaches the
package mirror; nothing else is a target of lab traffic.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess

from krios.errors import KriosError

#: First host number given to a node (node0 = .10, node1 = .11, ...).
FIRST_HOST = 10


class LabError(KriosError):
    """The lab (podman network, node containers, SSH) could not be set up or removed."""

    exit_code = 3


def parse_subnet(subnet: str, nodes: int) -> ipaddress.IPv4Network:
    """The subnet as a network, checked to be private and big enough for ``nodes`` nodes."""
    try:
        net = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError as err:
        raise LabError(f"not an IPv4 subnet: {err}", source="subnet", field=subnet) from err
    if not net.is_private:
        raise LabError("must be a private subnet", source="subnet", field=subnet)
    if net.num_addresses - 2 < FIRST_HOST + nodes:
        raise LabError(f"too small for {nodes} nodes (they start at host .{FIRST_HOST})", source="subnet", field=subnet)
    return net


def gateway(net: ipaddress.IPv4Network) -> str:
    return str(net.network_address + 1)


def node_address(net: ipaddress.IPv4Network, index: int) -> str:
    return str(net.network_address + FIRST_HOST + index)


def network_exists(name: str) -> bool:
    return subprocess.run(["podman", "network", "exists", name], check=False).returncode == 0


def network_subnets(name: str) -> list[str]:
    proc = subprocess.run(["podman", "network", "inspect", name], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return []
    data = json.loads(proc.stdout or "[]")
    return [s.get("subnet", "") for d in data for s in (d.get("subnets") or [])]


def overlapping_networks(net: ipaddress.IPv4Network) -> list[str]:
    """Podman networks whose subnet overlaps ``net`` (a clash podman would refuse anyway)."""
    proc = subprocess.run(
        ["podman", "network", "ls", "--format", "{{.Name}}"], capture_output=True, text=True, check=False
    )
    clash = []
    for name in proc.stdout.split():
        for sub in network_subnets(name):
            try:
                if ipaddress.IPv4Network(sub).overlaps(net):
                    clash.append(name)
            except ValueError:
                continue
    return clash


def create_network(name: str, net: ipaddress.IPv4Network, label: str) -> None:
    cmd = [
        "podman",
        "network",
        "create",
        "--driver",
        "bridge",
        "--subnet",
        str(net),
        "--gateway",
        gateway(net),
        "--disable-dns",
        "--label",
        label,
        name,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LabError(f"podman network create failed: {proc.stderr.strip()}", source="network", field=name)


def remove_network(name: str) -> None:
    if network_exists(name):
        subprocess.run(["podman", "network", "rm", "-f", name], capture_output=True, check=False)
