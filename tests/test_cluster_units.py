"""Parts of the local control plane that need no running cluster."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
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


def test_supervisor_starts_once_waits_and_stops_by_name(tmp_path):
    run = tmp_path / "run"
    ready = run / "ready"
    argv = ["sh", "-c", f"echo started; sleep 0.3; touch {ready}; exec sleep 60"]
    record, started = process.start("sleeper", argv, run, ready_file=ready, ready_timeout_s=10)
    assert started and ready.exists() and record.alive()
    assert process.read_record(process.pid_file(run, "sleeper")) == record
    assert "started" in (run / "sleeper.log").read_text()
    again, started = process.start("sleeper", argv, run, ready_file=ready)  # idempotent: the same process
    assert not started and again == record
    assert process.stop_named("sleeper", run, timeout_s=5)
    assert not record.alive() and not process.pid_file(run, "sleeper").exists()
    assert not process.stop_named("sleeper", run)  # nothing left: a no-op


def test_supervisor_never_signals_a_recycled_pid(tmp_path):
    proc = process.spawn(["sleep", "60"], tmp_path / "other.log")
    try:
        ticks = process.start_ticks(proc.pid)
        # a pid file whose pid now belongs to another process (other start time)
        process.write_record(process.pid_file(tmp_path, "stale"), process.Record(proc.pid, ticks + 1, ["x"]))
        assert not process.stop_named("stale", tmp_path, timeout_s=1)
        assert process.alive(proc.pid, ticks)
        # and `start` does not take it for the recorded process: it starts a new one
        record, started = process.start("stale", ["sleep", "60"], tmp_path, min_uptime_s=0.1)
        assert started and record.pid != proc.pid
        assert process.stop_named("stale", tmp_path, timeout_s=5)
    finally:
        process.stop(proc.pid, process.start_ticks(proc.pid), timeout_s=5)
        proc.wait(5)


def test_supervisor_reports_an_early_exit_with_the_log_tail(tmp_path):
    with pytest.raises(ClusterError) as err:
        process.start("broken", ["sh", "-c", "echo no config here >&2; exit 3"], tmp_path, min_uptime_s=5)
    assert str(err.value).startswith("broken: exited with status 3 before it was ready")
    assert "no config here" in str(err.value)
    assert not process.pid_file(tmp_path, "broken").exists()
    with pytest.raises(ClusterError, match=r"not ready within 0\.3 s"):
        process.start("slow", ["sleep", "60"], tmp_path, ready_file=tmp_path / "never", ready_timeout_s=0.3)
    assert not process.pid_file(tmp_path, "slow").exists()
    with pytest.raises(ClusterError, match="nonexistent-program-x: cannot start"):
        process.start("missing", ["nonexistent-program-x"], tmp_path)


def test_child_is_stopped_term_then_kill_and_reaped(tmp_path):
    child = process.Child("stubborn", ["sh", "-c", "trap '' TERM; echo up; exec sleep 60"], tmp_path / "c.log")
    time.sleep(0.3)
    assert child.poll() is None
    t0 = time.monotonic()
    child.stop(timeout_s=0.5)  # TERM ignored: KILL after 0.5 s
    assert time.monotonic() - t0 < 5
    assert child.poll() is not None and not process.alive(child.pid, child.ticks)


def test_kube_scheduler_command_line_is_written_once(tmp_path):
    from krios.localcluster import components as comp

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\n")
    cmd = comp.scheduler_cmd(Path("/bin/kube-scheduler"), kubeconfig, 0, qps=50, burst=100)
    assert cmd[0] == "/bin/kube-scheduler" and "--leader-elect=false" in cmd and "--secure-port=0" in cmd
    assert cmd[-2:] == ["--kube-api-qps=50", "--kube-api-burst=100"]
    try:
        bin_dir = binaries.find_bin_dir(build=False)
    except ClusterError:
        pytest.skip("no cached control-plane binaries")
    # the public CLI the Ansible role runs prints (and execs) exactly that command line
    result = krios("cluster", "kube-scheduler", "--kubeconfig", str(kubeconfig), "--print")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == comp.scheduler_cmd(bin_dir / "kube-scheduler", kubeconfig, 0)
    roles = Path(__file__).resolve().parents[1] / "roles"
    for path in roles.rglob("*.yml"):  # no role writes krios's kube-scheduler flags or calls a private krios API
        text = path.read_text()
        assert "--bind-address=127.0.0.1" not in text and not re.search(r"from krios\.\w+ import", text), path


def test_background_module_starts_once_and_stops(tmp_path):
    import json

    import yaml

    repo = Path(__file__).resolve().parents[1]
    run = tmp_path / "run"
    args = {"name": "sleeper", "argv": ["sleep", "60"], "pid_dir": str(run), "min_uptime": 0.2}
    stop = {"name": "sleeper", "pid_dir": str(run), "state": "stopped"}
    tasks = [{"name": n, "krios.testbed.krios_background": a}
             for n, a in (("start", args), ("again", args), ("stop", stop), ("stop again", stop))]
    tasks.append({"name": "fails", "krios.testbed.krios_background": {
        "name": "bad", "argv": ["sh", "-c", "echo boom; exit 4"], "pid_dir": str(run), "min_uptime": 2}})
    book = tmp_path / "play.yml"
    book.write_text(yaml.safe_dump([{"name": "bg", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    env = {**os.environ, "ANSIBLE_CONFIG": str(repo / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={sys.executable}", str(book)],
                          capture_output=True, text=True, env=env, cwd=repo, timeout=180)
    doc, _ = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("\n{") + 1:])
    res = [t["hosts"]["localhost"] for t in doc["plays"][0]["tasks"]]
    assert res[0]["changed"] and res[0]["pid"] and not res[0]["was_running"], res[0]
    assert not res[1]["changed"] and res[1]["pid"] == res[0]["pid"] and res[1]["was_running"]
    assert res[2]["changed"] and res[2]["pid"] is None and not process.alive(res[0]["pid"])
    assert not res[3]["changed"]
    assert res[4]["failed"] and res[4]["msg"].startswith("bad: exited with status 4 before it was ready")
    assert "boom" in res[4]["msg"]
