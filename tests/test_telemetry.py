"""Node telemetry (krios.measure.telemetry, `krios telemetry`): real /proc, real processes, real store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from krios.localcluster import process
from krios.measure.telemetry import Sampler, Watch, local_watches, read_cpu, read_net
from krios.results.report import generate
from krios.results.store import ResultsStore

KRIOS = str(Path(sys.executable).parent / "krios")


def test_proc_readers_see_every_cpu_and_loopback():
    cpu = read_cpu()
    assert "total" in cpu and sum(1 for k in cpu if k.startswith("cpu")) == os.cpu_count()
    assert all(0 <= busy <= total for busy, total in cpu.values())
    assert "lo" in read_net()


def test_sampler_writes_rows_for_every_node_and_interval_and_pauses(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    run_id = store.start_run("telemetry", collect=False)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        watched = [Watch("burner", busy.pid, process.start_ticks(busy.pid)),
                   Watch("sleeper", idle.pid, process.start_ticks(idle.pid))]  # fmt: skip
        sampler = Sampler(nodes=["n0", "n1", "n2"], interval_s=0.2, store=store, run_id=run_id,
                          jsonl=tmp_path / "t.jsonl", watches=lambda: watched, proc_node="n0")  # fmt: skip
        stop = threading.Event()
        thread = threading.Thread(target=sampler.run, args=(stop,), daemon=True)
        thread.start()
        time.sleep(1.1)
        sampler.pause()
        time.sleep(0.3)
        paused_at = len(store.rows(run_id, "telemetry"))
        time.sleep(0.6)
        assert len(store.rows(run_id, "telemetry")) == paused_at  # nothing while paused
        sampler.resume()
        time.sleep(0.7)
        stop.set()
        thread.join(5)
    finally:
        for p in (busy, idle):
            p.kill()
            p.wait()
    rows = store.rows(run_id, "telemetry")
    intervals = sorted({r["interval"] for r in rows})
    assert intervals == list(range(sampler.samples)) and sampler.samples >= 7
    for node in ("n0", "n1", "n2"):
        for k in intervals:
            kinds = {r["kind"] for r in rows if r["node"] == node and r["interval"] == k}
            assert {"cpu", "mem", "net", "load"} <= kinds, (node, k, kinds)
    procs = [r for r in rows if r["kind"] == "proc"]
    assert {r["node"] for r in procs} == {"n0"} and len(procs) == 2 * sampler.samples
    assert all(r["mem_bytes"] > 1e6 and r["cpu_pct"] is not None for r in procs)
    burner = sum(r["cpu_pct"] for r in procs if r["item"] == "burner") / sampler.samples
    sleeper = sum(r["cpu_pct"] for r in procs if r["item"] == "sleeper") / sampler.samples
    assert burner > sleeper + 10 and sleeper < 5, (burner, sleeper)  # % of one core (the machine is shared)
    total = [r["cpu_pct"] for r in rows if r["kind"] == "cpu" and r["item"] == "total"]
    assert all(0 <= v <= 100 for v in total)
    kinds = [e["kind"] for e in store.rows(run_id, "events")]
    assert kinds == ["telemetry-pause", "telemetry-resume"]
    lines = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert len(lines) == len(rows)
    assert store.add_many(run_id, "telemetry", lines) == 0  # a node's file imported again adds nothing
    # the report gains a telemetry section and figure
    report = generate(store, run_id, tmp_path / "report").read_text()
    assert "## Node telemetry" in report and (tmp_path / "report" / "telemetry.png").stat().st_size > 10_000
    assert "## Workload groups" not in report


def test_local_watches_find_pid_file_daemons(tmp_path):
    rec, _started = process.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path,
                                  min_uptime_s=0.2)  # fmt: skip
    try:
        (w,) = local_watches(None, [tmp_path])
        assert (w.name, w.pid) == ("sleeper", rec.pid)
    finally:
        process.stop_named("sleeper", tmp_path)
    assert local_watches(None, [tmp_path]) == []


def test_krios_telemetry_pauses_on_sigusr1_and_resumes_on_sigusr2(tmp_path):
    db = tmp_path / "r.sqlite"
    proc = subprocess.Popen([KRIOS, "telemetry", "--node", "edge-1", "--interval-s", "0.2", "--db", str(db),
                             "--match", "tester=test_telemetry"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        time.sleep(2.5)  # the CLI starts (imports) and samples
        proc.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        proc.send_signal(signal.SIGUSR2)
        time.sleep(0.8)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    store = ResultsStore(db)
    rows = store.rows(summary["run_id"], "telemetry")
    assert {r["node"] for r in rows} == {"edge-1"} and summary["samples"] >= 3
    assert sorted({r["interval"] for r in rows}) == list(range(summary["samples"]))
    assert [e["kind"] for e in store.rows(summary["run_id"], "events")][-2:] == ["telemetry-pause", "telemetry-resume"]
    assert store.run(summary["run_id"])["status"] == "complete"


def test_telemetry_plot_marks_handovers_at_their_wall_time(tmp_path):
    from krios.results import plots

    ticks = [{"t_sim": 1000.0 + 10 * k, "t_wall": 50.0 + k, "node": "w0"} for k in range(11)]  # 10x clock
    assert list(plots.wall_time([1000.0, 1055.0, 1200.0], ticks)) == [50.0, 55.5, 70.0]
    rows = []
    for k in range(6):
        for node, host in (("w0", "a"), ("w1", "b")):
            rows.append({"t": 50.0 + 2 * k, "interval": k, "node": node, "host": host, "kind": "cpu", "item": "total",
                         "cpu_pct": 10.0 * k})  # fmt: skip
            rows.append({"t": 50.0 + 2 * k, "interval": k, "node": node, "host": host, "kind": "net", "item": "eth0",
                         "rx_bytes": 1000 * k, "tx_bytes": 500 * k})  # fmt: skip
    t, rate = plots.net_rates(rows)["w1"]
    assert list(t) == [52.0, 54.0, 56.0, 58.0, 60.0] and list(rate) == [750.0] * 5
    path = plots.telemetry_timeline(rows, [55.5], tmp_path / "t.png")
    assert path is not None and path.stat().st_size > 10_000
    assert plots.telemetry_timeline([r for r in rows if r["kind"] == "net"], [], tmp_path / "n.png") is None


def test_control_file_pauses_and_resumes(tmp_path):
    control = tmp_path / "control"
    sampler = Sampler(nodes=["n0"], interval_s=0.1)
    stop = threading.Event()
    thread = threading.Thread(target=sampler.run, args=(stop,), kwargs={"control_file": control}, daemon=True)
    thread.start()
    time.sleep(0.5)
    control.write_text("pause\n")
    time.sleep(0.4)
    assert sampler.paused
    held = sampler.samples
    time.sleep(0.5)
    assert sampler.samples == held >= 2
    control.write_text("resume\n")
    time.sleep(0.6)
    stop.set()
    thread.join(5)
    assert not sampler.paused and sampler.samples > held


def test_cgroup_rows_from_v2_and_v1_hierarchies(tmp_path):
    from krios.measure.telemetry import process_cgroups, read_cgroup

    v2 = tmp_path / "v2" / "kubepods.slice" / "pod1"
    v2.mkdir(parents=True)
    (v2 / "cgroup.procs").write_text("1\n")
    (v2 / "cpu.stat").write_text("usage_usec 2500\nuser_usec 2000\n")
    (v2 / "memory.current").write_text("4096\n")
    assert read_cgroup({"": "/kubepods.slice/pod1"}, tmp_path / "v2") == ("/kubepods.slice/pod1", 2_500_000, 4096)
    assert read_cgroup({"": "/"}, tmp_path / "v2") is None  # the root cgroup is the whole host
    # a copy of this very process's own cgroup (v2, else v1 memory): the sampler finds it via /proc/<pid>/cgroup
    real = process_cgroups(os.getpid())
    root = tmp_path / "copy"
    if real.get("", "/") != "/":
        path = real[""]
        folder, files = root / path.lstrip("/"), {"cgroup.procs": "1\n", "memory.current": "123456\n"}
    else:
        path = real.get("memory", "/")
        folder, files = root / "memory" / path.lstrip("/"), {"memory.usage_in_bytes": "123456\n"}
    assert path != "/", real  # tests run inside a session/container cgroup, not the host's root
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    sampler = Sampler(nodes=["n0"], interval_s=0.1, watches=lambda: [Watch("me", os.getpid())], cgroup_root=root)
    sampler.prime()
    rows = [r for r in sampler.sample() if r["kind"] == "cgroup"]
    assert [(r["item"], r["mem_bytes"], r["node"]) for r in rows] == [(path, 123456, "n0")]
