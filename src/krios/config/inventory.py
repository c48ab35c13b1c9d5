"""The experiment's nodes and their roles, from ``ip_mapping.json`` or a CloudLab manifest.

Two sources describe the same thing, the machines of one experiment:

* ``ip_mapping.json`` maps each node's hostname to its public IPv4 address,
  ``{"node1.exp.proj.utah.cloudlab.us": "128.110.218.50", ...}``;
* a CloudLab/GENI *manifest* RSpec (``manifest.xml``) lists every ``<node>`` with
  its ``<host name= ipv4=>`` (public, control network), its experiment-LAN
  ``<interface><ip address= type="ipv4">`` and its ``<services><login>`` entries.

Every hostname carries a numeric index in its first label (``node7.…`` → 7); nodes
are ordered by that number, never by string. :func:`assign_roles` then gives the
node ``base_node_idx`` the control plane, the next ``scenario.workers`` indices the
workers (each emulates a satellite), and one node outside those the client
(by default the node with the highest index). Everything else is *spare*.

The Ansible inventory plugin ``krios.testbed.krios``, the ``krios inventory``
command and the daemons all call this module, so they agree on who is who.
Bad input raises :class:`~krios.errors.ConfigError` naming the file and entry.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from krios.config import scenarios
from krios.config.keys import check_known_keys
from krios.errors import ConfigError

#: GENI RSpec v3 and the Emulab extension namespaces (CloudLab manifests use both).
RSPEC_NS = "http://www.geni.net/resources/rspec/3"
EMULAB_NS = "http://www.protogeni.net/resources/rspec/ext/emulab/1"

#: ``node_network`` values: which address kubelet/Calico use (``krios_node_ip``).
NODE_NETWORKS = ("experiment", "control")

#: Inventory groups, by role.
GROUPS = {
    "control": "krios_control",
    "worker": "krios_workers",
    "client": "krios_client",
    "spare": "krios_spare",
}
#: Control plane + workers: the Kubernetes cluster.
CLUSTER_GROUP = "k8s_cluster"

_INDEX = re.compile(r"(\d+)\D*$")
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$")
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]{0,63}$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_DTD = re.compile(r"<!(DOCTYPE|ENTITY)\b")


@dataclass(frozen=True)
class Node:
    """One machine of the experiment.

    ``public_ip`` is its control-network (routable) IPv4 address; ``experiment_ip``
    the first IPv4 address on an experiment-LAN interface, if it has one.
    ``ssh_host``/``ssh_port``/``ssh_user`` come from the manifest's chosen
    ``<login>``; ``login_users`` lists every username the manifest offers.
    """

    hostname: str
    index: int
    public_ip: str
    experiment_ip: str | None = None
    ssh_host: str | None = None
    ssh_port: int | None = None
    ssh_user: str | None = None
    login_users: tuple[str, ...] = ()
    client_id: str | None = None

    @property
    def short_name(self) -> str:
        """The first label of the hostname (``node7``)."""
        return self.hostname.split(".", 1)[0]

    def node_ip(self, node_network: str = "experiment") -> str:
        """The address kubelet and Calico use: experiment LAN if asked and present, else public."""
        if node_network == "experiment" and self.experiment_ip:
            return self.experiment_ip
        return self.public_ip

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (for caches); :meth:`from_dict` reverses it."""
        data = asdict(self)
        data["login_users"] = list(self.login_users)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Node:
        return cls(**{**data, "login_users": tuple(data.get("login_users", ()))})


@dataclass(frozen=True)
class Roles:
    """Who is who in one experiment, for one scenario.

    ``source`` is the file the nodes came from; ``node_network`` picks each
    node's ``krios_node_ip`` (see :meth:`Node.node_ip`).
    """

    scenario: scenarios.Scenario
    control: Node
    workers: tuple[Node, ...]
    client: Node
    spare: tuple[Node, ...] = ()
    node_network: str = "experiment"
    source: str = ""
    base_node_idx: int = field(default=0)

    def nodes(self) -> list[tuple[str, Node]]:
        """``(role, node)`` for every node, ordered by index."""
        pairs = [("control", self.control), *(("worker", n) for n in self.workers),
                 ("client", self.client), *(("spare", n) for n in self.spare)]
        return sorted(pairs, key=lambda p: p[1].index)

    def groups(self) -> dict[str, list[str]]:
        """Inventory group name → hostnames (ordered by index)."""
        out: dict[str, list[str]] = {
            GROUPS["control"]: [self.control.hostname],
            GROUPS["worker"]: [n.hostname for n in self.workers],
            GROUPS["client"]: [self.client.hostname],
            CLUSTER_GROUP: [self.control.hostname, *(n.hostname for n in self.workers)],
        }
        if self.spare:
            out[GROUPS["spare"]] = [n.hostname for n in self.spare]
        return out

    def hostvars(self, ansible_user: str | None = None) -> dict[str, dict[str, Any]]:
        """Hostname → host variables, as the inventory plugin sets them.

        ``ansible_user`` (if given) is set on every host; otherwise the inventory
        leaves the SSH user to Ansible's usual configuration.
        """
        out: dict[str, dict[str, Any]] = {}
        workers = {n.hostname: i for i, n in enumerate(self.workers)}
        for role, node in self.nodes():
            hv: dict[str, Any] = {"ansible_host": node.ssh_host or node.public_ip}
            if node.ssh_port is not None:
                hv["ansible_port"] = node.ssh_port
            if ansible_user:
                hv["ansible_user"] = ansible_user
            hv.update({
                "krios_role": role,
                "krios_node_index": node.index,
                "krios_public_ip": node.public_ip,
                "krios_experiment_ip": node.experiment_ip,
                "krios_node_ip": node.node_ip(self.node_network),
                "krios_scenario": scenarios.reference(self.scenario),
                "krios_leozone": self.scenario.leozone,
            })
            if role == "worker":
                hv["krios_worker_index"] = workers[node.hostname]
            if node.client_id is not None:
                hv["krios_client_id"] = node.client_id
            if node.login_users:
                hv["krios_login_users"] = list(node.login_users)
            out[node.hostname] = hv
        return out

    def ip_mapping(self) -> dict[str, str]:
        """The original tool's ``ip_mapping.json`` shape for every node: hostname → node IP."""
        return {n.hostname: n.node_ip(self.node_network) for _, n in self.nodes()}

    def to_dict(self, ansible_user: str | None = None) -> dict[str, Any]:
        """JSON-able summary: scenario, source, groups and host variables."""
        return {
            "scenario": self.scenario.name,
            "workers": self.scenario.workers,
            "base_node_idx": self.base_node_idx,
            "node_network": self.node_network,
            "source": self.source,
            "groups": self.groups(),
            "hostvars": self.hostvars(ansible_user),
        }


# --------------------------------------------------------------------------- checks


def _valid_hostname(name: str) -> bool:
    """A DNS name: dot-separated labels of letters, digits, ``-`` and ``_`` (one trailing dot allowed)."""
    labels = name[:-1].split(".") if name.endswith(".") else name.split(".")
    return 0 < len(name) <= 253 and all(_LABEL.match(lab) for lab in labels)


def node_index(hostname: str, *, source: str, field: str | None = None) -> int:
    """The numeric index in a hostname's first label (``node07.x`` → 7).

    Raises :class:`ConfigError` if the hostname is not a valid DNS name or its
    first label holds no digits.
    """
    where = field or hostname
    if not _valid_hostname(hostname):
        raise ConfigError(f"invalid hostname {hostname!r}", source=source, field=where)
    first = hostname.split(".", 1)[0]
    match = _INDEX.search(first)
    if match is None:
        raise ConfigError(
            f"hostname has no numeric index in its first label {first!r} (e.g. node7)",
            source=source, field=where,
        )
    return int(match.group(1))


def check_ipv4(value: Any, *, source: str, field: str) -> str:
    """``value`` as a canonical dotted-quad IPv4 string, or :class:`ConfigError`."""
    if not isinstance(value, str):
        raise ConfigError(f"IPv4 address must be a string, not {value!r}", source=source, field=field)
    try:
        return str(ipaddress.IPv4Address(value.strip()))
    except ValueError:
        raise ConfigError(f"invalid IPv4 address {value!r}", source=source, field=field) from None


def _read(path: str | os.PathLike[str]) -> str:
    p = Path(path)
    if not p.exists():
        raise ConfigError("no such file", source=str(path))
    try:
        return p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", source=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", source=str(path)) from exc


def sort_nodes(nodes: Iterable[Node], *, source: str) -> list[Node]:
    """Nodes ordered by index; two hosts with one index is a :class:`ConfigError`."""
    seen: dict[int, Node] = {}
    for node in nodes:
        other = seen.get(node.index)
        if other is not None:
            raise ConfigError(
                f"index {node.index} is also used by {other.hostname}", source=source, field=node.hostname
            )
        seen[node.index] = node
    return [seen[i] for i in sorted(seen)]


def check_unique_ips(nodes: Iterable[Node], *, source: str) -> None:
    """Two nodes with one public or one experiment-LAN address is a :class:`ConfigError` naming both.

    Kubernetes, SSH and the emulator's ``ip_mapping`` all address nodes by IP: two
    hosts sharing one would silently act on the wrong machine.
    """
    for kind, attr in (("public IP", "public_ip"), ("experiment-LAN IP", "experiment_ip")):
        seen: dict[str, Node] = {}
        for node in nodes:
            ip = getattr(node, attr)
            if ip is None:
                continue
            other = seen.get(ip)
            if other is not None:
                raise ConfigError(f"{kind} {ip} is also used by {other.hostname}", source=source,
                                  field=node.hostname)
            seen[ip] = node


#: Options of a ``krios.yml`` inventory source besides the plugin's own: Ansible's
#: constructed (``compose``, ``groups``, ...) and cache options.
ANSIBLE_OPTIONS = frozenset({
    "plugin", "compose", "groups", "keyed_groups", "strict", "leading_separator", "use_extra_vars",
    "cache", "cache_plugin", "cache_timeout", "cache_connection", "cache_prefix",
})


def check_options(options: Mapping[str, Any], known: Iterable[str], *, source: str) -> None:
    """Refuse an unknown key in an inventory plugin config (``base_node_index: 2`` for
    ``base_node_idx``), naming the file and the key, with the closest known one."""
    check_known_keys(options, set(known) | ANSIBLE_OPTIONS, source=source, what="option")


# --------------------------------------------------------------------------- ip_mapping.json


def parse_ip_mapping_text(text: str, *, source: str) -> list[Node]:
    """Nodes (ordered by index) from the text of an ``ip_mapping.json``."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise ConfigError("hostname listed twice", source=source, field=key)
            out[key] = value
        return out

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"invalid JSON: {exc.msg}", source=source, field=f"line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:  # e.g. [[[[...]]]] thousands deep: the parser's recursion limit
        first = re.search(r'"((?:[^"\\]|\\.)*)"\s*:', text)
        raise ConfigError(
            "nested too deeply: must be a flat JSON object mapping hostnames to IPv4 addresses",
            source=source, field=first.group(1)[:80] if first else None,
        ) from None
    if not isinstance(data, dict):
        raise ConfigError("must be a JSON object mapping hostnames to IPv4 addresses", source=source)
    nodes = [
        Node(hostname=host, index=node_index(host, source=source),
             public_ip=check_ipv4(ip, source=source, field=host))
        for host, ip in data.items()
    ]
    nodes = sort_nodes(nodes, source=source)
    check_unique_ips(nodes, source=source)
    return nodes


def parse_ip_mapping(path: str | os.PathLike[str]) -> list[Node]:
    """Nodes (ordered by index) from an ``ip_mapping.json`` file."""
    return parse_ip_mapping_text(_read(path), source=str(path))


# --------------------------------------------------------------------------- manifest.xml


def _q(tag: str, ns: str = RSPEC_NS) -> str:
    return f"{{{ns}}}{tag}"


def _manifest_node(elem: ET.Element, *, source: str, ansible_user: str | None) -> Node:
    client_id = elem.get("client_id")
    where = f"node {client_id}" if client_id else "node"
    if client_id is not None and not _CLIENT_ID.match(client_id):
        raise ConfigError(f"invalid client_id {client_id!r}", source=source, field=where)
    host = elem.find(_q("host"))
    if host is None or not host.get("ipv4"):
        raise ConfigError("missing <host ipv4=...> (is this the manifest, not the request?)",
                          source=source, field=where)
    hostname = host.get("name") or client_id or ""
    index = node_index(hostname, source=source, field=f"{where} host name")
    public_ip = check_ipv4(host.get("ipv4"), source=source, field=f"{where} host ipv4")

    experiment_ip = None
    for iface in elem.iterfind(_q("interface")):
        for ip in iface.iterfind(_q("ip")):
            kind = (ip.get("type") or "ipv4").lower()
            if kind == "ipv4" and ip.get("address"):
                experiment_ip = check_ipv4(ip.get("address"), source=source,
                                           field=f"{where} interface {iface.get('client_id', '')}".rstrip())
                break
        if experiment_ip:
            break

    logins = []
    services = elem.find(_q("services"))
    for login in services.iterfind(_q("login")) if services is not None else ():
        user = login.get("username")
        if user is not None and not _USER.match(user):
            raise ConfigError(f"invalid login username {user!r}", source=source, field=where)
        login_host = login.get("hostname")
        if login_host is not None and not _valid_hostname(login_host):
            raise ConfigError(f"invalid login hostname {login_host!r}", source=source, field=where)
        port = login.get("port")
        if port is not None:
            if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
                raise ConfigError(f"invalid login port {port!r}", source=source, field=where)
            port = int(port)
        logins.append((user, login_host, port))
    chosen = next((lg for lg in logins if ansible_user and lg[0] == ansible_user), None)
    chosen = chosen or (logins[0] if logins else (None, None, None))
    users = tuple(dict.fromkeys(u for u, _, _ in logins if u))
    return Node(hostname=hostname, index=index, public_ip=public_ip, experiment_ip=experiment_ip,
                ssh_host=chosen[1], ssh_port=chosen[2], ssh_user=chosen[0],
                login_users=users, client_id=client_id)


def parse_manifest_text(text: str, *, source: str, ansible_user: str | None = None) -> list[Node]:
    """Nodes (ordered by index) from the text of a CloudLab/GENI manifest RSpec.

    ``ansible_user`` picks which ``<login>`` (hostname, port) to use when a node
    lists several users; without it, or if that user is not listed, the first.
    Documents with a DTD or entity declarations are refused.
    """
    if _DTD.search(text):
        raise ConfigError("refusing XML with a DTD or entity declaration", source=source)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        line, col = exc.position
        reason = str(exc).split(":", 1)[0]
        raise ConfigError(f"invalid XML: {reason}", source=source, field=f"line {line} column {col + 1}") from None
    if root.tag != _q("rspec"):
        raise ConfigError(f"not a GENI RSpec v3 document (root element {root.tag!r}, "
                          f"expected <rspec xmlns=\"{RSPEC_NS}\">)", source=source)
    if root.get("type", "manifest") != "manifest":
        raise ConfigError(f"a {root.get('type')} RSpec, not a manifest: download the manifest "
                          "from the experiment page", source=source, field="rspec type")
    nodes = [_manifest_node(n, source=source, ansible_user=ansible_user) for n in root.iterfind(_q("node"))]
    nodes = sort_nodes(nodes, source=source)
    check_unique_ips(nodes, source=source)
    return nodes


def parse_manifest(path: str | os.PathLike[str], *, ansible_user: str | None = None) -> list[Node]:
    """Nodes (ordered by index) from a ``manifest.xml`` file; see :func:`parse_manifest_text`."""
    return parse_manifest_text(_read(path), source=str(path), ansible_user=ansible_user)


# --------------------------------------------------------------------------- roles


def load_nodes(
    ip_mapping: str | os.PathLike[str] | None = None,
    manifest: str | os.PathLike[str] | None = None,
    *,
    ansible_user: str | None = None,
    source: str = "options",
) -> tuple[list[Node], str]:
    """``(nodes, file)`` from exactly one of ``ip_mapping`` or ``manifest``.

    ``source`` names where the two options came from (the inventory file, the
    command line) for the "both or neither" error.
    """
    if ip_mapping and manifest:
        raise ConfigError("give either ip_mapping or manifest, not both", source=source,
                          field="ip_mapping/manifest")
    if ip_mapping:
        return parse_ip_mapping(ip_mapping), str(ip_mapping)
    if manifest:
        return parse_manifest(manifest, ansible_user=ansible_user), str(manifest)
    raise ConfigError("give one of ip_mapping (ip_mapping.json) or manifest (manifest.xml)",
                      source=source, field="ip_mapping/manifest")


def _span(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _find(nodes: list[Node], name: str) -> Node | None:
    for node in nodes:
        if name in (node.hostname, node.hostname.rstrip("."), node.short_name, node.client_id):
            return node
    if name.isdigit():
        return next((n for n in nodes if n.index == int(name)), None)
    return None


def assign_roles(
    nodes: list[Node],
    scenario: scenarios.Scenario,
    *,
    base_node_idx: int | None = None,
    client: str | None = None,
    node_network: str = "experiment",
    source: str = "",
    options: str = "options",
) -> Roles:
    """Control, workers, client and spare nodes for ``scenario``.

    The control node has index ``base_node_idx`` (default: the lowest index);
    workers have the next ``scenario.workers`` indices; the client is ``client``
    (a hostname, its first label, manifest client_id or index) or, by default,
    the node with the highest index. ``source`` names the node file and
    ``options`` where the options came from, for errors.
    """
    if node_network not in NODE_NETWORKS:
        raise ConfigError(f"must be one of {', '.join(NODE_NETWORKS)}", source=options,
                          field=f"node_network {node_network}")
    nodes = sort_nodes(nodes, source=source)
    if not nodes:
        raise ConfigError("too few nodes: the file lists none", source=source)
    if base_node_idx is None:
        base_node_idx = nodes[0].index
    if isinstance(base_node_idx, bool) or not isinstance(base_node_idx, int) or base_node_idx < 0:
        raise ConfigError("must be a non-negative integer", source=options, field=f"base_node_idx {base_node_idx}")
    by_index = {n.index: n for n in nodes}
    n_workers = scenario.workers
    first, last = base_node_idx + 1, base_node_idx + n_workers
    needed = range(base_node_idx, last + 1)
    missing = [i for i in needed if i not in by_index]
    have = ", ".join(str(n.index) for n in nodes)
    if missing:
        raise ConfigError(
            f"too few nodes for {scenario.name} with base_node_idx {base_node_idx}: need indices "
            f"{base_node_idx} (control), {_span(first, last)} ({n_workers} workers) and a client; "
            f"missing {', '.join(map(str, missing))} (have {have})",
            source=source, field=f"node index {missing[0]}",
        )
    control = by_index[base_node_idx]
    workers = tuple(by_index[i] for i in range(first, last + 1))
    cluster = {n.hostname for n in (control, *workers)}
    if client is None:
        chosen = nodes[-1]
        if chosen.hostname in cluster:
            raise ConfigError(
                f"too few nodes for {scenario.name} with base_node_idx {base_node_idx}: indices "
                f"{base_node_idx} (control) and {_span(first, last)} ({n_workers} workers) leave no "
                f"node for the client (have {have})",
                source=source, field="client",
            )
    else:
        found = _find(nodes, str(client))
        if found is None:
            names = ", ".join(n.short_name for n in nodes)
            raise ConfigError(f"no such node in {source} (have {names})", source=options,
                              field=f"client {client}")
        if found.hostname in cluster:
            role = "the control node" if found is control else (
                f"a worker ({workers.index(found) + 1} of {n_workers})")
            raise ConfigError(
                f"{found.hostname} is {role} of {scenario.name}; choose a node outside indices "
                f"{_span(base_node_idx, last)}", source=options, field=f"client {client}",
            )
        chosen = found
    spare = tuple(n for n in nodes if n.hostname not in cluster and n is not chosen)
    return Roles(scenario=scenario, control=control, workers=workers, client=chosen, spare=spare,
                 node_network=node_network, source=source, base_node_idx=base_node_idx)


def load_scenario(name: str, *, options: str = "options") -> scenarios.Scenario:
    """:func:`krios.config.scenarios.load`, with an unknown name reported against ``options``."""
    if not name:
        raise ConfigError("required (e.g. sf_4workers)", source=options, field="scenario")
    try:
        return scenarios.load(name)
    except ConfigError as err:
        if err.source == "scenario":  # unknown name: say which options file asked for it
            raise ConfigError(err.message, source=options, field=f"scenario {name}") from None
        raise


def build(
    *,
    scenario: str | scenarios.Scenario,
    ip_mapping: str | os.PathLike[str] | None = None,
    manifest: str | os.PathLike[str] | None = None,
    base_node_idx: int | None = None,
    client: str | None = None,
    ansible_user: str | None = None,
    node_network: str = "experiment",
    options: str = "options",
) -> Roles:
    """Read the node file and assign roles in one call (what the CLI and plugin do)."""
    if not isinstance(scenario, scenarios.Scenario):
        scenario = load_scenario(scenario, options=options)
    nodes, source = load_nodes(ip_mapping, manifest, ansible_user=ansible_user, source=options)
    return assign_roles(nodes, scenario, base_node_idx=base_node_idx, client=client,
                        node_network=node_network, source=source, options=options)
