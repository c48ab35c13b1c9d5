"""Parts of the local control plane that need no running cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from krios.errors import ClusterError
from krios.kube.config import load_client
from krios.localcluster import binaries, process
from krios.localcluster import nodes as vn
from krios.localcluster.components import write_kubeconfig


def krios(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "krios", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_addresses_follow_the_naming_convention():
    assert [vn.worker_ip(i) for i in (0, 1, 253)] == ["127.0.1.1", "127.0.1.2", "127.0.1.254"]
    assert vn.worker_ip(255) == "127.0.2.0"  # still loopback
    assert vn.ip_for_name("krios-worker-7") == "127.0.1.8"
    assert vn.ip_for_name("krios-control-0") == "127.0.0.1"
    assert vn.ip_for_name("edge-a") is None
    node = vn.node_manifest("edge-a", "127.0.1.9", {"sat_id": "3"})
    assert vn.node_ip(node) == "127.0.1.9" and node["metadata"]["labels"]["sat_id"] == "3"
    control = vn.node_manifest("krios-control-0", "127.0.0.1", control=True)
    assert control["spec"]["taints"] == [{"key": vn.CONTROL_ROLE, "effect": "NoSchedule"}]


def test_running_status_keeps_the_schedulers_condition():
    pod = {
        "metadata": {"uid": "u1", "name": "p", "namespace": "n"},
        "spec": {"nodeName": "krios-worker-0", "containers": [{"name": "a", "image": "img"}],
                 "initContainers": [{"name": "init", "image": "img"}]},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]},
    }
    patch = vn.pod_running_status(pod, "127.0.1.1", 1.8e9)
    status = patch["status"]
    assert patch["metadata"]["uid"] == "u1"  # a pod re-created under the same name is not touched
    assert status["phase"] == "Running" and status["podIP"] == status["hostIP"] == "127.0.1.1"
    assert sorted(c["type"] for c in status["conditions"]) == ["ContainersReady", "Initialized", "Ready"]
    (running,) = status["containerStatuses"]
    assert running["ready"] and "running" in running["state"]
    (init,) = status["initContainerStatuses"]
    assert init["state"]["terminated"]["exitCode"] == 0
    assert vn.pod_is_running_ready({"status": {**status, "conditions": status["conditions"]}})


def test_load_client_order_and_errors(tmp_path, monkeypatch):
    for var in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KRIOS_STATE_DIR", str(tmp_path / "none"))
    with pytest.raises(ClusterError, match="no Kubernetes API configured"):
        load_client()
    with pytest.raises(ClusterError, match="kubeconfig not found"):
        load_client(tmp_path / "missing")
    write_kubeconfig(tmp_path / "a", "https://127.0.0.1:1111", "t")
    write_kubeconfig(tmp_path / "b", "https://127.0.0.1:2222", "t")
    assert load_client(tmp_path / "a").configuration.host == "https://127.0.0.1:1111"
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "b"))
    assert load_client().configuration.host == "https://127.0.0.1:2222"
    monkeypatch.delenv("KUBECONFIG")
    state = tmp_path / "state"
    state.mkdir()
    write_kubeconfig(state / "kubeconfig", "https://127.0.0.1:3333", "t")
    monkeypatch.setenv("KRIOS_STATE_DIR", str(state))
    assert load_client().configuration.host == "https://127.0.0.1:3333"
    (tmp_path / "bad").write_text("{not yaml: [")
    with pytest.raises(ClusterError, match="unusable kubeconfig"):
        load_client(tmp_path / "bad")


def test_binaries_prefer_kubebuilder_assets_then_the_cache(tmp_path, monkeypatch):
    def fake_bins(folder: Path) -> Path:
        folder.mkdir(parents=True)
        for name in binaries.REQUIRED:
            (folder / name).write_text("#!/bin/sh\n")
            (folder / name).chmod(0o755)
        return folder

    monkeypatch.setenv("KRIOS_CACHE_DIR", str(tmp_path / "cache"))
    cached = fake_bins(binaries.cache_dir() / "bin")
    (binaries.cache_dir() / ".complete").write_text("1.20.2\n")
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    assert binaries.find_bin_dir(build=False) == cached
    assets = fake_bins(tmp_path / "assets")
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    assert binaries.find_bin_dir(build=False) == assets
    with pytest.raises(ClusterError, match="kube-scheduler not found"):
        binaries.binary(assets, "kube-scheduler")
    (binaries.cache_dir() / ".complete").unlink()
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path / "empty"))
    with pytest.raises(ClusterError, match="no control-plane binaries"):
        binaries.find_bin_dir(build=False)


def test_processes_are_known_by_pid_and_start_time(tmp_path):
    proc = process.spawn(["sleep", "60"], tmp_path / "sleep.log")
    ticks = process.start_ticks(proc.pid)
    assert process.alive(proc.pid, ticks)
    assert not process.alive(proc.pid, ticks + 1)  # a recycled pid is not ours...
    assert not process.stop(proc.pid, ticks + 1)  # ...and is never signalled
    assert process.alive(proc.pid, ticks)
    assert process.stop(proc.pid, ticks, timeout_s=5)
    proc.wait(5)
    assert not process.alive(proc.pid, ticks)
    assert os.getpgid(os.getpid()) != proc.pid  # it ran in a session of its own


def test_cli_bad_input_is_one_line_and_nothing_starts(tmp_path):
    state = tmp_path / "state"
    for args, source in (
        (["--components", "kube-scheduler,kube-foo"], "--components: kube-foo: unknown component"),
        (["--workers", "-1"], "--workers: -1: must be >= 0"),
        (["--jitter-s", "-0.5"], "--jitter-s: -0.5: must be >= 0"),
    ):
        result = krios("cluster", "up", "--state-dir", str(state), *args)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == f"krios: error: {source}" or source in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert not (state / "state.json").exists()
    result = krios("cluster", "status", "--state-dir", str(state))
    assert result.returncode == 3 and "no local cluster here" in result.stderr
    result = krios("cluster", "down", "--state-dir", str(tmp_path / "never"))
    assert result.returncode == 0 and "no cluster" in result.stdout
