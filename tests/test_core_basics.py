"""Shared basics: scenarios, time parsing, policies, handover timing, the clock."""

from __future__ import annotations

import math
import random

import pytest

from krios.config import scenarios
from krios.config import times as timeutil
from krios.control import handover, policies
from krios.control.policies import Candidate
from krios.errors import ConfigError
from krios.kube.clock import Clock


def test_builtin_scenarios_load_with_their_zones():
    sf = scenarios.load("sf_4workers")
    assert sf.workers == 4
    assert (sf.zone["lat"], sf.zone["lon"]) == (37.7749, -122.4194)
    assert sf.leozone == "37.7749_-122.4194"
    assert scenarios.load("seattle_4workers").workers == 4
    tokyo = scenarios.load("tokyo_6workers")
    assert tokyo.workers == 6 and tokyo.zone["lon"] == 139.6503
    assert {"sf_4workers", "seattle_4workers", "tokyo_6workers"} <= set(scenarios.available())


def test_unknown_scenario_lists_known_ones():
    with pytest.raises(ConfigError) as err:
        scenarios.load("mars_2workers")
    text = str(err.value)
    assert text.startswith("scenario: mars_2workers: unknown scenario")
    assert "sf_4workers" in text


def test_user_scenario_folder_and_field_errors(tmp_path, monkeypatch):
    (tmp_path / "lab_2workers.yml").write_text("name: lab_2workers\nzone: {lat: 10, lon: 20}\nworkers: 2\n")
    (tmp_path / "bad_lat.yml").write_text("name: bad_lat\nzone: {lat: 95, lon: 20}\nworkers: 2\n")
    (tmp_path / "no_workers.yml").write_text("name: no_workers\nzone: {lat: 1, lon: 2}\n")
    (tmp_path / "broken.yml").write_text("name: [unclosed\n")
    monkeypatch.setenv("KRIOS_SCENARIO_PATH", str(tmp_path))
    lab = scenarios.load("lab_2workers")
    assert lab.workers == 2 and lab.zone["min_elevation_deg"] == 25.0  # defaults merged in
    assert lab["handover"]["mode"] == "proactive"
    with pytest.raises(ConfigError, match=r"bad_lat.yml: zone.lat: latitude"):
        scenarios.load("bad_lat")
    with pytest.raises(ConfigError, match=r"no_workers.yml: workers: missing key"):
        scenarios.load("no_workers")
    with pytest.raises(ConfigError, match=r"broken.yml: line 2: invalid YAML"):
        scenarios.load("broken")


def test_time_and_duration_parsing():
    assert timeutil.parse_time("2026-01-01T00:00:00Z") == 1767225600.0
    assert timeutil.parse_time("2026-01-01T01:00:00+01:00") == 1767225600.0
    assert timeutil.iso(1767225600.5) == "2026-01-01T00:00:00.500Z"
    assert timeutil.parse_duration("24h") == 86400
    assert timeutil.parse_duration("15m") == 900
    assert timeutil.parse_duration("250ms") == 0.25
    with pytest.raises(ConfigError, match="--start: yesterday: not an ISO 8601 time"):
        timeutil.parse_time("yesterday", source="--start")
    with pytest.raises(ConfigError, match="not a duration"):
        timeutil.parse_duration("a day")


CANDS = [
    Candidate(sat_id=3, node="n3", remaining_s=100, range_km=700, elevation_deg=60),
    Candidate(sat_id=1, node="n1", remaining_s=400, range_km=1100, elevation_deg=30),
    Candidate(sat_id=2, node="n2", remaining_s=250, range_km=600, elevation_deg=75),
    Candidate(sat_id=4, node="n4", remaining_s=900, range_km=1300, elevation_deg=10, enters_in_s=20),
]


def test_policies_rank_by_their_criterion_in_zone_first():
    assert [c.sat_id for c in policies.rank("krios", CANDS)] == [1, 2, 3, 4]
    assert [c.sat_id for c in policies.rank("closest", CANDS)] == [2, 3, 1, 4]
    assert policies.choose("krios", []) is None


def test_random_policy_is_seeded_and_keeps_entering_last():
    a = [c.sat_id for c in policies.rank("random", CANDS, random.Random(7))]
    b = [c.sat_id for c in policies.rank("random", CANDS, random.Random(7))]
    assert a == b and a[-1] == 4 and sorted(a) == [1, 2, 3, 4]
    orders = {tuple(c.sat_id for c in policies.rank("random", CANDS, random.Random(s))) for s in range(20)}
    assert len(orders) > 1


def test_unknown_policy_and_mode_are_config_errors():
    with pytest.raises(ConfigError, match="policy: fastest: unknown policy"):
        policies.rank("fastest", CANDS)
    with pytest.raises(ConfigError, match="unknown handover mode"):
        handover.due(0, 10, "eager", 5)


def test_handover_due_times():
    assert handover.start_time(1000.0, "proactive", 30) == 970.0
    assert handover.start_time(1000.0, "reactive", 30) == 1000.0
    assert not handover.due(969.9, 1000.0, "proactive", 30)
    assert handover.due(970.0, 1000.0, "proactive", 30)
    assert not handover.due(999.0, 1000.0, "reactive", 30)
    assert handover.due(5.0, math.nan, "reactive", 30)  # not in the zone at all


def test_clock_maps_wall_to_emulated_time_and_round_trips():
    clock = Clock(epoch_wall=1000.0, epoch_sim=5000.0, rate=10.0)
    assert clock.sim_at(1001.0) == 5010.0
    assert clock.wall_at(5100.0) == 1010.0
    assert Clock.from_json(clock.to_json()) == clock
    real = Clock.real()
    assert abs(real.now() - Clock.starting().now()) < 1.0


def test_paused_clock_never_reaches_another_instant():
    paused = Clock(epoch_wall=1000.0, epoch_sim=5000.0, rate=0.0)
    assert paused.sim_at(2000.0) == 5000.0
    assert paused.wall_at(5000.0) == 1000.0
    assert paused.wall_at(5001.0) == math.inf
