"""The state folder of a local cluster: where it lives, what it records, who may change it.

One folder per cluster holds everything a running local control plane needs
and everything ``krios cluster status|down`` needs to find it again::

    <state_dir>/
      state.json            processes (pid, start tick, port, command), server URL, nodes
      kubeconfig            admin kubeconfig (mode 0600; bearer token, TLS not verified)
      tokens.csv            the apiserver's static token file (mode 0600)
      sa.key                throwaway RSA key for service-account tokens (mode 0600)
      certs/                the apiserver's self-signed serving certificate
      etcd/                 etcd's data
      logs/<component>.log  stdout + stderr of each process
      virtual-kubelet.json  the virtual kubelet's heartbeat (counts, API reachable or not)

The default folder is ``$KRIOS_STATE_DIR`` or ``~/.local/state/krios/cluster``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from krios.config.paths import KUBECONFIG, default_state_dir  # noqa: F401  (re-exported)

STATE_FILE = "state.json"
HEARTBEAT = "virtual-kubelet.json"
LOG_DIR = "logs"


@dataclass
class ProcessRecord:
    """One process the cluster started.

    ``start_ticks`` is the process start time from ``/proc/<pid>/stat`` (clock
    ticks since boot); together with ``pid`` it identifies the process even
    after the pid has been reused. ``pid`` is ``None`` while the component is
    stopped on purpose (``stop_component``).
    """

    name: str
    cmd: list[str]
    log: str
    pid: int | None = None
    start_ticks: int | None = None
    port: int | None = None
    health_url: str | None = None


@dataclass
class ClusterState:
    """What ``state.json`` holds."""

    server: str
    token: str
    workers: list[str]
    control_plane_nodes: list[str]
    components: list[str]
    kubelet_ready_delay_s: float
    kubelet_jitter_s: float
    bin_dir: str
    created: float
    processes: dict[str, ProcessRecord] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ClusterState:
        data = json.loads(text)
        procs = {k: ProcessRecord(**v) for k, v in data.pop("processes", {}).items()}
        return cls(**data, processes=procs)


def load_state(state_dir: Path) -> ClusterState | None:
    """The recorded state, or ``None`` when the folder holds no cluster."""
    path = Path(state_dir) / STATE_FILE
    try:
        return ClusterState.from_json(path.read_text())
    except FileNotFoundError:
        return None


def save_state(state_dir: Path, state: ClusterState) -> None:
    """Write ``state.json`` atomically (write a temporary file, then rename)."""
    path = Path(state_dir) / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(state.to_json())
    os.replace(tmp, path)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (mode 0600 from the start)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the state folder (``up``/``down`` never race)."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(state_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
