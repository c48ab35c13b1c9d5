"""``krios simulate``: JSON shape, files written, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest

from krios.cli import main

QUICK = ["--duration", "5m", "--jobs", "1"]


def test_json_output_shape_and_files(tmp_path, capsys):
    out = tmp_path / "res"
    code = main(["simulate", "--zone", "37.7749_-122.4194", "--policy", "krios,closest",
                 "--json", "-o", str(out), *QUICK])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "simulation"
    assert doc["config"]["satellites"] == 1584 and doc["config"]["duration_s"] == 300
    assert [p["name"] for p in doc["config"]["policies"]] == ["krios", "closest"]
    (zone,) = doc["zones"]
    assert (zone["name"], zone["radius_km"], zone["min_elevation_deg"]) == ("37.7749_-122.4194", 100.0, 25.0)
    assert zone["passes"] > 10
    assert [(m["zone"], m["policy"]) for m in doc["metrics"]] == [
        ("37.7749_-122.4194", "krios"), ("37.7749_-122.4194", "closest")]
    for m in doc["metrics"]:
        assert set(m) >= {"handovers_per_hour", "availability", "mean_instances", "max_instances",
                          "lead_mean_s", "lead_min_s", "rtt_p50_ms", "rtt_p90_ms", "rtt_p99_ms", "rtt_mean_ms"}
        assert m["availability"] == 1.0 and 10 < m["rtt_p50_ms"] < 40
    assert [s["policy"] for s in doc["summary"]] == ["krios", "closest"]
    assert len(doc["rtt_cdf"]["percent"]) == len(doc["rtt_cdf"]["series"][0]["rtt_ms"]) == 101
    assert doc["timing"]["wall_s"] > 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["availability.png", "handovers.csv", "handovers_per_hour.png", "metrics.csv",
                     "rtt_cdf.png", "simulation.json"]
    assert (out / "rtt_cdf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "simulation.json").read_text())["metrics"] == doc["metrics"]
    lines = (out / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("policy,zone,duration_s,handovers,") and len(lines) == 3


def test_table_names_every_policy_and_the_ratio(capsys):
    assert main(["simulate", "--scenario", "sf_4workers", *QUICK]) == 0
    text = capsys.readouterr().out
    assert "zone sf_4workers" in text and "handovers relative to krios:" in text
    for policy in ("krios", "reactive", "closest", "random"):
        assert f"\n{policy} " in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--policy", "krios,fastest"], "krios: error: --policy: fastest: unknown policy (known: krios, reactive"),
        (["--zone", "sf"], "krios: error: --zone: sf: expected <lat>_<lon> in degrees"),
        (["--zone", "95_10"], "krios: error: --zone: 95_10: latitude must be within [-90, 90] deg"),
        (["--zone", "37_-122", "--radius-km", "-5"], "krios: error: --radius-km: -5.0: radius must be within"),
        (["--scenario", "mars_2workers"], "krios: error: scenario: mars_2workers: unknown scenario"),
        (["--duration", "soon"], "krios: error: --duration: soon: not a duration"),
        (["--step-s", "0"], "krios: error: --step-s: 0.0: must be a number >= 0.001"),
        (["--shell", "starlink-9"], "krios: error: --shell: starlink-9: unknown Walker shell"),
        (["--planes", "10"], "krios: error: --planes: missing --per-plane, --altitude-km, --inclination-deg"),
        (["--tles", "/nonexistent/tles.txt"], "krios: error: /nonexistent/tles.txt"),
        (["--jobs", "-1"], "krios: error: --jobs: -1: must be 0"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, argv, message):
    out = tmp_path / "res"
    assert main(["simulate", "--duration", "1m", *argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message), err
    assert err.count("\n") == 1
    assert not out.exists()  # nothing half-done


def test_walker_parameters_build_a_shell(capsys):
    argv = ["simulate", "--zone", "0_0", "--planes", "12", "--per-plane", "10", "--altitude-km", "550",
            "--inclination-deg", "53", "--policy", "krios", "--json", *QUICK]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["config"]["constellation"] == "shell:walker-12x10" and doc["config"]["satellites"] == 120
