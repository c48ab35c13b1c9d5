"""``krios constellation generate``, ``krios visible``, ``krios passes``: output and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from krios.cli import main
from krios.orbits.tle import load_tles

FIXTURES = Path(__file__).parent / "fixtures" / "orbits"
AT = "2026-01-01T01:00:00Z"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_writes_a_valid_shell(tmp_path, capsys):
    out = tmp_path / "tles.txt"
    code, text, _ = run(capsys, "constellation", "generate", "--planes", "6", "--per-plane", "4",
                        "--altitude-km", "600", "--inclination-deg", "60", "--phase-offset", "2",
                        "-o", str(out))
    assert code == 0 and "wrote 24 satellites" in text
    tles = load_tles(out)
    assert len(tles) == 24 and tles[5].name == "WALKER-P01-S01"
    code, text, _ = run(capsys, "constellation", "generate", "-o", str(out))
    assert code == 0 and len(load_tles(out)) == 1584  # Starlink shell 1 by default


def test_visible_json_fields(capsys):
    code, text, _ = run(capsys, "visible", "--shell", "starlink-1", "--zone", "37.7749_-122.4194",
                        "--radius-km", "100", "--at", AT, "--json")
    assert code == 0
    rows = json.loads(text)
    assert rows
    for row in rows:
        assert set(row) == {"sat_id", "name", "elevation_deg", "azimuth_deg", "range_km",
                            "seconds_to_exit"}
        assert row["elevation_deg"] >= 25.0 and row["seconds_to_exit"] > 0
        assert row["name"].startswith("STARLINK-1-P")
    code, table, _ = run(capsys, "visible", "--shell", "starlink-1", "--zone", "37.7749_-122.4194",
                         "--radius-km", "100", "--at", AT)
    assert f"{len(rows)} of 1584 satellites in zone 37.7749_-122.4194" in table
    assert str(rows[0]["sat_id"]) in table


def test_visible_from_a_tle_file_uses_file_positions(capsys):
    code, text, _ = run(capsys, "visible", "--tles", str(FIXTURES / "real3.tle"), "--zone", "0_0",
                        "--min-elevation-deg", "0", "--at", "2026-11-20T12:00:00Z", "--json")
    assert code == 0
    assert all(0 <= r["sat_id"] < 6 for r in json.loads(text))


def test_passes_json(capsys):
    code, text, _ = run(capsys, "passes", "--shell", "starlink-1", "--zone", "37.7749_-122.4194",
                        "--start", AT, "--duration-s", "5m", "--json")
    assert code == 0
    rows = json.loads(text)
    assert rows and {"sat_id", "name", "enter", "exit", "max_elevation_deg"} <= set(rows[0])
    assert all(r["exit_unix"] > r["enter_unix"] for r in rows)
    code, table, _ = run(capsys, "passes", "--shell", "starlink-1", "--zone", "37.7749_-122.4194",
                         "--start", AT, "--duration-s", "300")
    assert f"{len(rows)} passes through zone" in table


@pytest.mark.parametrize(("args", "message"), [
    (["--zone", "37.7749-122.4194"],
     "krios: error: --zone: 37.7749-122.4194: expected <lat>_<lon> in degrees"),
    (["--zone", "91_10"], "krios: error: --zone: 91_10: latitude must be within [-90, 90] deg"),
    (["--zone", "10_200"], "krios: error: --zone: 10_200: longitude must be within"),
    (["--zone", "1_1", "--radius-km", "wide"], "krios: error: --radius-km: wide: radius must be"),
    (["--zone", "1_1", "--at", "yesterday"], "krios: error: --at: yesterday: not an ISO 8601"),
])
def test_bad_zone_and_time_give_one_clear_line(capsys, args, message):
    code, out, err = run(capsys, "visible", "--shell", "starlink-1", *args)
    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1


def test_bad_checksum_gives_one_clear_line(tmp_path, capsys):
    lines = (FIXTURES / "real3.tle").read_text().splitlines()
    lines[7] = lines[7][:68] + str((int(lines[7][68]) + 5) % 10)
    bad = tmp_path / "bad.tle"
    bad.write_text("\n".join(lines) + "\n")
    code, out, err = run(capsys, "passes", "--tles", str(bad), "--zone", "1_1", "--start", AT,
                         "--duration-s", "60")
    assert code == 2 and out == ""
    assert err == f"krios: error: {bad}: line 8 (STARLINK-1130): bad checksum: column 69 says " \
        f"{lines[7][68]}, the line sums to {(int(lines[7][68]) + 5) % 10}\n"


def test_unknown_shell_and_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, "visible", "--shell", "starlink-7", "--zone", "1_1")
    assert code == 2 and err.startswith("krios: error: --shell: starlink-7: unknown Walker shell")
    code, _, err = run(capsys, "visible", "--tles", str(tmp_path / "x.tle"), "--zone", "1_1")
    assert code == 2 and err == f"krios: error: {tmp_path / 'x.tle'}: no such TLE file\n"


def test_bench_orbits_small_run_prints_figures_and_ratios(capsys):
    code, text, _ = run(capsys, "bench", "orbits", "--sats", "400", "--zones", "5", "--ticks", "6",
                        "--naive-sats", "20", "--naive-ticks", "1", "--json")
    assert code == 0
    fig = json.loads(text)
    assert fig["sats"] == 400 and fig["zones"] == 5 and fig["ticks"] == 6
    for key in ("engine_ms", "query_ms", "predict_ms_per_tick", "raw_sgp4_ms", "naive_ms",
                "engine_vs_naive_speedup", "engine_vs_raw_sgp4_ratio", "passes_predicted"):
        assert fig[key] > 0
    assert fig["identical_ticks"] == 6 and fig["engine"] == "krios.orbits.passes.ZoneTracker"
    code, text, _ = run(capsys, "bench", "orbits", "--sats", "200", "--zones", "3", "--ticks", "2",
                        "--naive-sats", "10", "--tick-s", "2")
    assert code == 0
    for label in ("naive loop", "raw SatrecArray.sgp4", "engine (ZoneTracker)",
                  "identical to the in-zone rule on every satellite in 2 of 2 ticks", "2 s apart"):
        assert label in text
    code, _, err = run(capsys, "bench", "orbits", "--sats", "0")
    assert code == 2 and "--sats" in err
    code, _, err = run(capsys, "bench", "orbits", "--tick-s", "0")
    assert code == 2 and err.startswith("krios: error: --tick-s: 0.0: ")
