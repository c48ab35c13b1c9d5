"""``krios bench failover``: the handover controller's leader killed mid-handover, on a real control plane.

One run starts a :class:`~krios.localcluster.LocalCluster` (real etcd and
kube-apiserver, virtual kubelets) and, per *mode*, two ``krios controller``
processes (leader and standby, Lease timing left to the default sizing of
:func:`krios.kube.leader.lease_timing`). The emulated clock runs ``rate`` times
faster than the wall clock. Each *kill* then plays one handover:

1. from the scenario's pass predictions, a satellite ``A`` whose pass ends at
   ``exit`` and a satellite ``B`` in the zone by then that outlasts it; worker 0
   emulates ``A``, worker 1 ``B``, any other worker a satellite far from the
   zone (labels set here, as the emulator would);
2. the clock is republished ``lookahead + 10`` emulated s before ``exit`` (the
   handover is due 10 emulated s later), the app pod is created on worker 0;
3. the moment the leader has created the successor (``krios.io/handover-from``)
   the leader gets SIGKILL -- no lease release, no cleanup -- and a
   replacement standby is started;
4. a watch on the app's pods records every change; from it, on the emulated
   time axis: the seconds with no Ready copy on an in-zone satellite, the
   seconds with two Ready copies, and the wall time from the kill until the
   old copy was deleted by the new leader.

Modes: ``same-host`` (the standby sees that the dead leader's process is gone
from this machine and takes the Lease at once), ``expiry`` (it waits for the
Lease to expire, ``--leader-elect-wait-expiry``, as a standby on another
machine must) and ``freeze`` (the leader gets SIGSTOP when the clock is
republished, 40 emulated s before the exit and before the handover is due, so
the standby must take over and start the handover itself; SIGCONT afterwards,
and the woken leader must add nothing: ``stray`` copies). Targets: no emulated second without an in-zone copy when the
kill comes at least one lease before the exit, and the two-copy period at
most one lease (wall s). Each controller records its handovers (table
``handovers``): every kill's handover must be there exactly once.
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from krios.config import defaults as D
from krios.errors import ClusterError, ConfigError
from krios.kube.client import RawClient, ensure_namespace, lease_path, node_path, pod_path
from krios.kube.clock import Clock
from krios.kube.leader import lease_timing
from krios.kube.names import CONTROLLER_NAME, SAT_LABEL, SYSTEM_NAMESPACE

NAMESPACE = "krios-failover"
MODES = ("same-host", "expiry", "freeze")
#: Emulated seconds from the republished clock's epoch until the handover is due.
DUE_AFTER_S = 10.0
#: Evaluation step of the timeline (wall s).
STEP_S = 0.005


@dataclass(frozen=True)
class FailoverConfig:
    """Kills per mode, clock rate (emulated s per wall s), scenario, workers, modes; wall timeouts in s."""

    kills: int = 3
    rate: float = 10.0
    scenario: str = "sf_4workers"
    lookahead_s: float | None = None  # emulated s; default: the scenario's handover.lookahead_s
    workers: int = 2
    modes: tuple[str, ...] = MODES
    state_dir: str | None = None
    timeout_s: float = 60.0

    def check(self) -> None:
        if self.kills < 1:
            raise ConfigError("must be at least 1", source="--kills", field=str(self.kills))
        if not self.rate > 0:
            raise ConfigError("must be positive", source="--rate", field=f"{self.rate:g}")
        if self.workers < 2:
            raise ConfigError("must be at least 2 (the serving node and its successor)", source="--workers",
                              field=str(self.workers))
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise ConfigError(f"unknown mode (known: {', '.join(MODES)})", source="--modes",
                              field=",".join(bad) or "(none)")
        if self.lookahead_s is not None and not self.lookahead_s > 0:
            raise ConfigError("must be positive", source="--lookahead-s", field=f"{self.lookahead_s:g}")


@dataclass
class Geometry:
    """The pass played at every kill (emulated unix s) and the in-zone windows of the satellites used."""

    sat_a: int
    sat_b: int
    away: list[int]
    exit_a: float
    windows: dict[int, list[tuple[float, float]]]
    leozone: str
    radius_km: float

    def in_zone(self, sat: int | None, t: float) -> bool:
        return sat is not None and any(a <= t < b for a, b in self.windows.get(sat, ()))


@dataclass
class Kill:
    """One kill's figures (wall and emulated seconds)."""

    mode: str
    index: int
    lease_s: float  # the Lease's leaseDurationSeconds when the leader was killed (wall s)
    margin_s: float  # emulated s from the kill to A's exit
    takeover_s: float | None  # wall s from the kill until the old copy's delete (None: never)
    no_in_zone_s: float  # emulated s without a Ready copy on an in-zone satellite
    two_copies_s: float  # emulated s with two Ready copies
    took_over_dead: bool = False  # the new leader took the Lease because the old one's process was gone
    recorded: int = 0  # handover rows with this kill's app
    stray: int = 0  # copies left beyond one at the end (a woken frozen leader must not add any)


class _Timeline:
    """Ready copies of the app's pods (pod -> node) after every watch event, wall-timestamped."""

    def __init__(self, client: RawClient) -> None:
        from krios.kube.informer import Informer

        self._lock = threading.Lock()
        self.samples: list[tuple[float, dict[str, str]]] = []
        self.on_change: Callable[[dict], None] | None = None
        self.inf = Informer(client, pod_path(NAMESPACE), name="failover")
        self.inf.add_handler(self._on)

    def _on(self, _etype: str, pod: dict, _old: Any) -> None:
        from krios.kube.objects import pod_node, pod_ready

        now = time.time()
        ready = {p["metadata"]["name"]: pod_node(p) or "" for p in self.inf.list()
                 if pod_ready(p) and not p["metadata"].get("deletionTimestamp")}
        with self._lock:
            self.samples.append((now, ready))
        if self.on_change is not None:
            self.on_change(pod)

    def reset(self) -> None:
        with self._lock:
            self.samples = []

    def ready_at(self, wall: float) -> dict[str, str]:
        with self._lock:
            state: dict[str, str] = {}
            for t, ready in self.samples:
                if t > wall:
                    break
                state = ready
            return state


def _geometry(scenario: Any, lookahead_s: float, workers: int) -> Geometry:
    from krios.config.times import parse_time
    from krios.orbits.constellation import Constellation
    from krios.orbits.passes import ZoneTracker
    from krios.orbits.zones import Zone

    con = Constellation.from_scenario(scenario)
    zone = Zone.from_scenario(scenario)
    t0 = parse_time(scenario["start"], source=f"{scenario.path}: start")
    tracker = ZoneTracker(con, zone, horizon_s=7200.0, start=t0)
    passes = tracker.passes(t0, t0 + 5400)
    for a in passes:
        due = a.exit - lookahead_s
        if due - DUE_AFTER_S < max(a.enter, t0):
            continue
        later = sorted((p for p in passes if p.sat_id != a.sat_id and p.enter <= due - 10 and p.exit >= a.exit + 120),
                       key=lambda p: -p.exit)
        if not later:
            continue
        b = later[0]
        away: list[int] = []
        for sat in range(len(con)):
            if len(away) == workers - 2:
                break
            if sat in (a.sat_id, b.sat_id):
                continue
            entry = tracker.next_entry(sat, due - DUE_AFTER_S - 60)
            if entry != entry or entry > a.exit + 600:  # nan: not within the horizon
                away.append(sat)
        windows: dict[int, list[tuple[float, float]]] = {}
        for p in passes:
            windows.setdefault(int(p.sat_id), []).append((p.enter, p.exit))
        return Geometry(int(a.sat_id), int(b.sat_id), away, float(a.exit), windows, scenario.leozone,
                        float(zone.radius_km))
    raise ConfigError("no pass with a successor in the first 90 minutes", source=str(scenario.path),
                      field="constellation")


def _holder(client: RawClient) -> tuple[str | None, float]:
    """The controller Lease's holder identity and its leaseDurationSeconds."""
    try:
        spec = client.get(lease_path(SYSTEM_NAMESPACE, CONTROLLER_NAME)).get("spec") or {}
    except Exception:
        return None, float("nan")
    return spec.get("holderIdentity") or None, float(spec.get("leaseDurationSeconds") or "nan")


def _pid_of(identity: str | None) -> int | None:
    """``krios-controller-<host>-<pid>-<random>`` -> pid."""
    if not identity:
        return None
    parts = identity.rsplit("-", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def _wait(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout_s:.0f} s waiting for {what}", source="bench failover")
        time.sleep(0.02)


def _measure(timeline: _Timeline, sats: dict[str, int], geo: Geometry, clock: Clock,
             end: float) -> tuple[float, float]:
    """Emulated seconds from the app's first Ready copy until wall ``end`` without a Ready copy on an
    in-zone satellite, and with two Ready copies (``sats``: node -> the satellite it emulates)."""
    first = next((t for t, ready in timeline.samples if ready), None)
    if first is None:
        raise ClusterError("the app never became Ready", source="bench failover")
    none = two = 0.0
    wall = first
    while wall < end:
        ready = timeline.ready_at(wall)
        t_sim = clock.sim_at(wall)
        on = [sats.get(node) for node in ready.values()]
        if not any(geo.in_zone(s, t_sim) for s in on):
            none += STEP_S
        if len(ready) >= 2:
            two += STEP_S
        wall += STEP_S
    return none * clock.rate, two * clock.rate


def _controller_cmd(kubeconfig: Path, cfg: FailoverConfig, lookahead_s: float, mode: str, db: Path,
                    run_id: str) -> list[str]:
    cmd = [sys.executable, "-m", "krios", "-v", "controller", f"--kubeconfig={kubeconfig}",
           f"--scenario={cfg.scenario}", f"--lookahead-s={lookahead_s:g}", "--ready-timeout-s=30",
           f"--run-id={run_id}", f"--results-db={db}"]
    return cmd + (["--leader-elect-wait-expiry"] if mode == "expiry" else [])


def run_bench(cfg: FailoverConfig, progress: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Run the benchmark; returns the figures (see :func:`format_report`)."""
    from krios.config import scenarios
    from krios.localcluster import LocalCluster, process
    from krios.results.store import ResultsStore, new_run_id

    cfg.check()
    run_id = new_run_id("bench-failover")
    scenario = scenarios.load(cfg.scenario)
    lookahead = cfg.lookahead_s if cfg.lookahead_s is not None else float(
        (scenario.get("handover") or {}).get("lookahead_s", D.LOOKAHEAD_S))
    geo = _geometry(scenario, lookahead, cfg.workers)
    tmp = tempfile.mkdtemp(prefix="krios-bench-failover-") if cfg.state_dir is None else None
    state_dir = Path(tmp or cfg.state_dir or ".")
    db = state_dir / "failover.sqlite"
    cl = LocalCluster(state_dir / "cluster", workers=cfg.workers, control_plane_nodes=1, components=(),
                      kubelet_ready_delay_s=0.5, kubelet_jitter_s=0.1, owner_pid=os.getpid())
    t0 = time.monotonic()
    progress(f"starting a local cluster with {cfg.workers} virtual workers ...")
    cl.up()
    children: list[Any] = []
    timeline = None
    kills: list[Kill] = []
    try:
        api = cl.api_client()
        client = RawClient(api, qps=0, burst=1, timeout=(5, 30))
        sats = dict(zip(cl.worker_names, [geo.sat_a, geo.sat_b, *geo.away], strict=True))
        for node, sat in sats.items():
            client.patch(node_path(node), {"metadata": {"labels": {SAT_LABEL: str(sat)}}})
        ensure_namespace(client, SYSTEM_NAMESPACE)
        ensure_namespace(client, NAMESPACE)
        due = geo.exit_a - lookahead
        # the clock runs at the bench's rate from the start, so the daemons size their Lease for it
        Clock(epoch_wall=time.time(), epoch_sim=due - 3600.0, rate=cfg.rate).publish(client)
        timeline = _Timeline(RawClient(api, qps=0, burst=1))
        timeline.inf.start()
        timeline.inf.wait_synced(30)
        logs = state_dir / "logs"
        for mode in cfg.modes:
            cmd = _controller_cmd(cl.kubeconfig, cfg, lookahead, mode, db, run_id)
            children = [process.Child(f"controller-{mode}-{i}", cmd, logs / f"controller-{mode}-{i}.log")
                        for i in range(2)]
            for k in range(cfg.kills):
                kills.append(_one_kill(cfg, mode, k, client, timeline, geo, sats, lookahead, children, cmd, logs))
                progress(_kill_line(kills[-1]))
            for child in children:
                child.stop()
            children = []
        with ResultsStore(db) as store:
            rows = store.rows(run_id, "handovers")
        for kill in kills:
            kill.recorded = sum(1 for r in rows if r.get("app") == f"{NAMESPACE}/{_app(kill.mode, kill.index)}")
        return {
            "config": {**asdict(cfg), "lookahead_s": lookahead, "sat_a": geo.sat_a, "sat_b": geo.sat_b,
                       "lease_rule_s": lease_timing(lookahead, cfg.rate)},
            "kills": [{**asdict(k), "two_copies_wall_s": k.two_copies_s / cfg.rate} for k in kills],
            "wall_s": time.monotonic() - t0,
            "load_average": os.getloadavg()[0],
        }
    finally:
        if timeline is not None:
            timeline.inf.stop()
        for child in children:
            child.stop()
        cl.down()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _app(mode: str, k: int) -> str:
    return f"web-{mode}-{k}"


def _one_kill(cfg: FailoverConfig, mode: str, k: int, client: RawClient, timeline: _Timeline, geo: Geometry,
              sats: dict[str, int], lookahead: float, children: list[Any], cmd: list[str], logs: Path) -> Kill:
    """Play one handover, SIGKILL the leader once it has created the successor, measure (module docs)."""
    from krios.kube.objects import annotations
    from krios.localcluster import process

    name = _app(mode, k)
    leader_pid = _wait(lambda: (pid := _pid_of(_holder(client)[0])) in {c.pid for c in children} and pid,
                       cfg.timeout_s, "a controller to lead")
    successor = threading.Event()
    timeline.on_change = lambda pod: successor.set() if annotations(pod).get(
        "krios.io/handover-from") == name else None
    timeline.reset()
    if mode == "freeze":  # frozen before the handover is due: the standby must start it, in time
        _holder_id, lease_s = _holder(client)
        os.kill(leader_pid, signal.SIGSTOP)
        frozen_at = time.time()
    due = geo.exit_a - lookahead
    clock = Clock(epoch_wall=time.time(), epoch_sim=due - DUE_AFTER_S, rate=cfg.rate)
    clock.publish(client)
    body = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"leozone": geo.leozone, "radius": f"{geo.radius_km:g}"}},
            "spec": {"schedulerName": D.SCHEDULER_NAME, "nodeName": next(iter(sats)),
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.2"}]}}
    client.post(pod_path(NAMESPACE), body)
    if mode != "freeze" and not successor.wait(cfg.timeout_s):
        raise ClusterError(f"{name}: no successor within {cfg.timeout_s:.0f} s; see {logs}", source="bench failover")
    victim = next(c for c in children if c.pid == leader_pid)
    if mode == "freeze":
        killed = frozen_at
    else:
        _holder_id, lease_s = _holder(client)
        os.kill(victim.pid, signal.SIGKILL)
        killed = time.time()
        victim.proc.wait()
        children.remove(victim)
        children.append(process.Child(f"{victim.name}-r{k}", cmd, logs / f"{victim.name}-r{k}.log"))
    margin = geo.exit_a - clock.sim_at(killed)
    takeover = None
    deadline = time.time() + cfg.timeout_s
    while time.time() < deadline:
        pods = {p["metadata"]["name"]: p for p in timeline.inf.list()}
        old = pods.get(name)
        if takeover is None and successor.is_set() and (old is None or old["metadata"].get("deletionTimestamp")):
            takeover = time.time() - killed
        if takeover is not None and time.time() > clock.wall_at(geo.exit_a) + 0.5:
            break
        time.sleep(0.02)
    end = time.time()
    no_in_zone, two = _measure(timeline, sats, geo, clock, end)
    new_pid = _pid_of(_holder(client)[0])
    new_leader = next((c for c in children if c.pid == new_pid), None)
    dead = new_leader is not None and "is gone (process" in new_leader.log_path.read_text(errors="replace")
    if mode == "freeze":  # wake the old leader: it must see its lead is stale and do nothing
        os.kill(leader_pid, signal.SIGCONT)
        time.sleep(1.0)
    stray = len(timeline.inf.list()) - 1  # copies beyond the one that should be left
    client.delete(pod_path(NAMESPACE), {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0})
    _wait(lambda: not timeline.inf.list(), cfg.timeout_s, "the app's pods to go")
    timeline.on_change = None
    return Kill(mode, k, lease_s, margin, takeover, no_in_zone, two, dead, stray=stray)


def _kill_line(k: Kill) -> str:
    took = "never" if k.takeover_s is None else f"{k.takeover_s:.2f} s"
    return (f"{k.mode} kill {k.index + 1}: {k.margin_s:.0f} emulated s before the exit (lease {k.lease_s:g} s); "
            f"old copy deleted {took} after the kill; no in-zone copy {k.no_in_zone_s:.1f} emulated s, "
            f"two copies {k.two_copies_s:.1f} emulated s")


def format_report(r: dict[str, Any]) -> str:
    """The figures per kill and per mode, with the targets."""
    c = r["config"]
    rate = c["rate"]
    lease, renew, retry = c["lease_rule_s"]
    lines = [
        f"krios bench failover: {c['kills']} faults of the controller leader per mode (same-host, expiry: "
        f"SIGKILL once it has created the successor; freeze: SIGSTOP before the handover is due, SIGCONT "
        f"after it); clock {rate:g}x, lookahead {c['lookahead_s']:g} emulated s "
        f"({c['lookahead_s'] / rate:g} wall s); lease by the rule {lease:g} s (renew {renew:.2f} s, "
        f"retry {retry:.2f} s); scenario {c['scenario']}, sat {c['sat_a']} -> {c['sat_b']}",
        "",
        f"{'mode':<10} {'kill':>4} {'before exit':>12} {'lease':>6} {'takeover':>9} {'no in-zone':>11} "
        f"{'two copies':>11} {'two (wall)':>10} {'rows':>4} {'stray':>5}",
        f"{'':<10} {'':>4} {'emulated s':>12} {'wall s':>6} {'wall s':>9} {'emulated s':>11} "
        f"{'emulated s':>11} {'s':>10} {'':>4} {'':>5}",
    ]
    for k in r["kills"]:
        took = "never" if k["takeover_s"] is None else f"{k['takeover_s']:.2f}"
        lines.append(f"{k['mode']:<10} {k['index'] + 1:>4} {k['margin_s']:>12.1f} {k['lease_s']:>6g} {took:>9} "
                     f"{k['no_in_zone_s']:>11.1f} {k['two_copies_s']:>11.1f} {k['two_copies_wall_s']:>10.2f} "
                     f"{k['recorded']:>4} {k['stray']:>5}")
    lines.append("")
    for mode in c["modes"]:
        ks = [k for k in r["kills"] if k["mode"] == mode]
        eligible = [k for k in ks if k["margin_s"] >= k["lease_s"] * rate]
        worst_none = max((k["no_in_zone_s"] for k in eligible), default=0.0)
        worst_two = max(k["two_copies_wall_s"] for k in ks)
        ok = worst_none == 0 and all(k["two_copies_wall_s"] <= k["lease_s"] and k["stray"] == 0 for k in ks)
        lines.append(f"{mode}: max no-in-zone {worst_none:.1f} emulated s over {len(eligible)} kills >= one lease "
                     f"before the exit (target 0); max two-copy period {worst_two:.2f} wall s (target <= lease); "
                     f"handover rows {sum(k['recorded'] for k in ks)} of {len(ks)}, stray copies "
                     f"{sum(k['stray'] for k in ks)}: "
                     f"{'targets met' if ok else 'TARGET MISSED'}")
    lines.append(f"wall time {r['wall_s']:.0f} s; 1-min load average at the end {r['load_average']:.1f}")
    return "\n".join(lines)
