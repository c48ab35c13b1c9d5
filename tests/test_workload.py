"""Workloads as data (krios.config.workload), arrival schedules (krios.emulation.arrivals) and the
open-loop sender (krios.emulation.workload.Workload) against real HTTP servers on loopback."""

from __future__ import annotations

import itertools
import json
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from krios.config import scenarios
from krios.config.workload import Arrivals, parse_ia_option
from krios.emulation.arrivals import schedule
from krios.emulation.workload import RecordSink, Sender, Workload, group_senders, static_target
from krios.errors import ConfigError
from krios.results import schema
from krios.results.store import ResultsStore

KRIOS = str(Path(sys.executable).parent / "krios")

HEAD = """name: {name}
zone: {{lat: 37.7749, lon: -122.4194}}
workers: 4
seed: 11
"""


def write_scenario(tmp_path: Path, workload: str, name: str = "wl") -> Path:
    path = tmp_path / f"{name}.yml"
    path.write_text(HEAD.format(name=name) + "workload:\n" + workload)
    return path


def gaps(xs: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(xs)]


# ----------------------------------------------------------------------------- parsing


def test_scenario_workload_parses_groups_services_and_defaults(tmp_path):
    (tmp_path / "t.txt").write_text("# recorded\n100.0\n100.5\n\n102\n")
    path = write_scenario(tmp_path, """\
  - name: steady
    service: zone
    port: 30080
    clients: 2
    rate_hz: 5
  - service: 35.6762_139.6503
    port: 30081
    ia: {dist: lognorm, mean_s: 0.2, sigma: 0.5}
  - name: replay
    service: app.prod
    trace: t.txt
""")
    s = scenarios.load(path)
    steady, bursty, replay = s.workload
    assert steady.service.selector == f"leozone={s.leozone}" and steady.clients == 2 and steady.port == 30080
    assert steady.arrivals == Arrivals("rate", rate_hz=5.0)
    assert bursty.name == "g1" and bursty.service.leozone == "35.6762_139.6503"
    assert bursty.arrivals.dist == "lognorm" and bursty.arrivals.seed == 11  # the scenario's seed
    assert (replay.service.name, replay.service.namespace) == ("app", "prod")
    assert replay.arrivals.trace == (0.0, 0.5, 2.0)
    assert scenarios.load("sf_4workers").workload == ()  # the shipped scenarios have none


@pytest.mark.parametrize(("group", "field", "words"), [
    ("service: zone\n    ia: {dist: poisson, mean_s: 1}", "workload[0].ia.dist", "unknown distribution 'poisson'"),
    ("service: zone\n    rate_hz: -2", "workload[0].rate_hz", "positive"),
    ("service: zone\n    trace: missing.txt", "workload[0].trace", "trace file not found"),
    ("service: Bad_Name\n    rate_hz: 1", "workload[0].service", "unknown service"),
    ("service: zone\n    rate_hz: 1\n    ia: {dist: expon, mean_s: 1}", "workload[0].ia", "exactly one of"),
    ("service: zone", "workload[0].rate_hz", "exactly one of"),
    ("service: zone\n    ia: {dist: expon}", "workload[0].ia.mean_s", "missing"),
    ("service: zone\n    ia: {dist: expon, mean_s: 1, sigma: 2}", "workload[0].ia.sigma", "unknown expon parameter"),
    ("service: zone\n    clients: 0\n    rate_hz: 1", "workload[0].clients", ">= 1"),
    ("rate_hz: 1", "workload[0].service", "missing"),
    ("service: zone\n    rate: 1", "workload[0].rate", "did you mean rate_hz"),
])
def test_bad_workload_is_one_error_naming_the_field(tmp_path, group, field, words):
    path = write_scenario(tmp_path, f"  - {group}\n")
    with pytest.raises(ConfigError) as err:
        scenarios.load(path)
    assert err.value.source == str(path) and err.value.field == field, str(err.value)
    assert words in str(err.value)


def test_bad_client_flags_are_one_line_naming_the_flag(tmp_path):
    cases = [
        (["--ia", "weibull:mean_s=1"], "--ia", "unknown distribution"),
        (["--ia", "expon:mean_s=-1"], "--ia", "positive"),
        (["--rate-hz", "-1"], "--rate-hz", "must be positive"),
        (["--trace", str(tmp_path / "nope.txt")], "--trace", "trace file not found"),
        (["--rate-hz", "1", "--ia", "expon:mean_s=1"], "--ia", "not allowed with argument --rate-hz"),
    ]
    for extra, flag, words in cases:
        proc = subprocess.run([KRIOS, "client", "--target", "http://127.0.0.1:9/", "--duration-s", "1", *extra],
                              capture_output=True, text=True, env={"KRIOS_RESULTS_DB": str(tmp_path / "r.sqlite"),
                                                                  "PATH": "/usr/bin:/bin"})  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert flag in last and words in last, last
    assert not (tmp_path / "r.sqlite").exists()  # nothing half-done


# ----------------------------------------------------------------------------- schedules


@pytest.mark.parametrize(("spec", "mean"), [
    ("expon:mean_s=0.05,seed=4", 0.05), ("lognorm:mean_s=0.02,sigma=0.6,seed=9", 0.02),
    ("constant:mean_s=0.1", 0.1),
])
def test_interarrival_mean_within_5_percent_and_same_seed_same_schedule(spec, mean):
    arrivals = parse_ia_option(spec)
    xs = schedule(arrivals, 5000 * mean, stream="g/0")
    assert len(xs) > 3000 and xs[0] == 0.0
    assert statistics.mean(gaps(xs)) == pytest.approx(mean, rel=0.05)
    assert schedule(arrivals, 5000 * mean, stream="g/0") == xs  # same seed, same schedule
    if arrivals.dist != "constant":
        assert schedule(arrivals, 5000 * mean, stream="g/1") != xs  # each client its own draws
        other = parse_ia_option(spec.replace("seed=", "seed=1"))
        assert schedule(other, 5000 * mean, stream="g/0") != xs
        if arrivals.dist == "expon":  # exponential: the standard deviation equals the mean
            assert statistics.stdev(gaps(xs)) == pytest.approx(mean, rel=0.08)


def test_rate_and_trace_schedules():
    assert schedule(Arrivals("rate", rate_hz=4.0), 1.0) == [0.0, 0.25, 0.5, 0.75]
    trace = Arrivals("trace", trace=(0.0, 10.0, 15.0, 40.0))
    assert schedule(trace, 3.0, acceleration=10.0) == [0.0, 1.0, 1.5]  # emulated s / acceleration, < duration


# ----------------------------------------------------------------------------- the sender


class SlowHandler(BaseHTTPRequestHandler):
    delay_s = 0.6

    def do_GET(self):
        time.sleep(self.delay_s)
        body = b"slow answer"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/slow"
    finally:
        server.shutdown()
        server.server_close()


def test_open_loop_a_slow_server_does_not_slow_the_sender(slow_server, tmp_path):
    """Two groups at 40 req/s in all against a server answering after 0.6 s: every request leaves on schedule."""
    store = ResultsStore(tmp_path / "r.sqlite")
    run_id = store.start_run("client", collect=False)
    sink = RecordSink(tmp_path / "requests.jsonl", store, run_id)
    constant = Arrivals("rate", rate_hz=20.0)
    expon = parse_ia_option("expon:mean_s=0.05,seed=3")
    senders = [Sender("c", iter(schedule(constant, 2.0)), static_target(slow_server), group="steady",
                      service="zone"),
               Sender("e", iter(schedule(expon, 2.0, stream="bursty/0")), static_target(slow_server),
                      group="bursty", service="35.6762_139.6503")]  # fmt: skip
    started = time.time()
    result = Workload(senders, sink, duration_s=2.0, timeout_s=3.0).run()
    sink.close()
    elapsed = time.time() - started
    rows = store.rows(run_id, "requests")
    assert result.sent == len(rows) == 40 + len(schedule(expon, 2.0, stream="bursty/0"))
    assert all(r["status"] == "ok" and r["latency_ms"] >= 590 for r in rows)
    lags = sorted(r["sent_at"] - r["created_at"] for r in rows)
    # sent on schedule however slow the answers: a closed-loop sender would fall 0.6 s behind per request;
    # the bound is loose because the machine is shared (a correctness bound, not a speed target)
    assert lags[0] >= -0.001 and lags[-1] < 0.25, lags[-5:]
    t0 = min(r["created_at"] for r in rows)
    steady = sorted(r["created_at"] - t0 for r in rows if r["client_group"] == "steady")
    assert steady == pytest.approx([k / 20.0 for k in range(40)], abs=0.002)
    assert elapsed < 2.0 + 0.6 + 1.5  # the last request, sent at < 2 s, answered 0.6 s later
    for r in rows:  # Galileo's trace fields
        assert r["request_id"] == f"{r['client']}:{r['seq']}" and r["bytes"] == len(b"slow answer")
        assert r["created_at"] <= r["sent_at"] < r["done_at"] and r["error"] is None
    assert {r["service"] for r in rows} == {"zone", "35.6762_139.6503"}
    assert len(Path(tmp_path / "requests.jsonl").read_text().splitlines()) == len(rows)


def test_group_senders_give_each_client_its_own_schedule(tmp_path):
    path = write_scenario(tmp_path, """\
  - name: a
    service: zone
    clients: 3
    ia: {dist: expon, mean_s: 0.1, seed: 5}
""")
    (group,) = scenarios.load(path).workload
    senders = group_senders([group], duration_s=10.0, client_prefix="h",
                            targets=lambda _g, _i: (static_target("http://127.0.0.1:9/"), None, "app"))
    assert [s.client_id for s in senders] == ["h/a/0", "h/a/1", "h/a/2"]
    firsts = [list(s.offsets)[:5] for s in senders]
    assert len({tuple(f) for f in firsts}) == 3
    again = group_senders([group], duration_s=10.0, client_prefix="h",
                          targets=lambda _g, _i: (static_target("http://127.0.0.1:9/"), None, "app"))
    assert [list(s.offsets)[:5] for s in again] == firsts


def test_krios_client_ia_records_the_trace_fields(slow_server, tmp_path):
    SlowHandler.delay_s = 0.0
    db = tmp_path / "r.sqlite"
    try:
        proc = subprocess.run([KRIOS, "client", "--target", slow_server, "--ia", "expon:mean_s=0.02,seed=1",
                               "--clients", "2", "--duration-s", "1", "--db", str(db)],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    finally:
        SlowHandler.delay_s = 0.6
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    rows = ResultsStore(db).rows(out["run_id"], "requests")
    assert len(rows) == out["sent"] > 60 and {r["status"] for r in rows} == {"ok"}
    assert len({r["client"] for r in rows}) == 2 and len({r["request_id"] for r in rows}) == len(rows)


def test_v4_database_gains_the_v5_columns_and_keeps_its_rows(tmp_path):
    db = tmp_path / "old.sqlite"
    conn = sqlite3.connect(db)
    v4 = {k: v for k, v in schema.TABLES["requests"].items()
          if k not in ("request_id", "client_group", "service", "created_at", "done_at", "bytes")}
    conn.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, scenario TEXT, seed INTEGER, "
                 "started_at REAL NOT NULL, finished_at REAL, status TEXT NOT NULL DEFAULT 'incomplete', "
                 "meta TEXT NOT NULL DEFAULT '{}')")
    conn.execute(f"CREATE TABLE requests (run_id TEXT NOT NULL, {', '.join(f'{k} {v}' for k, v in v4.items())})")
    conn.execute("INSERT INTO runs (id, kind, started_at) VALUES ('20260101T000000Z-old-abcd', 'client', 1.0)")
    conn.execute("INSERT INTO requests (run_id, seq, status) VALUES ('20260101T000000Z-old-abcd', 7, 'ok')")
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    store = ResultsStore(db)
    (row,) = store.rows("20260101T000000Z-old-abcd", "requests")
    assert row["seq"] == 7 and row["request_id"] is None and row["bytes"] is None
    assert store.rows("20260101T000000Z-old-abcd", "telemetry") == []
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION >= 5


def test_krios_client_runs_selected_groups_of_the_scenario_workload(slow_server, tmp_path):
    path = write_scenario(tmp_path, """\
  - {name: steady, service: zone, clients: 2, rate_hz: 20}
  - {name: bursty, service: 35.6762_139.6503, ia: {dist: expon, mean_s: 0.02}}
  - {name: idle, service: zone, rate_hz: 1}
""")
    db = tmp_path / "r.sqlite"
    SlowHandler.delay_s = 0.0
    try:
        proc = subprocess.run([KRIOS, "client", "--scenario", str(path), "--workload", "--group", "steady",
                               "--group", "bursty", "--target", slow_server, "--duration-s", "1", "--db", str(db)],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        bad = subprocess.run([KRIOS, "client", "--scenario", str(path), "--workload", "--group", "nope",
                              "--target", slow_server, "--duration-s", "1", "--db", str(db)],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    finally:
        SlowHandler.delay_s = 0.6
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out["groups"]) == {"steady", "bursty"} and out["groups"]["steady"]["sent"] == 40
    rows = ResultsStore(db).rows(out["run_id"], "requests")
    assert {(r["client_group"], r["service"]) for r in rows} == {("steady", "zone"), ("bursty", "35.6762_139.6503")}
    assert bad.returncode == 2 and "--group: nope: no such group" in bad.stderr
