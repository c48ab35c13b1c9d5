"""`krios cluster up|status|down` on a cluster of its own: twins, restarts, kill -9, clean stop."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from krios.localcluster import LocalCluster, process
from krios.localcluster.state import load_state

pytestmark = pytest.mark.cluster


def krios(*args: str, timeout_s: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "krios", *args], capture_output=True, text=True,
                          timeout=timeout_s, check=False)


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory: pytest.TempPathFactory):
    state_dir = tmp_path_factory.mktemp("cli-cluster")
    result = krios("cluster", "up", "--state-dir", str(state_dir), "--workers", "2", "--components", "",
                   "--ready-delay-s", "0.2", "--jitter-s", "0.1")
    assert result.returncode == 0, result.stderr
    try:
        yield state_dir, result.stdout
    finally:
        LocalCluster(state_dir).down()  # a no-op once test_down_stops_every_process ran


def wait_running(core: client.CoreV1Api, name: str, ns: str = "default", timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pod = core.read_namespaced_pod(name, ns)
        if pod.status.phase == "Running" and any(
            c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
        ):
            return
        time.sleep(0.1)
    pytest.fail(f"pod {name} not Running/Ready after {timeout_s} s")


def pinned_pod(name: str, node: str) -> client.V1Pod:
    """A pod bound at creation (this cluster runs no scheduler)."""
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(node_name=node, containers=[client.V1Container(name="c", image="busybox")]),
    )


def test_up_writes_private_kubeconfig_and_status_is_healthy(cli_cluster):
    state_dir, stdout = cli_cluster
    kubeconfig = state_dir / "kubeconfig"
    assert f"kubeconfig: {kubeconfig}" in stdout
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    result = krios("cluster", "status", "--state-dir", str(state_dir), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    info = json.loads(result.stdout)
    assert {c["name"] for c in info["components"]} == {"etcd", "kube-apiserver", "virtual-kubelet"}
    assert [(n["name"], n["ready"], n["ip"]) for n in info["nodes"]] == [
        ("krios-control-0", True, "127.0.0.1"),
        ("krios-worker-0", True, "127.0.1.1"),
        ("krios-worker-1", True, "127.0.1.2"),
    ]


def test_second_up_refuses_to_start_a_twin(cli_cluster):
    state_dir, _ = cli_cluster
    before = {n: p.pid for n, p in load_state(state_dir).processes.items()}
    result = krios("cluster", "up", "--state-dir", str(state_dir), "--workers", "2")
    assert result.returncode == 3
    assert "already running" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert {n: p.pid for n, p in load_state(state_dir).processes.items()} == before


def test_virtual_kubelet_survives_an_apiserver_restart(cli_cluster):
    state_dir, _ = cli_cluster
    cluster = LocalCluster(state_dir)
    kubelet_pid = load_state(state_dir).processes["virtual-kubelet"].pid
    with cluster.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespaced_pod("default", pinned_pod("before", "krios-worker-0"))
        wait_running(core, "before")
    cluster.stop_component("kube-apiserver")
    time.sleep(1.0)  # the kubelet's watches fail and back off meanwhile
    cluster.start_component("kube-apiserver")
    with cluster.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespaced_pod("default", pinned_pod("after", "krios-worker-1"))
        wait_running(core, "after")
        core.delete_namespaced_pod("before", "default")  # graceful: the kubelet must finish it
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                core.read_namespaced_pod("before", "default")
            except ApiException as err:
                assert err.status == 404
                break
            time.sleep(0.1)
        else:
            pytest.fail("graceful deletion not completed after the restart")
    assert load_state(state_dir).processes["virtual-kubelet"].pid == kubelet_pid


def test_added_nodes_are_served(cli_cluster):
    state_dir, _ = cli_cluster
    cluster = LocalCluster(state_dir)
    cluster.add_nodes(["krios-worker-2", "edge-a"], labels={"sat_id": "7"})
    assert cluster.worker_names == ["krios-worker-0", "krios-worker-1", "krios-worker-2", "edge-a"]
    rows = {n["name"]: n for n in cluster.status()["nodes"]}
    assert rows["krios-worker-2"]["ready"] and rows["krios-worker-2"]["ip"] == "127.0.1.3"
    assert rows["edge-a"]["ready"] and rows["edge-a"]["ip"] == "127.0.1.4"
    assert rows["edge-a"]["sat_id"] == "7"
    with cluster.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespaced_pod("default", pinned_pod("on-edge", "edge-a"))
        wait_running(core, "on-edge")


def test_status_reports_an_apiserver_killed_with_sigkill(cli_cluster):
    state_dir, _ = cli_cluster
    pid = load_state(state_dir).processes["kube-apiserver"].pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while process.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    result = krios("cluster", "status", "--state-dir", str(state_dir))
    assert result.returncode == 1
    line = next(x for x in result.stdout.splitlines() if x.startswith("kube-apiserver"))
    assert line.split()[1] == "down" and "process not running" in line
    assert "nodes: unknown (kube-apiserver is down)" in result.stdout


def test_down_stops_every_process_and_removes_the_state(cli_cluster):
    state_dir, _ = cli_cluster
    procs = load_state(state_dir).processes.values()
    running = [(p.pid, p.start_ticks) for p in procs if process.alive(p.pid, p.start_ticks)]
    assert len(running) == 2  # etcd and the virtual kubelet (the apiserver was killed above)
    result = krios("cluster", "down", "--state-dir", str(state_dir))
    assert result.returncode == 0, result.stderr
    assert not any(process.alive(pid, ticks) for pid, ticks in running)
    assert not Path(state_dir).exists()
    assert krios("cluster", "status", "--state-dir", str(state_dir)).returncode == 3
