"""One table of defaults, one resolution per component, errors naming the field (domain) or the flag (CLI)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from krios.cli import build_parser, main
from krios.cli.flags import FIELD_FLAGS, command_flags, name_flag
from krios.config import defaults as D
from krios.config import scenarios
from krios.control.controller import ControllerConfig
from krios.control.scheduler import SchedulerConfig
from krios.emulation.emulator import EmulatorConfig
from krios.emulation.workload import ClientConfig
from krios.errors import ConfigError
from krios.measure.sweep import SweepConfig
from krios.orbits.zones import Zone
from krios.sim.model import parse_policies
from krios.sim.run import SimConfig, zone_spec

REPO = Path(__file__).resolve().parents[1]
SF = "sf_4workers"


def _role_defaults() -> dict[str, object]:
    out: dict[str, object] = {}
    for path in sorted((REPO / "roles").glob("*/defaults/main.yml")):
        out.update(yaml.safe_load(path.read_text()) or {})
    return out


def _jinja_default(text: object) -> object:
    """The literal of a ``... | default(N)`` fallback in a role default."""
    m = re.search(r"\|\s*default\(([^()]+)\)", str(text))
    assert m, text
    return yaml.safe_load(m.group(1))


def test_the_ansible_table_agrees_with_krios_config_defaults():
    roles = _role_defaults()
    assert roles["krios_deploy_namespace"] == D.LEASE_NAMESPACE
    assert roles["krios_deploy_scheduler_name"] == D.SCHEDULER_NAME
    assert D.SCHEDULER_NAME in roles["krios_experiment_schedulers"]
    assert _jinja_default(roles["krios_experiment_warmup"]) == D.BENCH_WARMUP_SAMPLES
    assert _jinja_default(roles["krios_experiment_seed"]) == D.SEED
    # the rest of the experiment's values come from the scenario data, whose defaults are the table's
    for var, key in (("krios_emulator_time", "duration_s"), ("krios_latency_ms", "benchmark.latency_ms"),
                     ("krios_samples_per_latency", "benchmark.samples_per_latency")):
        assert f"krios_scenario_data.{key}" in str(roles[var]), var


def test_scenario_defaults_are_the_table(tmp_path, monkeypatch):
    (tmp_path / "bare.yml").write_text("name: bare\nworkers: 1\nzone: {lat: 10, lon: 20}\n")
    monkeypatch.setenv("KRIOS_SCENARIO_PATH", str(tmp_path))
    s = scenarios.load("bare")
    assert s.zone == {"lat": 10, "lon": 20, "radius_km": D.ZONE_RADIUS_KM, "min_elevation_deg": D.MIN_ELEVATION_DEG}
    assert s["constellation"] == {"shell": D.SHELL, "epoch": D.EPOCH}
    assert (s["start"], s["duration_s"], s["acceleration"], s["tick_s"], s["seed"], s["policy"]) == (
        D.START, D.DURATION_S, D.ACCELERATION, D.TICK_S, D.SEED, D.POLICY)
    assert s["handover"] == {"mode": D.HANDOVER_MODE, "lookahead_s": D.LOOKAHEAD_S,
                             "ready_timeout_s": D.READY_TIMEOUT_S}
    assert s["latency"] == {"per_hop_ms": D.PER_HOP_MS, "hop_km": D.HOP_KM, "rtt_model": D.RTT_MODEL}
    assert s["client"] == {"rate_hz": D.CLIENT_RATE_HZ, "timeout_s": D.CLIENT_TIMEOUT_S}
    assert s["benchmark"]["latency_ms"] == list(D.BENCH_LATENCY_MS)
    table = D.table()
    assert table["LOOKAHEAD_S"] == 30.0 and table["MIN_ELEVATION_DEG"] == 25.0 and "table" not in table


def test_each_component_resolves_defaults_then_scenario_then_overrides(tmp_path, monkeypatch):
    text = (REPO / "scenarios" / f"{SF}.yml").read_text()
    text = text.replace("lookahead_s: 30", "lookahead_s: 45").replace("policy: krios ", "policy: closest ")
    (tmp_path / "mine.yml").write_text(text.replace(f"name: {SF}", "name: mine"))
    monkeypatch.setenv("KRIOS_SCENARIO_PATH", str(tmp_path))
    s = scenarios.load("mine")

    # no scenario: the table
    c = ControllerConfig.from_scenario(None)
    assert (c.lookahead_s, c.min_elevation_deg, c.policy, c.qps, c.burst, c.mode) == (
        D.LOOKAHEAD_S, D.MIN_ELEVATION_DEG, D.POLICY, D.KUBE_API_QPS, D.KUBE_API_BURST, D.HANDOVER_MODE)
    assert c.lease_timing_s is None  # sized from the lookahead and the clock rate (krios.kube.leader)
    # the scenario over the table; None overrides are "not given"
    c = ControllerConfig.from_scenario(s, lookahead_s=None, policy=None)
    assert (c.lookahead_s, c.policy, c.seed) == (45.0, "closest", 42)
    # explicit overrides over the scenario
    c = ControllerConfig.from_scenario(s, lookahead_s=10, policy="random", min_elevation_deg=40)
    assert (c.lookahead_s, c.policy, c.min_elevation_deg) == (10.0, "random", 40.0)
    assert SchedulerConfig.from_scenario(s, parallelism=3).kwargs()["parallelism"] == 3

    e = EmulatorConfig.from_scenario(s)
    assert (e.lookahead_s, e.overlap_s, e.horizon_s, e.tick_s) == (45.0, 45.0 + D.SUCCESSOR_MARGIN_S,
                                                                    D.EMULATOR_HORIZON_S, 1.0)
    e = EmulatorConfig.from_scenario(s, lookahead_s=20, start="2026-02-01T00:00:00Z", acceleration=5)
    assert (e.overlap_s, e.acceleration, e.start) == (20.0 + D.SUCCESSOR_MARGIN_S, 5.0, 1769904000.0)

    cl = ClientConfig.from_scenario(None, duration_s=5)
    assert (cl.rate_hz, cl.timeout_s) == (D.CLIENT_RATE_HZ, D.CLIENT_TIMEOUT_S)
    assert ClientConfig.from_scenario(s, duration_s=5, timeout_s=1).timeout_s == 1.0

    zones = [zone_spec("sf", Zone(37.77, -122.42, 100.0))]
    sim = SimConfig.from_scenario(None, zones=zones, policies=parse_policies("krios"))
    assert (sim.duration_s, sim.step_s, sim.startup_s, sim.lookahead_s) == (86400.0, D.SIM_STEP_S, D.SIM_STARTUP_S,
                                                                            D.LOOKAHEAD_S)
    sim = SimConfig.from_scenario(s, zones=zones, policies=parse_policies("krios"), duration_s="90m")
    assert (sim.duration_s, sim.lookahead_s, sim.seed) == (5400.0, 45.0, 42)

    sw = SweepConfig.from_scenario(None)
    assert (sw.latency_ms, sw.samples_per_latency, sw.warmup) == (
        [float(v) for v in D.BENCH_LATENCY_MS], D.BENCH_SAMPLES_PER_LATENCY, D.BENCH_WARMUP_SAMPLES)
    assert SweepConfig.from_scenario(s, latency_ms=[5, 0], warmup=0).latency_ms == [0.0, 5.0]
    with pytest.raises(TypeError, match="unknown field"):
        SweepConfig.from_scenario(s, warmup_samples=1)  # a typo is a programming error, not ignored


@pytest.mark.parametrize(("build", "field", "value"), [
    (lambda s: EmulatorConfig.from_scenario(s, tick_s=0), "tick_s", "0.0"),
    (lambda s: EmulatorConfig.from_scenario(s, start="yesterday"), "start", "yesterday"),
    (lambda s: ControllerConfig.from_scenario(s, ready_timeout_s=0), "ready_timeout_s", "0.0"),
    (lambda s: ControllerConfig.from_scenario(s, mode="sideways"), "mode", "sideways"),
    (lambda s: SchedulerConfig.from_scenario(s, min_elevation_deg=95), "min_elevation_deg", "95.0"),
    (lambda s: SchedulerConfig.from_scenario(s, lease_timing_s=(15, 20, 2)), "lease_timing_s", "15 20 2"),
    (lambda s: ClientConfig.from_scenario(s, duration_s=0), "duration_s", "0.0"),
    (lambda s: SweepConfig.from_scenario(s, samples_per_latency=0), "samples_per_latency", "0"),
])
def test_domain_errors_name_the_config_field(build, field, value):
    """Called from Python or an Ansible module, the error names the field, never a CLI flag."""
    with pytest.raises(ConfigError) as err:
        build(scenarios.load(SF))
    assert (err.value.source, err.value.field) == (field, value)
    assert not str(err.value).startswith("--")


def test_a_bad_scenario_value_names_the_file_and_key(tmp_path, monkeypatch):
    text = (REPO / "scenarios" / f"{SF}.yml").read_text().replace(f"name: {SF}", "name: bad")
    (tmp_path / "bad.yml").write_text(text.replace("lookahead_s: 30", "lookahead_s: -5"))
    monkeypatch.setenv("KRIOS_SCENARIO_PATH", str(tmp_path))
    with pytest.raises(ConfigError) as err:
        ControllerConfig.from_scenario(scenarios.load("bad"))
    assert str(err.value) == f"{tmp_path / 'bad.yml'}: handover.lookahead_s: -5.0: must be a number >= 0"
    # an override of that value wins over the file: nothing wrong then
    assert ControllerConfig.from_scenario(scenarios.load("bad"), lookahead_s=5).lookahead_s == 5.0


@pytest.mark.parametrize(("argv", "line"), [
    (["emulator", "--scenario", SF, "--tick-s", "0"], "krios: error: --tick-s: 0.0: must be a positive number"),
    (["controller", "--scenario", SF, "--lookahead-s", "-1"], "krios: error: --lookahead-s: -1.0: must be a number"),
    (["scheduler", "--scenario", SF, "--kube-api-burst", "0"], "krios: error: --kube-api-burst: 0: must be at least 1"),
    (["simulate", "--duration", "1m", "--step-s", "0"], "krios: error: --step-s: 0.0: must be a number >= 0.001"),
    (["bench", "latency", "--samples-per-latency", "0"], "krios: error: --samples-per-latency: 0: must be at least 1"),
])
def test_the_cli_names_the_flag(argv, line, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("KRIOS_RESULTS_DB", str(tmp_path / "r.sqlite"))
    monkeypatch.setenv("KRIOS_STATE_DIR", str(tmp_path / "no-cluster"))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(line), err


def test_the_field_to_flag_mapping_is_one_table_of_real_flags():
    parser = build_parser()
    every = command_flags(parser, []) | {f for cmd in ("emulator", "client", "controller", "scheduler", "simulate")
                                         for f in command_flags(parser, [cmd])}
    every |= command_flags(parser, ["bench", "latency"]) | command_flags(parser, ["bench", "scheduler"])
    every |= command_flags(parser, ["bench", "coldstart"]) | command_flags(parser, ["bench", "churn"])
    for field, flags in FIELD_FLAGS.items():
        assert any(f in every for f in flags), (field, flags)
    flags = command_flags(parser, ["simulate"])
    assert str(name_flag(ConfigError("x", source="duration_s", field="1"), flags)) == "--duration: 1: x"
    # a field the command has no flag for, and a source that is no field, stay as they are
    assert str(name_flag(ConfigError("x", source="tick_s", field="1"), flags)) == "tick_s: 1: x"
    assert str(name_flag(ConfigError("x", source="scenario", field="y"), flags)) == "scenario: y: x"
