"""``up``/``status``/``down`` of the lab: node containers that look like bare CloudLab hosts.

Each node is a privileged podman container running systemd as PID 1 (as kind's nodes),
from the image of :mod:`krios.lab.image`, with a fixed address on the lab's own bridge
network (:mod:`krios.lab.network`), a podman volume at ``/var/lib/containerd`` (overlay
on overlay does not work for containerd's snapshots; kind does the same), the hostname
``node<i>`` and the lab's SSH key authorised for root.

Everything ``up`` makes is recorded in ``<state_dir>/lab.json`` as it is made;
``down`` removes exactly what that file lists (containers, volumes, the network, the
files, and ``state_dir`` itself only if ``up`` created it), and only if the marker file
``<state_dir>/.krios-lab`` it wrote is there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from krios.lab import image as lab_image
from krios.lab import inputs
from krios.lab import network as lab_network
from krios.lab.network import LabError

MARKER = ".krios-lab"
STATE = "lab.json"
KEY = "id_ed25519"
#: The OCI runtime for the node containers: crun refuses this kernel's hybrid cgroup v1 setup.
RUNTIME = "runc"
#: podman options every node needs (LAB.md); the hard limit here is 20000. ``--cgroupns=private``: on
#: cgroup v1 podman defaults to the host's cgroup namespace, and runc inside the node then fails every pod
#: container with ``error mounting "cgroup" to rootfs at "/sys/fs/cgroup": stat /sys/fs/kubepods/...``
#: (the node sees host cgroup paths in /proc/self/cgroup but its own subtree as the mount root).
RUN_OPTS = (
    "--privileged",
    "--systemd=always",
    "--cgroupns=private",
    "--ulimit",
    "nofile=20000:20000",
    "--ulimit",
    "nproc=20000:20000",
    "--tmpfs",
    "/tmp",
    "--tmpfs",
    "/run",
)
SSH_TIMEOUT_S = 120.0


@dataclass
class LabState:
    """What one lab is made of (the content of ``lab.json``)."""

    name: str
    state_dir: Path
    subnet: str
    network: str
    image: str
    nodes: list[inputs.LabNode] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    created_state_dir: bool = False
    #: folders ``up`` created (``state_dir`` and any missing parents), deepest first
    created_dirs: list[str] = field(default_factory=list)
    network_created: bool = False
    image_built: bool = False
    scenario: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def key(self) -> Path:
        return self.state_dir / KEY

    @property
    def inventory(self) -> Path:
        return self.state_dir / "krios.yml"

    def node(self, hostname: str) -> inputs.LabNode:
        for n in self.nodes:
            if n.hostname == hostname:
                return n
        raise KeyError(hostname)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state_dir": str(self.state_dir),
            "subnet": self.subnet,
            "network": self.network,
            "image": self.image,
            "nodes": [n.to_dict() for n in self.nodes],
            "files": self.files,
            "created_state_dir": self.created_state_dir,
            "created_dirs": self.created_dirs,
            "network_created": self.network_created,
            "image_built": self.image_built,
            "scenario": self.scenario,
            "timings": self.timings,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabState:
        nodes = [inputs.LabNode(**{k: v for k, v in n.items() if k != "fqdn"}) for n in data.get("nodes", [])]
        return cls(
            name=data["name"],
            state_dir=Path(data["state_dir"]),
            subnet=data["subnet"],
            network=data["network"],
            image=data["image"],
            nodes=nodes,
            files=list(data.get("files", [])),
            created_state_dir=bool(data.get("created_state_dir")),
            created_dirs=list(data.get("created_dirs", [])),
            network_created=bool(data.get("network_created")),
            image_built=bool(data.get("image_built")),
            scenario=data.get("scenario", ""),
            timings=dict(data.get("timings", {})),
        )

    def save(self) -> None:
        path = self.state_dir / STATE
        tmp = path.with_suffix(".json.part")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, path)


# --------------------------------------------------------------------------- helpers


def _podman(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = ["podman", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise LabError(f"podman failed: {err}", source=" ".join(cmd[:3])) from err
    if check and proc.returncode != 0:
        raise LabError(f"exited {proc.returncode}: {proc.stderr.strip()[-400:]}", source=" ".join(cmd[:3]))
    return proc


def ensure_tools() -> None:
    """podman, runc, ssh and ssh-keygen; installed with apt-get when missing (Debian hosts)."""
    missing = [
        pkg
        for tool, pkg in (
            ("podman", "podman"),
            ("runc", "runc"),
            ("ssh", "openssh-client"),
            ("ssh-keygen", "openssh-client"),
        )
        if shutil.which(tool) is None
    ]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise LabError(f"missing tools; install the packages {' '.join(sorted(set(missing)))}", source="krios lab")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *sorted(set(missing))]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
        if proc.returncode != 0:
            raise LabError(
                f"could not install {' '.join(missing)}: {proc.stderr.strip()[-300:]}", source=" ".join(cmd[:2])
            )


def container_state(name: str) -> str:
    """``running``, ``exited``, ... or ``absent``."""
    proc = _podman("container", "inspect", "--format", "{{.State.Status}}", name, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else "absent"


def _ssh_cmd(state: LabState, node: inputs.LabNode, *cmd: str, connect_timeout: int = 3) -> list[str]:
    return [
        "ssh",
        "-F",
        "none",
        "-i",
        str(state.key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        f"UserKnownHostsFile={state.state_dir / 'known_hosts'}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"ConnectTimeout={connect_timeout}",
        f"root@{node.address}",
        *cmd,
    ]


def ssh(state: LabState, hostname: str, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``command`` on a node over SSH as root (the way Ansible will)."""
    return subprocess.run(
        _ssh_cmd(state, state.node(hostname), command), capture_output=True, text=True, timeout=timeout, check=False
    )


def _port_open(address: str, port: int = 22, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def _ssh_ok(state: LabState, node: inputs.LabNode) -> bool:
    if not _port_open(node.address):
        return False
    try:
        proc = subprocess.run(_ssh_cmd(state, node, "true"), capture_output=True, timeout=15, check=False)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def _host_key(node: inputs.LabNode, deadline: float) -> str:
    """The node's ed25519 host key, read through podman (a trusted channel, no TOFU)."""
    while True:
        proc = _podman("exec", node.container, "cat", "/etc/ssh/ssh_host_ed25519_key.pub", check=False)
        if proc.returncode == 0 and proc.stdout.startswith("ssh-ed25519 "):
            return " ".join(proc.stdout.split()[:2])
        if time.monotonic() > deadline:
            raise LabError("no SSH host key appeared (did sshd start?)", source=node.container)
        time.sleep(0.5)


def _write(state: LabState, rel: str, text: str, mode: int = 0o644) -> None:
    path = state.state_dir / rel
    if path.parent != state.state_dir and not path.parent.exists():
        path.parent.mkdir(parents=True)
        folder = str(path.parent)
        if folder not in state.created_dirs:
            state.created_dirs.insert(0, folder)  # removed (if empty) before the state folder
    if rel not in state.files:
        state.files.append(rel)
        state.save()
    path.write_text(text)
    path.chmod(mode)


def _plan(name: str, subnet: str, workers: int, clients: int) -> list[inputs.LabNode]:
    net = lab_network.parse_subnet(subnet, 1 + workers + clients)
    roles = ["control"] + ["worker"] * workers + ["client"] * clients
    return [
        inputs.LabNode(
            index=i,
            role=role,
            container=f"{name}-node{i}",
            hostname=f"node{i}",
            address=lab_network.node_address(net, i),
            volume=f"{name}-node{i}-containerd",
        )
        for i, role in enumerate(roles)
    ]


def load(state_dir: Path) -> LabState | None:
    """The lab recorded in ``state_dir`` (``None`` if there is none)."""
    path = Path(state_dir) / STATE
    if not path.is_file():
        return None
    try:
        return LabState.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise LabError(f"unreadable lab state: {err}", source=str(path)) from err


# --------------------------------------------------------------------------- up / status / down


def up(
    workers: int = 2,
    clients: int = 1,
    state_dir: Path = Path(".krios/lab"),
    subnet: str = "10.213.0.0/24",
    name: str = "krios-lab",
    scenario: str | None = None,
) -> LabState:
    """Bring the lab up (a no-op if it is already up as asked); see the module docstring.

    ``scenario``: the scenario the written ``krios.yml`` names; by default a
    ``lab_<workers>workers.yml`` file written beside it.
    """
    if workers < 1 or clients < 1:
        raise LabError("a lab needs at least 1 worker and 1 client", source="workers/clients")
    state_dir = Path(state_dir).absolute()
    planned = _plan(name, subnet, workers, clients)
    existing = load(state_dir)
    if existing is not None:
        if (existing.name, existing.subnet, [n.to_dict() for n in existing.nodes]) != (
            name,
            subnet,
            [n.to_dict() for n in planned],
        ):
            raise LabError(
                f"a different lab ({existing.name}, {len(existing.nodes)} nodes, {existing.subnet}) "
                "is recorded here; run 'krios lab down' first",
                source=str(state_dir / STATE),
            )
        if all(container_state(n.container) == "running" for n in existing.nodes) and all(
            (state_dir / f).exists() for f in existing.files
        ):
            return existing
        # Stopped (e.g. after a reboot): start what is there, recreate nothing.
        for n in existing.nodes:
            if container_state(n.container) != "running":
                _podman("start", n.container)
        _wait_ssh(existing, existing.nodes)
        return existing
    if state_dir.exists() and any(state_dir.iterdir()) and not (state_dir / MARKER).exists():
        raise LabError("exists and is not a lab folder (no marker file); pick another state_dir", source=str(state_dir))

    ensure_tools()
    created_dir = not state_dir.exists()
    created_dirs = []
    probe = state_dir
    while not probe.exists():
        created_dirs.append(str(probe))
        probe = probe.parent
    state_dir.mkdir(parents=True, exist_ok=True)
    state = LabState(
        name=name,
        state_dir=state_dir,
        subnet=subnet,
        network=name,
        image="",
        created_state_dir=created_dir,
        created_dirs=created_dirs,
    )
    (state_dir / MARKER).write_text(f"krios lab {name}\n")
    state.files.append(MARKER)
    state.save()
    state.files.append(STATE)
    try:
        _up(state, planned, workers, scenario)
    except BaseException:
        down(state_dir)
        raise
    return state


def _up(state: LabState, planned: list[inputs.LabNode], workers: int, scenario: str | None) -> None:
    t0 = time.monotonic()
    state.image, state.image_built = lab_image.ensure_image()
    state.timings["image_s"] = round(time.monotonic() - t0, 1)
    state.save()

    net = lab_network.parse_subnet(state.subnet, len(planned))
    if lab_network.network_exists(state.network):
        if lab_network.network_subnets(state.network) != [str(net)]:
            raise LabError(
                f"a podman network of this name exists with subnets {lab_network.network_subnets(state.network)}",
                source="network",
                field=state.network,
            )
    else:
        clash = lab_network.overlapping_networks(net)
        if clash:
            raise LabError(f"overlaps the podman network(s) {', '.join(clash)}", source="subnet", field=state.subnet)
        lab_network.create_network(state.network, net, f"krios.lab={state.name}")
        state.network_created = True
        state.save()

    key = state.key
    if not key.exists():
        proc = subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"krios-lab-{state.name}", "-f", str(key)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise LabError(f"ssh-keygen failed: {proc.stderr.strip()}", source=str(key))
    for rel in (KEY, KEY + ".pub"):
        if rel not in state.files:
            state.files.append(rel)
    state.save()

    for n in planned:  # never adopt (and later remove) a container or volume this lab did not make
        if container_state(n.container) != "absent":
            raise LabError("a container of this name exists and is not this lab's", source="podman", field=n.container)
        if _podman("volume", "exists", n.volume, check=False).returncode == 0:
            raise LabError("a volume of this name exists and is not this lab's", source="podman", field=n.volume)

    t1 = time.monotonic()
    hosts: list[str] = []
    for n in planned:
        hosts += ["--add-host", f"{n.fqdn}:{n.address}", "--add-host", f"{n.hostname}:{n.address}"]
    for n in planned:
        state.nodes.append(n)  # recorded before it exists, so that a failure removes it
        state.save()
        _podman("volume", "create", "--label", f"krios.lab={state.name}", n.volume)
        _podman(
            "--runtime",
            RUNTIME,
            "create",
            "--name",
            n.container,
            "--hostname",
            n.hostname,
            "--label",
            f"krios.lab={state.name}",
            "--network",
            state.network,
            "--ip",
            n.address,
            *RUN_OPTS,
            "--volume",
            f"{n.volume}:/var/lib/containerd",
            *hosts,
            state.image,
        )
        _podman("cp", f"{key}.pub", f"{n.container}:/root/.ssh/authorized_keys")
        _podman("start", n.container)
    deadline = time.monotonic() + SSH_TIMEOUT_S
    known = [f"{n.address},{n.hostname},{n.fqdn} {_host_key(n, deadline)}" for n in planned]
    _write(state, "known_hosts", "\n".join(known) + "\n", 0o600)
    _wait_ssh(state, planned)
    state.timings["nodes_s"] = round(time.monotonic() - t1, 1)

    if scenario is None:
        fname, text = inputs.scenario(workers)
        _write(state, fname, text)
        scenario = str(state.state_dir / fname)
    state.scenario = scenario
    clients = [n for n in planned if n.role == "client"]
    _write(state, "ip_mapping.json", inputs.ip_mapping(planned))
    _write(state, "manifest.xml", inputs.manifest(planned, state.name))
    _write(state, "ssh_config", inputs.ssh_config(planned, key, state.state_dir / "known_hosts"))
    # Ansible reads group_vars/ beside an inventory file: the lab's settings reach
    # every play (implicit localhost included) without -e.
    _write(state, "group_vars/all.yml", inputs.group_vars())
    _write(
        state,
        "krios.yml",
        inputs.krios_yml(
            state.state_dir, scenario, planned[0].index, clients[-1].hostname, key, state.state_dir / "known_hosts"
        ),
    )
    state.timings["up_s"] = round(time.monotonic() - t0, 1)
    state.save()


def _wait_ssh(state: LabState, nodes: list[inputs.LabNode]) -> None:
    deadline = time.monotonic() + SSH_TIMEOUT_S
    pending = list(nodes)
    while pending:
        pending = [n for n in pending if not _ssh_ok(state, n)]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise LabError(
                f"sshd did not answer within {SSH_TIMEOUT_S:.0f} s", source=", ".join(n.container for n in pending)
            )
        time.sleep(0.5)


def status(state_dir: Path = Path(".krios/lab")) -> dict[str, Any]:
    """Each node's container state, address and whether SSH answers; ``{"up": False}`` if no lab."""
    state = load(Path(state_dir).absolute())
    if state is None:
        return {"up": False, "nodes": {}}
    nodes = {}
    for n in state.nodes:
        st = container_state(n.container)
        nodes[n.hostname] = {
            "container": n.container,
            "state": st,
            "address": n.address,
            "role": n.role,
            "ssh": st == "running" and _ssh_ok(state, n),
        }
    return {
        "up": all(v["state"] == "running" and v["ssh"] for v in nodes.values()),
        "name": state.name,
        "network": state.network,
        "subnet": state.subnet,
        "image": state.image,
        "inventory": str(state.inventory),
        "nodes": nodes,
    }


def down(state_dir: Path = Path(".krios/lab")) -> bool:
    """Remove everything the lab in ``state_dir`` made; ``False`` if there was no lab there.

    The node image is kept (it is a cache, like the debootstrap tarball).
    """
    state_dir = Path(state_dir).absolute()
    if not (state_dir / MARKER).is_file():
        return False
    state = load(state_dir)
    if state is None:
        (state_dir / MARKER).unlink(missing_ok=True)
        return False
    errors = []
    present = [n.container for n in state.nodes if container_state(n.container) != "absent"]
    if present:  # one call: podman stops them in parallel
        proc = _podman("rm", "-f", "-t", "5", *present, check=False, timeout=180)
        if proc.returncode != 0:
            errors.append(f"{' '.join(present)}: {proc.stderr.strip()}")
    for n in reversed(state.nodes):
        if _podman("volume", "exists", n.volume, check=False).returncode == 0:
            proc = _podman("volume", "rm", "-f", n.volume, check=False)
            if proc.returncode != 0:
                errors.append(f"{n.volume}: {proc.stderr.strip()}")
    if state.network_created:
        lab_network.remove_network(state.network)
    if errors:
        raise LabError("could not remove: " + "; ".join(errors), source=str(state_dir / STATE))
    for rel in reversed(state.files):
        if rel in (STATE, MARKER):
            continue
        (state_dir / rel).unlink(missing_ok=True)
    (state_dir / STATE).unlink(missing_ok=True)
    (state_dir / MARKER).unlink(missing_ok=True)
    for folder in state.created_dirs or ([str(state_dir)] if state.created_state_dir else []):
        with contextlib.suppress(OSError):
            Path(folder).rmdir()  # only if empty: never remove what someone else put there
    return True
