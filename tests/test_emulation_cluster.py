"""The emulator, stand-in app and client on a real control plane (etcd + kube-apiserver) with virtual nodes.

These tests run their own small cluster: the emulator publishes the cluster-wide
``krios-clock`` ConfigMap (accelerated time) and relabels workers, which must not
leak into the shared session cluster other tests use.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from krios.config import scenarios
from krios.emulation.appview import ClusterView
from krios.emulation.emulator import Emulator, EmulatorConfig, select_nodes
from krios.emulation.standin import StandIn
from krios.errors import ConfigError
from krios.results.store import ResultsStore

pytestmark = pytest.mark.cluster

SCENARIO = scenarios.load("sf_4workers")
LEOZONE = SCENARIO.leozone
KRIOS = str(Path(sys.executable).parent / "krios")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from krios.localcluster import LocalCluster

    cl = LocalCluster(tmp_path_factory.mktemp("emu-cluster"), workers=4, control_plane_nodes=1, components=(),
                      kubelet_ready_delay_s=0.3, kubelet_jitter_s=0.1, owner_pid=os.getpid())  # fmt: skip
    cl.up()
    try:
        yield cl
    finally:
        cl.down()


@pytest.fixture(scope="module")
def core(cluster):
    from kubernetes import client

    return client.CoreV1Api(cluster.api_client())


@pytest.fixture
def results(tmp_path):
    return ResultsStore(tmp_path / "results" / "krios.sqlite")


def free_port() -> int:
    return random.Random(os.getpid() ^ time.monotonic_ns()).randint(30100, 32700)


def app_pod(name: str, node: str | None = None) -> dict:
    spec: dict = {"schedulerName": "krios-scheduler", "containers": [{"name": "app", "image": "nginx"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"leozone": LEOZONE, "app": "krios-app"}}, "spec": spec}  # fmt: skip


def delete_app_pods(core) -> None:
    core.delete_collection_namespaced_pod("default", label_selector="app=krios-app", grace_period_seconds=0)
    deadline = time.time() + 20
    while core.list_namespaced_pod("default", label_selector="app=krios-app").items and time.time() < deadline:
        time.sleep(0.1)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class LabelWatch:
    """Records every sat_id value each worker node shows, from a real watch on nodes."""

    def __init__(self, core, nodes):
        self.core, self.nodes = core, set(nodes)
        self.seen: dict[str, list[str | None]] = {n: [] for n in nodes}
        self._stop = threading.Event()
        self._listed = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        from kubernetes import watch

        w = watch.Watch()
        rv = self.core.list_node().metadata.resource_version
        self._listed.set()
        while not self._stop.is_set():
            for ev in w.stream(self.core.list_node, resource_version=rv, timeout_seconds=1):
                node = ev["object"]
                rv = node.metadata.resource_version
                if node.metadata.name in self.nodes:
                    value = (node.metadata.labels or {}).get("sat_id")
                    hist = self.seen[node.metadata.name]
                    if not hist or hist[-1] != value:
                        hist.append(value)
                if self._stop.is_set():
                    break

    def __enter__(self):
        self._thread.start()
        assert self._listed.wait(10), "the node watch did not start"  # no label change before it
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)


def test_select_nodes_takes_workers_in_order_and_refuses_too_few(core):
    assert select_nodes(core, 4) == [f"krios-worker-{i}" for i in range(4)]
    assert select_nodes(core, 2, names=["krios-worker-3", "krios-worker-1"]) == ["krios-worker-3", "krios-worker-1"]
    with pytest.raises(ConfigError, match="too few nodes: the scenario needs 6 workers, found 4"):
        select_nodes(core, 6)
    with pytest.raises(ConfigError, match="no such node"):
        select_nodes(core, 1, names=["krios-worker-9"])


def test_ten_emulated_minutes_relabel_nodes_and_keep_a_successor(core, results, tmp_path):
    """sf_4workers for 600 emulated s at 30x (20 s wall), ticks every 5 emulated s, no app."""
    cfg = EmulatorConfig.from_scenario(SCENARIO, duration_s=600, acceleration=30, tick_s=5)
    nodes = select_nodes(core, SCENARIO.workers)
    emu = Emulator(cfg, core, nodes, store=results, log_path=tmp_path / "ticks.jsonl")
    with LabelWatch(core, nodes) as watch:
        summary = emu.run()
        time.sleep(0.5)
    ticks = read_jsonl(tmp_path / "ticks.jsonl")
    # every tick logged: JSON Lines, the store (one row per node), the summary
    assert summary["status"] == "complete"
    assert summary["ticks"] + summary["skipped_ticks"] == 121
    assert len(ticks) == summary["ticks"] and summary["ticks"] >= 100
    assert [t["tick"] for t in ticks] == list(range(len(ticks)))
    assert results.counts(emu.run_id)["ticks"] == 4 * len(ticks)
    assert results.run(emu.run_id)["status"] == "complete"
    # emulated time advances by tick_s from the start; the wall clock at 1/30 of that
    t_sim = [t["t_sim"] for t in ticks]
    assert t_sim[0] == cfg.start and all(b - a >= 5 for a, b in itertools.pairwise(t_sim))
    wall = ticks[-1]["t_wall"] - ticks[0]["t_wall"]
    assert (t_sim[-1] - t_sim[0]) / wall == pytest.approx(30, rel=0.1)
    # every node has a satellite at every tick, all distinct; at least one in the zone
    for t in ticks:
        sats = [d["sat_id"] for d in t["nodes"].values()]
        assert None not in sats and len(set(sats)) == 4
        assert any(d["in_zone"] for d in t["nodes"].values())
        # a successor exists: the satellites cover the zone, without a gap, well past any handover lead
        assert t["covered_for_s"] > cfg.overlap_s
        assert t["successor_ok"]
    # nodes were relabelled as the constellation moved: one patch per change, never a removal
    changes = sum(len(t["changes"]) for t in ticks)
    assert summary["label_patches"] == changes == summary["mapping_changes"]
    assert changes >= 6  # 4 first labels + at least 2 satellites leaving in 10 minutes
    for node, hist in watch.seen.items():
        assert None not in hist[1:], f"{node} lost its sat_id label: {hist}"
        assert len(hist) - (hist[0] is None) == sum(1 for t in ticks for c in t["changes"] if c["node"] == node)
    # the cluster shows the final mapping, the latency matrix and the clock
    final = {n: d["sat_id"] for n, d in ticks[-1]["nodes"].items()}
    assert {n.metadata.name: int(n.metadata.labels["sat_id"]) for n in core.list_node().items
            if n.metadata.name in nodes} == final  # fmt: skip
    cm = core.read_namespaced_config_map("krios-emulator", "krios-system")
    assert json.loads(cm.data["mapping.json"])["tick"] == ticks[-1]["tick"]
    matrix = json.loads(core.read_namespaced_config_map("krios-latency", "krios-system").data["matrix.json"])
    assert matrix["unit"] == "ms" and set(matrix["rtt"]["client"]) == set(nodes)
    in_zone = [n for n, d in ticks[-1]["nodes"].items() if d["in_zone"]]
    # in the zone: 550-1250 km from the farthest client point, 1-2 hops of 9 ms
    assert in_zone and all(12 < matrix["rtt"]["client"][n] < 30 for n in in_zone)
    clock = json.loads(core.read_namespaced_config_map("krios-clock", "krios-system").data["clock.json"])
    assert clock["rate"] == 30 and clock["epoch_sim"] == cfg.start
    print(f"\nemulator alone: {json.dumps(summary)}")


def test_handover_with_scheduler_controller_standin_and_client(cluster, core, tmp_path):
    """The whole loop: emulator + krios scheduler + controller hand the app over; the client sees it."""
    pytest.importorskip("krios.control.controller")
    port = free_port()
    env = dict(os.environ, KRIOS_RESULTS_DB=str(tmp_path / "results.sqlite"))
    kube = ["--kubeconfig", str(cluster.kubeconfig)]
    procs: list[subprocess.Popen] = []

    def spawn(*argv: str, out: str) -> subprocess.Popen:
        p = subprocess.Popen([KRIOS, *argv, *kube], env=env, stdout=open(tmp_path / out, "w"),  # noqa: SIM115
                             stderr=subprocess.STDOUT)  # fmt: skip
        procs.append(p)
        return p

    view = ClusterView(core, f"leozone={LEOZONE}")
    try:
        emu = spawn("emulator", "--scenario", "sf_4workers", "--duration-s", "600", "--acceleration", "20",
                    "--tick-s", "5", "--lookahead-s", "60", "--log", str(tmp_path / "ticks.jsonl"),
                    out="emulator.out")  # fmt: skip
        time.sleep(1.0)  # the clock and first labels are out
        spawn("scheduler", "--scenario", "sf_4workers", "--no-leader-elect", out="scheduler.out")
        spawn("controller", "--scenario", "sf_4workers", "--no-leader-elect", "--lookahead-s", "60",
              out="controller.out")  # fmt: skip
        with StandIn(view, port, inject_rtt=True):
            core.create_namespaced_pod("default", app_pod("app"))
            deadline = time.time() + 30  # the krios scheduler places it once its caches are synced
            while view.snapshot.serving_node is None and time.time() < deadline:
                time.sleep(0.1)
            client = spawn("client", "--service-from-cluster", "--scenario", "sf_4workers", "--port", str(port),
                           "--rate-hz", "10", "--duration-s", "26", "--timeout-s", "1",
                           "--log", str(tmp_path / "requests.jsonl"), out="client.out")  # fmt: skip
            assert emu.wait(timeout=120) == 0, (tmp_path / "emulator.out").read_text()[-2000:]
            assert client.wait(timeout=60) == 0, (tmp_path / "client.out").read_text()[-2000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        delete_app_pods(core)
    emu_out = (tmp_path / "emulator.out").read_text()
    summary = json.loads(emu_out[emu_out.index("{"):])
    ticks = read_jsonl(tmp_path / "ticks.jsonl")
    assert summary["status"] == "complete" and len(ticks) == summary["ticks"]
    serving = [t["serving"] for t in ticks]
    served = [s for s in serving if s]
    assert len(served) >= 0.8 * len(ticks)  # placed within the first ticks and never lost
    handovers = [(a, b) for a, b in itertools.pairwise(served) if a != b]
    assert len(handovers) >= 2, serving
    assert summary["serving_changes"] == len(handovers)
    # the serving node kept its satellite while serving, and always had a successor
    for prev, cur in itertools.pairwise(ticks):
        node = cur["serving"]
        if node and node == prev["serving"] and prev["nodes"][node]["in_zone"]:
            assert cur["nodes"][node]["sat_id"] == prev["nodes"][node]["sat_id"]
    assert all(t["successor_ok"] for t in ticks if t["serving"])
    # the client: every request recorded, in the store too; handovers visible as a change of node
    records = read_jsonl(tmp_path / "requests.jsonl")
    assert len(records) == 260 and sorted(r["seq"] for r in records) == list(range(260))
    db = sqlite3.connect(tmp_path / "results.sqlite")
    assert db.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 260
    ok = [r for r in records if r["status"] == "ok"]
    assert len(ok) >= 0.9 * len(records)
    nodes_seen = [r["node"] for r in sorted(ok, key=lambda r: r["sent_at"])]
    assert len({a for a, b in itertools.pairwise(nodes_seen) if a != b}) >= 2
    # the stand-in delays each answer by the RTT in its own view of the matrix (refreshed every 0.2 s
    # like the client's): the two may straddle a hop boundary (9 ms) but no more
    extra = sorted(r["latency_ms"] - r["injected_rtt_ms"] for r in ok)
    for r in ok:
        assert r["sat_id"] is not None and 10 < r["injected_rtt_ms"] < 30  # served from the zone
        assert r["latency_ms"] >= r["injected_rtt_ms"] - 9.5
    assert 0 <= extra[len(extra) // 2] < 20
    errors = [r for r in records if r["status"] != "ok"]
    assert all(r["error"] for r in errors)
    kinds = sorted({(r["status"], (r["error"] or "")[:50]) for r in errors})
    print(f"\nfull loop: {len(handovers)} handovers {handovers}; client {len(ok)} ok / {len(errors)} errors {kinds}; "
          f"emulator {json.dumps(summary)}")  # fmt: skip


def test_client_records_survive_kill_9(cluster, core, tmp_path):
    """The client's records are on disk as they happen: kill -9 mid-run loses nothing finished."""
    core.create_namespaced_pod("default", app_pod("kill-app", node="krios-worker-1"))
    port = free_port()
    db = tmp_path / "results.sqlite"
    jsonl = tmp_path / "requests.jsonl"
    env = dict(os.environ, KRIOS_RESULTS_DB=str(db))
    view = ClusterView(core, f"leozone={LEOZONE}")
    try:
        with StandIn(view, port):
            deadline = time.time() + 20
            while view.snapshot.serving_node != "krios-worker-1" and time.time() < deadline:
                time.sleep(0.1)
            # worker-1 serves; requests to worker-2 are refused by the stand-in (503) and recorded as errors
            proc = subprocess.Popen([KRIOS, "client", "--target", f"http://127.0.1.2:{port}/", "--rate-hz", "40",
                                     "--duration-s", "60", "--log", str(jsonl)], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            bad = subprocess.Popen([KRIOS, "client", "--target", f"http://127.0.1.3:{port}/", "--rate-hz", "20",
                                    "--duration-s", "2", "--log", str(tmp_path / "bad.jsonl")], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            assert bad.wait(timeout=30) == 0
            deadline = time.time() + 30
            while (not jsonl.exists() or len(jsonl.read_text().splitlines()) < 60) and time.time() < deadline:
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        delete_app_pods(core)
    lines = jsonl.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line complete
    assert len(records) >= 60
    assert all(r["status"] == "ok" and r["node"] == "krios-worker-1" for r in records)
    conn = sqlite3.connect(db)
    run_id, status = conn.execute("SELECT id, status FROM runs WHERE meta LIKE '%127.0.1.2%'").fetchone()
    assert status == "incomplete"  # killed: never finished
    stored = {row[0] for row in conn.execute("SELECT seq FROM requests WHERE run_id = ?", (run_id,))}
    # JSON Lines is written first, then the row: at most the record in hand at the kill is missing
    assert stored <= {r["seq"] for r in records} and len(stored) >= len(records) - 1
    errors = read_jsonl(tmp_path / "bad.jsonl")
    assert len(errors) == 40 and {r["status"] for r in errors} == {"503"}
    assert all("no Ready app pod" in r["error"] and r["node"] == "krios-worker-2" for r in errors)


def test_emulator_rides_out_an_apiserver_restart(cluster, core, results, tmp_path):
    """API down mid-run (stopping and starting kube-apiserver takes ~25 s here): ticks go on, logged
    with api_ok false, and the labels reconverge once it is back."""
    cfg = EmulatorConfig.from_scenario(SCENARIO, duration_s=3600, acceleration=90, tick_s=30)
    nodes = select_nodes(core, SCENARIO.workers)
    emu = Emulator(cfg, core, nodes, store=results, log_path=tmp_path / "ticks.jsonl")
    done: dict = {}
    runner = threading.Thread(target=lambda: done.update(emu.run()))
    runner.start()
    try:
        time.sleep(3.0)
        cluster.stop_component("kube-apiserver")
    finally:
        cluster.start_component("kube-apiserver")
    back = time.time()
    runner.join(timeout=90)
    assert done["status"] == "complete" and done["api_errors"] > 0
    ticks = read_jsonl(tmp_path / "ticks.jsonl")
    assert len(ticks) == done["ticks"] and any(not t["api_ok"] for t in ticks)
    assert ticks[-1]["api_ok"] and ticks[-1]["t_wall"] > back  # ticked on after the restart
    final = {n: d["sat_id"] for n, d in ticks[-1]["nodes"].items()}
    assert {n.metadata.name: int(n.metadata.labels["sat_id"]) for n in core.list_node().items
            if n.metadata.name in nodes} == final  # fmt: skip
