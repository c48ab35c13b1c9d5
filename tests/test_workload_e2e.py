"""Done-when of issue #17: a scenario with two client groups (constant and exponential) aimed at two
zones' apps runs end to end on the local cluster (real etcd + kube-apiserver, virtual kubelets, the
emulator, two stand-in apps, `krios client --workload`, `krios telemetry --local`), all in one
results run: both groups' request traces and telemetry rows for every node and interval."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from krios.config import scenarios
from krios.emulation.appview import ClusterView
from krios.emulation.standin import StandIn
from krios.emulation.workload import resolve_app
from krios.results.report import generate
from krios.results.store import ResultsStore

pytestmark = pytest.mark.cluster

KRIOS = str(Path(sys.executable).parent / "krios")
TOKYO = "35.6762_139.6503"


def app_pod(name: str, leozone: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"leozone": leozone, "app": "krios-app"}},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx"}]}}  # fmt: skip


def test_two_groups_two_zones_traces_and_telemetry(tmp_path):
    from kubernetes import client as k8s

    from krios.localcluster import LocalCluster
    from krios.localcluster.state import load_state

    rnd = random.Random(os.getpid() ^ time.monotonic_ns())
    port_sf, port_tokyo = rnd.randint(30100, 31300), rnd.randint(31400, 32700)
    scenario_path = tmp_path / "twozones.yml"
    scenario_path.write_text(f"""\
name: twozones
zone: {{lat: 37.7749, lon: -122.4194, radius_km: 100, min_elevation_deg: 25}}
workers: 4
acceleration: 10
seed: 17
workload:
  - name: steady
    service: zone
    port: {port_sf}
    clients: 2
    rate_hz: 10
  - name: bursty
    service: {TOKYO}
    port: {port_tokyo}
    ia: {{dist: expon, mean_s: 0.05}}
""")
    sf = scenarios.load(scenario_path).leozone
    cl = LocalCluster(tmp_path / "cluster", workers=4, control_plane_nodes=1, components=(),
                      kubelet_ready_delay_s=0.3, kubelet_jitter_s=0.1, owner_pid=os.getpid())  # fmt: skip
    cl.up()
    procs: list[subprocess.Popen] = []
    db = tmp_path / "results" / "krios.sqlite"
    env = dict(os.environ, KRIOS_RESULTS_DB=str(db))
    kube = ["--kubeconfig", str(cl.kubeconfig)]
    try:
        core = k8s.CoreV1Api(cl.api_client())
        core.create_namespaced_pod("default", app_pod("app-sf", sf, "krios-worker-0"))
        core.create_namespaced_pod("default", app_pod("app-tokyo", TOKYO, "krios-worker-2"))
        store = ResultsStore(db)
        run_id = store.start_run("experiment", scenario="twozones", seed=17)

        def spawn(*argv: str) -> subprocess.Popen:
            name = argv[0]
            p = subprocess.Popen([KRIOS, *argv, "--run-id", run_id], env=env, stdout=subprocess.PIPE,
                                 stderr=open(tmp_path / f"{name}.err", "w"), text=True)  # noqa: SIM115  # fmt: skip
            procs.append(p)
            return p

        telemetry = spawn("telemetry", "--local", "--state-dir", str(cl.state_dir), "--interval-s", "0.5")
        emulator = spawn("emulator", "--scenario", str(scenario_path), "--duration-s", "90", "--tick-s", "2", *kube)
        views = [ClusterView(core, f"leozone={sf}"), ClusterView(core, f"leozone={TOKYO}")]
        with StandIn(views[0], port_sf), StandIn(views[1], port_tokyo):
            deadline = time.time() + 30
            while time.time() < deadline and not all(v.snapshot.serving_node for v in views):
                time.sleep(0.1)
            assert [v.snapshot.serving_node for v in views] == ["krios-worker-0", "krios-worker-2"]
            client = spawn("client", "--scenario", str(scenario_path), "--workload", "--service-from-cluster",
                           "--duration-s", "5", "--timeout-s", "1", *kube)  # fmt: skip
            out, _ = client.communicate(timeout=60)
            assert client.returncode == 0, (tmp_path / "client.err").read_text()[-2000:]
            assert emulator.wait(timeout=60) == 0, (tmp_path / "emulator.err").read_text()[-2000:]
        telemetry.send_signal(signal.SIGTERM)
        tel_out, _ = telemetry.communicate(timeout=30)
        assert telemetry.returncode == 0, (tmp_path / "telemetry.err").read_text()[-2000:]
        nodes = [*load_state(cl.state_dir).control_plane_nodes, *load_state(cl.state_dir).workers]
        # a group aimed at a Service: its selector and nodePort; a Service that does not exist: one error line
        core.create_namespaced_service("default", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "tokyo-app"},
            "spec": {"type": "NodePort", "selector": {"leozone": TOKYO}, "ports": [{"port": 80}]}})  # fmt: skip
        svc_path = tmp_path / "svc.yml"
        svc_path.write_text("name: svc\nzone: {lat: 1, lon: 2}\nworkers: 1\nworkload:\n"
                            "  - {service: tokyo-app, rate_hz: 1}\n  - {service: nosuch.default, rate_hz: 1}\n")
        first, _unknown = scenarios.load(svc_path).workload
        ref = resolve_app(core, first, 0, source=str(svc_path))
        assert ref.selector == f"leozone={TOKYO}" and ref.namespace == "default" and 30000 <= ref.port <= 32767
        bad = subprocess.run([KRIOS, "client", "--scenario", str(svc_path), "--workload", "--service-from-cluster",
                              "--duration-s", "1", *kube], env=env, capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1] == (
            f"krios: error: {svc_path}: workload[1].service: unknown service: no Service default/nosuch in the cluster")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        cl.down()
    summary = json.loads(out)
    assert set(summary["groups"]) == {"steady", "bursty"}
    requests = store.rows(run_id, "requests")
    steady = [r for r in requests if r["client_group"] == "steady"]
    bursty = [r for r in requests if r["client_group"] == "bursty"]
    assert len(steady) == 2 * 50 and len({r["client"] for r in steady}) == 2
    assert 50 <= len(bursty) <= 160  # Poisson, mean 100 in 5 s
    assert {(r["service"], r["node"]) for r in steady if r["status"] == "ok"} == {("zone", "krios-worker-0")}
    assert {(r["service"], r["node"]) for r in bursty if r["status"] == "ok"} == {(TOKYO, "krios-worker-2")}
    ok = [r for r in requests if r["status"] == "ok"]
    assert len(ok) >= 0.95 * len(requests)
    assert all(r["app"] in (f"leozone={sf}", f"leozone={TOKYO}") for r in requests)
    assert any(r["sat_id"] is not None for r in steady)  # the emulator's mapping reached the records
    for r in ok:
        assert r["request_id"] and r["created_at"] <= r["sent_at"] <= r["done_at"] and r["bytes"] > 0
        assert r["sent_at"] - r["created_at"] < 0.5  # open loop (loose: the machine is shared)
    # telemetry: every node, every interval
    rows = store.rows(run_id, "telemetry")
    samples = json.loads(tel_out)["samples"]
    assert samples >= 10
    for node in nodes:
        got = {r["interval"] for r in rows if r["node"] == node and r["kind"] == "cpu" and r["item"] == "total"}
        assert got == set(range(samples)), node
        assert {r["interval"] for r in rows if r["node"] == node and r["kind"] == "net"} == set(range(samples))
    watched = {r["item"] for r in rows if r["kind"] == "proc"}
    assert {"etcd", "kube-apiserver"} <= watched, watched
    report = generate(store, run_id).read_text()
    assert "## Workload groups" in report and "## Node telemetry" in report and "| steady | `zone` | 2 |" in report
