"""Policy simulator: hand-checked timelines and the decision code it shares with the controller."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from krios.control import handover
from krios.orbits.constellation import Constellation
from krios.orbits.passes import ZoneTracker, find_passes
from krios.orbits.zones import Zone
from krios.sim import engine
from krios.sim import run as simulate
from krios.sim.metrics import concurrency, gaps, measure
from krios.sim.model import POLICY_SPECS, Instance, Timeline, parse_policies
from krios.sim.samples import ZoneSamples

START = 1767225600.0  # 2026-01-01T00:00:00Z, the shell's epoch
SF = Zone(37.7749, -122.4194, 100.0, 25.0)
ALL = "krios,reactive,closest,random"
#: Pass entry/exit are bisected to 0.01 s; another search window may land 0.01 s away.
TOL_S = 0.02


@pytest.fixture(scope="module")
def shell() -> Constellation:
    return Constellation.from_shell("starlink-1", START)


def _run(constellation, zone, start, duration, policies=ALL, startup_s=5.0, lookahead_s=30.0):
    config = simulate.SimConfig(
        zones=[simulate.zone_spec("sf", zone)], policies=parse_policies(policies), start=start,
        duration_s=duration, startup_s=startup_s, lookahead_s=lookahead_s,
    )
    result = simulate.simulate(constellation, config)
    return {m.policy: m for m in result.metrics}, {t.policy: t for t in result.timelines}


def _one_pass(shell, sat):
    """The satellite alone, and its pass over SF in the first 10 minutes (sat_id 0 in the subset)."""
    alone = shell.subset([sat])
    (p,) = find_passes(alone, SF, START, 600)
    return alone, p


def test_one_satellite_one_pass_from_before_entry(shell):
    alone, p = _one_pass(shell, 843)
    assert 20 < p.enter - START < 40 and 200 < p.duration_s < 260  # the pass the figures below assume
    duration = 600.0
    metrics, timelines = _run(alone, SF, START, duration)
    for policy, m in metrics.items():
        tl = timelines[policy]
        # Nothing in the zone at the start: placed at entry, ready startup_s later, serves until exit.
        assert [(h.time, h.to_sat, h.reason) for h in tl.handovers] == [(p.enter, 0, "gap")], policy
        assert tl.service == [(p.enter + 5.0, p.exit, 0)]
        assert m.handovers == 0 and m.placements == 1
        assert m.availability == pytest.approx((p.exit - p.enter - 5.0) / duration)
        assert m.mean_instances == pytest.approx((p.exit - p.enter) / duration)
        assert m.max_instances == 1 and m.gaps == 2
        # RTT sampled every second while served: instants START + k with enter + 5 <= t < exit.
        assert m.rtt_samples == math.ceil(p.exit - START) - math.ceil(p.enter + 5.0 - START)


def test_one_satellite_from_mid_pass(shell):
    alone, p = _one_pass(shell, 843)
    start, duration = START + 100.0, 600.0
    metrics, timelines = _run(alone, SF, start, duration, policies="krios,reactive")
    for m in metrics.values():
        assert m.handovers == 0 and m.placements == 0  # already serving at the start (warm start)
        assert m.availability == pytest.approx((p.exit - start) / duration, abs=TOL_S / duration)
        assert m.unavailable_s == pytest.approx(start + duration - p.exit, abs=TOL_S)
    (inst,) = timelines["krios"].instances
    assert (inst.sat_id, inst.start, inst.ready) == (0, start, start)
    assert inst.stop == pytest.approx(p.exit, abs=TOL_S)


def test_two_satellites_proactive_reactive_and_closest(shell):
    pair = shell.subset([843, 1365])  # sat_id 0 = 843 (leaves first), 1 = 1365 (in the zone by then)
    a, b = sorted(find_passes(pair, SF, START, 600), key=lambda q: q.sat_id)
    start = a.enter + 5.0
    assert start < b.enter < a.exit - 40.0 < b.exit - 40.0
    duration = b.exit + 60.0 - start
    share = 2 * TOL_S / duration
    metrics, timelines = _run(pair, SF, start, duration)

    # krios: successor started lookahead_s (30) before a leaves, serves once ready (5 s later).
    (h,) = timelines["krios"].handovers
    assert (h.from_sat, h.to_sat, h.reason) == (0, 1, "exit")
    assert h.time == pytest.approx(a.exit - 30.0, abs=TOL_S) and h.lead_s == pytest.approx(30.0)
    m = metrics["krios"]
    assert m.handovers == 1 and m.max_instances == 2 and m.lead_min_s == pytest.approx(30.0)
    assert m.availability == pytest.approx((b.exit - start) / duration, abs=share)
    overlap = 5.0  # both run from the successor's start until it is ready
    assert m.mean_instances == pytest.approx((b.exit - start + overlap) / duration, abs=share)

    # reactive: successor only started at a's exit: the zone waits startup_s for it.
    (h,) = timelines["reactive"].handovers
    assert h.time == pytest.approx(a.exit, abs=TOL_S) and h.lead_s == pytest.approx(0.0)
    m = metrics["reactive"]
    assert m.availability == pytest.approx((b.exit - start - 5.0) / duration, abs=share)
    assert m.max_instances == 1  # never two at once; the successor starts up while nothing serves
    assert m.mean_instances == pytest.approx(m.availability + 5.0 / duration)

    # closest: hands over at the first sampled instant b is closer than a; a was not closer before.
    (h,) = timelines["closest"].handovers
    assert h.reason == "better" and h.to_sat == 1 and h.time < a.exit - 30.0
    tracker = ZoneTracker(pair, SF, horizon_s=duration + 3600, start=start)
    _, _, rng_now = tracker.look([0, 1], h.time)
    _, _, rng_before = tracker.look([0, 1], h.time - 1.0)
    assert rng_now[1] < rng_now[0] and rng_before[1] >= rng_before[0]
    assert metrics["closest"].availability == pytest.approx((b.exit - start) / duration, abs=share)


def test_simulator_and_controller_choose_the_same_successor(shell, monkeypatch):
    """Every decision of the simulator is krios.control.handover.decide, and the controller's call of it
    (nodes named, the serving satellite's node left out of ``eligible`` because the app runs there, the
    exit time from the tracker) gives the same answer for the same tracker, time and serving satellite:
    the same successor at each handover -- including ``closest``'s mid-pass moves -- and "keep" between them."""
    start, duration = START, 1800.0
    tracker = ZoneTracker(shell, SF, horizon_s=duration + 3600, start=start)
    passes = tracker.passes(start, start + duration + 3600)
    samples = ZoneSamples(shell, SF, passes, start, start + duration, 1.0)
    calls: list[tuple] = []
    real_decide = handover.decide

    def spy(tr, now, current, eligible, policy, mode, lookahead_s, rng=None, exit_time=None):
        d = real_decide(tr, now, current, eligible, policy, mode, lookahead_s, rng, exit_time)
        calls.append((now, current, policy, d))
        return d

    monkeypatch.setattr(handover, "decide", spy)
    everyone = dict.fromkeys(range(len(shell)))
    timelines = {
        name: engine.run(POLICY_SPECS[name], "sf", tracker, samples, everyone, start, start + duration,
                         lookahead_s=30.0, startup_s=5.0, rng=random.Random(1))
        for name in ("krios", "closest")
    }
    monkeypatch.undo()
    assert sum(len(t.handovers) for t in timelines.values()) > 30
    assert any(h.reason == "better" for h in timelines["closest"].handovers)  # closest moves mid-pass
    assert not any(h.reason == "better" for h in timelines["krios"].handovers)
    nodes = {s: f"krios-worker-{s}" for s in range(len(shell))}  # the controller's eligible map

    def controller(policy: str, now: float, current: int | None) -> handover.Decision:
        eligible = {s: n for s, n in nodes.items() if s != current}  # the app's node is busy
        exit_time = None if current is None else tracker.exit_time(current, now)
        return handover.decide(tracker, now, current, eligible, policy, "proactive", 30.0, None,
                               exit_time=exit_time)

    chosen = {(c[0], c[1], c[2]): c[3] for c in calls if c[3].move is not None}
    for policy, tl in timelines.items():
        chooser = POLICY_SPECS[policy].chooser
        for h in tl.handovers:
            sim = chosen[(h.time, h.from_sat, chooser)]
            assert sim.move.sat_id == h.to_sat
            live = controller(chooser, h.time, h.from_sat)
            assert (live.move.sat_id, live.move.node) == (h.to_sat, f"krios-worker-{h.to_sat}"), (policy, h)
            assert live.reason == ("place" if h.from_sat is None else sim.reason)
        # Between handovers the serving satellite is kept, by the simulator and by the controller alike.
        switches = [h.time for h in tl.handovers]
        for t0, t1, sat in tl.service[::3]:
            for now in np.arange(t0 + 1.0, t1 - 1.0, 20.0):
                if any(w - 1.0 <= now <= w + 5.0 + 1.0 for w in switches):
                    continue  # a successor started at w serves from w + startup_s (5 s): the old one until then
                live = controller(chooser, float(now), sat)
                if handover.due(float(now), tracker.exit_time(sat, float(now)), "proactive", 30.0):
                    continue  # a successor is starting up: the sim's next handover is already under way
                assert live.reason == "keep", (policy, float(now), sat, live)


def test_closest_decision_moves_mid_pass_and_krios_keeps(shell):
    """The one decision function: at an instant another satellite is closer than the serving one, well
    before its exit, ``closest`` moves (reason ``better``) and ``krios`` keeps; at the handover start
    time both move (reason ``exit``)."""
    pair = shell.subset([843, 1365])
    a, b = sorted(find_passes(pair, SF, START, 600), key=lambda q: q.sat_id)
    tracker = ZoneTracker(pair, SF, horizon_s=3600, start=START)
    t = next(float(t) for t in np.arange(max(a.enter, b.enter) + 1.0, a.exit - 31.0, 1.0)
             if (lambda r: r[1] < r[0])(tracker.look([0, 1], float(t))[2]))
    eligible = {1: "node-b"}
    closest = handover.decide(tracker, t, 0, eligible, "closest", "proactive", 30.0)
    assert closest.reason == "better" and (closest.move.sat_id, closest.move.node) == (1, "node-b")
    krios = handover.decide(tracker, t, 0, eligible, "krios", "proactive", 30.0)
    assert krios.reason == "keep" and krios.move is None
    at_exit = a.exit - 30.0 + 0.5
    for policy in ("krios", "closest"):
        d = handover.decide(tracker, at_exit, 0, eligible, policy, "proactive", 30.0)
        assert d.reason == "exit" and d.move.sat_id == 1


def test_zone_policy_figures_do_not_depend_on_worker_processes(shell):
    zones = [simulate.zone_spec("sf", SF), simulate.zone_spec("seattle", Zone(47.6062, -122.3321, 100.0))]
    config = simulate.SimConfig(zones=zones, policies=parse_policies("krios,random"), start=START,
                                duration_s=900.0, seed=3)
    serial = simulate.simulate(shell, config, jobs=1)
    forked = simulate.simulate(shell, config, jobs=2)
    assert forked.timings["jobs"] == 2
    assert [m.as_dict() for m in serial.metrics] == [m.as_dict() for m in forked.metrics]


def test_metrics_of_a_hand_made_timeline():
    tl = Timeline("krios", "z", 0.0, 100.0)
    tl.instances += [Instance(1, 0, 0, 40), Instance(2, 30, 35, 100)]
    tl.serve(0, 35, 1)
    tl.serve(35, 90, 2)
    assert concurrency(tl) == (pytest.approx(1.1), 2)  # (40 + 70) / 100
    assert gaps(tl) == [(90.0, 100.0)]
    m = measure(tl, np.array([10.0, 20.0, 30.0]))
    assert m.availability == pytest.approx(0.9) and m.rtt_mean_ms == pytest.approx(20.0)
    assert m.handovers == 0 and math.isnan(m.lead_mean_s)


def test_tracker_live_window_equals_the_full_comparison(shell):
    """``ZoneTracker._live`` compares only the passes that entered within the longest pass's
    duration before ``now``; the rows are those the comparison over every cached pass gives."""
    tracker = ZoneTracker(shell, SF, horizon_s=7200.0, start=START)
    tracker.passes(START, START + 7200.0)
    rng = np.random.default_rng(3)
    for now in START + rng.uniform(0.0, 7000.0, 300):
        for within in (0.0, 30.0, 400.0):
            full = ((tracker._enter <= now + within) & (tracker._exit > now)).nonzero()[0]
            np.testing.assert_array_equal(tracker._live(float(now), within), full)
    for p in tracker.passes(START, START + 7200.0)[:50]:  # at entries and exits exactly
        for now in (p.enter, p.exit):
            full = ((tracker._enter <= now) & (tracker._exit > now)).nonzero()[0]
            np.testing.assert_array_equal(tracker._live(now), full)
