"""Issue 20: the RTT model as a named choice (hand-computed cases of both), real constellation snapshots
(``krios constellation import``), and zones south of the equator / west of Greenwich on the command line."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from krios.cli import main
from krios.config import scenarios
from krios.errors import ConfigError
from krios.orbits import rtt as R
from krios.orbits.constellation import Constellation
from krios.orbits.passes import ZoneTracker
from krios.orbits.snapshot import (
    EpochSpread,
    ShellFilter,
    import_snapshot,
    inclination_deg,
    mean_altitude_km,
    window_warning,
)
from krios.orbits.tle import format_tles, load_tles
from krios.orbits.walker import SHELLS, WalkerShell, walker_delta
from krios.orbits.zones import Zone

START = 1767225600.0  # 2026-01-01T00:00:00Z
DAY = 86400.0
SF = Zone(37.7749, -122.4194, 100.0, 25.0)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------- the seed's model, by hand
def test_seed_bands_by_hand():
    # the original's theta: 25 deg elevation at 550 km on a 6378.135 km sphere
    at_orbit = math.asin(math.cos(math.radians(25)) * 6378.135 / 6928.135)
    theta = math.pi / 2 - math.radians(25) - at_orbit
    assert math.degrees(theta) == pytest.approx(8.4508, abs=1e-4)
    assert R.SEED_BAND_EDGES_KM[0] == pytest.approx(2 * 6928.135 * math.sin(theta / 2))
    assert R.SEED_BAND_EDGES_KM[0] == pytest.approx(1020.94, abs=0.01)  # "~1,020 km"
    assert R.SEED_BAND_EDGES_KM[1] == pytest.approx(2 * 6928.135 * math.sin(theta), abs=1e-9)
    assert R.SEED_BAND_EDGES_KM[1] == pytest.approx(2036.32, abs=0.01)
    assert len(R.SEED_BAND_EDGES_KM) == 22


@pytest.mark.parametrize(("d_km", "ms"), [
    (0.0, 9.0), (550.0, 9.0), (1020.9, 9.0),   # first band: 1 hop
    (1020.95, 27.0), (2036.3, 27.0),           # second: 3 hops
    (2036.4, 45.0), (3040.0, 45.0),            # third: 5 hops
    (3041.0, 63.0),                            # fourth: 7 hops
    (20000.0, 405.0),                          # beyond band 22: 45 hops
])
def test_seed_rtt_is_9ms_times_odd_hops_without_propagation(d_km, ms):
    assert float(R.seed_rtt_ms(d_km)) == ms
    assert float(R.seed_rtt_ms(d_km, per_hop_ms=4.0)) == ms / 9.0 * 4.0


def test_a_band_edge_belongs_to_the_next_band_and_nan_stays_nan():
    edge = float(R.SEED_BAND_EDGES_KM[0])
    assert float(R.seed_rtt_ms(np.nextafter(edge, 0))) == 9.0 and float(R.seed_rtt_ms(edge)) == 27.0
    assert np.isnan(R.seed_rtt_ms(np.nan))


def _at_distance(point: np.ndarray, d_km: float) -> np.ndarray:
    """A position ``d_km`` straight out (radially) from ``point``."""
    return point + d_km * point / np.linalg.norm(point)


@pytest.mark.parametrize(("d_km", "seed_ms", "physical_ms"), [
    (500.0, 9.0, 9.0 + 1000.0 / 299792.458 * 1000),    # 1 hop + 3.336 ms propagation
    (1500.0, 27.0, 18.0 + 3000.0 / 299792.458 * 1000),  # physical: ceil(1.5) = 2 hops
    (2500.0, 45.0, 27.0 + 5000.0 / 299792.458 * 1000),
])
def test_both_models_by_hand_for_a_point_zone(d_km, seed_ms, physical_ms):
    zone = Zone(-33.87, 151.21, 0.0, 25.0)
    seed = R.LatencyModel(zone, rtt_model="krios-emulator")
    phys = R.LatencyModel(zone)
    # the seed measures from a client point 550 km up (WGS72), physical from the ground
    up = R.seed_geodetic_km(-33.87, 151.21, 550.0)
    assert seed.ground.shape == (1, 3) and np.allclose(seed.ground[0], up)
    assert np.linalg.norm(up) - np.linalg.norm(zone.centre_itrs) == pytest.approx(550.0, abs=0.05)
    assert float(seed.client_rtt_ms(_at_distance(up, d_km))) == seed_ms
    assert float(phys.client_rtt_ms(_at_distance(zone.centre_itrs, d_km))) == pytest.approx(physical_ms, abs=1e-9)
    # node-to-node entries: the same rule over the straight line
    a, b = np.array([7000.0, 0.0, 0.0]), np.array([7000.0, d_km, 0.0])
    assert float(seed.link_rtt_ms(a, b)) == seed_ms
    assert float(phys.link_rtt_ms(a, b)) == pytest.approx(physical_ms, abs=1e-9)


def test_seed_client_points_are_the_originals_rings():
    # SF, 100 km: rings of 0.01 deg steps while 6378.135 km x r stays within 100 km: 89 rings, 890 points
    assert R.seed_ring_count(37.7749, -122.4194, 100.0) == 89
    assert int(100.0 / (6378.135 * math.radians(0.01))) == 89
    assert R.seed_ring_count(10.0, 20.0, 0.0) == 0
    model = R.LatencyModel(SF, rtt_model="krios-emulator")
    assert model.ground.shape == (1 + 890, 3)
    # the farthest client is on the outermost ring: the same answer as all 40,051 of the original's points
    shell = Constellation.from_shell("starlink-1", START)
    r, _ = shell.itrs(START + np.arange(0.0, 1200.0, 120.0))
    r = r.reshape(-1, 3)
    r = r[np.linalg.norm(r - model.ground[0], axis=1) < 3000.0]
    assert len(r) > 100
    every = R.seed_client_points(SF, all_rings=True)
    assert len(every) == 1 + sum(10 * k for k in range(1, 90))
    np.testing.assert_allclose(model.client_range_km(r), R.farthest_points_range_km(r, every), atol=1e-9)
    np.testing.assert_allclose(R.farthest_points_range_km(r[:20], every), R.farthest_range_km(r[:20], every),
                               atol=1e-9)


def test_serving_satellites_get_9ms_from_the_seed_and_more_from_physical():
    """The original chose satellites by its own distance rule, so each it served was in the first band.
    Under krios's in-zone rule (25 deg from every point of the disc) a satellite within a fraction of a
    degree of the mask, at the zone's far edge, can be just beyond 1,020.9 km: 27 ms."""
    shell = Constellation.from_shell("starlink-1", START)
    tracker = ZoneTracker(shell, SF, horizon_s=3600.0, start=START)
    seed = R.LatencyModel(SF, rtt_model="krios-emulator")
    phys = R.LatencyModel(SF)
    seed_ms, phys_ms, elev = [], [], []
    for t in START + np.arange(0.0, 3600.0, 30.0):
        pos = shell.positions(tracker.in_zone(t), t)
        seed_ms += list(seed.client_rtt_ms(pos))
        phys_ms += list(phys.client_rtt_ms(pos))
        elev += list(SF.worst_elevation(pos))
    seed_ms, phys_ms, elev = np.array(seed_ms), np.array(phys_ms), np.array(elev)
    assert len(seed_ms) > 200 and set(seed_ms) <= {9.0, 27.0}
    assert np.mean(seed_ms == 9.0) > 0.98 and np.all(elev[seed_ms == 27.0] < 25.5)
    assert phys_ms.min() > 12.5 and phys_ms.max() < 28.0 and np.median(phys_ms) > 14.0


def test_unknown_model_is_one_error_naming_the_field(tmp_path, monkeypatch, capsys):
    with pytest.raises(ConfigError) as err:
        R.LatencyModel(SF, rtt_model="seed")
    assert str(err.value).startswith("rtt_model: seed: unknown RTT model (known: physical, krios-emulator)")
    assert scenarios.CHOICES["latency.rtt_model"] == R.RTT_MODELS
    text = (scenarios.DEFAULT_DIR / "sf_4workers.yml").read_text().replace("name: sf_4workers", "name: bad")
    (tmp_path / "bad.yml").write_text(text + "\nlatency:\n  rtt_model: seed\n")
    with pytest.raises(ConfigError) as err:
        scenarios.load(tmp_path / "bad.yml")
    assert "bad.yml: latency.rtt_model: unknown value 'seed' (known: physical, krios-emulator)" in str(err.value)
    with pytest.raises(SystemExit):
        main(["simulate", "--rtt-model", "seed"])
    assert "--rtt-model" in capsys.readouterr().err


def test_scenario_and_flag_choose_the_model_and_runs_record_it(tmp_path, monkeypatch, capsys):
    from krios.emulation.emulator import EmulatorConfig

    text = (scenarios.DEFAULT_DIR / "sf_4workers.yml").read_text().replace("name: sf_4workers", "name: seedy")
    (tmp_path / "seedy.yml").write_text(text + "\nlatency:\n  rtt_model: krios-emulator\n")
    monkeypatch.setenv("KRIOS_SCENARIO_PATH", str(tmp_path))
    s = scenarios.load("seedy")
    assert EmulatorConfig.from_scenario(s).latency.rtt_model == "krios-emulator"
    assert EmulatorConfig.from_scenario(s, rtt_model="physical").latency.rtt_model == "physical"
    assert EmulatorConfig.from_scenario(scenarios.load("sf_4workers")).latency.rtt_model == "physical"
    assert R.matrix_document(1.0, {"client": {}}, "krios-emulator")["model"] == "krios-emulator"

    code, out, _ = run(capsys, "simulate", "--scenario", "seedy", "--duration", "20m", "--jobs", "1")
    assert code == 0 and "client RTT model: krios-emulator" in out
    code, out, _ = run(capsys, "simulate", "--scenario", "seedy", "--duration", "20m", "--jobs", "1",
                       "--rtt-model", "physical", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["config"]["rtt_model"] == "physical"
    assert [z["rtt_model"] for z in doc["zones"]] == ["physical"]
    assert doc["config"]["tle_epochs"]["spread_days"] == 0 and doc["config"]["epoch_warning"] is None
    code, out, _ = run(capsys, "simulate", "--scenario", "seedy", "--duration", "20m", "--jobs", "1", "--json")
    doc = json.loads(out)
    krios = next(m for m in doc["metrics"] if m["policy"] == "krios")
    assert doc["config"]["rtt_model"] == "krios-emulator" and krios["rtt_p50_ms"] == 9.0


@pytest.mark.cluster
def test_an_emulator_run_records_its_model_and_shapes_by_it(control_plane, tmp_path):
    db = tmp_path / "r.sqlite"
    result = subprocess.run(
        [sys.executable, "-m", "krios", "emulator", "--scenario", "sf_4workers", "--rtt-model", "krios-emulator",
         "--duration-s", "6", "--acceleration", "3", "--run-id", "fidelity-emu", "--db", str(db),
         "--log", str(tmp_path / "ticks.jsonl"), "--kubeconfig", str(control_plane.kubeconfig)],
        capture_output=True, text=True, timeout=180, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rtt_model"] == "krios-emulator"
    with sqlite3.connect(db) as conn:
        meta = json.loads(conn.execute("SELECT meta FROM runs WHERE id = 'fidelity-emu'").fetchone()[0])
        rtts = [r[0] for r in conn.execute("SELECT rtt_ms FROM ticks WHERE run_id = 'fidelity-emu'") if r[0]]
    assert meta["rtt_model"] == "krios-emulator" and meta["emulator"]["rtt_model"] == "krios-emulator"
    assert rtts and all(ms % 18 == 9 for ms in rtts)  # 9 ms x an odd number of hops, nothing else


# ----------------------------------------------------------------- zones south and west on the command line
@pytest.mark.parametrize("zone", [["--zone", "-33.87_151.21"], ["--zone=-33.87_151.21"],
                                  ["--zone", "-33.87_-70.65"], ["--zone=-33.87_-70.65"],
                                  ["--zone", "40.71_-74.01"], ["--zone=40.71_-74.01"]])
def test_negative_latitudes_and_longitudes_both_ways(zone, capsys):
    lat, lon = (float(v) for v in zone[-1].split("=")[-1].split("_"))
    code, out, err = run(capsys, "visible", "--shell", "starlink-1", *zone, "--radius-km", "100",
                         "--at", "2026-01-01T01:00:00Z", "--rtt-model", "krios-emulator", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert rows and all(r["rtt_ms"] == 9.0 and r["rtt_model"] == "krios-emulator" for r in rows)
    code, out, err = run(capsys, "passes", "--shell", "starlink-1", *zone, "--start", "2026-01-01T00:00:00Z",
                         "--duration-s", "600", "--json")
    assert code == 0 and json.loads(out), err
    code, out, err = run(capsys, "simulate", *zone, "--duration", "10m", "--policy", "krios", "--jobs", "1",
                         "--json")
    assert code == 0, err
    z = json.loads(out)["zones"][0]
    assert (z["lat_deg"], z["lon_deg"]) == (lat, lon)


# ----------------------------------------------------------------- real snapshots
def _mixed_snapshot(path: Path) -> dict[str, int]:
    """A CelesTrak-like snapshot: shell 1 (fitted over a day), shell 2 (53.2 deg, 540 km), part of
    shell 3 (70 deg, 570 km), a satellite re-entering at 180 km, three shell-1 satellites listed again
    with older epochs, and another operator's satellite at shell 1's inclination and altitude."""
    s1 = walker_delta(SHELLS["starlink-1"], START)
    late = walker_delta(SHELLS["starlink-1"], START + DAY)  # the same satellites fitted a day later
    s1 = [late[i] if i % 2 else s1[i] for i in range(len(s1))]
    stale = [walker_delta(SHELLS["starlink-1"], START - 5 * DAY)[i] for i in (3, 500, 1000)]
    s2 = walker_delta(WalkerShell("starlink-2", 8, 4, 540.0, 53.2), START, first_catalog=3001)
    s3 = walker_delta(WalkerShell("starlink-3", 4, 5, 570.0, 70.0), START, first_catalog=4001)
    decayed = walker_delta(WalkerShell("starlink-x", 1, 1, 180.0, 53.0, 0.0), START, first_catalog=5001)
    other = walker_delta(WalkerShell("other", 1, 2, 550.0, 53.0, 0.0), START, first_catalog=6001)
    tles = s1[:700] + stale[:2] + s2 + s1[700:] + s3 + decayed + stale[2:] + other
    path.write_text(format_tles(tles))
    return {"shell1": len(s1), "total": len(tles)}


def test_mean_altitude_and_inclination_from_the_elements():
    tle = walker_delta(SHELLS["starlink-2"], START)[7]
    assert mean_altitude_km(tle) == pytest.approx(540.0, abs=0.01)
    assert inclination_deg(tle) == 53.2


def test_import_selects_shell_1_out_of_a_mixed_snapshot(tmp_path, capsys):
    snap, out = tmp_path / "snapshot.tle", tmp_path / "shell1.tle"
    counts = _mixed_snapshot(snap)
    flt = ShellFilter(inclination_deg=(52.9, 53.1), altitude_km=(540.0, 560.0), name="^STARLINK")
    result = import_snapshot(snap, flt)
    assert result.read == counts["total"] and len(result.kept) == counts["shell1"] == 1584
    assert [t.name for t in result.kept] == [t.name for t in walker_delta(SHELLS["starlink-1"], START)]
    assert len(result.duplicates) == 3 and len(result.decayed) == 1
    assert result.outside == 32 + 20 + 2  # shell 2, shell 3, the other operator's
    assert result.spread.first == pytest.approx(START) and result.spread.last == pytest.approx(START + DAY)
    assert result.snapshot_spread.first == START - 5 * DAY

    code, text, err = run(capsys, "constellation", "import", str(snap), "--inclination-deg", "52.9:53.1",
                          "--altitude-km", "540:560", "--name", "^STARLINK", "-o", str(out))
    assert code == 0
    assert f"read {counts['total']} element sets" in text and "wrote 1584 satellites" in text
    assert "spread 1.00 d" in text
    warnings = err.strip().splitlines()
    assert len(warnings) == 2 and all(w.startswith(f"krios: warning: {snap}: dropped") for w in warnings)
    assert "3 duplicate" in warnings[0] and "STARLINK-1-P00-S03 (line" in warnings[0]
    assert "1 decayed" in warnings[1] and "mean altitude 180 km is below 200 km" in warnings[1]
    kept = load_tles(out)
    assert len(kept) == 1584 and len({t.catalog for t in kept}) == 1584

    # the result is a constellation for --tles: handovers per policy
    code, text, err = run(capsys, "simulate", "--tles", str(out), "--zone", "37.7749_-122.4194",
                          "--duration", "1h", "--jobs", "1", "--start", "2026-01-01T12:00:00Z")
    assert code == 0 and "warning" not in err
    assert f"{out} (1584 satellites)" in text and "spread 1.00 d" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.split()[:1] and
            line.split()[0] in ("krios", "reactive", "closest", "random")}
    assert set(rows) == {"krios", "reactive", "closest", "random"}
    assert all(int(r[2]) > 0 for r in rows.values())  # handovers in the hour

    # a scenario may name the imported shell (relative to the scenario file)
    text = (scenarios.DEFAULT_DIR / "sf_4workers.yml").read_text().replace("name: sf_4workers", "name: real")
    text = text.replace("shell: starlink-1", "tles: shell1.tle")
    assert "tles: shell1.tle" in text
    (tmp_path / "real.yml").write_text(text)
    code, text, err = run(capsys, "simulate", "--scenario", str(tmp_path / "real.yml"), "--duration", "10m",
                          "--policy", "krios", "--jobs", "1", "--start", "2026-01-01T12:00:00Z")
    assert code == 0 and f"{out} (1584 satellites)" in text, err

    # far from the epochs: a warning on stderr
    code, _text, err = run(capsys, "simulate", "--tles", str(out), "--zone", "37.7749_-122.4194",
                           "--duration", "10m", "--policy", "krios", "--jobs", "1", "--start", "2026-01-12T00:00:00Z")
    assert code == 0 and "krios: warning:" in err and "10.0 days after the newest TLE epoch" in err


def test_window_warning_both_sides():
    spread = EpochSpread(START, START, START + DAY)
    assert window_warning(spread, START + 2 * DAY, START + 3 * DAY, "f") is None
    assert "days after" in window_warning(spread, START + 5 * DAY, START + 6 * DAY, "f")
    assert "days before" in window_warning(spread, START - 6 * DAY, START - 5 * DAY, "f")


def test_bad_snapshots_are_one_line_naming_file_and_line(tmp_path, capsys):
    snap, out = tmp_path / "s.tle", tmp_path / "o.tle"
    _mixed_snapshot(snap)
    lines = snap.read_text().splitlines()
    bad = list(lines)
    bad[4] = bad[4][:-1] + str((int(bad[4][-1]) + 1) % 10)  # line 5: satellite 2's line 1
    (tmp_path / "bad.tle").write_text("\n".join(bad) + "\n")
    code, _, err = run(capsys, "constellation", "import", str(tmp_path / "bad.tle"), "-o", str(out))
    assert code == 2 and err.count("\n") == 1
    assert f"{tmp_path / 'bad.tle'}: line 5 (STARLINK-1-P00-S01): bad checksum" in err
    (tmp_path / "cut.tle").write_text("\n".join(lines[:5]) + "\n")
    code, _, err = run(capsys, "constellation", "import", str(tmp_path / "cut.tle"), "-o", str(out))
    assert code == 2 and err.count("\n") == 1 and "cut.tle: line 5 (STARLINK-1-P00-S01): TLE line 2 is missing" in err
    code, _, err = run(capsys, "constellation", "import", str(snap), "--inclination-deg", "80:90", "-o", str(out))
    assert code == 2 and "no satellite left in the shell (inclination 80..90 deg)" in err
    code, _, err = run(capsys, "constellation", "import", str(snap), "--altitude-km", "500", "-o", str(out))
    assert code == 2 and err.strip() == "krios: error: --altitude-km: 500: must be LOW:HIGH, e.g. 52.9:53.1"
    code, _, err = run(capsys, "constellation", "import", str(snap), "--name", "(", "-o", str(out))
    assert code == 2 and err.startswith("krios: error: --name: (: not a regular expression")
    assert not out.exists() and not list(tmp_path.glob(".o.tle*"))  # nothing half-done
