"""Walker-delta shells: layout, valid TLEs, altitude and period."""

from __future__ import annotations

import math

import numpy as np
import pytest

from krios.errors import ConfigError
from krios.orbits.constellation import Constellation
from krios.orbits.tle import format_tles, parse_tles
from krios.orbits.walker import SHELLS, WalkerShell, mean_motion_rad_min, shell, walker_delta

EPOCH = 1767225600.0  # 2026-01-01T00:00:00Z


def test_presets_are_the_starlink_gen1_shells():
    sizes = {name: (s.planes, s.per_plane, s.altitude_km, s.inclination_deg)
             for name, s in SHELLS.items()}
    assert sizes == {
        "starlink-1": (72, 22, 550.0, 53.0),
        "starlink-2": (72, 22, 540.0, 53.2),
        "starlink-3": (36, 20, 570.0, 70.0),
        "starlink-4": (6, 58, 560.0, 97.6),
        "starlink-5": (4, 43, 560.0, 97.6),
    }


def test_unknown_shell_lists_the_presets():
    with pytest.raises(ConfigError, match="known: starlink-1") as info:
        shell("starlink-9")
    assert info.value.field == "starlink-9"


@pytest.mark.parametrize(("field", "spec"), [
    ("planes", WalkerShell("x", 0, 10, 550, 53)),
    ("altitude-km", WalkerShell("x", 2, 10, 50, 53)),
    ("inclination-deg", WalkerShell("x", 2, 10, 550, 190)),
    ("phase-offset", WalkerShell("x", 2, 10, 550, 53, phase_offset=2)),
])
def test_impossible_shells_are_config_errors(field, spec):
    with pytest.raises(ConfigError) as info:
        walker_delta(spec, EPOCH)
    assert info.value.field == field


def test_layout_raan_spacing_and_phasing():
    spec = WalkerShell("t", 4, 6, 550.0, 53.0, phase_offset=1)
    tles = walker_delta(spec, EPOCH)
    # Every line has a valid checksum and parses back identically.
    assert parse_tles(format_tles(tles), "gen") == tles
    c = Constellation.from_tles(tles)
    raan = np.degrees([s.nodeo for s in c.satrecs])
    mo = np.degrees([s.mo for s in c.satrecs])
    incl = np.degrees([s.inclo for s in c.satrecs])
    ecc = np.array([s.ecco for s in c.satrecs])
    np.testing.assert_allclose(incl, 53.0, atol=1e-4)
    assert np.all(ecc == 0.0)
    for k in range(spec.total):
        plane, slot = divmod(k, spec.per_plane)
        assert raan[k] == pytest.approx(360.0 * plane / spec.planes, abs=1e-4)
        want = (360.0 * slot / spec.per_plane + 360.0 * plane / spec.total) % 360.0
        assert mo[k] == pytest.approx(want, abs=1e-4)
    assert c.names[7] == "T-P01-S01"
    assert {s.jdsatepoch + s.jdsatepochF for s in c.satrecs} == {2440587.5 + EPOCH / 86400}


def test_550_km_period_and_altitude():
    """One 550 km circular orbit: nodal period within 0.5% of 95.6 min, altitude ~550 km."""
    c = Constellation.from_shell("starlink-1", EPOCH).subset([0])
    times = EPOCH + np.arange(0.0, 4 * 3600.0, 5.0)
    r, _ = c.teme(times)
    z = r[0, :, 2]
    up = np.flatnonzero((z[:-1] < 0) & (z[1:] >= 0))
    # Interpolate the ascending-node crossings, then average the intervals.
    crossings = times[up] - z[up] * 5.0 / (z[up + 1] - z[up])
    period_min = float(np.mean(np.diff(crossings))) / 60.0
    assert abs(period_min - 95.6) / 95.6 < 0.005, period_min
    assert 2 * math.pi / mean_motion_rad_min(550.0) == pytest.approx(95.6, rel=0.005)
    altitude = np.linalg.norm(r[0], axis=1) - 6378.135
    assert altitude.min() > 530 and altitude.max() < 570


def test_generated_file_and_in_memory_shell_agree(tmp_path):
    from krios.orbits.tle import write_tles

    tles = walker_delta(SHELLS["starlink-5"], EPOCH)
    write_tles(tles, tmp_path / "s5.tle")
    a = Constellation.from_file(tmp_path / "s5.tle")
    b = Constellation.from_shell("starlink-5", EPOCH)
    assert len(a) == len(b) == 172
    ra, _ = a.itrs([EPOCH + 600])
    rb, _ = b.itrs([EPOCH + 600])
    np.testing.assert_array_equal(ra, rb)
