"""Results schema v3 (issue 15 item 10): ``requests`` and ``handovers`` say which client and which app.

Two clients or three apps in one run used to be indistinguishable. Now every
request records ``client`` (``--client-id``, default ``<host>-<pid>``) and
``app`` (``--app``, default the app's label selector or the target URL), every
handover its ``app`` (``<namespace>/<app key>``, written by the controller).
Databases of schema v2 gain the columns when opened, their rows kept (NULL in
the new columns). A client stopped by SIGTERM marks its run failed *and* exits
non-zero (128 + the signal).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from krios.emulation.workload import Client, RecordSink, static_target
from krios.results import schema
from krios.results.store import ResultsStore


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def app_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _v2_database(path) -> None:
    """A results database as schema v2 wrote it (requests.client_host; no client/app columns)."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, scenario TEXT, seed INTEGER, "
                "started_at REAL NOT NULL, finished_at REAL, status TEXT NOT NULL DEFAULT 'incomplete', "
                "meta TEXT NOT NULL DEFAULT '{}')")
    con.execute("CREATE TABLE requests (run_id TEXT NOT NULL REFERENCES runs(id), seq INTEGER, sent_at REAL, "
                "node TEXT, sat_id INTEGER, injected_rtt_ms REAL, latency_ms REAL, status TEXT, error TEXT, "
                "client_host TEXT)")
    con.execute("CREATE TABLE handovers (run_id TEXT NOT NULL REFERENCES runs(id), t_sim REAL, from_node TEXT, "
                "to_node TEXT, from_sat INTEGER, to_sat INTEGER, lead_s REAL, mode TEXT)")
    con.execute("INSERT INTO runs (id, kind, started_at) VALUES ('old-run', 'experiment', 1.0)")
    con.execute("INSERT INTO requests (run_id, seq, latency_ms, client_host) VALUES ('old-run', 0, 3.5, 'node3')")
    con.execute("INSERT INTO handovers (run_id, t_sim, from_node, to_node, mode) "
                "VALUES ('old-run', 10.0, 'w1', 'w2', 'proactive')")
    con.execute("PRAGMA user_version = 2")
    con.commit()
    con.close()


def test_a_v2_database_gains_client_and_app_and_keeps_its_rows(tmp_path) -> None:
    db = tmp_path / "krios.sqlite"
    _v2_database(db)
    with ResultsStore(db) as store:
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION >= 3
        assert "requests.client" in schema.SCHEMA_HISTORY[3]
        old = store.rows("old-run", "requests")
        assert [(r["seq"], r["latency_ms"], r["client_host"], r["client"], r["app"]) for r in old] == [
            (0, 3.5, "node3", None, None)]
        assert [(h["from_node"], h["to_node"], h["app"]) for h in store.rows("old-run", "handovers")] == [
            ("w1", "w2", None)]
        store.add("old-run", "handovers", {"t_sim": 20.0, "from_node": "w2", "to_node": "w3", "app": "default/web"})
        store.add("old-run", "requests", {"seq": 1, "client": "c2", "app": "leozone=1_2"})
        assert [h["app"] for h in store.rows("old-run", "handovers")] == [None, "default/web"]
    with ResultsStore(db) as store:  # opened again: nothing migrated twice, nothing lost
        assert len(store.rows("old-run", "requests")) == 2


def test_a_newer_database_keeps_its_version(tmp_path) -> None:
    db = tmp_path / "krios.sqlite"
    ResultsStore(db).close()
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    with ResultsStore(db) as store:
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == 99


def test_two_clients_and_two_apps_in_one_run_are_told_apart(tmp_path, app_url) -> None:
    with ResultsStore(tmp_path / "krios.sqlite") as store:
        run_id = store.start_run("client", collect=False)
        sink = RecordSink(None, store, run_id)
        threads = []
        for client_id, app in (("probe-a", "default/web"), ("probe-b", "default/web"), (None, "other/cache")):
            c = Client(static_target(app_url), sink, rate_hz=20, duration_s=0.25, client_id=client_id, app=app)
            threads.append(threading.Thread(target=c.run))
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        rows = store.rows(run_id, "requests")
    by = {}
    for r in rows:
        by.setdefault((r["client"], r["app"]), []).append(r["status"])
    default_id = f"{rows[0]['client_host']}-{os.getpid()}"
    assert set(by) == {("probe-a", "default/web"), ("probe-b", "default/web"), (default_id, "other/cache")}
    assert all(len(v) == 5 and set(v) == {"ok"} for v in by.values()), by


def test_a_client_stopped_by_sigterm_marks_the_run_failed_and_exits_non_zero(tmp_path, app_url) -> None:
    db = tmp_path / "krios.sqlite"
    env = {**os.environ, "KRIOS_RESULTS_DB": str(db), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "krios", "client", "--target", app_url, "--duration-s", "60", "--rate-hz", "10",
         "--run-id", "sigterm-run", "--client-id", "probe", "--app", "default/web"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "the client recorded nothing"
            assert proc.poll() is None, proc.stderr.read()
            if db.exists():
                with ResultsStore(db) as store:
                    if store._exists("sigterm-run") and store.counts("sigterm-run")["requests"] >= 3:
                        break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by signal 15" in err and "marked failed" in err
    with ResultsStore(db) as store:
        assert store.run("sigterm-run")["status"] == "failed"
        rows = store.rows("sigterm-run", "requests")
    assert rows and {(r["client"], r["app"]) for r in rows} == {("probe", "default/web")}
