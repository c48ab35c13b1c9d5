"""``LocalCluster``: a real etcd + kube-apiserver (+ scheduler/controller-manager) and virtual nodes.

Every process runs detached, on loopback ports chosen free at start, and is
recorded (pid, start time, port, command) in the state folder, so that
another process -- ``krios cluster status|down``, a test, Ansible -- can find,
check and stop exactly what was started. See :mod:`krios.localcluster.state` for
the folder's layout.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from krios.errors import ClusterError, ConfigError
from krios.localcluster import binaries, process
from krios.localcluster import components as comp
from krios.localcluster import nodes as vn
from krios.localcluster.state import (
    HEARTBEAT,
    KUBECONFIG,
    LOG_DIR,
    ClusterState,
    ProcessRecord,
    check_owned,
    claim,
    default_state_dir,
    load_state,
    locked,
    remove_owned,
    save_state,
)

log = logging.getLogger(__name__)

KUBELET = "virtual-kubelet"
#: Seconds a component may take to become healthy.
STARTUP_TIMEOUT_S = {"etcd": 30.0, "kube-apiserver": 120.0, KUBELET: 60.0}
DEFAULT_STARTUP_TIMEOUT_S = 60.0
#: Starts with fresh ports when one chosen free was taken before the component bound it.
PORT_ATTEMPTS = 3
#: A heartbeat older than this means the virtual kubelet is stuck.
HEARTBEAT_MAX_AGE_S = 10.0


class LocalCluster:
    """A local Kubernetes control plane with virtual (KWOK-style) nodes.

    Parameters
    ----------
    state_dir:
        Folder for the state, kubeconfig, data and logs (default
        ``$KRIOS_STATE_DIR`` or ``~/.local/state/krios/cluster``).
    workers:
        Virtual worker nodes ``krios-worker-<i>`` (InternalIP ``127.0.1.<i+1>``).
    control_plane_nodes:
        Virtual control-plane nodes ``krios-control-<i>`` (labelled
        ``node-role.kubernetes.io/control-plane``, tainted NoSchedule).
    components:
        Optional real components: ``kube-scheduler``, ``kube-controller-manager``.
    kubelet_ready_delay_s, kubelet_jitter_s:
        A bound pod becomes Running/Ready after ``delay + U[0, jitter)`` seconds.
    owner_pid:
        When given, the cluster takes itself down once that process is gone
        (the virtual kubelet watches it): test sessions leave nothing behind
        even when killed with SIGKILL. ``krios cluster up`` sets no owner.

    ``status``, ``down``, ``kubeconfig``, ``server`` and the component methods
    work on whatever cluster the state folder records, whatever the other
    arguments say.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        workers: int = 4,
        control_plane_nodes: int = 1,
        components: Sequence[str] = ("kube-scheduler",),
        kubelet_ready_delay_s: float = 1.0,
        kubelet_jitter_s: float = 0.2,
        *,
        owner_pid: int | None = None,
    ):
        # Absolute: the kubelet and later commands may run from another working directory.
        self.state_dir = (Path(state_dir).expanduser() if state_dir is not None else default_state_dir()).absolute()
        _check_count(workers, "workers")
        _check_count(control_plane_nodes, "control_plane_nodes")
        for name in components:
            if name not in comp.OPTIONAL:
                raise ConfigError(
                    f"unknown component (known: {', '.join(comp.OPTIONAL)})",
                    source="components", field=name,
                )
        if kubelet_ready_delay_s < 0 or kubelet_jitter_s < 0:
            raise ConfigError("must not be negative", source="kubelet_ready_delay_s/kubelet_jitter_s")
        self.workers = workers
        self.control_plane_nodes = control_plane_nodes
        self.components = tuple(components)
        self.kubelet_ready_delay_s = kubelet_ready_delay_s
        self.kubelet_jitter_s = kubelet_jitter_s
        self.owner_pid = owner_pid
        self._children: dict[str, Any] = {}  # Popen objects we may reap

    # ------------------------------------------------------------ properties
    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (mode 0600)."""
        return self.state_dir / KUBECONFIG

    @property
    def server(self) -> str:
        """``https://127.0.0.1:<port>`` of the apiserver."""
        return self._state().server

    @property
    def worker_names(self) -> list[str]:
        """Names of the virtual workers, ``krios-worker-0`` ... (plus any added)."""
        state = load_state(self.state_dir)
        if state is not None:
            return list(state.workers)
        return [vn.worker_name(i) for i in range(self.workers)]

    def api_client(self):
        """A fresh ``kubernetes.client.ApiClient`` for this cluster."""
        from krios.kube.config import load_client

        return load_client(self.kubeconfig)

    def json_client(self, timeout_s: float = 10.0) -> Any:
        """A fresh :class:`krios.kube.client.RawClient` for this cluster (no rate limit)."""
        from krios.kube.client import RawClient

        return RawClient(self.api_client(), qps=0, burst=1, timeout=(5.0, timeout_s))

    def is_running(self) -> bool:
        """True if any process the state records is alive."""
        state = load_state(self.state_dir)
        return state is not None and any(
            process.alive(p.pid, p.start_ticks) for p in state.processes.values()
        )

    def __enter__(self) -> LocalCluster:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -------------------------------------------------------------------- up
    def up(self) -> LocalCluster:
        """Start everything and wait until the apiserver is ready and every node is Ready.

        Raises :class:`ClusterError` if a cluster already runs in the state
        folder (no twin is started), if the folder is not empty and holds no
        cluster marker (nothing of the user's is touched), or if a component
        fails to start (then everything started so far is stopped; the logs
        stay in ``logs/``).
        """
        t0 = time.monotonic()
        claim(self.state_dir)
        with locked(self.state_dir):
            old = load_state(self.state_dir)
            if old is not None:
                running = [n for n, p in old.processes.items() if process.alive(p.pid, p.start_ticks)]
                if running:
                    raise ClusterError(
                        f"a cluster is already running here ({', '.join(running)}; {old.server}); "
                        "use it, or run `krios cluster down` first",
                        source=str(self.state_dir),
                    )
                log.info("removing the state of a cluster that is no longer running")
            bin_dir = binaries.find_bin_dir()
            for name in ("etcd", "kube-apiserver", *self.components):
                binaries.binary(bin_dir, name)
            for attempt in range(1, PORT_ATTEMPTS + 1):
                self._wipe()
                state = self._prepare(bin_dir)
                try:
                    self._start_all(state)
                    break
                except BaseException as exc:
                    self._stop_all(state)
                    self._wipe(keep=(LOG_DIR,))  # no stale kubeconfig for load_client() to find
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    if not isinstance(exc, ClusterError):
                        raise ClusterError(f"start failed: {exc}; logs in {self.state_dir / LOG_DIR}",
                                           source=str(self.state_dir)) from exc
                    # A port chosen free was taken by someone else before we bound it: new ports.
                    if "address already in use" not in str(exc) or attempt == PORT_ATTEMPTS:
                        raise
                    log.warning("a port was taken meanwhile; starting again on other ports")
        log.info("cluster up in %.1f s: %s", time.monotonic() - t0, state.server)
        return self

    def _wipe(self, keep: tuple[str, ...] = ()) -> None:
        """Remove what a cluster made in the state folder (not the marker), except ``keep``."""
        remove_owned(self.state_dir, keep)

    def _prepare(self, bin_dir: Path) -> ClusterState:
        d = self.state_dir
        os.chmod(d, 0o700)
        (d / "certs").mkdir()
        (d / LOG_DIR).mkdir()
        token = secrets.token_urlsafe(32)
        comp.write_token_file(d / "tokens.csv", token)
        comp.write_sa_key(d / "sa.key")
        etcd_port, peer_port, api_port, sched_port, cm_port = comp.free_ports(5)
        server = f"https://127.0.0.1:{api_port}"
        comp.write_kubeconfig(self.kubeconfig, server, token)

        def record(name: str, cmd: list[str], port: int | None) -> ProcessRecord:
            return ProcessRecord(
                name=name, cmd=cmd, log=str(d / LOG_DIR / f"{name}.log"), port=port,
                health_url=comp.health_url(name, port),
            )

        procs = {
            "etcd": record("etcd", comp.etcd_cmd(bin_dir / "etcd", d / "etcd", etcd_port, peer_port), etcd_port),
            "kube-apiserver": record(
                "kube-apiserver", comp.apiserver_cmd(bin_dir / "kube-apiserver", d, api_port, etcd_port), api_port
            ),
        }
        if "kube-scheduler" in self.components:
            cmd = comp.scheduler_cmd(bin_dir / "kube-scheduler", self.kubeconfig, sched_port)
            procs["kube-scheduler"] = record("kube-scheduler", cmd, sched_port)
        if "kube-controller-manager" in self.components:
            cmd = comp.controller_manager_cmd(bin_dir / "kube-controller-manager", d, self.kubeconfig, cm_port)
            procs["kube-controller-manager"] = record("kube-controller-manager", cmd, cm_port)
        procs[KUBELET] = record(KUBELET, self._kubelet_cmd(), None)
        state = ClusterState(
            server=server,
            token=token,
            workers=[vn.worker_name(i) for i in range(self.workers)],
            control_plane_nodes=[vn.control_name(i) for i in range(self.control_plane_nodes)],
            components=list(self.components),
            kubelet_ready_delay_s=self.kubelet_ready_delay_s,
            kubelet_jitter_s=self.kubelet_jitter_s,
            bin_dir=str(bin_dir),
            created=time.time(),
            processes=procs,
        )
        save_state(d, state)
        return state

    def _kubelet_cmd(self) -> list[str]:
        owner = []
        if self.owner_pid is not None:
            owner = [f"--owner-pid={self.owner_pid}", f"--owner-ticks={process.start_ticks(self.owner_pid)}"]
        return [
            sys.executable, "-m", "krios.localcluster.kubelet",
            f"--kubeconfig={self.kubeconfig}",
            f"--state-dir={self.state_dir}",
            f"--workers={self.workers}",
            f"--control-plane-nodes={self.control_plane_nodes}",
            f"--ready-delay-s={self.kubelet_ready_delay_s}",
            f"--jitter-s={self.kubelet_jitter_s}",
            *owner,
        ]

    def _start_all(self, state: ClusterState) -> None:
        self._start(state, "etcd")
        self._wait_healthy(state, "etcd")
        self._start(state, "kube-apiserver")
        # The virtual kubelet polls until the apiserver answers: starting it now hides Python's start-up.
        self._start(state, KUBELET)
        self._wait_healthy(state, "kube-apiserver")
        rest = [n for n in state.processes if n not in ("etcd", "kube-apiserver", KUBELET)]
        for name in rest:  # start together, then wait for each
            self._start(state, name)
        for name in [*rest, KUBELET]:
            self._wait_healthy(state, name)
        self._wait_nodes_ready(state, state.control_plane_nodes + state.workers)

    def _start(self, state: ClusterState, name: str) -> None:
        rec = state.processes[name]
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2])  # so `-m krios...` works from a checkout too
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
        proc = process.spawn(rec.cmd, Path(rec.log), env=env)
        self._children[name] = proc
        rec.pid = proc.pid
        rec.start_ticks = process.start_ticks(proc.pid)
        save_state(self.state_dir, state)
        log.info("started %s (pid %d)", name, proc.pid)

    def _wait_healthy(self, state: ClusterState, name: str) -> None:
        rec = state.processes[name]
        t0 = time.monotonic()
        deadline = t0 + STARTUP_TIMEOUT_S.get(name, DEFAULT_STARTUP_TIMEOUT_S)
        detail = "not started"
        while time.monotonic() < deadline:
            if not process.alive(rec.pid, rec.start_ticks):
                raise ClusterError(f"{name} exited during start (log {rec.log}):\n{_tail(rec.log)}",
                                   source=str(self.state_dir))
            ok, detail = self._component_health(state, rec)
            if ok:
                log.info("%s healthy after %.1f s more", name, time.monotonic() - t0)
                return
            time.sleep(0.2)
        raise ClusterError(
            f"{name} not healthy after {STARTUP_TIMEOUT_S.get(name, DEFAULT_STARTUP_TIMEOUT_S):.0f} s "
            f"({detail}; log {rec.log}):\n{_tail(rec.log)}",
            source=str(self.state_dir),
        )

    def _wait_nodes_ready(self, state: ClusterState, names: Iterable[str], timeout_s: float = 60.0) -> None:
        from krios.kube.client import API_ERRORS

        want = set(names)
        if not want:
            return
        deadline = time.monotonic() + timeout_s
        missing = want
        client = self.json_client()
        with client.api:
            while time.monotonic() < deadline:
                try:
                    nodes = _raw_nodes(client)
                except API_ERRORS:
                    nodes = {}
                missing = {n for n in want if not vn.node_is_ready(nodes.get(n, {}))}
                if not missing:
                    return
                time.sleep(0.1)
        raise ClusterError(
            f"nodes not Ready after {timeout_s:.0f} s: {', '.join(sorted(missing))}\n"
            f"{_tail(state.processes[KUBELET].log)}",
            source=str(self.state_dir),
        )

    # ------------------------------------------------------------------ down
    def down(self) -> list[str]:
        """Stop every process the state records (TERM, then KILL), remove what the cluster made.

        Returns the names of the processes that were still running. Raises
        :class:`ClusterError` naming the folder, and removes nothing, when it
        holds no cluster marker. The folder itself goes only if ``up`` created
        it and nothing else is left in it.
        """
        if not self.state_dir.exists():
            return []
        check_owned(self.state_dir)
        with locked(self.state_dir):
            state = load_state(self.state_dir)
            stopped = self._stop_all(state) if state is not None else []
            remove_owned(self.state_dir, folder=True)
        return stopped

    def _stop_all(self, state: ClusterState) -> list[str]:
        stopped = []
        for name in reversed(list(state.processes)):
            if state.processes[name].pid == os.getpid():
                continue  # the virtual kubelet taking its cluster down after its owner died
            if self._stop(state, name):
                stopped.append(name)
        return stopped

    def _stop(self, state: ClusterState, name: str) -> bool:
        rec = state.processes[name]
        was = process.stop(rec.pid, rec.start_ticks)
        child = self._children.pop(name, None)
        if child is not None:
            child.poll()  # reap our own child so it does not linger as a zombie
        return was

    # ----------------------------------------------------- single components
    def stop_component(self, name: str) -> None:
        """Stop one component (e.g. ``kube-apiserver``); :meth:`start_component` brings it back."""
        with locked(self.state_dir):
            state, rec = self._component(name)
            self._stop(state, name)
            rec.pid = rec.start_ticks = None
            save_state(self.state_dir, state)

    def start_component(self, name: str) -> None:
        """Start a stopped component again with its original flags and port; wait until healthy."""
        with locked(self.state_dir):
            state, rec = self._component(name)
            if process.alive(rec.pid, rec.start_ticks):
                return
            self._start(state, name)
            self._wait_healthy(state, name)

    def _component(self, name: str) -> tuple[ClusterState, ProcessRecord]:
        state = self._state()
        if name not in state.processes:
            raise ConfigError(f"not part of this cluster (has: {', '.join(state.processes)})",
                              source="component", field=name)
        return state, state.processes[name]

    # -------------------------------------------------------------- add nodes
    def add_nodes(self, names: Iterable[str], labels: dict[str, str] | None = None,
                  timeout_s: float = 30.0) -> None:
        """Create more virtual workers and wait until the virtual kubelet has made them Ready.

        A name ``krios-worker-<i>`` gets InternalIP ``127.0.1.<i+1>``; any other
        name gets the next free address after the existing workers'.
        """
        from kubernetes.client.exceptions import ApiException

        from krios.kube.client import create_or_exists, node_path

        names = list(names)
        with locked(self.state_dir):
            state = self._state()
            known = set(state.workers) | set(state.control_plane_nodes)
            client = self.json_client()
            with client.api:
                used = {vn.node_ip(n) for n in _raw_nodes(client).values()}
                used |= {vn.ip_for_name(n) for n in names}
                next_ip = 0
                for name in names:
                    ip = vn.ip_for_name(name)
                    if ip is None:
                        while vn.worker_ip(next_ip) in used:
                            next_ip += 1
                        ip = vn.worker_ip(next_ip)
                        used.add(ip)
                    body = vn.node_manifest(name, ip, labels)
                    try:
                        create_or_exists(client, node_path(), body)
                    except ApiException as err:
                        raise ClusterError(f"cannot create node: {err.reason}", source="add_nodes",
                                           field=name) from err
                    if name not in known:
                        state.workers.append(name)
                        known.add(name)
            save_state(self.state_dir, state)
        self._wait_nodes_ready(state, names, timeout_s)

    # ---------------------------------------------------------------- status
    def status(self) -> dict[str, Any]:
        """Health of every component and the nodes as the apiserver sees them.

        ``{"state_dir", "server", "kubeconfig", "healthy": bool,
        "components": [{"name", "pid", "port", "alive", "healthy", "detail"}],
        "nodes": [{"name", "ready", "sat_id", "ip", "role"}] | None, "nodes_error"}``
        """
        state = self._state()
        comps = []
        for name, rec in state.processes.items():
            alive = process.alive(rec.pid, rec.start_ticks)
            if rec.pid is None:
                ok, detail = False, "stopped"
            elif not alive:
                ok, detail = False, "process not running"
            else:
                ok, detail = self._component_health(state, rec)
            comps.append({"name": name, "pid": rec.pid, "port": rec.port, "alive": alive,
                          "healthy": ok, "detail": detail})
        api_ok = next(c["healthy"] for c in comps if c["name"] == "kube-apiserver")
        nodes, nodes_error = None, None
        if api_ok:
            from krios.kube.client import API_ERRORS

            try:
                nodes = self._node_rows()
            except (*API_ERRORS, ValueError) as err:  # the apiserver may die between probe and list
                nodes_error = str(err).splitlines()[0]
        else:
            nodes_error = "kube-apiserver is down"
        return {
            "state_dir": str(self.state_dir),
            "server": state.server,
            "kubeconfig": str(self.kubeconfig),
            "healthy": all(c["healthy"] for c in comps),
            "components": comps,
            "nodes": nodes,
            "nodes_error": nodes_error,
        }

    def _node_rows(self) -> list[dict[str, Any]]:
        from krios.kube.names import SAT_LABEL
        from krios.kube.objects import labels, node_internal_ip

        client = self.json_client(timeout_s=5)
        with client.api:
            items = _raw_nodes(client)
        rows = []
        for name in sorted(items, key=_node_sort_key):
            node = items[name]
            role = "control-plane" if vn.CONTROL_ROLE in labels(node) else "worker"
            rows.append({"name": name, "ready": vn.node_is_ready(node), "sat_id": labels(node).get(SAT_LABEL),
                         "ip": node_internal_ip(node) or "", "role": role})
        return rows

    def _component_health(self, state: ClusterState, rec: ProcessRecord) -> tuple[bool, str]:
        if rec.name == KUBELET:
            return self._kubelet_health()
        if rec.health_url is None:
            return True, "running"
        token = state.token if rec.name == "kube-apiserver" else None
        return comp.probe(rec.health_url, token)

    def _kubelet_health(self) -> tuple[bool, str]:
        import json

        try:
            beat = json.loads((self.state_dir / HEARTBEAT).read_text())
        except (FileNotFoundError, ValueError):
            return False, "no heartbeat yet"
        age = time.time() - beat.get("time", 0)
        if age > HEARTBEAT_MAX_AGE_S:
            return False, f"heartbeat {age:.0f} s old"
        if not beat.get("api_ok"):
            return False, f"cannot reach the apiserver ({beat.get('api_detail') or 'starting'})"
        return True, f"{beat.get('nodes', 0)} nodes, {beat.get('pods', 0)} pods"

    def _state(self) -> ClusterState:
        state = load_state(self.state_dir)
        if state is None:
            raise ClusterError("no local cluster here; start one with `krios cluster up`",
                               source=str(self.state_dir))
        return state


def components_module_optional() -> tuple[str, ...]:
    return comp.OPTIONAL


def _check_count(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError("must be a whole number >= 0", source=name, field=str(value))


def _raw_nodes(client: Any) -> dict[str, dict[str, Any]]:
    """Nodes by name, as JSON, through ``client`` (a :class:`krios.kube.client.RawClient`)."""
    from krios.kube.client import list_items, node_path

    return {n["metadata"]["name"]: n for n in list_items(client, node_path())}


def _node_sort_key(name: str) -> tuple[str, int]:
    head, _, tail = name.rpartition("-")
    return (head, int(tail)) if tail.isdigit() else (name, -1)


def _tail(path: str, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(f"  | {line}" for line in text[-lines:])
