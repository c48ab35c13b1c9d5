"""`krios runs export|import`: rows measured on another node join the controller's run (public CLI)."""

from __future__ import annotations

import json

from krios.cli import main
from krios.results.store import ResultsStore


def test_rows_move_from_a_node_database_into_the_controllers_run(tmp_path, capsys):
    node, controller = tmp_path / "node.sqlite", tmp_path / "controller.sqlite"
    st = ResultsStore(node)
    run = st.start_run("bench-latency")
    st.add_many(run, "pod_latency", [{"pod": "p0", "scheduler": "krios-scheduler", "latency_ms": 50.0,
                                      "schedulingLatency": 120.0}])
    capsys.readouterr()
    assert main(["runs", "export", run, "pod_latency", "--db", str(node)]) == 0
    exported = capsys.readouterr().out
    assert json.loads(exported.splitlines()[0])["pod"] == "p0"

    target = ResultsStore(controller).start_run("experiment")
    path = tmp_path / "rows.jsonl"
    path.write_text(exported)
    assert main(["runs", "import", target, "pod_latency", str(path), "--db", str(controller),
                 "--meta", "injection.sweep=netem"]) == 0
    out = ResultsStore(controller)
    (row,) = out.rows(target, "pod_latency")
    assert row["pod"] == "p0" and row["schedulingLatency"] == 120.0
    assert out.run(target)["meta"]["injection"]["sweep"] == "netem"


def test_bad_import_input_is_one_line(tmp_path, capsys):
    db = tmp_path / "c.sqlite"
    run = ResultsStore(db).start_run("experiment")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"pod": "p0"}\nnot json\n')
    assert main(["runs", "import", run, "pod_latency", str(bad), "--db", str(db)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "line 2" in err[0] and "bad.jsonl" in err[0]
    assert main(["runs", "import", run, "pod_latency", str(bad), "--db", str(db), "--meta", "nodot=1"]) != 0
