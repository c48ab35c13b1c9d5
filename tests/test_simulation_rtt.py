"""Client RTT in the simulator: :class:`krios.orbits.rtt.LatencyModel`'s numbers, equal to the brute-force farthest
client point, and the simulator's grid samples feeding it."""

from __future__ import annotations

import numpy as np
import pytest

from krios.orbits import rtt
from krios.orbits.constellation import Constellation
from krios.orbits.passes import ZoneTracker
from krios.orbits.rtt import LatencyModel, farthest_range_km, farthest_ring_range_km, rtt_ms
from krios.orbits.zones import Zone
from krios.sim.samples import ZoneSamples

START = 1767225600.0


@pytest.fixture(scope="module")
def shell() -> Constellation:
    return Constellation.from_shell("starlink-1", START)


@pytest.mark.parametrize("radius_km", [0.0, 100.0, 400.0])
def test_farthest_client_equals_the_brute_force_definition(shell, radius_km):
    model = LatencyModel(Zone(37.7749, -122.4194, radius_km, 25.0), per_hop_ms=9.0, hop_km=1000.0)
    r, _ = shell.itrs(START + np.arange(0.0, 1800.0, 30.0))
    r = r.reshape(-1, 3)
    elev, _, _ = model.zone.look(r)
    r = r[elev > 0]  # everything above the centre's horizon, in the zone or not
    assert len(r) > 1000
    brute = farthest_range_km(r, model.ground)  # every one of the 721 client points
    np.testing.assert_allclose(model.client_range_km(r), brute, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.client_rtt_ms(r), rtt_ms(brute, 9.0, 1000.0), rtol=0, atol=1e-9)


@pytest.mark.parametrize(("lat", "lon", "radius"), [(37.7749, -122.4194, 100.0), (37.7749, -122.4194, 1500.0),
                                                   (0.0, 10.0, 400.0), (89.9, 0.0, 300.0), (-45.0, 179.9, 50.0)])
def test_opposite_point_search_is_exact_on_and_off_the_axis(shell, lat, lon, radius):
    """The ring search that looks only around the point opposite the satellite (kept where its
    bound proves it, the coarse-then-fine search elsewhere) gives the brute-force maximum: for
    points on a lattice around the zone from straight above the centre (1 m, 10 m, 1 km off the
    axis) to 2,000 km away, at four heights, and for the shell's satellites above the horizon."""
    zone = Zone(lat, lon, radius_km=radius)
    ring = LatencyModel(zone).ground[1:]
    east, north, up = zone.basis
    offsets = np.array([0.0, 1e-3, 1e-2, 1.0, 30.0, 120.0, 700.0, 2000.0])
    offsets = np.concatenate([-offsets[1:], offsets])
    x, y, h = np.meshgrid(offsets, offsets, [-20.0, 2.0, 550.0, 1200.0], indexing="ij")
    hand = (zone.centre_itrs + x[..., None] * east + y[..., None] * north + h[..., None] * up).reshape(-1, 3)
    r, _ = shell.itrs(START + np.arange(0.0, 1800.0, 60.0))
    r = r.reshape(-1, 3)
    above = r[zone.look(r)[0] > 0]
    r = above if len(above) > 1000 else r[::8]  # none above the pole: satellites however far
    for pts in (hand, r):
        assert len(pts) >= rtt.RING_FIT_MIN  # the opposite-point search runs
        np.testing.assert_allclose(farthest_ring_range_km(pts, ring), farthest_range_km(pts, ring), rtol=0, atol=1e-6)
    g2 = np.einsum("ij,ij->i", ring, ring)
    _, proven = rtt._opposite_search(r, ring, rtt._fit_ring(ring, g2, rtt.RING_WINDOW))
    if radius <= 400.0:
        assert proven.mean() > 0.95  # the shortcut is the rule, the fallback the exception
    _, proven = rtt._opposite_search(hand, ring, rtt._fit_ring(ring, g2, rtt.RING_WINDOW))
    assert proven.any() and not proven.all()  # the lattice takes both paths (near the axis: the full search)


def test_grid_samples_match_constellation_itrs_and_the_model(shell):
    zone = Zone(37.7749, -122.4194, 100.0, 25.0)
    model = LatencyModel(zone)
    tracker = ZoneTracker(shell, zone, horizon_s=1200.0, start=START)
    samples = ZoneSamples(shell, zone, tracker.passes(START, START + 1200.0), START, START + 600.0, 1.0)
    assert samples.n_steps == 600
    picks = np.arange(0, len(samples.pair_k), 97)
    for i in picks:
        t = samples.times[samples.pair_k[i]]
        r, _ = shell.itrs([t])
        sat = samples.pair_sat[i]
        np.testing.assert_allclose(samples.r_itrs[i], r[sat, 0], atol=1e-6)  # km
        assert sat in tracker.in_zone(t)
        assert samples.range_km[i] == pytest.approx(tracker.look([sat], t)[2][0], abs=1e-6)
    rtt = samples.client_rtt_ms(model, picks)
    expected = model.client_rtt_ms(np.stack([shell.itrs([samples.times[samples.pair_k[i]]])[0][samples.pair_sat[i], 0]
                                             for i in picks]))
    np.testing.assert_allclose(rtt, expected, atol=1e-9)


def test_closest_per_step_is_the_exact_ranking(shell):
    """The closest satellite at every grid instant, found from interpolated ranges with exact
    ranking where they are too close to call, is the one the exact ranges of every sample give
    (lowest range, then lowest ``sat_id``), and ``first_closer`` answers from it."""
    zone = Zone(47.6062, -122.3321, 100.0, 25.0)
    tracker = ZoneTracker(shell, zone, horizon_s=7200.0, start=START)
    samples = ZoneSamples(shell, zone, tracker.passes(START, START + 7200.0), START, START + 3600.0, 1.0)
    assert 0 < samples.range_tol_km < 0.01  # km: a 32 s node spacing in LEO, float32 arithmetic
    order = np.lexsort((samples.pair_sat, samples.range_km, samples.pair_k))
    ks = samples.pair_k[order]
    head = np.concatenate([[True], ks[1:] != ks[:-1]])
    expected = np.full(samples.n_steps, -1)
    expected[ks[head]] = samples.pair_sat[order][head]
    assert (expected >= 0).sum() > 3000
    np.testing.assert_array_equal(samples._best_sat, expected)
    sat, k = int(samples.pair_sat[0]), int(samples.pair_k[0])
    t = samples.first_closer(sat, float(samples.times[k]), START + 3600.0)
    if not np.isnan(t):
        assert expected[samples.k_at(t)] != sat
