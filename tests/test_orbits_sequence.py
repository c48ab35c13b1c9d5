"""The sequence engine (ZoneSet.sequence) against the full per-tick computation, and the
motion bounds its windows rest on against SGP4's own trajectories."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sgp4.api import WGS72, Satrec
from sgp4.exporter import export_tle

from krios.orbits.constellation import EARTH_ROTATION_RAD_S, Constellation
from krios.orbits.tle import TLE, load_tles
from krios.orbits.walker import SHELLS, WalkerShell, mean_motion_rad_min, walker_delta
from krios.orbits.zones import Zone, ZoneSet
from krios.orbits.zonesequence import ZoneSequence, tick_sequence

FIXTURES = Path(__file__).parent / "fixtures" / "orbits"
EPOCH = 1767225600.0  # 2026-01-01T00:00:00Z
REAL_T = 1795176000.0  # 2026-11-20T12:00:00Z, among the fixture epochs


def _zones(count: int, seed: int) -> list[Zone]:
    """Random zones of every kind: radii 0 to 1500 km, minimum elevations 0 to 60 deg,
    near the poles and the equator, plus one no 53 deg shell ever serves."""
    rng = np.random.default_rng(seed)
    zones = [Zone(float(rng.uniform(-70, 70)), float(rng.uniform(-180, 180)),
                  float(rng.choice([0.0, 0.0, 50.0, 100.0, 400.0, 1500.0])),
                  float(rng.choice([0.0, 10.0, 25.0, 25.0, 40.0, 60.0])))
             for _ in range(count)]
    return [*zones, Zone(89.5, 10.0, 100.0), Zone(0.0, 0.0, 0.0, 25.0),
            Zone(-60.0, 170.0, 2000.0, 5.0)]


def _eccentric(count: int, epoch: float) -> list[TLE]:
    """Element sets on eccentric orbits (e 0.01-0.08, perigee 450-700 km) with drag."""
    out = []
    epoch_days = (2440587.5 + epoch / 86400.0) - 2433281.5
    for k in range(count):
        e = 0.01 + 0.07 * k / max(count - 1, 1)
        perigee = 6378.135 + 450.0 + 250.0 * (k % 3) / 2
        a = perigee / (1 - e)
        n = mean_motion_rad_min(a - 6378.135)
        sat = Satrec()
        sat.sgp4init(WGS72, "i", 90000 + k, epoch_days, 2e-4, 0.0, 0.0, e,
                     math.radians(40.0 * k % 360), math.radians(30.0 + 17.0 * k % 120),
                     math.radians(25.0 * k % 360), n, math.radians(55.0 * k % 360))
        line1, line2 = export_tle(sat)
        out.append(TLE(f"ECC-{k}", line1, line2))
    return out


def _assert_same_as_full(zs: ZoneSet, seq: ZoneSequence, times: np.ndarray) -> int:
    """Compare the sequence engine with ZoneSet.pairs at every time; return the in-zone
    pairs seen in all."""
    total = 0
    for t in times:
        want_z, want_s = zs.pairs(float(t))
        got_z, got_s = seq.pairs(float(t))
        np.testing.assert_array_equal(got_z, want_z, err_msg=f"zones at t={t}")
        np.testing.assert_array_equal(got_s, want_s, err_msg=f"satellites at t={t}")
        total += len(want_z)
    return total


def test_sequence_equals_full_engine_every_tick_for_600_ticks():
    """600 consecutive 1 s ticks, a 53 deg shell and 63 zones: identical in-zone sets."""
    c = Constellation.from_shell(WalkerShell("b", 40, 40, 550.0, 53.0), EPOCH)
    zs = ZoneSet(c, _zones(60, seed=1))
    seq = ZoneSequence(zs)
    times = EPOCH + 7200.0 + np.arange(600.0)
    total = _assert_same_as_full(zs, seq, times)
    assert total > 20_000  # many pairs in zones every tick, entering and leaving
    assert seq.ticks == 600 and seq.full_ticks == 1
    # Coherent: after the first tick, a small share of the satellites is propagated.
    assert seq.propagated - len(c) < 0.25 * 599 * len(c)


def test_sequence_equals_full_engine_for_mixed_orbits_and_irregular_times():
    """Several shells, real TLEs with different epochs and eccentric orbits with drag;
    steps of 0.3-4 s, steps back in time, a jump of hours and repeated times."""
    tles = (walker_delta(SHELLS["starlink-3"], REAL_T - 86400.0)[::3]
            + walker_delta(SHELLS["starlink-4"], REAL_T)
            + load_tles(FIXTURES / "real3.tle") + load_tles(FIXTURES / "real2.tle")
            + _eccentric(24, REAL_T - 3600.0))
    c = Constellation.from_tles(tles)
    zs = ZoneSet(c, _zones(40, seed=2))
    rng = np.random.default_rng(5)
    steps = rng.choice([0.3, 1.0, 1.0, 1.0, 2.5, 4.0, -1.0, -3.0, 0.0], size=260)
    steps[130] = 5 * 3600.0
    times = REAL_T + np.cumsum(steps)
    seq = ZoneSequence(zs)
    assert _assert_same_as_full(zs, seq, times) > 500
    assert seq.full_ticks >= 2  # the first tick and the jump


def test_tick_sequence_and_in_zones_match_zoneset():
    c = Constellation.from_shell("starlink-1", EPOCH)
    zs = ZoneSet(c, _zones(10, seed=3))
    times = EPOCH + 600.0 + np.arange(30.0)
    for t, got in zip(times, tick_sequence(zs, times), strict=True):
        want = zs.in_zones(float(t))
        assert len(got) == len(want) == len(zs.zones)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)


def test_bounds_widen_when_a_satellite_moves_faster_than_assumed():
    """If SGP4 shows a direction turning faster than the bound, the bound is raised,
    every window dropped, and the answer stays exact."""
    c = Constellation.from_shell(WalkerShell("b", 20, 20, 550.0, 53.0), EPOCH)
    zs = ZoneSet(c, _zones(20, seed=4))
    seq = ZoneSequence(zs)
    seq._set_bounds(rate_max=1e-4, rate_min=seq._rate_min, rdot_max=seq._rdot_max)
    slow = seq.rate_bound
    times = EPOCH + 100.0 + np.arange(40.0)
    _assert_same_as_full(zs, seq, times)
    assert seq.rate_bound > slow
    assert seq.rate_bound == pytest.approx(c.max_angular_rate, rel=0.03)


@pytest.mark.parametrize("which", ["shell", "mixed"])
def test_motion_bounds_hold_along_sgp4_trajectories(which):
    """The bounds behind the windows, checked by finite differences of SGP4 positions
    over a day: the direction's Earth-fixed angular acceleration (which bounds
    d^2/dt^2 cos psi for every zone), the distance's second derivative, the angular
    rates and radial speeds."""
    if which == "shell":
        c = Constellation.from_shell("starlink-1", EPOCH)
        c = c.subset(range(0, len(c), 11))
        t0 = EPOCH
    else:
        c = Constellation.from_tles(load_tles(FIXTURES / "real3.tle") + _eccentric(12, REAL_T))
        t0 = REAL_T
    zs = ZoneSet(c, [Zone(0.0, 0.0)])
    seq = ZoneSequence(zs)
    h = 2.0
    base = t0 + np.arange(0.0, 86400.0, 397.0)
    times = (base[:, None] + np.array([-h, 0.0, h])).ravel()
    r, _ = c.itrs(times)  # Earth-fixed
    r = r.reshape(len(c), len(base), 3, 3)
    d = np.linalg.norm(r, axis=-1)
    u = r / d[..., None]
    u_acc = np.linalg.norm(u[:, :, 2] - 2 * u[:, :, 1] + u[:, :, 0], axis=-1) / h**2
    d_acc = np.abs(d[:, :, 2] - 2 * d[:, :, 1] + d[:, :, 0]) / h**2
    assert np.max(u_acc) <= seq._cos_accel
    assert np.max(d_acc) <= seq._d_accel
    r_teme, v_teme = c.teme(base)
    dist = np.linalg.norm(r_teme, axis=-1)
    rate = np.linalg.norm(np.cross(r_teme, v_teme), axis=-1) / dist**2
    assert seq._rate_min <= rate.min() and rate.max() <= seq._rate_max
    assert seq.rate_bound == pytest.approx(seq._rate_max + EARTH_ROTATION_RAD_S)
    assert np.max(np.abs(np.einsum("ntj,ntj->nt", r_teme, v_teme)) / dist) <= seq._rdot_max
    lo, hi = c.radius_range_km
    assert lo <= dist.min() and dist.max() <= hi
