"""``krios bench cluster``: how fast the local control plane comes up and serves pods.

One run: start a :class:`~krios.localcluster.LocalCluster` with ``workers`` virtual
nodes and kube-scheduler, create ``pods`` pods through the API as fast as one
client can, and time, per pod, creation -> bound (kube-scheduler) -> Running
and Ready (virtual kubelet), then a graceful delete of all of them -> gone.
Times are taken by a watch in this process (monotonic clock), not from the
API's one-second timestamps. Pods are created by ``create_threads`` client
threads (one connection each). Where the time goes: the CPU seconds of each
process (etcd, kube-apiserver, kube-scheduler, the virtual kubelet, and this
benchmark's own client and watch) during the pods' phase (create -> all Ready)
and during the delete (-> all gone), from ``/proc``.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from krios.localcluster.controlplane import LocalCluster
from krios.localcluster.process import start_ticks
from krios.localcluster.state import load_state

NAMESPACE = "default"


@dataclass
class PodTimes:
    """Monotonic seconds at which each pod was created, seen bound, seen Running/Ready, seen gone."""

    created: dict[str, float] = field(default_factory=dict)
    bound: dict[str, float] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=dict)
    gone: dict[str, float] = field(default_factory=dict)


@dataclass
class BenchResult:
    workers: int
    pods: int
    up_s: float
    create_s: float
    all_bound_s: float
    all_running_s: float
    bind_latency_s: np.ndarray  # per pod: created -> bound
    ready_latency_s: np.ndarray  # per pod: created -> Running/Ready
    delete_s: float
    kubelet_cpu_s: float
    kubelet_rss_mb: float
    #: CPU seconds per process (``etcd``, ``kube-apiserver``, ``kube-scheduler``, ``virtual-kubelet``,
    #: ``client``: this process) in the ``pods`` phase (create -> all Ready) and the ``delete`` phase.
    cpu_s: dict[str, dict[str, float]] = field(default_factory=dict)
    create_threads: int = 1

    def lines(self) -> list[str]:
        def pct(a: np.ndarray) -> str:
            p50, p99 = np.percentile(a, [50, 99])
            return f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"

        n = self.pods
        return [
            f"cluster up ({self.workers} virtual nodes + kube-scheduler): {self.up_s:.1f} s",
            f"{n} pods created in {self.create_s:.1f} s ({n / self.create_s:.0f} pods/s, "
            f"{self.create_threads} client threads)",
            f"all bound by kube-scheduler after {self.all_bound_s:.1f} s ({n / self.all_bound_s:.0f} pods/s); "
            f"created -> bound {pct(self.bind_latency_s)}",
            f"all Running/Ready after {self.all_running_s:.1f} s ({n / self.all_running_s:.0f} pods/s); "
            f"created -> Ready {pct(self.ready_latency_s)} "
            "(includes the configured ready delay)",
            f"graceful delete of all {n}: gone after {self.delete_s:.1f} s ({n / self.delete_s:.0f} pods/s)",
            f"virtual kubelet: {self.kubelet_cpu_s:.1f} s CPU, {self.kubelet_rss_mb:.0f} MB RSS",
            *self._cpu_lines(),
        ]

    def _cpu_lines(self) -> list[str]:
        if not self.cpu_s:
            return []
        names = sorted({k for phase in self.cpu_s.values() for k in phase},
                       key=lambda k: -sum(p.get(k, 0.0) for p in self.cpu_s.values()))
        out = ["where the time goes (CPU s; pods: create -> all Ready, delete: -> all gone; ms per pod):"]
        for phase, span in (("pods", self.all_running_s), ("delete", self.delete_s)):
            used = self.cpu_s.get(phase, {})
            total = sum(used.values())
            parts = ", ".join(f"{k} {used.get(k, 0.0):.1f} ({used.get(k, 0.0) * 1000 / self.pods:.2f})"
                              for k in names)
            out.append(f"  {phase:<6} {parts}; total {total:.1f} s CPU in {span:.1f} s wall "
                       f"({total / span if span > 0 else 0:.2f} cores)")
        return out


def _proc_usage(pid: int) -> tuple[float, float]:
    """(CPU seconds, RSS MB) of ``pid`` from /proc."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return cpu, rss


def _cpu_all(state_dir: Path) -> dict[str, float]:
    """CPU seconds so far of the cluster's processes and of this process (``client``)."""
    out = {"client": time.process_time()}
    for name, rec in load_state(state_dir).processes.items():
        if rec.pid and start_ticks(rec.pid):
            out[name] = _proc_usage(rec.pid)[0]
    return out


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in after if k in before}


def run(state_dir: Path, workers: int = 100, pods: int = 500, ready_delay_s: float = 1.0,
        jitter_s: float = 0.2, timeout_s: float = 300.0, create_threads: int = 4) -> BenchResult:
    """Run the benchmark in ``state_dir`` (the cluster is taken down afterwards)."""
    from krios.kube.client import pod_path
    from krios.kube.reflector import Reflector

    cluster = LocalCluster(state_dir, workers=workers, components=("kube-scheduler",),
                           kubelet_ready_delay_s=ready_delay_s, kubelet_jitter_s=jitter_s,
                           owner_pid=os.getpid())
    t0 = time.monotonic()
    cluster.up()
    up_s = time.monotonic() - t0
    times = PodTimes()
    stop = threading.Event()
    try:
        client = cluster.json_client(timeout_s=60.0)
        with client.api:

            def on_event(kind: str, pod: dict) -> None:
                now, name = time.monotonic(), pod["metadata"]["name"]
                if kind == "DELETED":
                    times.gone.setdefault(name, now)
                    return
                if pod["spec"].get("nodeName"):
                    times.bound.setdefault(name, now)
                if (pod.get("status") or {}).get("phase") == "Running":
                    times.running.setdefault(name, now)

            watcher = Reflector(client, pod_path(NAMESPACE), name="bench", on_event=on_event,
                                on_sync=lambda items: [on_event("SYNC", p) for p in items])
            threading.Thread(target=watcher.run, args=(stop,), daemon=True).start()
            while watcher.resource_version is None:
                time.sleep(0.05)
            cpu0 = _cpu_all(state_dir)
            start = time.monotonic()
            threads = [threading.Thread(target=_create, args=(client, times, range(i, pods, create_threads)))
                       for i in range(max(1, create_threads))]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            create_s = time.monotonic() - start
            _wait(lambda: len(times.running) >= pods, timeout_s, "pods Running")
            cpu1 = _cpu_all(state_dir)
            delete_start = time.monotonic()
            client.delete(pod_path(NAMESPACE))
            _wait(lambda: len(times.gone) >= pods, timeout_s, "pods deleted")
            delete_s = time.monotonic() - delete_start
            cpu2 = _cpu_all(state_dir)
        kubelet_pid = load_state(state_dir).processes["virtual-kubelet"].pid
        cpu, rss = _proc_usage(kubelet_pid) if kubelet_pid and start_ticks(kubelet_pid) else (float("nan"),) * 2
    finally:
        stop.set()
        cluster.down()
    names = list(times.created)
    return BenchResult(
        workers=workers, pods=pods, up_s=up_s, create_s=create_s,
        all_bound_s=max(times.bound.values()) - start,
        all_running_s=max(times.running.values()) - start,
        bind_latency_s=np.array([times.bound[n] - times.created[n] for n in names]),
        ready_latency_s=np.array([times.running[n] - times.created[n] for n in names]),
        delete_s=delete_s, kubelet_cpu_s=cpu, kubelet_rss_mb=rss,
        cpu_s={"pods": _delta(cpu0, cpu1), "delete": _delta(cpu1, cpu2)}, create_threads=max(1, create_threads),
    )


def _create(client: Any, times: PodTimes, indices: range) -> None:
    """Create the pods ``bench-<i>`` for ``indices`` (one client thread)."""
    from krios.kube.client import pod_path

    for i in indices:
        name = f"bench-{i}"
        body = {"metadata": {"name": name},
                "spec": {"containers": [{"name": "app", "image": "krios/bench"}]}}
        times.created[name] = time.monotonic()
        client.post(pod_path(NAMESPACE), body)


def _wait(check, timeout_s: float, what: str) -> None:
    from krios.errors import ClusterError

    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout_s:.0f} s waiting for {what}", source="bench cluster")
        time.sleep(0.05)
