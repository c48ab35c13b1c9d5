"""Report generation: exports, summary, kube-burner documents, PNG figures, report.md, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from krios.cli import main
from krios.results.report import generate
from krios.results.store import ResultsStore

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fill(st: ResultsStore, rid: str, seed: int = 1) -> None:
    """A small but complete run: a 2 x 3 sweep with warm-up, 10 min of emulation, requests."""
    rng = np.random.default_rng(seed)
    rows, cell = [], 0
    for sched, k in (("krios-scheduler", 2.0), ("default-scheduler", 2.5)):
        for d in (0.0, 25.0, 100.0):
            for i in range(7):
                t0 = 1.8e9 + cell * 60 + i
                sl = 8 + k * 2 * d + rng.lognormal(1.0, 0.4)
                rows.append({"scheduler": sched, "latency_ms": d, "cell": cell, "sample": i, "warmup": int(i < 2),
                             "pod": f"b{cell}-{i}", "node": "krios-worker-1", "t_submit": t0,
                             "t_bound": t0 + sl / 1e3, "t_ready": t0 + (sl + 5) / 1e3, "t_delete": t0 + 1,
                             "t_deleted": t0 + 1.01, "schedulingLatency": sl, "podReadyLatency": sl + 5,
                             "deletionLatency": 10.0})
            cell += 1
    rows[-1].update(error="not ready within 30 s", podReadyLatency=None, t_ready=None)
    st.add_many(rid, "pod_latency", rows)
    ticks, nodes = [], ["krios-worker-0", "krios-worker-1"]
    for k in range(60):
        serving = 0 if k < 30 else 1
        for j, n in enumerate(nodes):
            ticks.append({"t_sim": 1.8e9 + 10 * k, "t_wall": 1.8e9 + k, "node": n, "sat_id": 5 + 10 * j,
                          "serving": int(j == serving), "in_zone": 1, "rtt_ms": 6.0 + j + np.sin(k / 5)})
    st.add_many(rid, "ticks", ticks)
    st.add(rid, "handovers", {"t_sim": 1.8e9 + 300, "from_node": nodes[0], "to_node": nodes[1], "from_sat": 5,
                              "to_sat": 15, "lead_s": 25.0, "mode": "proactive"})
    st.add_many(rid, "requests", [{"seq": q, "sent_at": 1.8e9 + q, "node": nodes[q >= 30], "latency_ms": 8.0 + q % 3
                                   if q != 7 else None, "status": "ok" if q != 7 else "timeout"} for q in range(60)])


@pytest.fixture
def db(tmp_path):
    return tmp_path / "results" / "krios.sqlite"


def test_report_writes_every_file_and_the_figures_are_real_pngs(db):
    st = ResultsStore(db)
    rid = st.start_run("experiment", scenario="sf_4workers", seed=3)
    fill(st, rid)
    st.finish_run(rid)
    report = generate(st, rid)
    out = report.parent
    assert out == db.parent / rid
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "run.json", "summary.csv", "summary.json", "podLatencyMeasurement.jsonl",
            "pod_latency.jsonl", "pod_latency.csv", "ticks.csv", "requests.jsonl", "handovers.csv",
            "latency_cdf.png", "latency_vs_delay.png", "handover_timeline.png"} <= names
    for png in out.glob("*.png"):
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 20_000, png.name
    text = report.read_text()
    assert f"# Run `{rid}`" in text and "**complete**" in text
    assert "### schedulingLatency" in text and "| krios-scheduler | 25 | 5 | 0 |" in text
    assert "median ratio to `default-scheduler`" in text
    assert "1 handovers (1 proactive)" in text and "60 requests (60 from unrecorded), 1 failed" in text
    for fig in ("latency_cdf.png", "latency_vs_delay.png", "handover_timeline.png"):
        assert f"]({fig})" in text
    with (out / "summary.csv").open() as fh:
        summary = list(csv.DictReader(fh))
    assert len(summary) == 2 * 3 * 3  # schedulers x delays x metrics
    ready = next(r for r in summary if r["scheduler"] == "default-scheduler" and r["latency_ms"] == "100.0"
                 and r["metric"] == "podReadyLatency")
    assert (ready["n"], ready["errors"]) == ("4", "1")
    docs = [json.loads(x) for x in (out / "podLatencyMeasurement.jsonl").read_text().splitlines()]
    assert len(docs) == 42 and docs[0]["metricName"] == "podLatencyMeasurement"
    assert {"schedulingLatency", "podReadyLatency", "deletionLatency", "podName", "uuid"} <= set(docs[0])


def test_report_of_a_killed_run_says_so_and_cli_regenerates_and_lists(db, capsys):
    st = ResultsStore(db)
    rid = st.start_run("bench-latency", scenario="sf_4workers", seed=0, collect=False)
    st.add(rid, "pod_latency", {"scheduler": "krios-scheduler", "latency_ms": 0.0, "cell": 0, "sample": 0,
                                "warmup": 0, "schedulingLatency": 12.0, "podReadyLatency": 20.0,
                                "deletionLatency": 9.0})
    assert main(["report", rid[:20], "--db", str(db)]) == 0
    path = capsys.readouterr().out.strip()
    text = Path(path).read_text()
    assert "never finished" in text and "**incomplete**" in text
    assert main(["runs", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert rid in out and "incomplete" in out and "pod_latency 1" in out
    assert main(["runs", "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"]["pod_latency"] == 1


def test_runs_start_and_finish_from_the_command_line(db, capsys):
    assert main(["runs", "start", "--db", str(db), "--kind", "experiment", "--scenario", "sf_4workers",
                 "--meta", '{"playbook": "site.yml"}']) == 0
    rid = capsys.readouterr().out.strip()
    assert main(["runs", "finish", rid, "--db", str(db), "--status", "failed"]) == 0
    run = ResultsStore(db).run(rid)
    assert run["status"] == "failed" and run["meta"]["playbook"] == "site.yml"


def test_bad_input_is_one_line_and_exit_2(db, capsys):
    ResultsStore(db)
    assert main(["report", "20990101T000000Z-none-0000", "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("krios: error: ") and "no such run" in err[0]
    assert main(["runs", "start", "--db", str(db), "--meta", "[1]"]) == 2
    assert "--meta" in capsys.readouterr().err


def test_handovers_are_read_off_the_ticks_when_not_recorded(db):
    from krios.results.timeline import handovers_from_ticks

    # Node a serves sat 1 until t=30; b (sat 2) serves from t=30; sat 1 stays in the zone until t=50.
    ticks = []
    for t in range(0, 80, 10):
        ticks.append({"t_sim": float(t), "t_wall": t / 10, "node": "a", "sat_id": 1, "serving": int(t < 30),
                      "in_zone": int(t <= 50), "rtt_ms": 5.0})
        ticks.append({"t_sim": float(t), "t_wall": t / 10, "node": "b", "sat_id": 2, "serving": int(t >= 30),
                      "in_zone": 1, "rtt_ms": 6.0})
    (h,) = handovers_from_ticks(ticks)
    assert (h["t_sim"], h["from_node"], h["to_node"], h["from_sat"], h["to_sat"]) == (30.0, "a", "b", 1, 2)
    assert h["lead_s"] == 20.0 and h["mode"] == "before exit"
    st = ResultsStore(db)
    rid = st.start_run("emulator", collect=False)
    st.add_many(rid, "ticks", ticks)
    text = generate(st, rid).read_text()
    assert "1 handovers (1 before exit), lead before zone exit: median 20.0 s" in text
    assert (db.parent / rid / "handovers_from_ticks.csv").is_file()
