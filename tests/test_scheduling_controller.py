"""The handover controller on the real control plane, with an accelerated emulated clock.

Each test finds, in the orbital engine's pass predictions for the sf_4workers
zone, a satellite ``A`` that leaves the zone ``LEAD_S`` emulated seconds after
the clock's epoch and satellites that stay longer; it labels workers with them
(as the emulator would), publishes the ``krios-clock`` ConfigMap running
``RATE`` times faster than the wall clock, and puts the app's pod on ``A``'s
node. A watch records how many Ready copies the app has after every change.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from scheduling_helpers import (
    CLOCK_PATH,
    clean_workers,
    create_pods,
    events,
    exists,
    is_ready,
    list_pods,
    orbits,
    pod_body,
    raw,
    set_sat_labels,
    wait_for,
)

from krios.control.controller import FAILED_ANNOTATION, FROM_ANNOTATION, STARTED_ANNOTATION, Controller
from krios.kube.clock import Clock
from krios.kube.informer import Informer

pytestmark = pytest.mark.cluster

LEAD_S = 100.0  # emulated seconds from the clock's epoch until A leaves
LOOKAHEAD_S = 60.0


@dataclass
class Plan:
    t_a: float  # emulated epoch
    exits: dict[int, float]  # sat -> exit time of its pass
    sats: list[int]  # A, then successors by decreasing exit time


def plan(successors: int, from_start: bool = False) -> Plan:
    """A pass of ``A`` and ``successors`` satellites in the zone when the handover is due (with
    ``from_start``: already at the epoch), outlasting A."""
    o = orbits()
    passes = o.tracker.passes(o.t0, o.t0 + 3000)
    for a in passes:
        t_a = a.exit - LEAD_S
        if t_a < max(a.enter, o.t0):
            continue
        due = t_a if from_start else a.exit - LOOKAHEAD_S
        later = sorted((p for p in passes if p.sat_id != a.sat_id and p.enter <= due - 10 and p.exit >= a.exit + 60),
                       key=lambda p: -p.exit)
        if len({p.sat_id for p in later}) >= successors:
            chosen = later[:successors]
            return Plan(t_a, {a.sat_id: a.exit, **{p.sat_id: p.exit for p in chosen}},
                        [a.sat_id] + [p.sat_id for p in chosen])
    raise AssertionError("no suitable passes in the first 50 minutes")


@pytest.fixture
def workers(control_plane, api_client) -> Iterator[list[str]]:
    yield from clean_workers(control_plane, api_client)


def publish_clock(client, t_a: float, rate: float) -> Clock:
    clock = Clock(epoch_wall=time.time(), epoch_sim=t_a, rate=rate)
    if not exists(client, "/api/v1/namespaces/krios-system"):
        client.post("/api/v1/namespaces", {"metadata": {"name": "krios-system"}})
    if exists(client, CLOCK_PATH):
        client.put(CLOCK_PATH, clock.configmap_body())
    else:
        client.post(CLOCK_PATH.rsplit("/", 1)[0], clock.configmap_body())
    return clock


class ReadyLog:
    """Watch the app's pods; after every change note how many Ready copies there are."""

    def __init__(self, client, namespace: str) -> None:
        self.samples: list[tuple[float, int]] = []
        self.deleted: dict[str, float] = {}
        self._lock = threading.Lock()
        self.inf = Informer(client, f"/api/v1/namespaces/{namespace}/pods", name="ready-log")
        self.inf.add_handler(self._on)
        self.inf.start()
        assert self.inf.wait_synced(10)

    def _on(self, etype: str, pod: dict, _old) -> None:
        now = time.time()
        with self._lock:
            if etype == "DELETED" or pod["metadata"].get("deletionTimestamp"):
                self.deleted.setdefault(pod["metadata"]["name"], now)
            self.samples.append((now, sum(1 for p in self.inf.list() if is_ready(p))))

    def min_ready_after_first(self) -> int:
        with self._lock:
            counts = [n for _t, n in self.samples]
        first = next(i for i, n in enumerate(counts) if n > 0)
        return min(counts[first:])

    def stop(self) -> None:
        self.inf.stop()


def _final_ready(client, namespace: str, old: str = "web") -> list[dict]:
    """The app's pods once the handover away from ``old`` is over and exactly one copy is left, Ready."""
    pods = list_pods(client, namespace)
    if any(p["metadata"].get("deletionTimestamp") or p["metadata"]["name"] == old for p in pods):
        return []  # not there yet
    ready = [p for p in pods if is_ready(p)]
    return ready if len(ready) == len(pods) == 1 else []


@contextlib.contextmanager
def app_under_controller(api_client, namespace: str, node: str, t_a: float, rate: float, ready_timeout_s: float,
                         mode: str = "proactive") -> Iterator[tuple[Controller, Clock, ReadyLog]]:
    """An in-process controller, the accelerated clock from ``t_a``, and the app's pod on ``node``."""
    client = raw(api_client)
    ctl = Controller(api_client, orbits().constellation, lookahead_s=LOOKAHEAD_S, ready_timeout_s=ready_timeout_s,
                     mode=mode)
    ctl.start(sync_timeout=30)
    log = None
    try:
        assert ctl.wait_leading(30)
        clock = publish_clock(client, t_a, rate=rate)
        wait_for(lambda: ctl.clock.rate == rate, 10, "the controller to read the clock")
        log = ReadyLog(client, namespace)
        create_pods(client, namespace, [pod_body("web", orbits().labels, node=node)])
        yield ctl, clock, log
    finally:
        if log is not None:
            log.stop()
        ctl.stop()


def test_proactive_handover_completes_before_the_satellite_leaves(api_client, namespace, workers) -> None:
    p = plan(successors=1)
    a, b = p.sats
    client = raw(api_client)
    set_sat_labels(client, {workers[0]: a, workers[1]: b})
    with app_under_controller(api_client, namespace, workers[0], p.t_a, 10.0, 20.0) as (_ctl, clock, log):
        final = wait_for(lambda: _final_ready(client, namespace), 30, "one Ready copy after the handover")
        assert final[0]["spec"]["nodeName"] == workers[1]
        assert final[0]["metadata"]["annotations"][FROM_ANNOTATION] == "web"
        gone = clock.sim_at(log.deleted["web"])
        assert gone < p.exits[a], f"old copy deleted {gone - p.exits[a]:.1f} s after its satellite left"
        assert gone >= p.exits[a] - LOOKAHEAD_S - 1
        assert log.min_ready_after_first() >= 1, "the app was without a Ready copy"
        assert b in orbits().tracker.in_zone(clock.now())
        reasons = {e["reason"] for e in events(client, namespace)}
        assert {"HandoverStarted", "HandoverCompleted"} <= reasons


def test_reactive_handover_starts_only_after_the_satellite_left(api_client, namespace, workers) -> None:
    p = plan(successors=1)
    a, b = p.sats
    client = raw(api_client)
    set_sat_labels(client, {workers[0]: a, workers[1]: b})
    with app_under_controller(api_client, namespace, workers[0], p.t_a, 20.0, 20.0, mode="reactive") as (
            _ctl, clock, log):
        final = wait_for(lambda: _final_ready(client, namespace), 30, "one Ready copy after the handover")
        assert final[0]["spec"]["nodeName"] == workers[1]
        started = float(final[0]["metadata"]["annotations"][STARTED_ANNOTATION])
        assert clock.sim_at(started) >= p.exits[a], "a reactive handover started before the exit"
        assert log.min_ready_after_first() >= 1  # the old copy (virtual) stays Ready until replaced


def test_controller_follows_sat_id_relabels(api_client, namespace, workers) -> None:
    """A relabel to a satellite that stays cancels the due handover; one to a satellite away forces it."""
    p = plan(successors=2, from_start=True)
    a, stays, other = p.sats
    o = orbits()
    client = raw(api_client)
    set_sat_labels(client, {workers[0]: a, workers[1]: other})
    with app_under_controller(api_client, namespace, workers[0], p.t_a, 10.0, 20.0) as (_ctl, clock, log):
        wait_for(lambda: any(n for _t, n in log.samples), 15, "the app Ready")
        set_sat_labels(client, {workers[0]: stays})  # the emulator moved this node to a longer pass
        wait_for(lambda: clock.now() > p.exits[a] + 5, 30, "A's exit to pass", interval_s=0.2)
        assert [q["metadata"]["name"] for q in list_pods(client, namespace)] == ["web"], "handed over anyway"
        away = o.away_for(clock.now(), at_least_s=3600, n=1)[0]
        set_sat_labels(client, {workers[0]: away})  # now its node serves a satellite out of the zone
        final = wait_for(lambda: _final_ready(client, namespace), 20, "the handover after the relabel")
        assert final[0]["spec"]["nodeName"] == workers[1]
        assert log.min_ready_after_first() >= 1


def test_successor_not_ready_in_time_is_replaced_by_another_node(api_client, namespace, workers) -> None:
    """The best successor's node has no kubelet: its pod never gets Ready; the next best is used."""
    from krios.localcluster.nodes import node_status

    p = plan(successors=2)
    a, best, second = p.sats
    client = raw(api_client)
    ghost = "krios-ghost-0"
    client.post("/api/v1/nodes", {"metadata": {"name": ghost, "labels": {"sat_id": str(best)}}})
    try:
        client.patch(f"/api/v1/nodes/{ghost}/status", node_status(ghost, "127.0.2.1", time.time()), merge=False)
        set_sat_labels(client, {workers[0]: a, workers[2]: second})
        with app_under_controller(api_client, namespace, workers[0], p.t_a, 5.0, 3.0) as (_ctl, clock, log):
            final = wait_for(lambda: _final_ready(client, namespace), 40, "one Ready copy after the retry")
            assert final[0]["spec"]["nodeName"] == workers[2]
            failed = events(client, namespace, "HandoverFailed")
            assert failed and failed[0]["type"] == "Warning" and ghost in failed[0]["note"]
            assert clock.sim_at(log.deleted["web"]) < p.exits[a]
            assert log.min_ready_after_first() >= 1
            assert not any(pod["spec"]["nodeName"] == ghost for pod in list_pods(client, namespace))
    finally:
        client.delete(f"/api/v1/nodes/{ghost}")


def test_closest_controller_moves_mid_pass_as_the_simulator_does(api_client, namespace, workers) -> None:
    """With policy closest the live controller hands over as soon as another satellite is closer -- long
    before the serving one's exit -- to the satellite krios.control.handover.decide (the simulator's
    decision) names for that instant."""
    from krios.control import handover

    o = orbits()
    found = None
    for t in range(int(o.t0), int(o.t0) + 1800, 5):
        for a in o.in_zone_for(float(t), at_least_s=LOOKAHEAD_S + 120):
            d = handover.decide(o.tracker, float(t), a, {s: "n" for s in map(int, o.tracker.in_zone(float(t)))
                                                         if s != a}, "closest", "proactive", LOOKAHEAD_S)
            if d.reason == "better":
                found = (float(t), a, d.move.sat_id)
                break
        if found:
            break
    assert found, "no mid-pass closest switch in the first 30 minutes"
    t_b, a, b = found
    exit_a = o.tracker.exit_time(a, t_b)
    client = raw(api_client)
    set_sat_labels(client, {workers[0]: a, workers[1]: b})
    ctl = Controller(api_client, o.constellation, policy="closest", lookahead_s=LOOKAHEAD_S, ready_timeout_s=20.0)
    ctl.start(sync_timeout=30)
    log = None
    try:
        assert ctl.wait_leading(30)
        clock = publish_clock(client, t_b - 5.0, rate=2.0)  # a few emulated seconds before b is closer
        wait_for(lambda: ctl.clock.rate == 2.0, 10, "the controller to read the clock")
        log = ReadyLog(client, namespace)
        create_pods(client, namespace, [pod_body("web", o.labels, node=workers[0])])
        final = wait_for(lambda: _final_ready(client, namespace), 40, "one Ready copy after the switch")
        assert final[0]["spec"]["nodeName"] == workers[1]
        started = clock.sim_at(float(final[0]["metadata"]["annotations"][STARTED_ANNOTATION]))
        assert started < exit_a - LOOKAHEAD_S - 30, "not a mid-pass move"
        # the instant the controller moved, the shared decision says move to b (and not before t_b - 5)
        live = handover.decide(o.tracker, started, a, {b: workers[1]}, "closest", "proactive", LOOKAHEAD_S)
        assert live.reason == "better" and live.move.sat_id == b
        notes = [e["note"] for e in events(client, namespace, "HandoverStarted")]
        assert any(f"closest ranks sat {b} above sat {a}" in n for n in notes), notes
        assert log.min_ready_after_first() >= 1
    finally:
        if log is not None:
            log.stop()
        ctl.stop()


def test_pod_without_radius_label_is_placed_for_the_scenarios_radius(api_client, namespace, workers) -> None:
    """The app carries only leozone: the scheduler started with the scenario (zone radius 100 km) places it
    for the 100 km disk. At the chosen instant satellite x is high enough over the zone's centre (a 0 km
    zone), and stays longest there, but not over the whole disk; y serves the disk."""
    from dataclasses import replace

    from krios.control import policies
    from krios.control.scheduler import Scheduler, SchedulerConfig
    from krios.orbits.passes import ZoneTracker

    o = orbits()
    point = ZoneTracker(o.constellation, replace(o.zone, radius_km=0.0), horizon_s=3600.0, start=o.t0)
    found = None
    for t in range(int(o.t0), int(o.t0) + 1800, 10):
        disk = [int(s) for s in o.tracker.in_zone(float(t))]
        centre = [int(s) for s in point.in_zone(float(t))]
        only_centre = [s for s in centre if s not in disk]
        if not (disk and only_centre):
            continue
        x, y = only_centre[0], disk[0]
        best_0km = policies.choose("krios", point.candidates(float(t), sat_ids=[x, y]))
        if best_0km is not None and best_0km.sat_id == x and point.exit_time(x, float(t)) - t > 60:
            found = (float(t), x, y)
            break
    assert found, "no satellite over the centre but not the disk in the first 30 minutes"
    t, x, y = found
    client = raw(api_client)
    set_sat_labels(client, {workers[0]: x, workers[1]: y})
    cfg = SchedulerConfig.from_scenario(o.scenario, leader_elect=False)
    assert cfg.default_radius_km == 100.0
    sched = Scheduler(api_client, o.constellation, clock=Clock.starting(epoch_sim=t, rate=1.0), **cfg.kwargs())
    sched.start(sync_timeout=30)
    try:
        create_pods(client, namespace, [pod_body("app", {"leozone": o.scenario.leozone})])  # no radius label
        bound = wait_for(lambda: [p["spec"]["nodeName"] for p in list_pods(client, namespace)
                                  if p["spec"].get("nodeName")], 20, "the app bound")
        assert bound == [workers[1]], f"placed for a 0 km zone (sat {x}) instead of the 100 km disk (sat {y})"
        pod = list_pods(client, namespace)[0]
        assert sched.zone_of(pod).radius_km == 100.0
    finally:
        sched.stop()


def _start_controller(kubeconfig: str, *extra: str) -> tuple[subprocess.Popen, list[str]]:
    cmd = [sys.executable, "-m", "krios", "-v", "controller", f"--kubeconfig={kubeconfig}", *extra,
           "--scenario=sf_4workers", f"--lookahead-s={LOOKAHEAD_S:g}", "--ready-timeout-s=30",
           "--leader-elect-lease-duration=3", "--leader-elect-renew-deadline=2",
           "--leader-elect-retry-period=0.5"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []

    def pump() -> None:
        for line in proc.stderr:
            lines.append(line)

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


@pytest.mark.slow
def test_controller_killed_mid_handover_resumes_with_exactly_one_ready_copy(
        control_plane, api_client, namespace, workers, tmp_path) -> None:
    p = plan(successors=1)
    a, b = p.sats
    client = raw(api_client)
    set_sat_labels(client, {workers[0]: a, workers[1]: b})
    o = orbits()
    clock = publish_clock(client, p.t_a - 1000.0, rate=1.0)  # parked well before the handover
    procs = []
    log = None
    try:
        results = ("--results-db", str(tmp_path / "results.sqlite"), "--run-id", "handover-test")
        proc, lines = _start_controller(str(control_plane.kubeconfig), *results)
        procs.append(proc)
        wait_for(lambda: any("is leading" in ln for ln in lines), 60, "the controller to lead", interval_s=0.2)
        log = ReadyLog(client, namespace)
        create_pods(client, namespace, [pod_body("web", o.labels, node=workers[0])])
        wait_for(lambda: any(n for _t, n in log.samples), 15, "the app Ready")
        clock = publish_clock(client, p.t_a, rate=5.0)  # now the satellite moves: due in 8 s

        def successor() -> list[dict]:
            return [q for q in list_pods(client, namespace)
                    if (q["metadata"].get("annotations") or {}).get(FROM_ANNOTATION) == "web"]

        wait_for(successor, 30, "the successor to be created", interval_s=0.05)
        proc.send_signal(signal.SIGKILL)  # a crash: no lease release, no cleanup
        proc.wait(10)
        assert [q["metadata"]["name"] for q in list_pods(client, namespace)].count("web") == 1
        time.sleep(2.0)  # the successor gets Ready while nobody acts: two Ready copies for now
        proc2, lines2 = _start_controller(str(control_plane.kubeconfig), *results)
        procs.append(proc2)

        final = wait_for(lambda: _final_ready(client, namespace), 60, "exactly one Ready copy", interval_s=0.2)
        node = final[0]["spec"]["nodeName"]
        assert node == workers[1]
        assert b in o.tracker.in_zone(clock.now())
        assert log.min_ready_after_first() >= 1, "the app was without a Ready copy"
        time.sleep(1.0)
        pods = list_pods(client, namespace)
        assert len(pods) == 1 and is_ready(pods[0])  # and it stays that way
        assert not (pods[0]["metadata"].get("annotations") or {}).get(FAILED_ANNOTATION)
        assert proc2.poll() is None, "".join(lines2[-20:])
        from krios.results.store import ResultsStore

        with ResultsStore(tmp_path / "results.sqlite") as store:
            rows = store.rows("handover-test", "handovers")
        assert [(r["from_node"], r["to_node"], r["from_sat"], r["to_sat"], r["mode"]) for r in rows] == [
            (workers[0], workers[1], a, b, "proactive")]
    finally:
        if log is not None:
            log.stop()
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
