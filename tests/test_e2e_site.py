"""The local experiment end to end: playbooks/site.yml on inventories/local through ansible-runner.

One short run (tiny emulation and sweep) driven by ansible_runner's Python API
on a private data dir, reading its job events: cluster up, deploy, daemons
behind the delay proxy, emulator + client, the benchmarks (latency sweep,
cold start, churn: ``krios_benchmarks``), report, teardown.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from krios.results.store import ResultsStore

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.cluster
@pytest.mark.slow
def test_site_yml_local_end_to_end_through_ansible_runner(tmp_path):
    import ansible_runner

    artifacts = tmp_path / "krios"
    db = tmp_path / "results" / "krios.sqlite"
    private = tmp_path / "runner"
    private.mkdir()
    venv_bin = str(Path(sys.executable).parent)
    result = ansible_runner.run(
        private_data_dir=str(private),
        project_dir=str(REPO),
        playbook="playbooks/site.yml",
        inventory=str(REPO / "inventories" / "local"),
        extravars={
            "scenario": "sf_4workers",
            "krios_artifacts_dir": str(artifacts),
            "krios_experiment_results_db": str(db),
            "krios_emulator_time": 200,  # 10 s of wall time at 20x
            "krios_latency_ms": [0, 60],
            "krios_samples_per_latency": 2,
            "krios_experiment_warmup": 1,
            "krios_benchmarks": ["latency", "coldstart", "churn"],
            "krios_experiment_coldstart_rps": [1, 2],
            "krios_experiment_coldstart_duration_s": 5,
            "krios_experiment_churn_rate": 2,
            "krios_experiment_churn_duration_s": 5,
            "krios_experiment_churn_lifetime_s": 1,
        },
        envvars={
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
            "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / "facts"),
        },
        quiet=True,
        timeout=1200,
    )
    events = list(result.events)
    failed = [e["event_data"].get("task") for e in events if e["event"] == "runner_on_failed"
              and not e["event_data"].get("ignore_errors")]
    assert result.status == "successful" and result.rc == 0, (failed, result.stdout.read()[-3000:])
    ok_tasks = {e["event_data"].get("task") for e in events if e["event"] == "runner_on_ok"}
    for task in ("Start the local control plane", "Run the delay proxy in front of the apiserver",
                 "Wait for the emulator to finish", "Sweep the injected delay (krios bench latency, attached to "
                 "the delay proxy)", "Cold-start sweep (krios bench coldstart)", "Churn (krios bench churn)",
                 "Write results/<run-id>/ (report.md, plots, CSV, JSON Lines)",
                 "Stop the local control plane and remove its state"):
        assert task in ok_tasks, task
    stats = next(e for e in events if e["event"] == "playbook_on_stats")["event_data"]
    assert not stats["failures"] and not stats["dark"]

    st = ResultsStore(db)
    (run,) = st.runs()
    assert run["kind"] == "experiment" and run["status"] == "complete" and run["scenario"] == "sf_4workers"
    assert run["meta"]["emulator"]["rtt_model"] == "physical"  # the RTT model the run used, recorded
    counts = st.counts(run["id"])
    # 4 nodes x 200 one-second ticks; a loaded machine makes the emulator skip
    # (and log as skipped) ticks it fell behind on, so ask for at least half.
    assert counts["ticks"] >= 4 * 100
    assert counts["requests"] >= 20
    # (2 schedulers x 2 delays + 2 repeated zero cells) x (1 warm-up + 2)
    rows = st.rows(run["id"], "pod_latency")
    assert len(rows) == 18 and not [r["error"] for r in rows if r["error"]]
    slow = [r["schedulingLatency"] for r in rows if r["latency_ms"] == 60.0]
    assert min(slow) >= 120.0  # two one-way delays at least: the watch event in, the binding out
    served = [r for r in st.rows(run["id"], "requests") if r["latency_ms"] is not None]
    assert served, "the client never reached the app"
    # Cold start and churn against the experiment's own schedulers, in the same run: every arrival recorded
    # for both schedulers, the backlog sampled, both sections in the report.
    turnover = st.rows(run["id"], "coldstart")
    assert {r["mode"] for r in turnover} == {"coldstart", "churn"}
    assert {r["scheduler"] for r in turnover} == {"krios-scheduler", "default-scheduler"}
    assert st.rows(run["id"], "churn")
    text = (db.parent / run["id"] / "report.md").read_text()
    assert "## Cold-start sweep" in text and "## Churn" in text
    # Telemetry of the local cluster's processes sampled through the emulation, per virtual node.
    telemetry = st.rows(run["id"], "telemetry")
    assert {r["node"] for r in telemetry if r["kind"] == "cpu"} >= {r["node"] for r in st.rows(run["id"], "ticks")}
    assert "## Node telemetry" in text
    out = db.parent / run["id"]
    for name in ("report.md", "latency_cdf.png", "latency_vs_delay.png", "handover_timeline.png",
                 "pod_latency.csv", "podLatencyMeasurement.jsonl", "ticks.jsonl", "summary.csv"):
        assert (out / name).is_file(), name
    # Torn down: no cluster state, no recorded process, no kubeconfig copy with credentials.
    assert not (artifacts / "cluster" / "state.json").exists()
    assert not list((artifacts / "run").glob("*.json"))
    assert not (artifacts / "run" / "kubeconfig-proxied").exists()
