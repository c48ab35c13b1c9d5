"""``krios bench scheduler``: krios-scheduler against kube-scheduler, side by side.

One local cluster (real etcd + kube-apiserver, ``nodes`` virtual workers that
make a bound pod Ready at once) runs both schedulers as separate processes with
the *same* client-side rate limit (``--kube-api-qps``/``--kube-api-burst``):

- kube-scheduler v1.20 (the cluster's binary), ``schedulerName: default-scheduler``;
- ``krios scheduler`` (``schedulerName: krios-scheduler``) whose pods carry the
  scenario's ``leozone`` label, so every attempt runs the orbital filter and
  the policy.

The workers are labelled ``sat_id`` round-robin over the satellites in the
zone at the scenario's start, and the emulated clock (ConfigMap
``krios-clock``) is *paused* there (rate 0), so every node fits every krios pod
for the whole run: the benchmark measures scheduling, not orbits.

Two phases per scheduler (burst: kube then krios; paced: krios then kube, so
neither always goes second; the next starts once the virtual kubelet has
started every pod of the previous one):

``burst``
    the scheduler process is frozen (SIGSTOP), ``pods`` pods are created, and
    it is released (SIGCONT) with the whole backlog waiting: throughput =
    pods / (last bound - release), and each pod's wait from the release.
``paced``
    ``pods`` pods submitted at ``rate`` per second (below the QPS limit):
    the latency of one pod, submit -> bound seen by the benchmark's watch.

Latency is measured from the client's submit time (just before the create
call) to the moment the benchmark's own watch sees ``spec.nodeName`` set.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from krios.config import defaults as D
from krios.errors import ClusterError, ConfigError
from krios.kube.client import RawClient, ensure_namespace, node_path, pod_path
from krios.kube.names import (
    DEFAULT_SCHEDULER_NAME,
    LEOZONE_LABEL,
    RADIUS_LABEL,
    SAT_LABEL,
    SCHEDULER_NAME,
    SYSTEM_NAMESPACE,
)

NAMESPACE = "krios-bench"
SCENARIO = "sf_4workers"
WARMUP_PODS = 20  # per scheduler, before any measurement
SCHEDULERS = (("kube-scheduler", DEFAULT_SCHEDULER_NAME), ("krios-scheduler", SCHEDULER_NAME))


@dataclass
class BenchConfig:
    nodes: int = 100
    pods: int = 500
    qps: float = D.KUBE_API_QPS
    burst: int = D.KUBE_API_BURST
    rate: float = 20.0
    parallelism: int = D.PARALLELISM
    state_dir: str | None = None
    scenario: str = SCENARIO
    timeout_s: float = 300.0

    def check(self) -> None:
        for name, value, low in (("--nodes", self.nodes, 1), ("--pods", self.pods, 1),
                                 ("--burst", self.burst, 1), ("--parallelism", self.parallelism, 1)):
            if value < low:
                raise ConfigError(f"must be at least {low}", source=name, field=str(value))
        if self.qps <= 0:
            raise ConfigError("must be positive", source="--qps", field=str(self.qps))
        if self.rate <= 0:
            raise ConfigError("must be positive", source="--rate", field=str(self.rate))


class _Recorder:
    """Watch the bench namespace; remember when each pod was first seen bound."""

    def __init__(self, client: Any) -> None:
        from krios.kube.informer import Informer

        self.bound: dict[str, float] = {}
        self.node: dict[str, str] = {}
        self.running: set[str] = set()
        self._cond = threading.Condition()
        self.informer = Informer(client, pod_path(NAMESPACE), name="bench-pods")
        self.informer.add_handler(self._on_pod)

    def _on_pod(self, _etype: str, pod: dict, _old: Any) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        name = pod["metadata"]["name"]
        if (pod.get("status") or {}).get("phase") == "Running":
            self.running.add(name)
        if node and name not in self.bound:
            with self._cond:
                self.bound[name] = time.time()
                self.node[name] = node
                self._cond.notify_all()

    def wait(self, names: list[str], timeout_s: float, running: bool = False) -> bool:
        """Until every pod in ``names`` is bound (or, with ``running``, Running)."""
        deadline = time.monotonic() + timeout_s
        done = self.running if running else self.bound
        with self._cond:
            while not all(n in done for n in names):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
        return True


def _pod(name: str, scheduler: str, zone: dict[str, str] | None, phase: str) -> dict:
    labels = {"app": "krios-bench", "phase": phase, **(zone or {})}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "schedulerName": scheduler,
            "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.2"}],
            "terminationGracePeriodSeconds": 0,
        },
    }


def _submit_burst(client: Any, bodies: list[dict], threads: int = 4) -> dict[str, float]:
    submitted: dict[str, float] = {}
    lock = threading.Lock()
    it = iter(bodies)

    def work() -> None:
        while True:
            with lock:
                body = next(it, None)
            if body is None:
                return
            t = time.time()
            client.post(pod_path(NAMESPACE), body)
            with lock:
                submitted[body["metadata"]["name"]] = t

    pool = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return submitted


def _submit_paced(client: Any, bodies: list[dict], rate: float) -> dict[str, float]:
    submitted: dict[str, float] = {}
    start = time.monotonic()
    for i, body in enumerate(bodies):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t = time.time()
        client.post(pod_path(NAMESPACE), body)
        submitted[body["metadata"]["name"]] = t
    return submitted


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _figures(submitted: dict[str, float], bound: dict[str, float]) -> dict[str, float]:
    lat = np.array([bound[n] - t for n, t in submitted.items()]) * 1000.0
    span = max(bound[n] for n in submitted) - min(submitted.values())
    return {
        "pods": len(submitted),
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
        "pods_per_s": len(submitted) / span if span > 0 else float("inf"),
        "span_s": span,
    }


def _label_nodes(client: Any, cfg: BenchConfig, names: list[str]) -> tuple[dict[str, str], list[int]]:
    """Label the workers with in-zone satellites; publish a paused clock. -> (zone labels, sats)."""
    from krios.config import scenarios
    from krios.config.times import parse_time
    from krios.kube.clock import Clock
    from krios.orbits.constellation import Constellation
    from krios.orbits.passes import ZoneTracker
    from krios.orbits.zones import Zone

    scenario = scenarios.load(cfg.scenario)
    zone = Zone.from_scenario(scenario)
    t_sim = parse_time(scenario["start"], source=f"{scenario.path}: start")
    sats = [int(s) for s in ZoneTracker(Constellation.from_scenario(scenario), zone).in_zone(t_sim)]
    if not sats:
        raise ConfigError("no satellite in the zone at the scenario start", source=str(scenario.path))
    for i, node in enumerate(names):
        client.patch(node_path(node), {"metadata": {"labels": {SAT_LABEL: str(sats[i % len(sats)])}}})
    ensure_namespace(client, SYSTEM_NAMESPACE)
    Clock(epoch_wall=time.time(), epoch_sim=t_sim, rate=0.0).publish(client)  # paused
    return {LEOZONE_LABEL: scenario.leozone, RADIUS_LABEL: f"{zone.radius_km:g}"}, sats


def _start_schedulers(cl: Any, cfg: BenchConfig, logs: Path) -> list[Any]:
    from krios.localcluster import binaries, process
    from krios.localcluster import components as comp

    (port,) = comp.free_ports(1)
    kube = comp.kube_scheduler(cl.kubeconfig, port, qps=cfg.qps, burst=cfg.burst, bin_dir=binaries.find_bin_dir())
    krios = [sys.executable, "-m", "krios", "scheduler", f"--kubeconfig={cl.kubeconfig}",
             f"--scenario={cfg.scenario}", f"--kube-api-qps={cfg.qps:g}", f"--kube-api-burst={cfg.burst}",
             f"--parallelism={cfg.parallelism}", "--no-leader-elect"]
    return [process.Child(name, cmd, logs / f"bench-{name}.log")
            for name, cmd in (("kube-scheduler", kube), ("krios-scheduler", krios))]


def run_bench(cfg: BenchConfig, progress: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Run the benchmark; returns the figures (see :func:`format_report`)."""
    from krios.localcluster import LocalCluster

    cfg.check()
    tmp = None
    if cfg.state_dir is None:
        tmp = tempfile.mkdtemp(prefix="krios-bench-sched-")
        state_dir = Path(tmp)
    else:
        state_dir = Path(cfg.state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
    cl = LocalCluster(state_dir, workers=cfg.nodes, control_plane_nodes=1, components=(),
                      kubelet_ready_delay_s=0.0, kubelet_jitter_s=0.0, owner_pid=os.getpid())
    procs: list[Any] = []
    recorder = None
    t0 = time.monotonic()
    load_start = os.getloadavg()[0]
    progress(f"starting a local cluster with {cfg.nodes} virtual nodes ...")
    cl.up()
    try:
        api = cl.api_client()
        client = RawClient(api, qps=0, burst=1, timeout=(5, 60))
        zone_labels, sats = _label_nodes(client, cfg, cl.worker_names)
        leozone = zone_labels[LEOZONE_LABEL]
        ensure_namespace(client, NAMESPACE)
        recorder = _Recorder(RawClient(api, qps=0, burst=1))
        recorder.informer.start()
        recorder.informer.wait_synced(30)
        logs = state_dir / "logs"
        procs = _start_schedulers(cl, cfg, logs)
        progress(f"cluster up in {time.monotonic() - t0:.0f} s; {len(sats)} satellites in zone {leozone}; "
                 "warming up both schedulers ...")
        warm = [_pod(f"warmup-{tag}-{i}", sched, zone_labels if tag == "krios-scheduler" else None, "warmup")
                for tag, sched in SCHEDULERS for i in range(WARMUP_PODS)]
        _submit_burst(client, warm)
        if not recorder.wait([b["metadata"]["name"] for b in warm], 120):
            raise ClusterError(f"a scheduler did not start; see {logs}/bench-*.log", source="bench scheduler")
        results: dict[str, dict[str, Any]] = {tag: {} for tag, _ in SCHEDULERS}
        for phase, order in (("burst", SCHEDULERS), ("paced", SCHEDULERS[::-1])):
            for tag, sched in order:
                short = "kube" if tag == "kube-scheduler" else "krios"
                bodies = [_pod(f"{short}-{phase}-{i:04d}", sched, zone_labels if short == "krios" else None, phase)
                          for i in range(cfg.pods)]
                progress(f"{phase}: {cfg.pods} pods -> {tag} ...")
                pid = procs[[t for t, _ in SCHEDULERS].index(tag)].pid
                cpu0 = _cpu_s(pid)
                if phase == "burst":
                    # the whole backlog waits while the scheduler is frozen, then it drains it:
                    # the submitting client's own speed does not enter the figure
                    os.kill(pid, signal.SIGSTOP)
                    try:
                        created = _submit_burst(client, bodies)
                    finally:
                        released = time.time()
                        os.kill(pid, signal.SIGCONT)
                    submitted = dict.fromkeys(created, released)
                else:
                    submitted = _submit_paced(client, bodies, cfg.rate)
                if not recorder.wait(list(submitted), cfg.timeout_s):
                    missing = sum(1 for n in submitted if n not in recorder.bound)
                    raise ClusterError(f"{tag}: {missing} of {len(submitted)} pods not bound after "
                                       f"{cfg.timeout_s:.0f} s", source="bench scheduler")
                results[tag][phase] = _figures(submitted, recorder.bound)
                results[tag][phase]["cpu_ms_per_pod"] = (_cpu_s(pid) - cpu0) * 1000.0 / len(submitted)
                # let the virtual kubelet finish starting these pods before the next phase
                recorder.wait(list(submitted), 60, running=True)
                time.sleep(0.5)
        krios_nodes = {recorder.node[n] for n in recorder.node if n.startswith("krios-")}
        kube, kr = results["kube-scheduler"], results["krios-scheduler"]
        return {
            "config": {"nodes": cfg.nodes, "pods": cfg.pods, "qps": cfg.qps, "burst": cfg.burst,
                       "paced_rate": cfg.rate, "parallelism": cfg.parallelism, "scenario": cfg.scenario,
                       "leozone": leozone, "satellites_in_zone": len(sats)},
            "kube-scheduler": kube,
            "krios-scheduler": kr,
            "ratios": {
                "burst_throughput_krios_over_kube": kr["burst"]["pods_per_s"] / kube["burst"]["pods_per_s"],
                "paced_p99_krios_over_kube": kr["paced"]["p99_ms"] / kube["paced"]["p99_ms"],
                "paced_p50_krios_over_kube": kr["paced"]["p50_ms"] / kube["paced"]["p50_ms"],
            },
            "krios_nodes_used": len(krios_nodes),
            "wall_s": time.monotonic() - t0,
            "load_average": {"start": load_start, "end": os.getloadavg()[0], "cpus": os.cpu_count()},
        }
    finally:
        if recorder is not None:
            recorder.informer.stop()
        for p in procs:
            p.stop()
        cl.down()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def format_report(r: dict[str, Any]) -> str:
    """The figures as a small text table with the ratios."""
    c = r["config"]
    lines = [
        f"krios bench scheduler: {c['nodes']} virtual nodes, {c['pods']} pods per scheduler and phase, "
        f"client QPS {c['qps']:g} / burst {c['burst']} for both; krios pods labelled leozone={c['leozone']} "
        f"({c['satellites_in_zone']} satellites in zone)",
        "",
        f"{'scheduler':<16} {'phase':<6} {'pods/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'CPU ms/pod':>10}",
    ]
    for tag in ("kube-scheduler", "krios-scheduler"):
        for phase in ("burst", "paced"):
            f = r[tag][phase]
            lines.append(f"{tag:<16} {phase:<6} {f['pods_per_s']:>8.1f} {f['p50_ms']:>8.1f} "
                         f"{f['p99_ms']:>8.1f} {f['max_ms']:>8.1f} {f['cpu_ms_per_pod']:>10.2f}")
    q = r["ratios"]
    lines += [
        "",
        f"throughput (burst) krios/kube: {q['burst_throughput_krios_over_kube']:.2f}   "
        f"(target >= 1.0 within noise)",
        f"p99 latency (paced at {c['paced_rate']:g} pods/s) krios/kube: {q['paced_p99_krios_over_kube']:.2f}; "
        f"krios p99 {r['krios-scheduler']['paced']['p99_ms']:.1f} ms (target < 100 ms)",
        f"wall time {r['wall_s']:.0f} s; 1-min load average {r['load_average']['start']:.1f} at start, "
        f"{r['load_average']['end']:.1f} at the end, on {r['load_average']['cpus']} CPUs "
        "(a busy machine inflates both schedulers' tails)",
    ]
    return "\n".join(lines)
