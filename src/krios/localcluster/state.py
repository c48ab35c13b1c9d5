"""The state folder of a local cluster: where it lives, what it records, who may change it.

One folder per cluster holds everything a running local control plane needs
and everything ``krios cluster status|down`` needs to find it again::

    <state_dir>/
      .krios-cluster        the marker: this folder is a cluster's (written first by ``up``)
      state.json            processes (pid, start tick, port, command), server URL, nodes
      kubeconfig            admin kubeconfig (mode 0600; bearer token, TLS not verified)
      tokens.csv            the apiserver's static token file (mode 0600)
      sa.key                throwaway RSA key for service-account tokens (mode 0600)
      certs/                the apiserver's self-signed serving certificate
      etcd/                 etcd's data
      logs/<component>.log  stdout + stderr of each process
      virtual-kubelet.json  the virtual kubelet's heartbeat (counts, API reachable or not)

The default folder is ``$KRIOS_STATE_DIR`` or ``~/.local/state/krios/cluster``.

Nothing of the user's is ever deleted: ``up`` takes only a folder that does
not exist, is empty, or holds the marker; ``down`` refuses a folder without
the marker, removes only the entries listed in :data:`OWNED` and the marker,
then the folder itself only if nothing else is left in it (``rmdir``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from krios.config.paths import KUBECONFIG, default_state_dir  # noqa: F401  (re-exported)
from krios.errors import ClusterError

STATE_FILE = "state.json"
HEARTBEAT = "virtual-kubelet.json"
LOG_DIR = "logs"
#: The marker file: its presence says the folder is a local cluster's state folder.
MARKER = ".krios-cluster"
#: Every entry a cluster makes in its state folder (the marker is removed last, by ``remove_owned``).
OWNED = (
    STATE_FILE, "state.tmp", "kubeconfig", "tokens.csv", "sa.key", "certs", "etcd", LOG_DIR,
    HEARTBEAT, "virtual-kubelet.tmp",
)


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


def claim(state_dir: Path) -> None:
    """Make ``state_dir`` a cluster state folder, or refuse one that holds anything else.

    Creates the folder when missing (mode 0700) and writes :data:`MARKER`.
    Raises :class:`~krios.errors.ClusterError` naming the folder when it
    is not a directory, or is non-empty without the marker: its files are the
    user's, and ``up`` would otherwise empty it.
    """
    state_dir = Path(state_dir)
    if state_dir.exists() and not state_dir.is_dir():
        raise ClusterError("exists and is not a folder; pick another --state-dir", source=str(state_dir))
    if is_cluster_folder(state_dir):
        return
    if state_dir.exists() and any(state_dir.iterdir()):
        raise ClusterError(
            "is not empty and holds no local cluster (no .krios-cluster marker); "
            "refusing to touch it, pick another --state-dir",
            source=str(state_dir),
        )
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (state_dir / MARKER).write_text("krios local cluster state folder: `krios cluster down` removes it\n")


def is_cluster_folder(state_dir: Path) -> bool:
    """Whether ``state_dir`` holds the marker file :data:`MARKER`.

    A folder made before the marker existed (a valid ``state.json`` and nothing but
    :data:`OWNED` entries) is adopted: the marker is written, since removing its
    entries removes nothing anyone else put there.
    """
    state_dir = Path(state_dir)
    if (state_dir / MARKER).is_file():
        return True
    try:
        names = {p.name for p in state_dir.iterdir()}
        if STATE_FILE not in names or not names <= set(OWNED):
            return False
        ClusterState.from_json((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError, TypeError, AttributeError):
        return False
    (state_dir / MARKER).write_text("krios local cluster state folder: `krios cluster down` removes it\n")
    return True


def check_owned(state_dir: Path) -> None:
    """Raise :class:`~krios.errors.ClusterError` unless ``state_dir`` holds the marker."""
    if not is_cluster_folder(state_dir):
        raise ClusterError(
            "holds no local cluster (no .krios-cluster marker); refusing to remove anything",
            source=str(state_dir),
        )


def remove_owned(state_dir: Path, keep: tuple[str, ...] = (), *, folder: bool = False) -> None:
    """Remove the entries a cluster made (:data:`OWNED`) except ``keep``; nothing else.

    With ``folder=True`` the marker goes too, and then the folder itself if
    nothing else is left in it (files someone else put there stay, and so
    does the folder).
    """
    state_dir = Path(state_dir)
    for name in OWNED:
        if name in keep:
            continue
        entry = state_dir / name
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    if not folder:
        return
    (state_dir / MARKER).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        state_dir.rmdir()  # only if empty: never remove what someone else put there


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
