"""``krios bench latency`` against a real control plane: both schedulers behind the delay proxy."""

from __future__ import annotations

import os

import pytest

from krios.cli import main
from krios.results.store import ResultsStore


@pytest.mark.cluster
def test_latency_sweep_measures_both_schedulers_behind_the_proxy(tmp_path, capsys):
    from krios.localcluster import LocalCluster

    cluster = LocalCluster(tmp_path / "cluster", workers=2, control_plane_nodes=1,
                           components=("kube-scheduler",), kubelet_ready_delay_s=0.05, kubelet_jitter_s=0.0,
                           owner_pid=os.getpid())
    cluster.up()
    try:
        db = tmp_path / "results" / "krios.sqlite"
        code = main(["bench", "latency", "--latency-ms", "0,40", "--samples-per-latency", "2", "--warmup", "1",
                     "--seed", "1", "--kubeconfig", str(cluster.kubeconfig), "--state-dir", str(cluster.state_dir),
                     "--db", str(db), "--timeout-s", "20"])
        out, err = capsys.readouterr()
        assert code == 0, err
        # The cluster's own kube-scheduler was paused for the sweep and is back.
        comps = {c["name"]: c for c in cluster.status()["components"]}
        assert comps["kube-scheduler"]["alive"] and comps["kube-scheduler"]["healthy"]
    finally:
        cluster.down()
    st = ResultsStore(db)
    (run,) = st.runs()
    assert run["status"] == "complete" and run["kind"] == "bench-latency"
    assert run["meta"]["kube_version"].startswith("v1.20")
    assert run["meta"]["bench"]["injector"]["mode"] == "spawn"
    rows = st.rows(run["id"], "pod_latency")
    assert len(rows) == 6 * 3  # (2 schedulers x 2 delays + 2 repeated zero cells) x (1 warm-up + 2)
    assert all(r["error"] is None for r in rows), [r["error"] for r in rows if r["error"]]
    assert {r["scheduler"] for r in rows} == {"krios-scheduler", "default-scheduler"}
    for r in rows:
        assert r["t_submit"] <= r["t_seen"] <= r["t_bound"] <= r["t_ready"] <= r["t_delete"] <= r["t_deleted"]
        assert r["node"].startswith("krios-worker-")
        if r["latency_ms"] == 40.0:
            # The scheduler sees the pod 40 ms late and its binding arrives 40 ms late.
            assert r["schedulingLatency"] >= 80.0
    assert "[bench latency] 18/18 samples" in err
    assert "schedulingLatency p50 ms" in out and "krios-scheduler:" in out
    assert (db.parent / run["id"] / "report.md").is_file()
    assert (db.parent / run["id"] / "latency_vs_delay.png").is_file()
    assert not any(p.name.startswith("kubeconfig") for p in (db.parent / run["id"]).rglob("*"))
