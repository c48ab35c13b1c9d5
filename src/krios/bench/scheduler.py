"""``krios bench scheduler``: krios-scheduler against kube-scheduler, side by side.

One local cluster (real etcd + kube-apiserver, ``nodes`` virtual workers that
make a bound pod Ready at once) runs both schedulers as separate processes with
the *same* client-side rate limit (``--kube-api-qps``/``--kube-api-burst``),
twice in one run: *throttled* at ``qps``/``burst`` (kube-scheduler's default
50/100, where both drain at the limit) and *unthrottled* at ``fast_qps``/
``fast_burst`` (high enough that the client is not what limits either):

- kube-scheduler v1.20 (the cluster's binary), ``schedulerName: default-scheduler``;
- ``krios scheduler`` (``schedulerName: krios-scheduler``) whose pods carry the
  scenario's ``leozone`` label, so every attempt runs the orbital filter and
  the policy.

Three workers in four are labelled ``sat_id`` round-robin over the satellites
in the zone at the scenario's start, the fourth with satellites outside it, and
the emulated clock (ConfigMap ``krios-clock``) is *paused* there (rate 0): the
benchmark measures scheduling, not orbits, and checks every krios placement
(a pod on an out-of-zone satellite fails the run).

Two phases per scheduler (burst twice, in ABBA order: kube, krios, krios,
kube, so drift in the machine's other load hits both alike; paced: krios then
kube; the next starts once the virtual kubelet has started every pod of the
previous one):

``burst``
    the scheduler process is frozen (SIGSTOP), ``pods`` pods are created, and
    it is released (SIGCONT) with the whole backlog waiting: throughput =
    pods / (last bound - release), summed over the two rounds, and each pod's
    wait from the release.
``paced``
    ``pods`` pods submitted at ``rate`` per second (below the QPS limit):
    the latency of one pod, submit -> bound seen by the benchmark's watch.

Latency is measured from the client's submit time (just before the create
call) to the moment the benchmark's own watch sees ``spec.nodeName`` set.

``backlog`` (krios-scheduler only, unthrottled)
    ``backlog`` leozone pods with *distinct* zones that no labelled satellite
    serves stay pending while the latency matrix is republished every second
    (as the emulator does, waking every pending pod); ``pods`` / 5 plain pods
    are then submitted at ``rate``: their latency and the scheduler's CPU
    (cores) during the backlog (issue #15 item 8: a zone cache thrashing).
"""

from __future__ import annotations

import contextlib
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
LIMITS = ("throttled", "unthrottled")


@dataclass
class BenchConfig:
    nodes: int = 100
    pods: int = 500
    qps: float = D.KUBE_API_QPS
    burst: int = D.KUBE_API_BURST
    rate: float = 20.0
    fast_qps: float = 10000.0
    fast_burst: int = 20000
    backlog: int = 80
    parallelism: int = D.PARALLELISM
    state_dir: str | None = None
    scenario: str = SCENARIO
    timeout_s: float = 300.0

    def check(self) -> None:
        for name, value, low in (("--nodes", self.nodes, 1), ("--pods", self.pods, 1),
                                 ("--burst", self.burst, 1), ("--parallelism", self.parallelism, 1),
                                 ("--backlog", self.backlog, 0), ("--unthrottled-burst", self.fast_burst, 1)):
            if value < low:
                raise ConfigError(f"must be at least {low}", source=name, field=str(value))
        if self.qps <= 0:
            raise ConfigError("must be positive", source="--qps", field=str(self.qps))
        if self.fast_qps <= 0:
            raise ConfigError("must be positive", source="--unthrottled-qps", field=str(self.fast_qps))
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


def _label_nodes(client: Any, cfg: BenchConfig, names: list[str]) -> tuple[dict[str, str], list[int], Any]:
    """Label three workers in four with in-zone satellites, the fourth with satellites outside
    the zone; publish a paused clock. -> (zone labels, in-zone sats, ``(constellation, t_sim, sat_of)``)."""
    from krios.config import scenarios
    from krios.config.times import parse_time
    from krios.kube.clock import Clock
    from krios.orbits.constellation import Constellation
    from krios.orbits.passes import ZoneTracker
    from krios.orbits.zones import Zone

    scenario = scenarios.load(cfg.scenario)
    zone = Zone.from_scenario(scenario)
    t_sim = parse_time(scenario["start"], source=f"{scenario.path}: start")
    constellation = Constellation.from_scenario(scenario)
    sats = [int(s) for s in ZoneTracker(constellation, zone).in_zone(t_sim)]
    if not sats:
        raise ConfigError("no satellite in the zone at the scenario start", source=str(scenario.path))
    inside = set(sats)
    outside = [s for s in range(0, len(constellation), 7) if s not in inside]
    sat_of: dict[str, int] = {}
    for i, node in enumerate(names):
        sat_of[node] = outside[(i // 4) % len(outside)] if i % 4 == 3 else sats[i % len(sats)]
        client.patch(node_path(node), {"metadata": {"labels": {SAT_LABEL: str(sat_of[node])}}})
    ensure_namespace(client, SYSTEM_NAMESPACE)
    Clock(epoch_wall=time.time(), epoch_sim=t_sim, rate=0.0).publish(client)  # paused
    return ({LEOZONE_LABEL: scenario.leozone, RADIUS_LABEL: f"{zone.radius_km:g}"}, sats,
            (constellation, t_sim, sat_of))


def _start_schedulers(cl: Any, cfg: BenchConfig, logs: Path, qps: float, burst: int, tag: str) -> list[Any]:
    from krios.localcluster import binaries, process
    from krios.localcluster import components as comp

    (port,) = comp.free_ports(1)
    kube = comp.kube_scheduler(cl.kubeconfig, port, qps=qps, burst=burst, bin_dir=binaries.find_bin_dir())
    krios = [sys.executable, "-m", "krios", "scheduler", f"--kubeconfig={cl.kubeconfig}",
             f"--scenario={cfg.scenario}", f"--kube-api-qps={qps:g}", f"--kube-api-burst={burst}",
             f"--parallelism={cfg.parallelism}", "--no-leader-elect"]
    return [process.Child(name, cmd, logs / f"bench-{name}-{tag}.log")
            for name, cmd in (("kube-scheduler", kube), ("krios-scheduler", krios))]


def _far_zones(world: Any, n: int, radius_km: float) -> list[str]:
    """``n`` distinct ``leozone`` values that no labelled satellite serves at the paused instant."""
    from krios.orbits.zones import Zone

    constellation, t_sim, sat_of = world
    ids = np.array(sorted(set(sat_of.values())))
    r = constellation.positions(ids, t_sim)
    rng = np.random.default_rng(7)
    out: list[str] = []
    while len(out) < n:
        zone = Zone(float(rng.uniform(-60.0, 60.0)), float(rng.uniform(-180.0, 180.0)), radius_km)
        if not np.asarray(zone.contains(r)).any() and zone.label not in out:
            out.append(zone.label)
    return out


def _zoned(pod: str) -> bool:
    """The pod is one of krios-scheduler's ``leozone`` pods (burst, paced or warm-up)."""
    return pod.startswith("krios-") or "-krios-scheduler-" in pod


def _check_placements(recorder: _Recorder, sats: list[int], world: Any) -> int:
    """Every krios ``leozone`` pod (warm-up ones too) is on a node whose satellite is in the zone;
    -> pods checked."""
    sat_of = world[2]
    inside = set(sats)
    wrong = [f"{pod} on {node} (satellite {sat_of.get(node)})" for pod, node in recorder.node.items()
             if _zoned(pod) and sat_of.get(node) not in inside]
    if wrong:
        raise ClusterError(f"{len(wrong)} krios pods outside the zone, e.g. {wrong[0]}", source="bench scheduler")
    return sum(1 for pod in recorder.node if _zoned(pod))


def _backlog_phase(client: Any, recorder: _Recorder, cfg: BenchConfig, pid: int, zone_labels: dict[str, str],
                   world: Any, progress: Callable[[str], None]) -> dict[str, Any]:
    """Pending leozone pods with distinct zones, the matrix republished each second; plain pods paced."""
    from krios.kube.client import configmap_path
    from krios.kube.names import LATENCY_CONFIGMAP, LATENCY_KEY

    radius = float(zone_labels[RADIUS_LABEL])
    zones = _far_zones(world, cfg.backlog, radius)
    progress(f"backlog: {cfg.backlog} pending leozone pods in distinct zones -> krios-scheduler ...")
    stop = threading.Event()

    def republish() -> None:  # the emulator's latency matrix, every second
        path = configmap_path(SYSTEM_NAMESPACE)
        while not stop.is_set():
            body = {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": LATENCY_CONFIGMAP, "namespace": SYSTEM_NAMESPACE},
                    "data": {LATENCY_KEY: f'{{"rtt": {{}}, "updated": {time.time():.3f}}}'}}
            try:
                client.put(f"{path}/{LATENCY_CONFIGMAP}", body)
            except Exception:
                client.post(path, body)
            stop.wait(1.0)

    pending = [_pod(f"backlog-{i:04d}", SCHEDULER_NAME, {LEOZONE_LABEL: z, RADIUS_LABEL: f"{radius:g}"},
                    "backlog") for i, z in enumerate(zones)]
    ticker = threading.Thread(target=republish, daemon=True)
    ticker.start()
    try:
        _submit_burst(client, pending)
        time.sleep(5.0)  # every zone seen and retried a few times
        cpu0, t0 = _cpu_s(pid), time.monotonic()
        plain = [_pod(f"plain-backlog-{i:04d}", SCHEDULER_NAME, None, "backlog") for i in range(max(10, cfg.pods // 5))]
        submitted = _submit_paced(client, plain, min(cfg.rate, 10.0))
        if not recorder.wait(list(submitted), cfg.timeout_s):
            raise ClusterError("plain pods not bound behind the leozone backlog", source="bench scheduler")
        cores = (_cpu_s(pid) - cpu0) / (time.monotonic() - t0)
        still = sum(1 for b in pending if b["metadata"]["name"] not in recorder.bound)
        figures = _figures(submitted, recorder.bound)
        figures.update(cores=cores, pending_zones=len(zones), still_pending=still)
        return figures
    finally:
        stop.set()
        ticker.join(5)
        for body in pending:
            with contextlib.suppress(Exception):
                client.delete(pod_path(NAMESPACE, body["metadata"]["name"]))


def _phases(client: Any, recorder: _Recorder, cfg: BenchConfig, procs: list[Any], zone_labels: dict[str, str],
            limit: str, logs: Path, progress: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Warm both schedulers up, then the burst and paced phases of each; -> figures per scheduler."""
    warm = [_pod(f"warmup-{limit}-{tag}-{i}", sched, zone_labels if tag == "krios-scheduler" else None, "warmup")
            for tag, sched in SCHEDULERS for i in range(WARMUP_PODS)]
    _submit_burst(client, warm)
    if not recorder.wait([b["metadata"]["name"] for b in warm], 120):
        raise ClusterError(f"a scheduler did not start; see {logs}/bench-*.log", source="bench scheduler")
    results: dict[str, dict[str, Any]] = {tag: {} for tag, _ in SCHEDULERS}
    runs: dict[tuple[str, str], list[tuple[dict[str, float], float]]] = {}
    # bursts in ABBA order (kube, krios, krios, kube): drift in the machine's other load
    # hits both alike; the paced phases once each, krios first
    order = [("burst", SCHEDULERS[0]), ("burst", SCHEDULERS[1]), ("burst", SCHEDULERS[1]), ("burst", SCHEDULERS[0]),
             ("paced", SCHEDULERS[1]), ("paced", SCHEDULERS[0])]
    for n, (phase, (tag, sched)) in enumerate(order):
        short = "kube" if tag == "kube-scheduler" else "krios"
        bodies = [_pod(f"{short}-{limit}-{phase}{n}-{i:04d}", sched, zone_labels if short == "krios" else None,
                       phase) for i in range(cfg.pods)]
        progress(f"{limit} {phase}: {cfg.pods} pods -> {tag} ...")
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
        runs.setdefault((tag, phase), []).append(
            ({name: recorder.bound[name] - t for name, t in submitted.items()}, _cpu_s(pid) - cpu0))
        # let the virtual kubelet finish starting these pods before the next phase
        recorder.wait(list(submitted), 60, running=True)
        time.sleep(0.5)
    for (tag, phase), rounds in runs.items():
        results[tag][phase] = _merge(rounds, paced_rate=cfg.rate if phase == "paced" else None)
    return results


def _merge(rounds: list[tuple[dict[str, float], float]], paced_rate: float | None) -> dict[str, Any]:
    """Figures of one scheduler and phase over its rounds: ``(latency s per pod, CPU s)`` each.

    Burst throughput = pods / summed drain time (each round from its release to its last bind)."""
    lat = np.concatenate([np.array(list(r.values())) for r, _ in rounds]) * 1000.0
    pods = len(lat)
    spans = [max(r.values()) for r, _ in rounds]
    per_round = [len(r) / s if s > 0 else float("inf") for (r, _), s in zip(rounds, spans, strict=True)]
    return {
        "pods": pods,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
        "pods_per_s": paced_rate if paced_rate is not None else pods / sum(spans),
        "rounds_pods_per_s": per_round,
        "span_s": sum(spans),
        "cpu_ms_per_pod": sum(c for _, c in rounds) * 1000.0 / pods,
    }


def _ratios(kube: dict[str, Any], kr: dict[str, Any]) -> dict[str, float]:
    return {
        "burst_throughput_krios_over_kube": kr["burst"]["pods_per_s"] / kube["burst"]["pods_per_s"],
        "burst_p99_krios_over_kube": kr["burst"]["p99_ms"] / kube["burst"]["p99_ms"],
        "burst_cpu_krios_over_kube": kr["burst"]["cpu_ms_per_pod"] / kube["burst"]["cpu_ms_per_pod"],
        "paced_p99_krios_over_kube": kr["paced"]["p99_ms"] / kube["paced"]["p99_ms"],
        "paced_p50_krios_over_kube": kr["paced"]["p50_ms"] / kube["paced"]["p50_ms"],
    }


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
        zone_labels, sats, world = _label_nodes(client, cfg, cl.worker_names)
        leozone = zone_labels[LEOZONE_LABEL]
        ensure_namespace(client, NAMESPACE)
        recorder = _Recorder(RawClient(api, qps=0, burst=1))
        recorder.informer.start()
        recorder.informer.wait_synced(30)
        logs = state_dir / "logs"
        progress(f"cluster up in {time.monotonic() - t0:.0f} s; {len(sats)} satellites in zone {leozone}")
        out: dict[str, Any] = {}
        backlog = None
        for limit, qps, burst in (("throttled", cfg.qps, cfg.burst), ("unthrottled", cfg.fast_qps, cfg.fast_burst)):
            progress(f"{limit}: both schedulers at client QPS {qps:g} / burst {burst}; warming up ...")
            procs = _start_schedulers(cl, cfg, logs, qps, burst, limit)
            try:
                results = _phases(client, recorder, cfg, procs, zone_labels, limit, logs, progress)
                if limit == "unthrottled" and cfg.backlog > 0:
                    backlog = _backlog_phase(client, recorder, cfg, procs[1].pid, zone_labels, world, progress)
            finally:
                for p in procs:
                    p.stop()
                procs = []
            kube, kr = results["kube-scheduler"], results["krios-scheduler"]
            out[limit] = {"qps": qps, "burst": burst, "kube-scheduler": kube, "krios-scheduler": kr,
                          "ratios": _ratios(kube, kr)}
        checked = _check_placements(recorder, sats, world)
        return {
            "config": {"nodes": cfg.nodes, "pods": cfg.pods, "qps": cfg.qps, "burst": cfg.burst,
                       "unthrottled_qps": cfg.fast_qps, "unthrottled_burst": cfg.fast_burst,
                       "paced_rate": cfg.rate, "parallelism": cfg.parallelism, "scenario": cfg.scenario,
                       "leozone": leozone, "satellites_in_zone": len(sats), "backlog": cfg.backlog},
            **out,
            # the throttled figures at the top level, as before
            "kube-scheduler": out["throttled"]["kube-scheduler"],
            "krios-scheduler": out["throttled"]["krios-scheduler"],
            "ratios": out["throttled"]["ratios"],
            "backlog": backlog,
            "placements_checked": checked,
            "krios_nodes_used": len({n for p, n in recorder.node.items() if _zoned(p)}),
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
    """The figures as a small text table with the ratios, throttled and unthrottled side by side."""
    c = r["config"]
    lines = [
        f"krios bench scheduler: {c['nodes']} virtual nodes, {c['pods']} pods per scheduler, phase and limit; "
        f"krios pods labelled leozone={c['leozone']} ({c['satellites_in_zone']} satellites in zone; "
        "1 node in 4 on a satellite outside it)",
        "",
        f"{'client limit':<22} {'scheduler':<16} {'phase':<6} {'pods/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'CPU ms/pod':>10}",
    ]
    for limit in LIMITS:
        block = r[limit]
        name = f"{limit} {block['qps']:g}/{block['burst']}"
        for phase in ("burst", "paced"):
            for tag in ("kube-scheduler", "krios-scheduler"):
                f = block[tag][phase]
                lines.append(f"{name:<22} {tag:<16} {phase:<6} {f['pods_per_s']:>8.1f} {f['p50_ms']:>8.1f} "
                             f"{f['p99_ms']:>8.1f} {f['max_ms']:>8.1f} {f['cpu_ms_per_pod']:>10.2f}")
    lines.append("")
    lines.append(f"{'krios/kube':<22} {'burst pods/s':>12} {'burst p99':>10} {'CPU/pod':>8} {'paced p99':>10} "
                 "(target: pods/s >= 1.0, p99 <= 1.0)")
    for limit in LIMITS:
        q = r[limit]["ratios"]
        lines.append(f"{limit:<22} {q['burst_throughput_krios_over_kube']:>12.2f} "
                     f"{q['burst_p99_krios_over_kube']:>10.2f} {q['burst_cpu_krios_over_kube']:>8.2f} "
                     f"{q['paced_p99_krios_over_kube']:>10.2f}")
    b = r.get("backlog")
    if b:
        lines += ["", f"backlog (unthrottled): {b['pending_zones']} pending leozone pods in distinct zones, matrix "
                  f"republished every second: krios-scheduler {b['cores']:.2f} cores; {b['pods']} plain pods at "
                  f"{c['paced_rate'] if c['paced_rate'] < 10 else 10:g}/s bound p50 {b['p50_ms']:.1f} ms, "
                  f"p99 {b['p99_ms']:.1f} ms (without the backlog: paced p99 "
                  f"{r['unthrottled']['krios-scheduler']['paced']['p99_ms']:.1f} ms)"]
    lines += [
        f"placements checked: {r['placements_checked']} krios pods, all on in-zone satellites "
        f"({r['krios_nodes_used']} nodes used)",
        f"wall time {r['wall_s']:.0f} s; 1-min load average {r['load_average']['start']:.1f} at start, "
        f"{r['load_average']['end']:.1f} at the end, on {r['load_average']['cpus']} CPUs "
        "(a busy machine inflates both schedulers' tails; ratios are measured side by side)",
    ]
    return "\n".join(lines)
