"""Issue 15, items 5 and 6: run ids stay inside results/, ``--db`` is honoured, bad input is one line.

Each case runs the real CLI in-process (``krios.cli.main``) and checks a
non-zero exit with exactly one stderr line naming the file (or option) and
the field, and no traceback.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from krios.cli import main
from krios.errors import ConfigError
from krios.orbits.tle import checksum, parse_tles
from krios.results.store import ResultsStore, check_run_id, new_run_id

REPO = Path(__file__).resolve().parents[1]
SCENARIO = (REPO / "scenarios" / "sf_4workers.yml").read_text()


def one_error(capsys: pytest.CaptureFixture[str], argv: list[str], *must: str) -> str:
    """Run ``krios argv``: non-zero, one stderr line containing every ``must``."""
    rc = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc != 0, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for text in must:
        assert text in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------ run ids (item 5)

@pytest.mark.parametrize("bad", ["../../escaped-run", "/tmp/abs-run", "a/b", ".", "..", ".hidden", "", "x" * 129,
                                 "run\\x", "run id", "-run"])
def test_check_run_id_refuses_paths_and_odd_names(bad):
    with pytest.raises(ConfigError, match="not a valid run id"):
        check_run_id(bad)


@pytest.mark.parametrize("good", ["r1", "20261123T064200Z-sf_4workers-ab12", "exp.2", "A" * 128])
def test_check_run_id_accepts_run_ids(good):
    assert check_run_id(good) == good


def test_generated_run_ids_are_valid_even_for_long_labels():
    assert check_run_id(new_run_id("x" * 300))
    assert check_run_id(new_run_id("../../scenario with spaces"))


def test_the_store_refuses_a_path_as_run_id(tmp_path: Path):
    with ResultsStore(tmp_path / "r" / "krios.sqlite") as st:
        for method in (lambda: st.start_run("experiment", run_id="../../escaped-run"),
                       lambda: st.run_dir("/abs"), lambda: st.add("../x", "events", {"t": 0.0}),
                       lambda: st.finish_run("..")):
            with pytest.raises(ConfigError, match="not a valid run id"):
                method()
        assert st.runs() == []


@pytest.mark.parametrize("run_id", ["../../escaped-run", "/tmp/krios-abs-run"])
def test_report_refuses_a_run_id_that_is_a_path(capsys, tmp_path: Path, monkeypatch, run_id):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "a" / "b" / "krios.sqlite"
    one_error(capsys, ["report", run_id, "--db", str(db)], "run id", repr(run_id))
    assert not (tmp_path / "escaped-run").exists() and not Path("/tmp/krios-abs-run").exists()


@pytest.mark.parametrize("argv", [
    ["emulator", "--scenario", "sf_4workers", "--run-id", "../../escaped-run"],
    ["client", "--target", "http://127.0.0.1:9/", "--duration-s", "1", "--run-id", "/abs/run"],
    ["bench", "latency", "--run-id", "../x", "--kubeconfig", "/nonexistent"],
    ["runs", "finish", "../../escaped-run"],
])
def test_every_run_id_option_is_checked_first(capsys, tmp_path: Path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    one_error(capsys, [*argv, "--db", str(tmp_path / "krios.sqlite")], "not a valid run id")
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("position", ["before", "after"])
def test_runs_start_and_finish_honour_db(capsys, tmp_path: Path, monkeypatch, position):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "elsewhere" / "x.sqlite"

    def runs(action: list[str]) -> list[str]:
        return ["runs", "--db", str(db), *action] if position == "before" else ["runs", *action, "--db", str(db)]

    assert main(runs(["start", "--kind", "experiment"])) == 0
    run_id = capsys.readouterr().out.strip()
    assert main(runs(["finish", run_id, "--status", "failed"])) == 0
    capsys.readouterr()
    assert not (tmp_path / "results").exists()  # not ./results/krios.sqlite
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT id, status FROM runs").fetchall() == [(run_id, "failed")]


# ------------------------------------------------------------------ one line, not a traceback (item 6)

def test_deeply_nested_ip_mapping_is_one_line(capsys, tmp_path: Path):
    path = tmp_path / "ip_mapping.json"
    path.write_text('{"node1.example.org": ' + "[" * 100_000 + "]" * 100_000 + "}")
    line = one_error(capsys, ["inventory", "--ip-mapping", str(path), "--scenario", "sf_4workers"],
                     str(path), "node1.example.org", "nested too deeply")
    assert "RecursionError" not in line


def scenario_file(tmp_path: Path, name: str, replace: tuple[str, str]) -> Path:
    text = SCENARIO.replace("name: sf_4workers", f"name: {name}")
    old, new = replace
    text, n = re.subn(old, new, text, flags=re.MULTILINE)
    assert n == 1
    path = tmp_path / f"{name}.yml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("name", "replace", "field"), [
    ("handover_oops", (r"^handover:\n(  .*\n)+", "handover: oops\n"), "handover"),
    ("seed_abc", (r"^seed: 42$", "seed: abc"), "seed"),
    ("tick_list", (r"^tick_s: 1.0 .*$", "tick_s: [1]"), "tick_s"),
    ("lookahead_text", (r"^  lookahead_s: 30 .*$", "  lookahead_s: soon"), "handover.lookahead_s"),
    ("zone_list", (r"^  radius_km: 100$", "  radius_km: [100]"), "zone.radius_km"),
])
def test_mistyped_scenario_keys_are_one_line(capsys, tmp_path: Path, name, replace, field):
    path = scenario_file(tmp_path, name, replace)
    line = one_error(capsys, ["simulate", "--scenario", str(path), "--duration", "10m"], f"{path}: {field}: ")
    assert "AttributeError" not in line


def tle_with(l2_fields: dict[tuple[int, int], str]) -> str:
    """A valid 3-line TLE with line 2's columns ``[start, stop)`` replaced (checksums recomputed)."""
    name = "SAT-A"
    l1 = "1 00001U          26001.00000000  .00000000  00000-0  00000+0 0    0"
    l2 = "2 00001  53.0000   0.0000 0000000   0.0000   0.0000 15.05491974    0"
    for (start, stop), text in l2_fields.items():
        l2 = l2[:start] + text + l2[stop:]
    l1, l2 = l1 + str(checksum(l1)), l2 + str(checksum(l2))
    return f"{name}\n{l1}\n{l2}\n"


@pytest.mark.parametrize(("fields", "message"), [
    ({(26, 33): "9999999"}, "eccentricity 0.9999999 is not a LEO orbit"),
    ({(26, 33): "2500000"}, "eccentricity 0.25"),
    ({(26, 33): "2000000"}, "SGP4 cannot propagate"),  # perigee under the surface: sgp4 says decayed
    ({(52, 63): " 0.00000000"}, "mean motion"),
])
def test_tles_the_model_cannot_propagate_are_one_line(capsys, tmp_path: Path, fields, message):
    path = tmp_path / "bad.tle"
    path.write_text(tle_with(fields))
    one_error(capsys, ["passes", "--tles", str(path), "--zone", "37.77_-122.42", "--start", "2026-01-01T00:00:00Z",
                       "--duration-s", "1h"], str(path), "line 3 (SAT-A)", message)


def test_a_leo_tle_still_parses():
    assert parse_tles(tle_with({(26, 33): "0001000"}))[0].name == "SAT-A"


@pytest.mark.parametrize("argv", [["runs"], ["runs", "start"], ["report", "r1"]])
def test_a_results_db_that_is_not_sqlite_is_one_line(capsys, tmp_path: Path, argv):
    db = tmp_path / "thesis.tex"
    db.write_text("\\documentclass{article}\n" * 20)
    one_error(capsys, [*argv, "--db", str(db)], str(db), "database", "not a krios results database")
    assert db.read_text() == "\\documentclass{article}\n" * 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]


def test_a_folder_as_results_db_is_one_line(capsys, tmp_path: Path):
    one_error(capsys, ["runs", "--db", str(tmp_path)], str(tmp_path), "is a folder")


# ------------------------------------------------------------------ silently accepted input (item 7)

@pytest.mark.parametrize(("name", "replace", "line"), [
    ("lookhead", (r"^  lookahead_s: 30 .*$", "  lookhead_s: 30"),
     "handover.lookhead_s: unknown key (did you mean lookahead_s?)"),
    ("top_level", (r"^seed: 42$", "seeed: 42"), "seeed: unknown key (did you mean seed?)"),
    ("zone_key", (r"^  radius_km: 100$", "  radius: 100"), "zone.radius: unknown key (did you mean radius_km?)"),
    ("far_off", (r"^seed: 42$", "colour: blue"), "colour: unknown key (known: "),
])
def test_unknown_scenario_keys_are_refused(capsys, tmp_path: Path, name, replace, line):
    path = scenario_file(tmp_path, name, replace)
    one_error(capsys, ["simulate", "--scenario", str(path), "--duration", "10m"], f"{path}: {line}")


def test_every_shipped_and_generated_scenario_still_loads(tmp_path: Path):
    from krios.config import scenarios
    from krios.lab.inputs import scenario as lab_scenario

    for name in scenarios.available():
        assert scenarios.load(name).name == name
    file_name, text = lab_scenario(4)
    (tmp_path / file_name).write_text(text)
    assert scenarios.load(tmp_path / file_name).workers == 4
    tles = SCENARIO.replace("shell: starlink-1", "tles: tles.txt")  # the documented alternative
    (tmp_path / "sf_4workers.yml").write_text(tles)
    assert scenarios.load(tmp_path / "sf_4workers.yml").data["constellation"]["tles"] == "tles.txt"


def test_scenario_choices_mirror_the_control_layer():
    from krios.config.scenarios import CHOICES
    from krios.control.handover import MODES
    from krios.control.policies import POLICIES
    from krios.orbits.rtt import RTT_MODELS

    assert CHOICES == {"policy": POLICIES, "handover.mode": MODES, "latency.rtt_model": RTT_MODELS}


@pytest.mark.parametrize("argv", [
    ["simulate", "--scenario", "{path}", "--duration", "10m"],
    ["emulator", "--scenario", "{path}", "--kubeconfig", "/nonexistent/kubeconfig"],
])
@pytest.mark.parametrize(("replace", "field"), [
    ((r"^policy: krios .*$", "policy: fastest"), "policy"),
    ((r"^  mode: proactive .*$", "  mode: eager"), "handover.mode"),
])
def test_unknown_policy_or_mode_is_refused(capsys, tmp_path: Path, argv, replace, field):
    path = scenario_file(tmp_path, "policy_fastest", replace)
    one_error(capsys, [a.format(path=path) for a in argv], f"{path}: {field}: unknown value")


@pytest.mark.parametrize(("kind", "edit", "line"), [
    ("ip_mapping", ("192.0.2.14", "192.0.2.12"),
     "node4.krios-demo.krios-pg0.utah.cloudlab.example: public IP 192.0.2.12 is also used by "
     "node2.krios-demo.krios-pg0.utah.cloudlab.example"),
    ("manifest", ('ipv4="192.0.2.15"', 'ipv4="192.0.2.11"'),
     "node5.krios-demo.krios-pg0.utah.cloudlab.example: public IP 192.0.2.11 is also used by "
     "node1.krios-demo.krios-pg0.utah.cloudlab.example"),
    ("manifest", ('address="10.10.1.3"', 'address="10.10.1.2"'),
     "node3.krios-demo.krios-pg0.utah.cloudlab.example: experiment-LAN IP 10.10.1.2 is also used by "
     "node2.krios-demo.krios-pg0.utah.cloudlab.example"),
])
def test_duplicate_ips_are_refused_naming_both_hosts(capsys, tmp_path: Path, kind, edit, line):
    name = "ip_mapping.json" if kind == "ip_mapping" else "manifest.xml"
    text = (REPO / "inventories" / "cloudlab" / name).read_text()
    assert text.count(edit[0]) == 1
    path = tmp_path / name
    path.write_text(text.replace(*edit))
    one_error(capsys, ["inventory", f"--{kind.replace('_', '-')}", str(path), "--scenario", "sf_4workers"],
              f"{path}: {line}")


def _ansible_inventory(path: Path) -> tuple[int, str]:
    import os
    import subprocess
    import sys

    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRIOS_", "ANSIBLE_"))}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}")
    proc = subprocess.run([str(bin_dir / "ansible-inventory"), "-i", str(path), "--graph"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, proc.stderr


@pytest.mark.parametrize(("options", "line"), [
    ("base_node_index: 2\n", "base_node_index: unknown option (did you mean base_node_idx?)"),
    ("base_node_idx: 1\nnode_netwrok: control\n", "node_netwrok: unknown option (did you mean node_network?)"),
    ("base_node_idx: 1\nzzz: 1\n", "zzz: unknown option (known: "),
])
def test_unknown_inventory_plugin_options_are_refused(tmp_path: Path, options, line):
    path = tmp_path / "krios.yml"
    path.write_text("plugin: krios.testbed.krios\n"
                    f"ip_mapping: {REPO / 'inventories' / 'cloudlab' / 'ip_mapping.json'}\n"
                    f"scenario: sf_4workers\n{options}")
    rc, err = _ansible_inventory(path)
    assert rc != 0 or "Completely failed" in err
    ours = [ln for ln in err.splitlines() if "krios' plugin:" in ln]
    assert ours, err
    assert ours[0].split("krios' plugin: ", 1)[1].startswith(f"{path}: {line}"), ours[0]


def test_the_constructed_and_cache_options_stay_accepted(tmp_path: Path):
    path = tmp_path / "krios.yml"
    path.write_text("plugin: krios.testbed.krios\n"
                    f"ip_mapping: {REPO / 'inventories' / 'cloudlab' / 'ip_mapping.json'}\n"
                    "scenario: sf_4workers\nbase_node_idx: 1\nstrict: true\ncompose: {}\ngroups: {}\n"
                    "keyed_groups: []\ncache: false\n")
    rc, err = _ansible_inventory(path)
    assert rc == 0 and "krios' plugin" not in err, err


@pytest.mark.parametrize("var", ["keep_cluster", "reset_confirmed"])
def test_validate_refuses_a_non_boolean(tmp_path: Path, var):
    from provisioning_helpers import cloudlab_inventory, run_playbook, write_inventory

    inv = write_inventory(tmp_path / "inv.yml", cloudlab_inventory())
    run = run_playbook("validate.yml", [inv], options=["-e", f"{var}=maybe"])
    assert run.returncode != 0, run.explain()
    assert f"variables: {var}: not a boolean: maybe (use true or false" in run.output, run.explain()
