"""How ``krios bench latency`` injects control-plane delay and runs the schedulers under test.

- :class:`SpawnInjector`: an in-process :class:`~krios.measure.delayproxy.DelayProxy`
  in front of the apiserver and the schedulers under test started as child
  processes talking through it (``kube-scheduler`` for ``default-scheduler``,
  ``krios scheduler`` for ``krios-scheduler``). A local cluster's own
  kube-scheduler is paused while they run (it would bind ``default-scheduler``
  pods without delay) and resumed afterwards.
- :class:`AttachInjector`: the schedulers already talk through a running
  ``krios delayproxy``; only its delay is changed (``--proxy-control URL``).
- :class:`NoInjector`: nothing is injected (``--no-inject``; e.g. tc netem set
  up outside, on real nodes); the delay values are only labels of the cells.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from krios.config import defaults as D
from krios.errors import ConfigError
from krios.kube.names import DEFAULT_SCHEDULER_NAME, SCHEDULER_NAME
from krios.localcluster import process
from krios.measure.delayproxy import DelayProxy, RemoteProxy, kubeconfig_server, parse_hostport, proxied_kubeconfig

log = logging.getLogger(__name__)


class NoInjector:
    """No delay injected by the benchmark (``--no-inject``)."""

    description = "none (delay injected outside the benchmark, e.g. tc netem, or not at all)"

    def set_delay(self, ms: float) -> None:
        pass

    def check(self) -> None:
        pass

    def close(self) -> None:
        pass

    def info(self) -> dict[str, Any]:
        return {"mode": "none"}


class AttachInjector:
    """Set the delay of a running ``krios delayproxy`` through its control endpoint."""

    def __init__(self, control_url: str):
        self.remote = RemoteProxy(control_url)
        self.state = self.remote.state()  # fails early with one line if unreachable
        self.description = (f"krios delayproxy {self.state.get('listen')} -> {self.state.get('target')} "
                            f"(attached via {control_url})")

    def set_delay(self, ms: float) -> None:
        self.remote.delay_ms = ms

    def check(self) -> None:
        pass

    def close(self) -> None:
        self.remote.delay_ms = 0.0

    def info(self) -> dict[str, Any]:
        return {"mode": "attach", **self.state}


def scheduler_command(name: str, kubeconfig: Path, scenario: str | None = None) -> list[str]:
    """The command line that runs scheduler ``name`` against ``kubeconfig``."""
    if name == DEFAULT_SCHEDULER_NAME:
        from krios.localcluster import components as comp

        return comp.kube_scheduler(kubeconfig, comp.free_ports(1)[0])
    if name == SCHEDULER_NAME:
        cmd = [sys.executable, "-m", "krios", "scheduler", "--kubeconfig", str(kubeconfig), "--no-leader-elect"]
        # The constellation only matters for leozone pods; any gives the same code path otherwise.
        return cmd + (["--scenario", scenario] if scenario else ["--shell", D.SHELL])
    raise ConfigError(
        "the benchmark can start only krios-scheduler and default-scheduler; start others yourself behind "
        "`krios delayproxy` and use --proxy-control",
        source="schedulers", field=name,
    )


class SpawnInjector:
    """Proxy in-process; schedulers under test as child processes behind it.

    Parameters
    ----------
    kubeconfig:
        The cluster's admin kubeconfig (its ``server`` is proxied).
    schedulers:
        Scheduler names to start (see :func:`scheduler_command`).
    work_dir:
        Where the schedulers' logs go (the proxied kubeconfig, which holds
        credentials, goes to a private temporary folder removed on close).
    state_dir:
        The local cluster's state folder, to pause its kube-scheduler (None: the
        default folder if its kubeconfig is ``kubeconfig``'s server).
    """

    def __init__(self, kubeconfig: Path, schedulers: list[str], work_dir: Path,
                 state_dir: Path | None = None, scenario: str | None = None):
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        server = kubeconfig_server(kubeconfig)
        # The apiserver may be on another host (a real cluster); the proxy listens on loopback only.
        self.proxy = DelayProxy(parse_hostport(server, source=str(kubeconfig)), remote_target=True)
        self.procs: dict[str, process.Child] = {}
        self._tmp: str | None = None
        self._paused: Any = None
        self._cluster = _local_cluster(state_dir, server)
        self.proxy.start()
        try:
            # The copy holds the admin credentials: a private temporary folder, not the results folder.
            self._tmp = tempfile.mkdtemp(prefix="krios-bench-")
            self.kubeconfig = proxied_kubeconfig(kubeconfig, self.proxy.url, Path(self._tmp) / "kubeconfig")
            if DEFAULT_SCHEDULER_NAME in schedulers and _component_alive(self._cluster, "kube-scheduler"):
                log.info("pausing the local cluster's kube-scheduler for the benchmark")
                self._cluster.stop_component("kube-scheduler")
                self._paused = "kube-scheduler"
            for name in schedulers:
                cmd = scheduler_command(name, self.kubeconfig, scenario)
                self.procs[name] = process.Child(name, cmd, work_dir / f"{name}.log")
                log.info("started %s (pid %d) behind the delay proxy", name, self.procs[name].pid)
        except BaseException:
            self.close()
            raise
        self.description = f"in-process delay proxy {self.proxy.url}, schedulers started by the benchmark"

    def check(self) -> None:
        """Raise if a scheduler process exited."""
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise ConfigError(f"exited with status {p.poll()}; see {self.work_dir / (name + '.log')}",
                                  source="schedulers", field=name)

    def set_delay(self, ms: float) -> None:
        self.check()
        self.proxy.delay_ms = ms

    def close(self) -> None:
        for p in self.procs.values():
            p.stop()
        self.procs.clear()
        self.proxy.stop()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        if self._paused and self._cluster is not None:
            log.info("resuming the local cluster's kube-scheduler")
            self._cluster.start_component(self._paused)
            self._paused = None

    def info(self) -> dict[str, Any]:
        return {"mode": "spawn", "proxy": self.proxy.url, "target": f"{self.proxy.target[0]}:{self.proxy.target[1]}",
                "schedulers": {n: p.args for n, p in self.procs.items()}}


def _component_alive(cluster: Any, name: str) -> bool:
    if cluster is None:
        return False
    return any(c["name"] == name and c["alive"] for c in cluster.status()["components"])


def _local_cluster(state_dir: Path | None, server: str) -> Any:
    """The LocalCluster whose apiserver is ``server`` (from ``state_dir`` or the default folder)."""
    try:
        from krios.localcluster import LocalCluster
        from krios.localcluster.state import default_state_dir, load_state
    except ImportError:
        return None
    folder = state_dir or default_state_dir()
    state = load_state(folder)
    if state is None or state.server.rstrip("/") != server.rstrip("/"):
        return None
    return LocalCluster(folder)
