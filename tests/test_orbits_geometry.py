"""Positions, look angles and the in-zone rule against skyfield's own topocentric answers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from skyfield.api import EarthSatellite, wgs84
from skyfield.framelib import itrs

from krios.errors import ConfigError
from krios.orbits import geometry
from krios.orbits.constellation import Constellation
from krios.orbits.passes import ZoneTracker
from krios.orbits.walker import WalkerShell
from krios.orbits.zones import Zone, parse_leozone

FIXTURES = Path(__file__).parent / "fixtures" / "orbits"
EPOCH = 1767225600.0  # 2026-01-01T00:00:00Z
#: The fixture TLEs' epochs run from 2026-11-18 to 2026-11-22.
REAL_T = 1763640000.0 + 365 * 86400.0  # 2026-11-20T12:00:00Z
SF = (37.7749, -122.4194)


@pytest.fixture(scope="module")
def shell1() -> Constellation:
    return Constellation.from_shell("starlink-1", EPOCH)


@pytest.fixture(scope="module")
def real() -> Constellation:
    return Constellation.from_file(FIXTURES / "real3.tle")


def _skyfield_sat(c: Constellation, k: int) -> EarthSatellite:
    return EarthSatellite(c.tles[k].line1, c.tles[k].line2, c.names[k], geometry.timescale())


def test_real_fixture_epochs_differ(real):
    epochs = {round(s.jdsatepoch + s.jdsatepochF, 3) for s in real.satrecs}
    assert len(epochs) == len(real)
    assert REAL_T - 3 * 86400 < min((e - 2440587.5) * 86400 for e in epochs) < REAL_T


@pytest.mark.parametrize("which", ["walker", "real"])
def test_itrs_positions_match_skyfield(which, shell1, real):
    c, t0 = (shell1, EPOCH) if which == "walker" else (real, REAL_T)
    times = t0 + np.array([0.0, 1234.5, 86400.0 * 1.5])
    r, v = c.itrs(times)
    st = geometry.skyfield_time(times)
    for k in range(0, len(c), max(1, len(c) // 7)):
        pos, vel = _skyfield_sat(c, k).at(st).frame_xyz_and_velocity(itrs)
        np.testing.assert_allclose(r[k], pos.km.T, atol=1e-6)  # 1 mm
        np.testing.assert_allclose(v[k], vel.km_per_s.T, atol=1e-6)  # 1 mm/s


@pytest.mark.parametrize("which", ["walker", "real"])
def test_look_angles_match_skyfield_altaz(which, shell1, real):
    c, t0 = (shell1, EPOCH) if which == "walker" else (real, REAL_T)
    times = t0 + np.arange(0.0, 6 * 3600.0, 1801.0)
    r, _ = c.itrs(times)
    st = geometry.skyfield_time(times)
    for lat, lon, h in [(*SF, 0.0), (-33.87, 151.21, 0.05), (64.1, -21.9, 0.0), (0.0, 0.0, 1.2)]:
        for k in range(0, len(c), max(1, len(c) // 5)):
            elev, az, rng = geometry.look_angles(r[k], lat, lon, h)
            alt, azi, dist = (_skyfield_sat(c, k) - wgs84.latlon(lat, lon, h * 1000)).at(st).altaz()
            np.testing.assert_allclose(elev, alt.degrees, atol=0.01)
            assert np.max(np.abs(elev - alt.degrees)) < 1e-6  # in fact identical
            d_az = (az - azi.degrees + 180.0) % 360.0 - 180.0
            np.testing.assert_allclose(d_az, 0.0, atol=1e-6)
            np.testing.assert_allclose(rng, dist.km, atol=1e-6)


def _disk_points(zone: Zone, rings: int = 4, per_ring: int = 360) -> tuple[np.ndarray, np.ndarray]:
    """Geodetic points of the zone disk: the centre and ``rings`` circles up to the edge."""
    lats, lons = [zone.lat_deg], [zone.lon_deg]
    lat1, lon1 = math.radians(zone.lat_deg), math.radians(zone.lon_deg)
    for i in range(1, rings + 1):
        delta = zone.radius_km * i / rings / geometry.MEAN_RADIUS_KM
        b = np.radians(np.arange(per_ring) * 360.0 / per_ring)
        lat2 = np.arcsin(np.sin(lat1) * np.cos(delta) + np.cos(lat1) * np.sin(delta) * np.cos(b))
        lon2 = lon1 + np.arctan2(np.sin(b) * np.sin(delta) * np.cos(lat1),
                                 np.cos(delta) - np.sin(lat1) * np.sin(lat2))
        lats.extend(np.degrees(lat2))
        lons.extend(np.degrees(lon2))
    return np.array(lats), np.array(lons)


@pytest.mark.parametrize("radius", [0.0, 100.0, 400.0])
def test_worst_elevation_is_the_minimum_over_the_disk(radius, shell1):
    """Every point of the disk, by skyfield: the zone's worst elevation is its minimum."""
    zone = Zone(*SF, radius_km=radius)
    lats, lons = _disk_points(zone) if radius else (np.array([SF[0]]), np.array([SF[1]]))
    ground = wgs84.latlon(lats, lons)
    t = EPOCH + 1800.0
    r, _ = shell1.itrs([t])
    near = np.flatnonzero(zone.look(r[:, 0])[0] > 10.0)[:6]
    assert len(near) >= 3
    st = geometry.skyfield_time(np.full(len(lats), t))
    for k in near:
        alt = (_skyfield_sat(shell1, k) - ground).at(st).altaz()[0].degrees
        worst = float(zone.worst_elevation(r[k, 0]))
        assert worst == pytest.approx(float(np.min(alt)), abs=0.01)
        if radius:  # the minimum is on the edge, as the rule says
            assert np.argmin(alt) > len(lats) - 361


def test_zone_values_are_checked():
    z = Zone(*SF, radius_km=100, min_elevation_deg=30)
    assert z.label == "37.7749_-122.4194"
    for kwargs, field in [({"lat_deg": 91.0}, "lat"), ({"lon_deg": -181.0}, "lon"),
                          ({"radius_km": -1.0}, "radius_km"),
                          ({"min_elevation_deg": 95.0}, "min_elevation_deg")]:
        args = {"lat_deg": 0.0, "lon_deg": 0.0, **kwargs}
        with pytest.raises(ConfigError) as info:
            Zone(**args)
        assert info.value.field.startswith(field)


def test_parse_leozone():
    z = parse_leozone("37.77_-122.41", radius="100")
    assert (z.lat_deg, z.lon_deg, z.radius_km, z.min_elevation_deg) == (37.77, -122.41, 100.0, 25.0)
    for bad in ["37.77", "a_b", "1_2_3", "", "nan_1", "37.77,-122.41"]:
        with pytest.raises(ConfigError) as info:
            parse_leozone(bad)
        assert info.value.source == "label leozone"
        assert info.value.field == bad
        assert "<lat>_<lon>" in info.value.message
    with pytest.raises(ConfigError, match=r"latitude must be within \[-90, 90\]") as info:
        parse_leozone("-90.5_10")
    assert (info.value.source, info.value.field) == ("label leozone", "-90.5_10")
    with pytest.raises(ConfigError, match="radius") as info:
        parse_leozone("1_2", radius="far")
    assert (info.value.source, info.value.field) == ("label radius", "far")
    with pytest.raises(ConfigError, match="radius must be within") as info:
        parse_leozone("1_2", radius="-5")
    assert (info.value.source, info.value.field) == ("label radius", "-5")


def test_zone_from_scenario():
    from krios.config import scenarios

    s = scenarios.load("sf_4workers")
    z = Zone.from_scenario(s)
    assert (z.lat_deg, z.lon_deg, z.radius_km, z.min_elevation_deg) == (37.7749, -122.4194, 100, 25)
    c = Constellation.from_scenario(s)
    assert len(c) == 1584


def test_engine_agrees_with_the_rule_for_every_satellite():
    """The in-zone engine (ZoneTracker) against Zone.contains on every satellite's ITRS position."""
    c = Constellation.from_shell(WalkerShell("b", 40, 40, 550.0, 53.0), EPOCH)
    rng = np.random.default_rng(3)
    zones = [Zone(float(rng.uniform(-60, 60)), float(rng.uniform(-180, 180)),
                  float(rng.choice([0.0, 50.0, 300.0])), float(rng.choice([10.0, 25.0, 40.0])))
             for _ in range(30)]
    zones.append(Zone(89.9, 0.0, 100.0))  # never served by a 53 deg shell
    trackers = [ZoneTracker(c, zone, horizon_s=120.0) for zone in zones]
    times = EPOCH + np.array([0.0, 977.0, 4000.5, 43210.0])
    r, _ = c.itrs(times)
    np.testing.assert_array_equal(r, c.positions(None, times))  # the one path to ITRS
    total = 0
    for j, t in enumerate(times):
        for tracker, zone in zip(trackers, zones, strict=True):
            want = np.flatnonzero(zone.contains(r[:, j]))
            np.testing.assert_array_equal(tracker.in_zone(float(t)), want)
            total += len(want)
    assert total > 100
    assert all(len(trackers[-1].in_zone(float(t))) == 0 for t in times)


def test_same_zone_sees_other_satellites_six_hours_later(shell1):
    """Six hours on, the Earth has turned 90 deg under the shell: other satellites serve SF.

    The original compared SGP4's TEME positions with Earth-fixed points as if
    the Earth did not turn; that gives a different answer from the right frame.
    """
    zone = Zone(*SF, radius_km=100)
    tracker = ZoneTracker(shell1, zone, horizon_s=600.0)
    now, later = EPOCH + 3600.0, EPOCH + 3600.0 + 6 * 3600.0
    a, b = (set(tracker.in_zone(t).tolist()) for t in (now, later))
    assert a and b and a != b
    assert len(a & b) < min(len(a), len(b))
    r_teme, _ = shell1.teme([now])
    unrotated = set(np.flatnonzero(zone.contains(r_teme[:, 0])).tolist())
    assert unrotated != a


def _skyfield_gmst(t: np.ndarray) -> np.ndarray:
    """The TEME->ITRS angle the way it was computed before: through a skyfield ``Time``."""
    from skyfield.sgp4lib import theta_GMST1982

    st = geometry.skyfield_time(t)
    return np.asarray(theta_GMST1982(st.whole, st.ut1_fraction)[0])


def test_gmst_angle_is_skyfields_bit_for_bit():
    rng = np.random.default_rng(7)
    leap = 1483228800.0  # 2017-01-01T00:00:00Z, just after the last leap second
    t = np.concatenate([
        rng.uniform(-1e9, 4e9, 3000),  # 1938..2096: inside and outside the daily Delta T table
        leap + rng.uniform(-2 * 86400, 2 * 86400, 1000),
        EPOCH + rng.uniform(0.0, 86400.0, 1000),
        [leap - 1e-3, leap, 0.0, EPOCH, EPOCH + 0.5],
    ])
    want = _skyfield_gmst(t)
    np.testing.assert_array_equal(geometry.gmst_angle(t), want)  # arrays
    geometry._gmst_scalar.cache_clear()
    scalars = np.array([float(geometry.gmst_angle(float(x))) for x in t])  # the scalar path
    np.testing.assert_array_equal(scalars, want)
    assert geometry.gmst_angle(EPOCH).shape == () and geometry.gmst_angle(t.reshape(-1, 5)).shape == (1001, 5)
    assert math.isnan(float(geometry.gmst_angle(math.nan)))
    assert np.isnan(geometry.gmst_angle(np.array([math.nan, EPOCH]))[0])
    assert geometry.tai_minus_utc(math.floor(leap / 86400) - 1) == 36.0
    assert geometry.tai_minus_utc(math.floor(leap / 86400)) == 37.0


def test_positions_are_the_same_numbers_whichever_path(shell1):
    """Constellation.positions, the one path from SGP4 to ITRS: one instant (SatrecArray over
    the satellites asked for, or per satellite for a few), a grid, pairs (per pair or per
    satellite) all give the same bits, and Constellation.itrs gives them too."""
    t = EPOCH + np.array([0.0, 10.5, 100.0])
    grid = shell1.positions(None, t)
    assert grid.shape == (len(shell1), 3, 3)
    np.testing.assert_array_equal(grid, shell1.itrs(t)[0])
    ids = np.array([5, 900, 3, 1583])
    many = np.arange(0, len(shell1), 7)
    for k in range(3):
        np.testing.assert_array_equal(shell1.positions(ids, float(t[k])), grid[ids, k])
        np.testing.assert_array_equal(shell1.positions(many, float(t[k])), grid[many, k])
    np.testing.assert_array_equal(shell1.positions(ids[:3], t), grid[ids[:3], [0, 1, 2]])
    reps = np.repeat(ids, 30)
    cols = np.tile([0, 1, 2], 40)
    np.testing.assert_array_equal(shell1.positions(reps, t[cols]), grid[reps, cols])
    assert shell1.positions([], EPOCH).shape == (0, 3)
