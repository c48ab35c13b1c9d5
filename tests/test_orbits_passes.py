"""Passes and the zone tracker against skyfield's own topocentric answers."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
from skyfield.api import EarthSatellite, wgs84

from krios.control import handover
from krios.orbits import geometry
from krios.orbits.constellation import Constellation
from krios.orbits.passes import ROOT_TOL_S, Pass, ZoneTracker, find_passes, scan_step
from krios.orbits.zones import Zone

FIXTURES = Path(__file__).parent / "fixtures" / "orbits"
EPOCH = 1767225600.0  # 2026-01-01T00:00:00Z
REAL_T = 1795176000.0  # 2026-11-20T12:00:00Z, among the fixture epochs
SF = (37.7749, -122.4194)


@pytest.fixture(scope="module")
def shell1() -> Constellation:
    return Constellation.from_shell("starlink-1", EPOCH)


def _sat(c: Constellation, k: int) -> EarthSatellite:
    return EarthSatellite(c.tles[k].line1, c.tles[k].line2, c.names[k], geometry.timescale())


def _skyfield_crossing(c: Constellation, p: Pass, zone: Zone, t_guess: float) -> float:
    """The crossing of the minimum elevation near ``t_guess`` by skyfield alone: the
    lowest elevation over the zone edge (every 3 deg of bearing, which misses the
    farthest point by < 40 m; the centre for radius 0) on a 0.25 s grid, linearly
    interpolated."""
    if zone.radius_km:
        b = np.radians(np.arange(0.0, 360.0, 3.0))
        lat1, lon1 = math.radians(zone.lat_deg), math.radians(zone.lon_deg)
        delta = zone.radius_km / geometry.MEAN_RADIUS_KM
        lat2 = np.arcsin(np.sin(lat1) * np.cos(delta) + np.cos(lat1) * np.sin(delta) * np.cos(b))
        lon2 = lon1 + np.arctan2(np.sin(b) * np.sin(delta) * np.cos(lat1),
                                 np.cos(delta) - np.sin(lat1) * np.sin(lat2))
        lats, lons = np.degrees(lat2), np.degrees(lon2)
    else:
        lats, lons = np.array([zone.lat_deg]), np.array([zone.lon_deg])
    times = t_guess + np.arange(-2.0, 2.01, 0.25)
    sat = _sat(c, p.sat_id)
    ground = wgs84.latlon(np.tile(lats, len(times)), np.tile(lons, len(times)))
    st = geometry.skyfield_time(np.repeat(times, len(lats)))
    alt = (sat - ground).at(st).altaz()[0].degrees.reshape(len(times), len(lats)).min(axis=1)
    f = alt - zone.min_elevation_deg
    i = np.flatnonzero(np.sign(f[:-1]) != np.sign(f[1:]))
    assert len(i) == 1, "no single crossing within 2 s of the engine's answer"
    i = int(i[0])
    return float(times[i] - f[i] * (times[i + 1] - times[i]) / (f[i + 1] - f[i]))


def test_scan_step_is_safe_for_leo(shell1):
    step = scan_step(shell1)
    # Margin 2 deg at 0.068 deg/s allows ~57 s, of which 90 % is used; the cap is 60 s.
    assert 20.0 <= step <= 60.0


@pytest.mark.parametrize("radius", [0.0, 100.0])
def test_entry_and_exit_match_skyfield_within_a_second(radius, shell1):
    zone = Zone(*SF, radius_km=radius)
    passes = find_passes(shell1, zone, EPOCH, 900.0)
    assert len(passes) > 10
    for p in passes[:: max(1, len(passes) // 3)][:3]:
        assert p.enter < p.exit
        assert abs(_skyfield_crossing(shell1, p, zone, p.enter) - p.enter) < 1.0
        assert abs(_skyfield_crossing(shell1, p, zone, p.exit) - p.exit) < 1.0


def test_real_tles_passes_match_skyfield_find_events():
    """Real-format TLEs with different epochs, a day of passes, radius 0: skyfield's
    own rise/set search at 25 deg agrees within a second."""
    c = Constellation.from_file(FIXTURES / "real3.tle")
    zone = Zone(47.6062, -122.3321)  # Seattle
    start, end = REAL_T - 6 * 3600.0, REAL_T + 18 * 3600.0
    passes = find_passes(c, zone, start, end - start)
    assert len(passes) >= 4
    ground = wgs84.latlon(zone.lat_deg, zone.lon_deg)
    for k in range(len(c)):
        t, events = _sat(c, k).find_events(ground, geometry.skyfield_time(start - 900),
                                           geometry.skyfield_time(end + 900), altitude_degrees=25)
        unix = np.array([d.timestamp() for d in t.utc_datetime()]) if len(events) else np.empty(0)
        rises, sets = unix[events == 0], unix[events == 2]
        mine = [p for p in passes if p.sat_id == k]
        inside = [x for x in rises if start <= x <= end]
        assert len(mine) >= len(inside)
        for p in mine:
            if p.enter > start - 600:
                assert np.min(np.abs(rises - p.enter)) < 1.0
            if p.exit < end + 600:
                assert np.min(np.abs(sets - p.exit)) < 1.0


def test_no_pass_is_missed_compared_with_a_one_second_scan(shell1):
    """Every in-zone interval of a 1 s brute-force scan is one of the passes found."""
    zone = Zone(*SF, radius_km=100)
    start, duration = EPOCH + 7200.0, 600.0
    passes = find_passes(shell1, zone, start, duration)
    found = {p.sat_id: p for p in passes}
    for t in start + np.arange(0.5, duration, 1.0):
        for sat in _rule(shell1, zone, float(t)):
            p = [q for q in passes if q.sat_id == sat and q.enter - 0.02 <= t <= q.exit + 0.02]
            assert p, f"satellite {sat} in the zone at {t} but in no pass"
    assert len(found) == len({p.sat_id for p in passes})


def test_pass_under_way_at_the_window_edges_keeps_its_true_times(shell1):
    zone = Zone(*SF)
    wide = find_passes(shell1, zone, EPOCH - 1800.0, 3600.0)
    narrow = find_passes(shell1, zone, EPOCH, 1.0)
    assert narrow
    for p in narrow:
        assert p.enter < EPOCH + 1.0 and p.exit > EPOCH
        twin = [q for q in wide if q.sat_id == p.sat_id and abs(q.enter - p.enter) < 0.05]
        assert twin and abs(twin[0].exit - p.exit) < 0.05


@pytest.fixture(scope="module")
def tracker(shell1) -> ZoneTracker:
    return ZoneTracker(shell1, Zone(*SF, radius_km=100), horizon_s=1800.0)


def _rule(c: Constellation, zone: Zone, t: float) -> np.ndarray:
    """The in-zone rule itself, on every satellite: sorted ``sat_id`` s."""
    return np.flatnonzero(zone.contains(c.positions(np.arange(len(c)), t)))


def test_tracker_in_zone_matches_the_instant_rule(tracker, shell1):
    for t in EPOCH + np.array([10.3, 333.3, 1500.7, 2900.1]):
        np.testing.assert_array_equal(tracker.in_zone(float(t)), _rule(shell1, tracker.zone, float(t)))


def test_tracker_in_zone_is_exact_at_the_edges_of_passes(shell1):
    """Within ROOT_TOL_S of a computed entry or exit the passes do not decide; the tracker
    settles those satellites by the rule, so its answer is the rule's at any instant."""
    zone = Zone(*SF, radius_km=100)
    tr = ZoneTracker(shell1, zone, horizon_s=1800.0, start=EPOCH)
    edges = [x for p in tr.passes(EPOCH, EPOCH + 1200.0)[:8] for x in (p.enter, p.exit)
             if EPOCH < x < EPOCH + 1200.0]
    assert edges
    for x in edges:
        for t in (x - ROOT_TOL_S - 1e-3, x - ROOT_TOL_S / 2, x - 1e-6, x, x + 1e-3):
            np.testing.assert_array_equal(tr.in_zone(t), _rule(shell1, zone, t))
            sats, exits = tr.in_zone_until(t)
            np.testing.assert_array_equal(sats, tr.in_zone(t))
            assert np.all(exits >= t)
    # consecutive 1 s ticks reuse the cached answer between events, and stay exact
    for t in EPOCH + 600.0 + np.arange(0.0, 30.0):
        np.testing.assert_array_equal(tr.in_zone(float(t)), _rule(shell1, zone, float(t)))


def test_tracker_exit_and_next_entry(tracker, shell1):
    now = EPOCH + 100.0
    inside = tracker.in_zone(now)
    assert len(inside)
    for sat in inside:
        ex = tracker.exit_time(int(sat), now)
        assert now < ex
        assert tracker.next_entry(int(sat), now) == now
        assert math.isnan(tracker.exit_time(int(sat), ex + 0.01)) or tracker.next_entry(
            int(sat), ex + 0.01) > ex
    upcoming = [p for p in tracker.passes(now) if p.enter > now and p.sat_id not in inside]
    p = upcoming[0]
    assert tracker.next_entry(p.sat_id, now) == p.enter
    assert math.isnan(tracker.exit_time(p.sat_id, now))
    never = set(range(len(shell1))) - {q.sat_id for q in tracker.passes(now, now + 1800.0)}
    assert math.isnan(tracker.next_entry(min(never), now))


def test_tracker_candidates_and_handover(tracker):
    now = EPOCH + 100.0
    cands = tracker.candidates(now)
    assert [c.sat_id for c in cands] == sorted(tracker.in_zone(now).tolist())
    for c in cands:
        assert c.enters_in_s == 0.0 and c.node is None
        assert c.remaining_s == pytest.approx(tracker.exit_time(c.sat_id, now) - now)
        elev, _, rng = tracker.look([c.sat_id], now)
        assert (c.elevation_deg, c.range_km) == pytest.approx((elev[0], rng[0]))
        assert c.elevation_deg >= 25.0  # the centre is a point of the zone
    soon = tracker.candidates(now, within_s=120.0)
    entering = [c for c in soon if c.enters_in_s > 0]
    assert entering and all(c.enters_in_s <= 120.0 for c in entering)
    nodes = {c.sat_id: f"krios-worker-{i}" for i, c in enumerate(soon[:3])}
    named = tracker.candidates(now, sat_ids=nodes, within_s=120.0)
    assert {c.node for c in named} == set(nodes.values())
    current = cands[0].sat_id
    succ = handover.pick_successor(tracker, now, current, {c.sat_id: "n" for c in soon}, "krios",
                                   random.Random(0))
    assert succ is not None and succ.sat_id != current
    assert now + succ.remaining_s >= tracker.exit_time(current, now)


def test_tracker_extends_lazily_and_goes_back_in_time(shell1):
    zone = Zone(*SF)
    t = ZoneTracker(shell1, zone, horizon_s=600.0)
    far = EPOCH + 1500.0
    a = t.in_zone(far)
    b = ZoneTracker(shell1, zone, horizon_s=600.0).in_zone(far)
    np.testing.assert_array_equal(a, b)
    t.in_zone(EPOCH + 100.0)
    np.testing.assert_array_equal(t.in_zone(EPOCH), _rule(shell1, zone, EPOCH))
    assert t.passes(EPOCH)[0].exit > EPOCH


def _reference_look(c: Constellation, zone: Zone, sat_ids, now: float):
    """Look angles as the tracker computed them before it was vectorised: each
    satellite's ``Satrec.sgp4``, the sidereal angle through a skyfield ``Time``."""
    from skyfield.sgp4lib import theta_GMST1982

    jd, fr = geometry.jd_utc(np.array([now]))
    r = np.array([c.satrecs[s].sgp4(jd[0], fr[0])[1] for s in sat_ids], dtype=float).reshape(-1, 3)
    st = geometry.skyfield_time(np.full(len(r), now))
    theta = np.asarray(theta_GMST1982(st.whole, st.ut1_fraction)[0])
    cos, sin = np.cos(theta), np.sin(theta)
    r_itrs = np.stack([cos * r[:, 0] + sin * r[:, 1], -sin * r[:, 0] + cos * r[:, 1], r[:, 2]], axis=1)
    return zone.look(r_itrs)


def test_tracker_look_matches_the_per_satellite_path_and_skyfield(tracker, shell1):
    rng = np.random.default_rng(3)
    site = wgs84.latlon(*SF)
    for now in EPOCH + np.array([0.0, 100.25, 777.7, 1799.0]):
        now = float(now)
        ids = np.concatenate([tracker.in_zone(now), rng.integers(0, len(shell1), 20), [5, 5, 0]])
        got = tracker.look(ids, now)
        want = _reference_look(shell1, tracker.zone, ids.tolist(), now)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=0, atol=1e-9)  # in fact identical
        # the same from a list, a generator, one satellite
        np.testing.assert_array_equal(tracker.look(ids.tolist(), now)[2], got[2])
        np.testing.assert_array_equal(tracker.look((int(s) for s in ids), now)[0], got[0])
        assert tracker.look([int(ids[0])], now)[2][0] == got[2][0]
        st = geometry.skyfield_time(now)
        for k in range(0, len(ids), 6):
            alt, az, dist = (_sat(shell1, int(ids[k])) - site).at(st).altaz()
            assert got[0][k] == pytest.approx(alt.degrees, abs=1e-6)
            assert (got[1][k] - az.degrees + 180.0) % 360.0 - 180.0 == pytest.approx(0.0, abs=1e-6)
            assert got[2][k] == pytest.approx(dist.km, abs=1e-6)
    empty = tracker.look([], EPOCH)
    assert all(len(a) == 0 for a in empty)


def _reference_candidates(tracker: ZoneTracker, now: float, wanted, within_s: float):
    """Candidates by their definition, from the cached pass list: each wanted satellite's
    earliest pass with ``enter <= now + within_s`` and ``exit > now``."""
    chosen: dict[int, Pass] = {}
    for p in sorted(tracker.passes(now - 3600.0, now + within_s + 3600.0), key=lambda p: (p.enter, p.sat_id)):
        if p.enter <= now + within_s and p.exit > now and (wanted is None or p.sat_id in wanted):
            chosen.setdefault(p.sat_id, p)
    ids = sorted(chosen)
    elev, _, rng = _reference_look(tracker.constellation, tracker.zone, ids, now)
    return [(s, None if not isinstance(wanted, dict) else wanted[s], chosen[s].exit - now, rng[k], elev[k],
             max(0.0, chosen[s].enter - now)) for k, s in enumerate(ids)]


def test_tracker_candidates_match_their_definition(shell1):
    tr = ZoneTracker(shell1, Zone(*SF, radius_km=100), horizon_s=9000.0, start=EPOCH)
    rng = np.random.default_rng(5)
    some = {int(s): f"n{s}" for s in rng.choice(len(shell1), 400, replace=False)}
    repeats = 0
    for now in EPOCH + 3600.0 + rng.uniform(0.0, 1800.0, 12):
        now = float(now)
        for wanted, within in ((None, 0.0), (None, 150.0), (some, 600.0), (list(some), 0.0), (None, 6000.0)):
            got = tr.candidates(now, sat_ids=wanted, within_s=within)
            want = _reference_candidates(tr, now, None if wanted is None else set(wanted) if isinstance(
                wanted, list) else wanted, within)
            assert [c.sat_id for c in got] == [w[0] for w in want]
            for c, w in zip(got, want, strict=True):
                assert (c.node, c.remaining_s, c.enters_in_s) == (w[1], w[2], w[5])
                assert c.range_km == pytest.approx(w[3], abs=1e-9) and c.elevation_deg == pytest.approx(w[4], abs=1e-9)
            repeats += within == 6000.0 and len({p.sat_id for p in tr.passes(now, now + within)}) < len(
                [p for p in tr.passes(now, now + within)])
        in_zone = sorted(p.sat_id for p in tr.passes(now - 3600.0, now + 3600.0) if p.enter <= now < p.exit)
        assert tr.in_zone(now).tolist() == in_zone
    assert repeats  # some satellites came round twice within the long window: the earliest pass counts


def test_tracker_candidates_of_a_few_satellites_are_the_general_paths(shell1, monkeypatch):
    """Up to ``FEW_CANDIDATES`` wanted satellites are looked up through their own passes (the
    handover decisions' common case): the same candidates, bit for bit, as the path through
    every live pass, including satellites that come round twice and ones not in the zone."""
    from krios.orbits import passes

    tr = ZoneTracker(shell1, Zone(*SF, radius_km=100), horizon_s=9000.0, start=EPOCH)
    rng = np.random.default_rng(7)
    few = passes.FEW_CANDIDATES
    cases = []
    for now in EPOCH + 3600.0 + rng.uniform(0.0, 1800.0, 10):
        for within in (0.0, 150.0, 6000.0):
            ids = [c.sat_id for c in tr.candidates(float(now), within_s=within)]
            for size in range(1, few + 1):
                pick = [int(s) for s in rng.choice(ids, min(size - 1, len(ids)), replace=False)]
                other = int(rng.integers(len(shell1)))  # in the zone or (mostly) not
                cases.append((float(now), within, {s: f"n{s}" for s in pick[1:]} | dict.fromkeys([*pick[:1], other])))
    got = [(tr.candidates(now, sat_ids=w, within_s=within), tr.candidates(now, sat_ids=list(w), within_s=within))
           for now, within, w in cases]
    monkeypatch.setattr(passes, "FEW_CANDIDATES", 0)  # every call through the live passes
    want = [(tr.candidates(now, sat_ids=w, within_s=within), tr.candidates(now, sat_ids=list(w), within_s=within))
            for now, within, w in cases]
    assert got == want
    assert sum(len(g[0]) for g in got) > 100 and all(len(w) <= few for _, _, w in cases)


def test_time_ranked_successor_is_the_one_ranking_everyone_gives(shell1):
    """``pick_successor`` for a policy that ranks by time first (``krios``) propagates only the
    satellites tied on time in the zone and time left; its choice is the one ``rank`` makes
    over every candidate (the definition), whatever the serving satellite's exit."""
    import random

    from krios.control import handover
    from krios.control.policies import rank

    tr = ZoneTracker(shell1, Zone(*SF, radius_km=100), horizon_s=9000.0, start=EPOCH)
    rng = np.random.default_rng(11)
    eligible = {s: f"n{s}" for s in range(len(shell1))}
    checked = 0
    for now in EPOCH + 3600.0 + rng.uniform(0.0, 3600.0, 40):
        now = float(now)
        inside = tr.in_zone(now).tolist()
        for current in (None, *inside[:2]):
            for exit_time in (None, now + 30.0, now + 0.5, now + 900.0, math.nan):
                if current is None and exit_time is not None:
                    continue
                got = handover.pick_successor(tr, now, current, eligible, "krios", random.Random(0), exit_time)
                end = tr.exit_time(current, now) if exit_time is None and current is not None else exit_time
                within = max(0.0, end - now) if end is not None and not math.isnan(end) else 0.0
                cands = tr.candidates(now, sat_ids=[s for s in eligible if s != current], within_s=within)
                if end is not None and not math.isnan(end):
                    cands = [c for c in cands if now + c.remaining_s > end] or cands
                if not cands:
                    assert got is None
                    continue
                want = rank("krios", cands)[0]
                assert (got.sat_id, got.node, got.remaining_s, got.enters_in_s) == (
                    want.sat_id, f"n{want.sat_id}", want.remaining_s, want.enters_in_s)
                assert got.range_km == pytest.approx(want.range_km, abs=1e-9)
                checked += 1
    assert checked > 100


def test_scan_runs_are_every_run_of_the_cone(shell1):
    """``_runs`` (from the flat indices of the instants in the scan cone) finds every run of
    True of a bool table, row by row, as a plain scan along each row does."""
    from krios.orbits.passes import _runs

    rng = np.random.default_rng(3)
    for shape, p in (((1, 1), 1.0), ((3, 1), 0.5), ((1, 9), 0.5), ((40, 60), 0.05), ((40, 60), 0.9), ((5, 5), 0.0)):
        mask = rng.random(shape) < p
        want = []
        for row in range(shape[0]):
            col = 0
            while col < shape[1]:
                if mask[row, col]:
                    first = col
                    while col + 1 < shape[1] and mask[row, col + 1]:
                        col += 1
                    want.append((row, first, col))
                col += 1
        rows, firsts, lasts = _runs(mask)
        assert list(zip(rows.tolist(), firsts.tolist(), lasts.tolist(), strict=True)) == want


def test_scan_propagated_in_two_processes_is_the_same(shell1, monkeypatch):
    """``prepare_scan(..., jobs=2)`` (the simulator's parent process: chunks of the scan in a
    forked helper, into shared memory) keeps the same positions as one process."""
    from krios.orbits import passes

    monkeypatch.setattr(passes, "_CHUNK", len(shell1) * 16)  # several chunks in an hour
    grid = passes._scan_grid(EPOCH, 3600.0, scan_step(shell1))
    passes._SCAN_CACHE.pop(shell1, None)
    helper_cpu = passes.prepare_scan(shell1, EPOCH, 3600.0, jobs=2)
    forked = passes._scan_positions(shell1, grid)  # the cached scan
    passes._SCAN_CACHE.pop(shell1, None)
    serial = passes._scan_positions(shell1, grid)
    assert helper_cpu > 0.0
    np.testing.assert_array_equal(forked, serial)
