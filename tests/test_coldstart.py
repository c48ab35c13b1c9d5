"""``krios bench coldstart`` and ``krios bench churn`` on a real control plane with virtual kubelets."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from krios.cli import main
from krios.results import turnover
from krios.results.store import ResultsStore

# --------------------------------------------------------------------------- no cluster


@pytest.mark.parametrize(("argv", "line"), [
    (["coldstart", "--rps", ""], "krios: error: --rps: at least one rate is needed"),
    (["coldstart", "--rps", "1,-2"], "krios: error: --rps: -2: must be a number > 0"),
    (["coldstart", "--rps", "1,fast"], "krios: error: --rps: fast: must be a number > 0"),
    (["coldstart", "--duration-s", "0"], "krios: error: --duration-s: 0.0: must be a positive number"),
    (["coldstart", "--duration-s", "soon"], "krios: error: --duration-s: soon: must be a number"),
    (["coldstart", "--schedulers", "krios-scheduler,volcano"],
     "krios: error: --schedulers: volcano: unknown scheduler"),
    (["coldstart", "--max-error-share", "2"], "krios: error: --max-error-share: 2.0: must be a number in [0, 1)"),
    (["coldstart", "--p99-bound-ms", "-5"], "krios: error: --p99-bound-ms: -5.0: must be a positive number"),
    (["churn", "--lifetime-s", "0"], "krios: error: --lifetime-s: 0.0: must be a positive number"),
    (["churn", "--rate", "-1"], "krios: error: --rate: -1.0: must be a positive number"),
    (["churn", "--duration-s", "-3"], "krios: error: --duration-s: -3.0: must be a positive number"),
    (["churn", "--schedulers", "nope"], "krios: error: --schedulers: nope: unknown scheduler"),
])
def test_bad_options_get_one_line_naming_the_option_and_leave_nothing(argv, line, capsys, tmp_path):
    db = tmp_path / "r.sqlite"
    assert main(["bench", *argv, "--db", str(db), "--kubeconfig", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(line), err
    assert not db.exists()


def test_a_step_saturates_on_p99_or_on_errors_and_the_saturation_rate_is_the_step_below():
    ok = turnover.verdict([100.0] * 50, 0, p99_bound_ms=500, max_error_share=0.05)
    assert not ok.saturated
    slow = turnover.verdict([100.0] * 50 + [900.0] * 2, 0, p99_bound_ms=500, max_error_share=0.05)
    assert slow.saturated and slow.reason.startswith("p99")
    failing = turnover.verdict([100.0] * 18, 2, p99_bound_ms=500, max_error_share=0.05)
    assert failing.saturated and failing.reason.startswith("errors 10%")
    # arrivals still in flight past the bound count: a stalled cluster saturates although nothing completes
    stalled = turnover.verdict([], 0, p99_bound_ms=500, max_error_share=0.05, over_bound_ms=[600.0] * 5,
                               min_samples=5)
    assert stalled.saturated
    assert not turnover.verdict([900.0], 0, p99_bound_ms=500, max_error_share=0.05, min_samples=5).saturated
    cells = [{"scheduler": "a", "rps": r, "repeat": 0, "saturated": r >= 5, "reason": "p99 x" if r >= 5 else ""}
             for r in (1, 2, 5)]
    cells += [{"scheduler": "b", "rps": 1, "repeat": 0, "saturated": True, "reason": "errors y"},
              {"scheduler": "c", "rps": 1, "repeat": 0, "saturated": False, "reason": ""}]
    sat = turnover.saturation(cells)
    assert sat["a"] == {"rps": 2, "at": 5, "reason": "p99 x", "max_rps": 5}
    assert sat["b"]["rps"] is None and "first step saturated" in turnover.saturation_text(sat["b"])
    assert turnover.saturation_text(sat["c"]) == ">= 1 rps (no step saturated)"


# --------------------------------------------------------------------------- on a cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from krios.localcluster import LocalCluster

    cl = LocalCluster(tmp_path_factory.mktemp("coldstart") / "cluster", workers=2, control_plane_nodes=1,
                      components=("kube-scheduler",), kubelet_ready_delay_s=0.3, kubelet_jitter_s=0.0,
                      owner_pid=os.getpid())
    cl.up()
    try:
        yield cl
    finally:
        cl.down()


def _args(cluster, db, namespace: str) -> list[str]:
    return ["--kubeconfig", str(cluster.kubeconfig), "--state-dir", str(cluster.state_dir), "--db", str(db),
            "--namespace", namespace, "--timeout-s", "20", "--seed", "3"]


@pytest.mark.cluster
def test_rate_steps_stop_at_the_first_saturated_step_for_both_schedulers(cluster, tmp_path, capsys):
    db = tmp_path / "results" / "krios.sqlite"
    # Each pod takes >= 0.3 s to turn Ready: at 2/s a handful are in flight, at 40/s far more than 6, so
    # arrivals are dropped (errors) and the second step saturates; the third is never run.
    code = main(["bench", "coldstart", "--rps", "2,40,80", "--duration-s", "3", "--max-inflight", "6",
                 "--max-error-share", "0.2", "--min-samples", "10", "--p99-bound-ms", "30000",
                 *_args(cluster, db, "cs-steps")])
    out, err = capsys.readouterr()
    assert code == 0, err
    st = ResultsStore(db)
    (run,) = st.runs()
    assert run["status"] == "complete" and run["kind"] == "bench-coldstart"
    rows = st.rows(run["id"], "coldstart")
    assert {r["rps"] for r in rows} == {2.0, 40.0}  # never raised to 80
    for sched in ("krios-scheduler", "default-scheduler"):
        first = [r for r in rows if r["scheduler"] == sched and r["rps"] == 2.0 and not r["repeat"]]
        second = [r for r in rows if r["scheduler"] == sched and r["rps"] == 40.0]
        repeat = [r for r in rows if r["scheduler"] == sched and r["repeat"]]
        assert first and repeat and all(r["error"] is None for r in first + repeat)
        for r in first + repeat:
            assert r["t_arrival"] <= r["t_submit"] <= r["t_bound"] <= r["t_ready"] == r["t_served"] \
                <= r["t_delete"] <= r["t_deleted"]
            assert r["coldStartLatency"] >= 300.0 and r["served_via"] == "ready"
            assert r["node"].startswith("krios-worker-")
        assert any("dropped" in (r["error"] or "") for r in second)
        assert len(second) < 40 * 3 * 0.6  # the step stopped early
        assert run["meta"]["saturation"][sched]["rps"] == 2.0
        assert run["meta"]["saturation"][sched]["at"] == 40.0
    assert "saturation rate" in out and "2 rps (saturated at 40 rps: errors" in out
    assert "[bench coldstart] step 2/3 40 rps" in err and "achieved" in err and "ETA" in err
    report = (db.parent / run["id"] / "report.md").read_text()
    assert "## Cold-start sweep" in report and "saturated at 40 rps" in report
    assert (db.parent / run["id"] / "coldstart_vs_rate.png").is_file()
    comps = {c["name"]: c for c in cluster.status()["components"]}
    assert comps["kube-scheduler"]["alive"]  # paused for the benchmark's own, and back


@pytest.mark.cluster
def test_a_tiny_bound_saturates_the_first_step_early(cluster, tmp_path, capsys):
    # Inside a run another process started (as the experiment's measure.yml does with --run-id): the bound
    # and settings reach that run's metadata, so its report judges the steps as the bench did.
    db = tmp_path / "r.sqlite"
    run_id = ResultsStore(db).start_run("experiment", meta={"mode": "local"})
    code = main(["bench", "coldstart", "--rps", "2,5", "--duration-s", "6", "--p99-bound-ms", "1",
                 "--min-samples", "3", "--schedulers", "default-scheduler", "--no-spawn", "--no-report",
                 "--quiet", "--run-id", run_id, *_args(cluster, db, "cs-tiny")])
    out, err = capsys.readouterr()
    assert code == 0, err
    st = ResultsStore(db)
    (run,) = st.runs()
    assert run["id"] == run_id and run["meta"]["coldstart"]["p99_bound_ms"] == 1.0
    rows = st.rows(run["id"], "coldstart")
    assert {r["rps"] for r in rows} == {2.0}
    assert 3 <= len(rows) <= 6
    assert "default-scheduler         < 2 rps (the first step saturated)" in out
    assert main(["report", run_id, "--db", str(db)]) == 0
    report = (db.parent / run_id / "report.md").read_text()
    assert "| default-scheduler | < 2 rps (the first step saturated) (saturated at 2 rps: p99 " in report, report


@pytest.mark.cluster
def test_rows_measured_before_a_kill_stay_and_the_run_is_not_complete(cluster, tmp_path):
    db = tmp_path / "r.sqlite"
    cmd = [sys.executable, "-m", "krios", "bench", "coldstart", "--rps", "5", "--duration-s", "60",
           "--schedulers", "default-scheduler", "--no-spawn", "--quiet", *_args(cluster, db, "cs-kill")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        n = 0
        while time.monotonic() < deadline and n < 8:
            time.sleep(0.5)
            assert proc.poll() is None, proc.stderr.read().decode()
            if db.exists():
                with sqlite3.connect(db) as conn:
                    try:
                        n = conn.execute("SELECT COUNT(*) FROM coldstart").fetchone()[0]
                    except sqlite3.OperationalError:
                        n = 0
        assert n >= 8
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    st = ResultsStore(db)
    (run,) = st.runs()
    assert run["status"] == "incomplete"
    rows = st.rows(run["id"], "coldstart")
    assert len(rows) >= 8
    for r in rows:  # every row written is a whole arrival: created, Ready, served, gone
        assert r["error"] is None
        assert None not in (r["t_submit"], r["t_bound"], r["t_ready"], r["t_served"], r["t_deleted"])
    assert main(["report", run["id"], "--db", str(db)]) == 0
    report = (db.parent / run["id"] / "report.md").read_text()
    assert "## Cold-start sweep" in report and "incomplete" in report


@pytest.mark.cluster
def test_churn_reports_achieved_rate_latency_and_a_backlog_that_drains(cluster, tmp_path, capsys):
    db = tmp_path / "results" / "r.sqlite"
    code = main(["bench", "churn", "--rate", "8", "--duration-s", "3", "--lifetime-s", "0.5",
                 "--schedulers", "default-scheduler", "--no-spawn", *_args(cluster, db, "churn")])
    out, err = capsys.readouterr()
    assert code == 0, err
    st = ResultsStore(db)
    (run,) = st.runs()
    assert run["status"] == "complete" and run["kind"] == "bench-churn"
    pods = st.rows(run["id"], "coldstart")
    samples = st.rows(run["id"], "churn")
    assert {r["mode"] for r in pods} == {"churn"} and {r["cell"] for r in pods} == {0, 1}  # and the repeat
    assert all(r["error"] is None for r in pods)
    for r in pods:  # lived about lifetime_s after Ready
        assert r["t_delete"] - r["t_ready"] >= 0.45
    for cell in (0, 1):
        mine = [s for s in samples if s["cell"] == cell]
        assert len(mine) >= 6
        assert max(s["not_deleted"] for s in mine) > 0
        assert mine[-1]["not_deleted"] == 0 and mine[-1]["not_ready"] == 0  # drained
        assert mine[-1]["created"] == len([r for r in pods if r["cell"] == cell])
    assert "created/s" in out and "Ready/s" in out
    assert "[bench churn] cell 1/2" in err
    report = (db.parent / run["id"] / "report.md").read_text()
    assert "## Churn" in report and (db.parent / run["id"] / "churn_backlog.png").is_file()


@pytest.mark.cluster
def test_serve_http_sends_one_request_to_the_pods_address(cluster, tmp_path, capsys):
    """Virtual pods have their node's address: real HTTP servers there answer the one request."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from krios.kube.client import as_client, list_items, node_path
    from krios.kube.config import load_client
    from krios.kube.objects import node_internal_ip

    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_a) -> None:
            pass

    core = as_client(load_client(str(cluster.kubeconfig)))
    ips = [ip for n in list_items(core, node_path()) if (ip := node_internal_ip(n)) != "127.0.0.1"]
    servers = [ThreadingHTTPServer((ips[0], 0), Handler)]  # a free port, then the same port on every node
    port = servers[0].server_address[1]
    servers += [ThreadingHTTPServer((ip, port), Handler) for ip in ips[1:]]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    try:
        db = tmp_path / "r.sqlite"
        code = main(["bench", "coldstart", "--rps", "4", "--duration-s", "2", "--serve", "http", "--serve-port",
                     str(port), "--serve-path", "/hello", "--schedulers", "default-scheduler", "--no-spawn",
                     "--no-report", "--quiet", *_args(cluster, db, "cs-http")])
        err = capsys.readouterr().err
        assert code == 0, err
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()
    st = ResultsStore(db)
    (run,) = st.runs()
    rows = st.rows(run["id"], "coldstart")
    assert rows and all(r["error"] is None and r["served_via"] == "http" for r in rows)
    assert all(r["t_ready"] <= r["t_served"] <= r["t_delete"] for r in rows)
    assert len(hits) >= len(rows) and set(hits) == {"/hello"}
