"""The SQLite results store: rows, runs, joins, exports, threads, and survival of kill -9."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from krios.errors import ConfigError
from krios.results.store import ResultsStore, is_run_id, new_run_id


@pytest.fixture
def store(tmp_path):
    st = ResultsStore(tmp_path / "results" / "krios.sqlite")
    yield st
    st.close()


def test_run_ids_have_the_documented_shape():
    rid = new_run_id("sf_4workers", now=1795416120.0)
    assert rid.startswith("20261123T064200Z-sf_4workers-")
    assert is_run_id(rid)
    assert len(rid.rsplit("-", 1)[1]) == 4
    assert is_run_id(new_run_id("weird label/with spaces"))


def test_rows_round_trip_with_json_columns_and_metadata(store):
    rid = store.start_run("experiment", scenario="sf_4workers", seed=42, meta={"note": "x"})
    run = store.run(rid)
    assert run["status"] == "incomplete" and run["finished_at"] is None
    assert run["meta"]["note"] == "x"
    assert {"versions", "git", "tc", "host"} <= set(run["meta"])  # collected environment
    assert "python" in run["meta"]["versions"]
    store.add(rid, "requests", {"seq": 1, "sent_at": 1.5, "node": "krios-worker-0", "latency_ms": 12.5,
                                "status": "ok"})
    store.add_many(rid, "ticks", [{"t_sim": 10.0, "t_wall": 1.0, "node": "n", "sat_id": 3, "serving": True,
                                   "in_zone": False, "rtt_ms": 8.0}])
    store.event(rid, "phase", t=5.0, name="emulate")
    assert store.rows(rid, "requests")[0]["latency_ms"] == 12.5
    tick = store.rows(rid, "ticks")[0]
    assert (tick["serving"], tick["in_zone"], tick["sat_id"]) == (1, 0, 3)
    assert store.rows(rid, "events") == [{"run_id": rid, "t": 5.0, "kind": "phase", "data": {"name": "emulate"}}]
    store.update_meta(rid, result={"p50": 1.0})
    store.finish_run(rid)
    run = store.run(rid[:-2])  # a unique prefix is enough
    assert run["status"] == "complete" and run["finished_at"] >= run["started_at"]
    assert run["meta"]["result"] == {"p50": 1.0} and run["meta"]["note"] == "x"
    assert [r["id"] for r in store.runs()] == [rid]
    assert store.counts(rid)["ticks"] == 1


def test_bad_table_column_status_and_run_are_one_clear_error(store):
    rid = store.start_run("t", collect=False)
    with pytest.raises(ConfigError, match="unknown table"):
        store.add(rid, "nope", {})
    with pytest.raises(ConfigError) as err:
        store.add(rid, "requests", {"latency": 1})
    assert err.value.field == "latency" and "requests" in err.value.source
    with pytest.raises(ConfigError):
        store.finish_run(rid, "done")
    with pytest.raises(ConfigError, match="no such run"):
        store.run("20990101T000000Z-x-0000")
    assert store.rows(rid, "requests") == []  # nothing half-written


def test_a_process_given_the_run_id_joins_and_leaves_the_status_to_the_owner(tmp_path):
    owner = ResultsStore(tmp_path / "db.sqlite")
    rid = owner.start_run("experiment", scenario="sf_4workers", collect=False)
    client = ResultsStore(tmp_path / "db.sqlite")
    assert client.start_run("client", scenario="sf_4workers", run_id=rid, collect=False) == rid
    client.add(rid, "requests", {"seq": 0})
    client.finish_run(rid, "complete")
    assert owner.run(rid)["status"] == "incomplete"
    assert [e["kind"] for e in owner.rows(rid, "events")] == ["joined", "finished"]
    owner.finish_run(rid, "complete")
    assert client.run(rid)["status"] == "complete"
    # An id that does not exist yet is created (and owned) by whoever names it first.
    own = client.start_run("client", run_id="20261123T000000Z-solo-abcd", collect=False)
    client.finish_run(own)
    assert client.run(own)["status"] == "complete"


def test_concurrent_writers_lose_nothing(tmp_path):
    st = ResultsStore(tmp_path / "db.sqlite")
    rid = st.start_run("t", collect=False)
    other = ResultsStore(tmp_path / "db.sqlite")  # a second connection, as another process would have

    def write(s, k):
        for i in range(100):
            s.add(rid, "requests", {"seq": k * 1000 + i})

    threads = [threading.Thread(target=write, args=(st if k % 2 else other, k)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = sorted(r["seq"] for r in st.rows(rid, "requests"))
    assert seqs == sorted(k * 1000 + i for k in range(6) for i in range(100))


def test_export_writes_jsonl_and_csv_per_table(store, tmp_path):
    rid = store.start_run("t", scenario="sf_4workers", collect=False)
    store.add_many(rid, "handovers", [{"t_sim": 1.0, "from_node": "a", "to_node": "b", "mode": "proactive"},
                                      {"t_sim": 2.0, "from_node": "b", "to_node": "a", "mode": "reactive"}])
    store.event(rid, "x", value=[1, 2])
    paths = {p.name: p for p in store.export(rid)}
    assert set(paths) == {"run.json", "handovers.jsonl", "handovers.csv", "events.jsonl", "events.csv"}
    assert all(p.parent == tmp_path / "results" / rid for p in paths.values())
    lines = paths["handovers.jsonl"].read_text().splitlines()
    assert [json.loads(x)["mode"] for x in lines] == ["proactive", "reactive"]
    with paths["handovers.csv"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows[1]["to_node"] == "a" and "lead_s" in rows[0]
    with paths["events.csv"].open() as fh:
        assert json.loads(next(csv.DictReader(fh))["data"]) == {"value": [1, 2]}
    assert json.loads(paths["run.json"].read_text())["id"] == rid


def test_wal_mode_and_new_columns_are_added_to_an_old_database(tmp_path):
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, started_at REAL NOT NULL, "
                "status TEXT NOT NULL DEFAULT 'incomplete', meta TEXT NOT NULL DEFAULT '{}')")
    con.execute("CREATE TABLE requests (run_id TEXT NOT NULL, seq INTEGER)")
    con.commit()
    con.close()
    st = ResultsStore(path)
    rid = st.start_run("t", scenario="s", seed=1, collect=False)
    st.add(rid, "requests", {"seq": 1, "latency_ms": 2.0})
    assert st.rows(rid, "requests")[0]["latency_ms"] == 2.0
    assert st._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


WRITER = textwrap.dedent("""
    import sys, time
    from krios.results.store import ResultsStore
    st = ResultsStore(sys.argv[1])
    rid = st.start_run("experiment", scenario="sf_4workers", seed=1, collect=False)
    print(rid, flush=True)
    i = 0
    while True:
        st.add(rid, "requests", {"seq": i, "sent_at": time.time(), "latency_ms": 1.0 + i})
        i += 1
        time.sleep(0.002)
""")


def test_samples_survive_kill_9_and_the_run_stays_incomplete(tmp_path):
    db = tmp_path / "krios.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        rid = proc.stdout.readline().strip()
        assert is_run_id(rid)
        reader = ResultsStore(db)
        deadline = time.monotonic() + 60
        while reader.counts(rid)["requests"] < 50:
            assert time.monotonic() < deadline, "writer wrote too little"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    st = ResultsStore(db)  # a fresh connection, as after a crash
    rows = st.rows(rid, "requests")
    assert len(rows) >= 50
    assert [r["seq"] for r in rows] == list(range(len(rows)))  # a prefix: nothing lost in between
    run = st.run(rid)
    assert run["status"] == "incomplete" and run["finished_at"] is None
    assert st._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
