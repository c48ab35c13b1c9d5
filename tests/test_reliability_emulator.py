"""Issue 15, item 4: an emulator killed (``kill -9``) and restarted with the same run id resumes.

On a real control plane (etcd + kube-apiserver + virtual kubelet) of its own,
since the emulator relabels workers and publishes the cluster-wide clock: the
restarted ``krios emulator`` continues emulated time after the run's last
tick (no rewind to ``start``), keeps the mapping the cluster has (the serving
node is not relabelled), writes no tick row twice, and finishes the run.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from krios.config import scenarios
from krios.emulation.emulator import EmulatorConfig

pytestmark = pytest.mark.cluster

SCENARIO = scenarios.load("sf_4workers")
START = EmulatorConfig.from_scenario(SCENARIO).start  # emulated unix s
RUN_ID = "reliability-emulator-restart"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from krios.localcluster import LocalCluster

    cl = LocalCluster(tmp_path_factory.mktemp("rel-emu-cluster"), workers=4, control_plane_nodes=1, components=(),
                      kubelet_ready_delay_s=0.2, kubelet_jitter_s=0.0, owner_pid=os.getpid())  # fmt: skip
    cl.up()
    try:
        yield cl
    finally:
        cl.down()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(pred, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_restarted_emulator_resumes_time_mapping_and_rows(cluster, tmp_path):
    db = tmp_path / "results" / "krios.sqlite"
    log = tmp_path / "ticks.jsonl"
    argv = [sys.executable, "-m", "krios", "emulator", "--scenario", "sf_4workers", "--duration-s", "900",
            "--acceleration", "30", "--tick-s", "5", "--run-id", RUN_ID, "--db", str(db), "--log", str(log),
            "--kubeconfig", str(cluster.kubeconfig)]  # fmt: skip
    api = cluster.json_client()
    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # once the nodes have satellites, put the app on the in-zone node that stays longest
        tick = wait_for(lambda: log.exists() and read_jsonl(log), 30, "the first tick")[-1]
        in_zone = {n: d for n, d in tick["nodes"].items() if d["in_zone"]}
        node = max(in_zone, key=lambda n: in_zone[n]["exits_at"])
        api.post("/api/v1/namespaces/default/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "app", "labels": {"leozone": SCENARIO.leozone, "app": "krios-app"}},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx"}]}})  # fmt: skip
        wait_for(lambda: sum(t["serving"] == node for t in read_jsonl(log)) >= 3, 30, f"{node} serving")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    before = read_jsonl(log)
    last = before[-1]
    sat = last["nodes"][node]["sat_id"]
    assert last["serving"] == node and last["t_sim"] < START + 900
    assert last["nodes"][node]["exits_at"] > last["t_sim"] + 60, "pick a later satellite: this one leaves"
    # the store is the record (the JSON Lines line of a tick is written just before its rows)
    rows_before, last_t = sqlite3.connect(db).execute(
        "SELECT COUNT(*), MAX(t_sim) FROM ticks WHERE run_id = ?", (RUN_ID,)).fetchone()
    assert last_t in (last["t_sim"], last["t_sim"] - 5)

    second = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    after = read_jsonl(log)[len(before):]
    assert summary["status"] == "complete" and summary["resumed_from"] is not None and after
    # no rewind: emulated time continues from the tick after the last one stored
    assert after[0]["t_sim"] == pytest.approx(last_t + 5)
    assert all(b["t_sim"] > a["t_sim"] for a, b in itertools.pairwise(after))
    assert after[-1]["t_sim"] == pytest.approx(START + 900)
    clock = json.loads(api.get("/api/v1/namespaces/krios-system/configmaps/krios-clock")["data"]["clock.json"])
    assert clock["epoch_sim"] == pytest.approx(after[0]["t_sim"])
    # the mapping the cluster had: the serving node keeps its satellite and its title, not relabelled
    resumed = after[0]
    assert resumed["serving"] == node and resumed["nodes"][node]["sat_id"] == sat
    assert node not in resumed["patched"] and node not in {c["node"] for c in resumed["changes"]}
    # no duplicate rows, one row per node per tick, and the run is finished by the resumer
    conn = sqlite3.connect(db)
    dups = conn.execute("SELECT t_sim, node, COUNT(*) FROM ticks WHERE run_id = ? GROUP BY t_sim, node "
                        "HAVING COUNT(*) > 1", (RUN_ID,)).fetchall()  # fmt: skip
    assert dups == []
    total = conn.execute("SELECT COUNT(*) FROM ticks WHERE run_id = ?", (RUN_ID,)).fetchone()[0]
    assert total == rows_before + 4 * len(after)
    assert conn.execute("SELECT status FROM runs WHERE id = ?", (RUN_ID,)).fetchone()[0] == "complete"
    events = [r[0] for r in conn.execute("SELECT kind FROM events WHERE run_id = ?", (RUN_ID,))]
    assert "serving-changed" not in events
    # the report counts the ticks as they are: no instant twice
    report = subprocess.run([sys.executable, "-m", "krios", "report", RUN_ID, "--db", str(db)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert report.returncode == 0, report.stderr
    text = (db.parent / RUN_ID / "report.md").read_text()
    assert "ticked more than once" not in text and "zone served by an in-zone satellite at" in text


def test_resume_without_ticks_is_one_line(cluster, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "krios", "emulator", "--scenario", "sf_4workers", "--run-id", "nothing-yet",
         "--resume", "--db", str(tmp_path / "r.sqlite"), "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--run-id" in lines[0] and "no ticks to resume" in lines[0], result.stderr
