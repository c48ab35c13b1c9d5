"""The RTT model: formula, farthest client point, checked against skyfield's topocentric ranges."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from skyfield.api import EarthSatellite, load, wgs84
from skyfield.framelib import itrs

from krios.config import scenarios
from krios.config.times import parse_time
from krios.errors import ConfigError
from krios.orbits.constellation import Constellation
from krios.orbits.rtt import (
    C_KM_S,
    LatencyModel,
    farthest_range_km,
    farthest_ring_range_km,
    hop_count,
    matrix_document,
    rtt_ms,
)
from krios.orbits.zones import Zone

SF = (37.7749, -122.4194)
T0 = parse_time("2026-01-01T00:10:00Z")


def test_rtt_formula_propagation_plus_per_hop_processing():
    # 550 km straight up: 3.669 ms of propagation there and back, one hop of 9 ms
    assert rtt_ms(550.0, 9.0, 1000.0) == pytest.approx(2 * 550 / C_KM_S * 1000 + 9.0)
    assert float(rtt_ms(550.0, 9.0, 1000.0)) == pytest.approx(12.669, abs=1e-3)
    assert hop_count(1000.0, 1000.0) == 1 and hop_count(1000.001, 1000.0) == 2 and hop_count(0.0, 1000.0) == 1
    assert float(rtt_ms(1500.0, 4.0, 500.0)) == pytest.approx(2 * 1500 / C_KM_S * 1000 + 3 * 4.0)
    assert rtt_ms(np.array([100.0, 2500.0]), 9.0, 1000.0).shape == (2,)


def test_model_reads_scenario_latency_keys_and_rejects_bad_values():
    model = LatencyModel.from_scenario(scenarios.load("sf_4workers"))
    assert (model.per_hop_ms, model.hop_km, model.zone.radius_km) == (9.0, 1000.0, 100.0)
    assert model.ground.shape == (721, 3)  # centre + the zone's edge ring
    with pytest.raises(ConfigError, match="hop_km"):
        LatencyModel(Zone(*SF), hop_km=0.0)
    with pytest.raises(ConfigError, match="per_hop_ms"):
        LatencyModel(Zone(*SF), per_hop_ms=-1.0)


@pytest.fixture(scope="module")
def sats():
    """Starlink-1 shell satellites and their ITRS positions at T0 (krios's propagation)."""
    c = Constellation.from_scenario(scenarios.load("sf_4workers"))
    r, _v = c.itrs([T0])
    return c, r[:, 0, :]


def test_zero_radius_range_matches_skyfield_topocentric(sats):
    c, r = sats
    model = LatencyModel(Zone(*SF, radius_km=0.0))
    ts = load.timescale()
    t = ts.from_datetime(datetime.fromtimestamp(T0, tz=UTC))
    site = wgs84.latlon(*SF)
    centre = site.at(t).frame_xyz(itrs).km
    # the 20 satellites nearest the zone, as skyfield computes them
    near = np.argsort(np.linalg.norm(r - centre, axis=1))[:20]
    for sid in near:
        sat = EarthSatellite(c.tles[sid].line1, c.tles[sid].line2, c.tles[sid].name, ts)
        _alt, _az, dist = (sat - site).at(t).altaz()
        assert float(model.client_range_km(r[sid])) == pytest.approx(dist.km, abs=0.01)
        # and the position itself: krios's ITRS equals skyfield's
        assert np.allclose(r[sid], sat.at(t).frame_xyz(itrs).km, atol=0.01)


def test_farthest_client_point_lies_on_the_zone_edge(sats):
    _c, r = sats
    zone = Zone(*SF, radius_km=100.0)
    model = LatencyModel(zone)
    centre = LatencyModel(Zone(*SF, radius_km=0.0))
    near = r[np.argsort(np.linalg.norm(r - zone.centre_itrs, axis=1))[:10]]
    far = model.client_range_km(near)
    d0 = centre.client_range_km(near)
    assert np.all(far > d0) and np.all(far <= d0 + 100.0 + 1e-6)
    # no point inside the disk is farther: rings at smaller radii never beat the edge
    for radius in (25.0, 50.0, 99.0):
        inner = Zone(*SF, radius_km=radius).ring[0]
        assert np.all(farthest_range_km(near, inner) <= far + 1e-6)
    # a satellite straight above the centre: every edge point is ~equally far, ~sqrt(h^2 + 100^2)
    up = zone.centre_itrs / np.linalg.norm(zone.centre_itrs)
    overhead = zone.centre_itrs + 550.0 * up
    assert float(model.client_range_km(overhead)) == pytest.approx(math.hypot(550.0, 100.0), rel=2e-3)
    assert float(model.client_rtt_ms(overhead)) == pytest.approx(
        float(rtt_ms(model.client_range_km(overhead), 9.0, 1000.0)))


@pytest.mark.parametrize(("lat", "lon", "radius"), [(*SF, 100.0), (*SF, 1500.0), (0.0, 10.0, 400.0),
                                                   (89.9, 0.0, 300.0), (-45.0, 179.9, 50.0), (*SF, 0.0)])
def test_client_range_is_the_maximum_over_every_client_point(sats, lat, lon, radius):
    """The coarse-then-fine ring search gives the brute-force maximum over all 721 points,
    for every satellite (near, far, below the horizon) and a few hand-made positions."""
    c, _r = sats
    model = LatencyModel(Zone(lat, lon, radius_km=radius))
    r, _v = c.itrs(T0 + np.array([0.0, 1300.0, 4000.0]))  # (N, 3, 3)
    centre, up = model.zone.centre_itrs, model.zone.unit
    east = np.cross([0.0, 0.0, 1.0], up) if abs(up[2]) < 0.999 else np.array([1.0, 0.0, 0.0])
    hand = np.array([centre + 550.0 * up,  # straight above the centre: all edge points ~equally far
                     centre + 550.0 * up + 1e-3 * east, centre + 550.0 * up + 30.0 * east,
                     centre + 2.0 * up, centre - 20.0 * up, -centre])
    for pts in (r.reshape(-1, 3), hand):
        np.testing.assert_allclose(model.client_range_km(pts), farthest_range_km(pts, model.ground),
                                   rtol=0, atol=1e-6)
    assert model.client_range_km(r).shape == r.shape[:-1]
    assert model.client_range_km(r[0, 0]).shape == ()
    if radius:
        ring = model.ground[1:]
        np.testing.assert_allclose(farthest_ring_range_km(r, ring), farthest_range_km(r, ring), rtol=0,
                                   atol=1e-6)


def test_matrix_has_client_row_and_symmetric_node_rows(sats):
    _c, r = sats
    model = LatencyModel.from_scenario(scenarios.load("sf_4workers"))
    pos = {"krios-worker-1": r[3], "krios-worker-0": r[7], "krios-worker-2": r[11]}
    m = model.matrix(pos)
    assert set(m) == {"client", "krios-worker-0", "krios-worker-1", "krios-worker-2"}
    assert m["client"]["krios-worker-1"] == pytest.approx(float(model.client_rtt_ms(r[3])), abs=1e-3)
    for a in pos:
        assert m[a][a] == 0.0
        for b in pos:
            assert m[a][b] == m[b][a]
    a, b = "krios-worker-0", "krios-worker-2"
    d = float(np.linalg.norm(r[7] - r[11]))
    assert m[a][b] == pytest.approx(float(rtt_ms(d, 9.0, 1000.0)), abs=1e-3)
    doc = matrix_document(T0, m)
    assert doc["unit"] == "ms" and doc["updated"] == T0 and doc["rtt"] == m
