"""``krios inventory``: the roles table, --json, and one-line errors with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from krios.cli import main

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "inventory"
EXAMPLE = ROOT / "inventories" / "cloudlab"
SIX = str(EXAMPLE / "ip_mapping.json")


def test_table_lists_roles_in_index_order(capsys):
    assert main(["inventory", "--manifest", str(FIX / "manifest_12.xml"), "--scenario", "tokyo_6workers",
                 "--base-node-idx", "1", "--client", "node0", "--ansible-user", "bob"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("scenario tokyo_6workers: 6 workers, zone 35.6762_139.6503; nodes from ")
    rows = [ln.split() for ln in lines[2:]]
    assert [(r[0], r[1]) for r in rows] == [
        ("client", "0"), ("control", "1"), *(("worker", str(i)) for i in range(2, 8)),
        ("spare", "8"), ("spare", "9"), ("spare", "10"), ("spare", "11"),
    ]
    node7 = rows[7]
    assert node7[3:] == ["10.10.1.8", "198.51.100.27", "pcvmpc507-1.utah.cloudlab.example:27011"]


def test_json_has_groups_and_hostvars(capsys):
    assert main(["inventory", "--ip-mapping", SIX, "--scenario", "sf_4workers", "--base-node-idx", "1",
                 "--node-network", "control", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scenario"] == "sf_4workers" and data["node_network"] == "control"
    assert [h.split(".")[0] for h in data["groups"]["krios_workers"]] == ["node2", "node3", "node4", "node5"]
    client = data["groups"]["krios_client"][0]
    assert data["hostvars"][client]["krios_role"] == "client"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scenario", "sf_4workers"], "krios inventory: ip_mapping/manifest: give one of ip_mapping"),
        (["--scenario", "sf_4workers", "--ip-mapping", SIX, "--manifest", SIX], "not both"),
        (["--scenario", "mars_1worker", "--ip-mapping", SIX],
         "krios inventory: scenario mars_1worker: unknown scenario (known: seattle_4workers, sf_4workers"),
        (["--scenario", "sf_4workers", "--ip-mapping", str(FIX / "bad" / "bad_ipv4.json")],
         "bad_ipv4.json: node4.krios-demo.krios-pg0.utah.cloudlab.example: invalid IPv4 address"),
        (["--scenario", "sf_4workers", "--manifest", str(FIX / "bad" / "not_xml.xml")], "invalid XML"),
        (["--scenario", "sf_4workers", "--ip-mapping", SIX, "--client", "node2"], "client node2: node2."),
        (["--scenario", "tokyo_6workers", "--ip-mapping", SIX], "too few nodes for tokyo_6workers"),
    ],
)
def test_errors_are_one_line_exit_2(capsys, argv, message):
    assert main(["inventory", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("krios: error: ") and message in line


def test_console_script_exit_code_without_traceback():
    proc = subprocess.run([str(Path(sys.executable).parent / "krios"), "inventory", "--scenario", "sf_4workers",
                           "--ip-mapping", str(FIX / "bad" / "dup_index.json")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("krios: error: ") and "index 3 is also used by" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
