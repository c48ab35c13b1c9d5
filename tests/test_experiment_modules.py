"""The experiment modules krios_emulator, krios_client and krios_bench in real ``ansible-playbook`` runs.

Against the session's real control plane (conftest ``control_plane``): check mode (validates, resolves,
touches nothing), bad input (one line naming the file and field), and a real run of the three phases into
one results run whose return values are checked against the rows in the results store.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from scheduling_helpers import clean_workers, raw

from krios.results.store import ResultsStore

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCENARIO = "sf_4workers"


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               PATH=f"{BIN}:{env.get('PATH', '')}")
    env.pop("KRIOS_RESULTS_DB", None)
    return env


def run_playbook(tmp_path: Path, tasks: list[dict], timeout_s: float = 300) -> list[dict]:
    """Run ``tasks`` on localhost with the venv's Python; each task's localhost result, in order."""
    book = tmp_path / f"play{len(list(tmp_path.glob('play*.yml')))}.yml"
    book.write_text(yaml.safe_dump([{"name": "Experiment modules", "hosts": "localhost", "gather_facts": False,
                                     "tasks": tasks}], sort_keys=False))
    argv = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "-e", f"ansible_python_interpreter={sys.executable}", str(book)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(), cwd=REPO, timeout=timeout_s)
    assert "{" in proc.stdout, proc.stderr
    doc, _end = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("\n{") + 1:])
    results = [t["hosts"]["localhost"] for t in doc["plays"][0]["tasks"]]
    assert proc.returncode == 0 or any(r.get("failed") for r in results), proc.stderr
    return results


def mod(module: str, name: str, check: bool = False, ignore_errors: bool = False, **args: object) -> dict:
    t: dict = {"name": name, f"krios.testbed.{module}": args}
    if check:
        t["check_mode"] = True
    if ignore_errors:
        t["ignore_errors"] = True
    return t


@pytest.mark.parametrize("module", ["krios_emulator", "krios_client", "krios_bench"])
def test_ansible_doc_renders(module: str) -> None:
    proc = subprocess.run([str(BIN / "ansible-doc"), f"krios.testbed.{module}"], capture_output=True, text=True,
                          env=ansible_env(), cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for word in ("run_id", "check_mode", "EXAMPLES", "RETURN VALUES", "counts", "summary", "injection"):
        assert word in proc.stdout, word


def test_check_mode_resolves_and_touches_nothing(tmp_path: Path) -> None:
    db = tmp_path / "results" / "krios.sqlite"
    r = run_playbook(tmp_path, [
        mod("krios_emulator", "emulator", check=True, scenario=SCENARIO, duration_s=300, db=str(db),
            kubeconfig=str(tmp_path / "nowhere.conf"), rtt_model="krios-emulator"),
        mod("krios_client", "client", check=True, scenario=SCENARIO, service="krios-app.default",
            until_emulator_done=True, run_id="r1", rtt_injection="standin", db=str(db)),
        mod("krios_bench", "sweep", check=True, scenario=SCENARIO, samples_per_latency=3, db=str(db)),
    ])
    emu, client, bench = r
    assert emu["changed"] and emu["status"] == "check" and emu["run_id"] is None
    # the scenario's acceleration (10) and start, the override's duration
    assert emu["config"]["duration_s"] == 300.0 and emu["config"]["acceleration"] == 10.0
    assert emu["config"]["start"].startswith("2026-01-01T00:00:00") and emu["config"]["radius_km"] == 100.0
    assert emu["wall_s"] == 30.0 and emu["counts"]["ticks"] == 301
    assert emu["injection"] == {"emulator": "none"} and emu["config"]["rtt_model"] == "krios-emulator"
    assert client["config"]["rate_hz"] == 5.0 and client["config"]["selector"] == "leozone=37.7749_-122.4194"
    assert client["injection"] == {"client": "standin"} and client["run_id"] == "r1"
    # the scenario's sweep: 4 delays x 2 schedulers + 2 repeated zero cells, 3 pods each
    assert len(bench["cells"]) == 10 and bench["counts"]["pods_measured"] == 30
    assert bench["config"]["latency_ms"] == [0.0, 50.0, 100.0, 200.0]
    assert bench["injection"] == {"sweep": "proxy"}
    assert not db.exists() and not db.parent.exists()  # no store written


def test_bad_input_fails_with_one_line_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\nworkers: 4\nzone: {lat: 37.7749, lon: -122.4194, radius_km: 100}\n"
                   "handover: {lookahead_s: -5}\n")
    r = run_playbook(tmp_path, [
        mod("krios_emulator", "bad scenario", check=True, ignore_errors=True, scenario=str(bad)),
        mod("krios_emulator", "bad option", check=True, ignore_errors=True, scenario=SCENARIO, tick_s=0),
        mod("krios_emulator", "unknown scenario", check=True, ignore_errors=True, scenario="atlantis"),
        mod("krios_bench", "sweep without injection", check=True, ignore_errors=True, scenario=SCENARIO,
            injection="none"),
        mod("krios_client", "client without an end", check=True, ignore_errors=True, scenario=SCENARIO,
            service="krios-app"),
    ])
    msgs = [x["msg"] for x in r]
    assert all(x["failed"] for x in r) and all("\n" not in m for m in msgs), msgs
    assert msgs[0] == f"{bad}: handover.lookahead_s: -5.0: must be a number >= 0"
    assert msgs[1] == "tick_s: 0.0: must be a positive number"
    assert "atlantis" in msgs[2]
    assert msgs[3].startswith("latency_ms: 0 50 100 200: more than one delay value needs an injection")
    assert msgs[4].startswith("options: duration_s: ")


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


@pytest.fixture
def workers(control_plane, api_client) -> Iterator[list[str]]:
    """The session workers; afterwards no sat_id labels, no clock and no emulator ConfigMaps."""
    yield from _clean(control_plane, api_client)


def _clean(control_plane, api_client) -> Iterator[list[str]]:
    client = raw(api_client)
    try:
        yield from clean_workers(control_plane, api_client)
    finally:
        for name in ("krios-emulator", "krios-latency"):
            with contextlib.suppress(Exception):  # absent already
                client.delete(f"/api/v1/namespaces/krios-system/configmaps/{name}")


@pytest.mark.cluster
def test_emulator_client_and_sweep_write_one_run(tmp_path: Path, control_plane, namespace, workers, web) -> None:
    """The three phases into one results run through ansible-playbook: the emulator (async) for 30 emulated s
    at 10x with the app's pod on a worker, the client until the emulator is done, then the sweep behind the
    delay proxy; the returned counts, figures and injection methods are those of the store."""
    db = tmp_path / "results" / "krios.sqlite"
    db.parent.mkdir()
    store = ResultsStore(db)
    run_id = store.start_run("experiment", scenario=SCENARIO, collect=False)
    store.close()
    client = raw(control_plane.api_client())
    client.post(f"/api/v1/namespaces/{namespace}/pods", {
        "metadata": {"name": "app", "labels": {"leozone": "37.7749_-122.4194", "radius": "100"}},
        "spec": {"nodeName": workers[0], "containers": [{"name": "app", "image": "nginx"}]},
    })
    kube = str(control_plane.kubeconfig)
    r = run_playbook(tmp_path, [
        {**mod("krios_emulator", "emulator", scenario=SCENARIO, duration_s=30, run_id=run_id, db=str(db),
               kubeconfig=kube, rtt_model="krios-emulator"),
         "async": 300, "poll": 0, "register": "emu_job"},
        {**mod("krios_client", "client", scenario=SCENARIO, target=web, rate_hz=20, until_emulator_done=True,
               max_duration_s=120, run_id=run_id, db=str(db), kubeconfig=kube), "register": "client"},
        {"name": "wait for the emulator", "ansible.builtin.async_status": {"jid": "{{ emu_job.ansible_job_id }}"},
         "register": "emu", "until": "emu.finished", "retries": 60, "delay": 1},
        mod("krios_bench", "sweep", latency_ms=[0, 40], samples_per_latency=2, warmup=0,
            schedulers=["default-scheduler"], seed=1, timeout_s=20, injection="proxy",
            state_dir=str(control_plane.state_dir), run_id=run_id, db=str(db), kubeconfig=kube),
    ], timeout_s=400)
    _job, cl, emu, bench = r
    assert not any(x.get("failed") for x in r), [x.get("msg") for x in r]
    store = ResultsStore(db)
    ticks = store.rows(run_id, "ticks")
    requests = store.rows(run_id, "requests")
    pods = store.rows(run_id, "pod_latency")

    # the emulator: every tick of 30 emulated s, into the shared run; the app's node served in-zone
    assert emu["run_id"] == run_id and emu["status"] == "complete"
    assert emu["emulator"]["ticks"] == 31 and emu["counts"]["ticks"] == len({t["t_sim"] for t in ticks}) == 31
    instants = {t["t_sim"] for t in ticks}
    served = {t["t_sim"] for t in ticks if t["serving"] and t["in_zone"]}
    assert emu["summary"]["served_share"] == pytest.approx(len(served) / len(instants), abs=1e-4)
    assert emu["summary"]["served_share"] >= 0.9
    assert emu["counts"]["handovers"] == 0 and emu["summary"]["handover_lead_median_s"] is None
    assert emu["injection"] == {"emulator": "none"} and emu["config"]["rtt_model"] == "krios-emulator"

    # the client: stopped by the emulator's end, every request recorded
    assert cl["run_id"] == run_id and cl["stopped_by"] == "emulator_done"
    assert cl["client"]["sent"] == len(requests) == cl["counts"]["requests_ok"] + cl["counts"]["requests_failed"]
    # the client starts after the emulator's async start: on a loaded machine it may see only part of the
    # emulator's 3 s wall (10 of 60 requests in one run beside a lab test), so the bound is low
    assert cl["counts"]["requests_ok"] >= 5 and cl["client"]["ok"] == cl["counts"]["requests_ok"]
    ok_ms = sorted(x["latency_ms"] for x in requests if x["status"] == "ok")
    assert ok_ms[0] <= cl["summary"]["request_latency_ms"]["p50"] <= cl["summary"]["request_latency_ms"]["p99"]
    assert cl["summary"]["request_latency_ms"]["p99"] <= ok_ms[-1]
    assert cl["injection"] == {"client": "none"}

    # the sweep: 3 cells x 2 pods behind the delay proxy; the 40 ms cell is slower
    assert bench["status"] == "complete" and bench["counts"]["pods_measured"] == len(pods) == 6
    medians = bench["summary"]["scheduling_latency_median_ms"]["default-scheduler"]
    assert set(medians) == {"0", "40"} and medians["40"] >= 80.0 > medians["0"]
    assert bench["injection"]["sweep"] == "proxy" and "delay proxy" in bench["injection"]["sweep_detail"]

    # the run's metadata: the injection method actually used, per phase
    meta = store.run(run_id)["meta"]
    assert meta["injection"]["emulator"] == "none" and meta["injection"]["client"] == "none"
    assert meta["injection"]["sweep"] == "proxy"
    comps = {c["name"]: c for c in control_plane.status()["components"]}
    assert comps["kube-scheduler"]["alive"]  # paused for the sweep, resumed after


def test_client_runs_until_its_stop_file_appears(tmp_path: Path, web) -> None:
    """No cluster needed for a fixed target: the client sends until the stop file exists, in a new run."""
    db = tmp_path / "results" / "krios.sqlite"
    stop = tmp_path / "stop"
    stop.write_text("stale\n")  # removed by the module at the start
    timer = threading.Timer(6.0, stop.write_text, args=("now\n",))
    timer.start()
    try:
        (r,) = run_playbook(tmp_path, [mod("krios_client", "client", target=web, rate_hz=10, stop_file=str(stop),
                                           max_duration_s=60, db=str(db))])
    finally:
        timer.cancel()
    assert not r.get("failed"), r.get("msg")
    assert r["stopped_by"] == "stop_file" and r["status"] == "complete" and r["wall_s"] < 30
    store = ResultsStore(db)
    run = store.run(r["run_id"])
    assert run["kind"] == "client" and run["status"] == "complete"
    assert run["meta"]["injection"] == {"client": "none"}
    assert r["counts"]["requests_ok"] == r["client"]["sent"] == len(store.rows(r["run_id"], "requests")) >= 10


def test_sweep_with_netem_renders_the_tc_commands_in_check_mode(tmp_path: Path) -> None:
    """injection: netem - check mode gives the exact tc commands per delay (read from the interface's real
    state, nothing changed); a real run where the kernel has no netem fails with one line saying so."""
    from krios.emulation import netem

    before = netem.Tc("lo").state()
    args = {"latency_ms": [0, 40], "schedulers": ["default-scheduler"], "injection": "netem", "netem_dev": "lo",
            "netem_destinations": ["127.0.0.1"], "db": str(tmp_path / "krios.sqlite"),
            "kubeconfig": str(tmp_path / "nowhere.conf")}
    check, real = run_playbook(tmp_path, [mod("krios_bench", "plan", check=True, **args),
                                          mod("krios_bench", "run", ignore_errors=True, **args)])
    assert check["injection"] == {"sweep": "netem", "sweep_detail": "tc netem on lo to 127.0.0.1"}
    assert set(check["tc_commands"]) == {"0", "40"}
    assert check["tc_commands"]["40"] == netem.Tc("lo").apply([netem.Destination("127.0.0.1", 40.0)], dry_run=True)
    assert ["tc", "qdisc", "add", "dev", "lo", "parent", "1:10", "handle", "10:", "netem", "delay", "40ms"] in (
        check["tc_commands"]["40"])
    assert netem.Tc("lo").state() == before  # check mode ran nothing
    has_netem, why = netem.netem_support()
    if not has_netem:
        assert real["failed"] and real["msg"] == f"injection: netem: {why}; use injection: proxy"
    assert not (tmp_path / "krios.sqlite").exists()
