"""The experiment on real nodes: site.yml with the emulator and the sweep on a lab of podman node containers.

``krios lab up`` (1 control, 2 workers, 1 client), then ``playbooks/site.yml``
through ansible-runner with ``krios_run_emulator`` and ``krios_measure`` on:
the emulator (module krios_emulator) runs on the control node against the
cluster's API while krios-scheduler and krios-controller run as Deployments and
move a real pod between real kubelets; the client (module krios_client) runs
on the client node; both have krios unpacked from the controller's wheelhouse;
the emulator's ticks and the client's request log are fetched back and merged
into the one results run (report.md names both hosts); the sweep
(module krios_bench) injects its delay with the delay proxy (``krios_injection:
proxy``) and records the method. Asserted on the run and its report:

- at least one handover of the app between two workers, each with a lead of at
  least 0.8 x the lookahead (read off the emulator's ticks);
- the zone served at >= 99% of the ticks;
- every request recorded as sent from the client node (``client_host``);
- scheduling latency growing with the injected delay for both schedulers, with
  the method ``proxy`` recorded and CIs in report.md.

The non-lab tests check the merge of a client's JSON Lines file into a run and
the validate check refusing a sweep with no injection.

Slow (10-20 minutes): a real Kubernetes 1.20 cluster on node containers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import lab_helpers
import pytest
from provisioning_helpers import cloudlab_inventory, run_playbook, write_inventory

from krios.emulation.workload import import_jsonl
from krios.results.store import ResultsStore
from krios.results.timeline import handovers_from_ticks

REPO = Path(__file__).resolve().parents[1]
WORKERS = 2
#: The scenario's lookahead (emulated s); a handover must start at least 0.8 x this before the exit.
LOOKAHEAD_S = 30.0
#: An emulated window with two handovers (starlink-1 over the lab scenario's San Francisco zone,
#: 2 workers, from 00:02:30: the emulator gives satellite 1365 (exit 00:06:07) to one worker and
#: 842 (00:05:04-00:08:56) to the other, so the app moves at about +187 s and back at about +356 s;
#: `krios passes --shell starlink-1 --zone 37.7749_-122.4194` lists the passes). 420 emulated s at
#: 1.25x: 336 s of wall time; a successor's start-up of 2-4 wall s costs 2.5-5 s of the 30 s lead
#: (at 1.5x the leads measured 25 and 26 s).
EMULATOR_START = "2026-01-01T00:02:30Z"
EMULATOR_TIME_S = 420
ACCELERATION = 1.25


# ----------------------------------------------------------------------------- fast


def test_client_log_merges_into_the_run_once(tmp_path: Path) -> None:
    """A client node's JSON Lines file lands in the controller's run; importing it again adds nothing."""
    log = tmp_path / "requests.jsonl"
    records = [{"seq": i, "sent_at": 1000.0 + i, "node": "node1", "sat_id": 7, "injected_rtt_ms": None,
                "latency_ms": 2.5, "status": "ok", "error": None, "client_host": "node3"} for i in range(5)]
    records.append({"seq": 5, "sent_at": 1005.0, "node": None, "status": "no-target", "error": "x"})
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    with ResultsStore(tmp_path / "r.sqlite") as st:
        run_id = st.start_run("experiment", run_id="lab-merge")
        assert import_jsonl(st, run_id, log, client_host="node3.lab") == {"read": 6, "imported": 6}
        assert import_jsonl(st, run_id, log, client_host="node3.lab") == {"read": 6, "imported": 0}
        rows = st.rows(run_id, "requests")
    assert len(rows) == 6
    assert {r["client_host"] for r in rows} == {"node3", "node3.lab"}  # a record's own host wins
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"seq": 1}\nnot json\n')
    with ResultsStore(tmp_path / "r.sqlite") as st, pytest.raises(Exception, match=r"bad.jsonl.*line 2"):
        import_jsonl(st, "lab-merge", bad)


def test_every_request_records_the_host_it_was_sent_from(tmp_path: Path) -> None:
    """``client_host``: the given name (the inventory's on real nodes), else this host's name."""
    import socket

    from krios.emulation.workload import Client, RecordSink, static_target

    with ResultsStore(tmp_path / "r.sqlite") as st:
        run_id = st.start_run("client", run_id="lab-host")
        for host in ("node3.lab.krios.local", None):
            sink = RecordSink(tmp_path / "req.jsonl", st, run_id)
            # Port 9 (discard) refuses: each request is an "error" record, still recorded with its host.
            Client(static_target("http://127.0.0.1:9/"), sink, rate_hz=20, duration_s=0.2, timeout_s=0.5,
                   client_host=host).run()
            sink.close()
        hosts = [r["client_host"] for r in st.rows(run_id, "requests")]
    assert hosts.count("node3.lab.krios.local") == 4 and hosts.count(socket.gethostname()) == 4, hosts
    lines = [json.loads(x) for x in (tmp_path / "req.jsonl").read_text().splitlines()]
    assert {x["client_host"] for x in lines} == {"node3.lab.krios.local", socket.gethostname()}


def test_validate_refuses_a_sweep_without_injection(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "inv.yml", cloudlab_inventory())
    run = run_playbook("validate.yml", [inv], {"scenario": "sf_4workers", "krios_measure": True,
                                               "krios_latency_ms": [0, 50], "krios_injection": "none"})
    assert run.returncode != 0
    assert ("variables: krios_injection: none: must be proxy, netem or none, and none takes one krios_latency_ms "
            "value, not 0, 50") in run.output, run.explain()
    ok = run_playbook("validate.yml", [inv], {"scenario": "sf_4workers", "krios_measure": True,
                                              "krios_latency_ms": 50, "krios_injection": "none"})
    assert ok.returncode == 0, ok.explain()


# ----------------------------------------------------------------------------- lab


@pytest.fixture(scope="module")
def lab_env(tmp_path_factory):
    with lab_helpers.lab_env(tmp_path_factory.mktemp("labx"), "krios-x", "10.215.0.0/24", workers=WORKERS) as env:
        yield env


def _site(env, playbook: str = "playbooks/site.yml", ok: bool = True, **extra) -> tuple[list[dict], str]:
    return lab_helpers.run_playbook(env["base"], env["state"].inventory, playbook, {
        **lab_helpers.artifact_vars(env),
        "krios_experiment_results_db": str(env["base"] / "results" / "krios.sqlite"),
        **extra,
    }, ok=ok)


@pytest.mark.slow
@pytest.mark.lab
@pytest.mark.timeout(2400)
def test_experiment_on_lab_nodes(lab_env):
    env = lab_env
    t0 = time.monotonic()
    events, _ = _site(
        env, krios_run_emulator=True, krios_measure=True, krios_emulator_time=EMULATOR_TIME_S,
        krios_experiment_acceleration=ACCELERATION, krios_experiment_emulator_start=EMULATOR_START,
        krios_latency_ms=[0, 50, 100], krios_samples_per_latency=2, krios_experiment_warmup=1,
        krios_injection="proxy", krios_benchmarks=["latency", "coldstart", "churn"],
        krios_experiment_coldstart_rps=[1, 2], krios_experiment_coldstart_duration_s=10,
        krios_experiment_churn_rate=1, krios_experiment_churn_duration_s=10, krios_experiment_churn_lifetime_s=2,
    )
    print(f"site.yml with the experiment: {time.monotonic() - t0:.0f} s")
    db = env["base"] / "results" / "krios.sqlite"
    st = ResultsStore(db)
    (run,) = [r for r in st.runs() if r["kind"] == "experiment"]
    run_id = run["id"]
    assert run["status"] == "complete"
    report = db.parent / run_id / "report.md"
    assert report.is_file()
    text = report.read_text()
    print(text[:3000])

    # Each phase where the seed runs it: the emulator on the control node (its ticks merged into the
    # controller's run, with the host recorded), the client on the client node (module results in the job
    # events), the daemons as Deployments.
    hosts = {e["event_data"].get("task"): e["event_data"].get("host") for e in events if e["event"] == "runner_on_ok"}
    client_node = next(n.hostname for n in env["state"].nodes if n.role == "client")
    control_node = next(n.hostname for n in env["state"].nodes if n.role == "control")
    assert hosts["Send the requests (the emulation's wall time), every one recorded"].startswith(client_node)
    emulator_host = st.run(run_id)["meta"]["emulator"]["host"]
    assert emulator_host.startswith(control_node), emulator_host
    assert st.run(run_id)["meta"]["emulator"]["rtt_model"] == "physical"  # merged from the control node
    merged = [e["event_data"]["res"] for e in events if e["event"] == "runner_on_ok"
              and e["event_data"].get("task") == "Merge the ticks into the controller's run"]
    assert merged and " ticks rows added" in merged[0]["stdout"], merged

    # A real pod moved between real kubelets, each time well before the old satellite left.
    ticks = st.rows(run_id, "ticks")
    handovers = st.rows(run_id, "handovers") or handovers_from_ticks(ticks)
    moves = [h for h in handovers if h["from_node"] != h["to_node"]]
    assert moves, "no handover"
    for h in moves:
        assert h["lead_s"] is not None and h["lead_s"] >= 0.8 * LOOKAHEAD_S, h
    workers = {n.fqdn for n in env["state"].nodes if n.role == "worker"}  # the Kubernetes node names
    assert all(h["from_node"] in workers and h["to_node"] in workers for h in moves), moves

    # The zone was served (by an in-zone satellite) at >= 99% of the ticks.
    by_t: dict[float, list[dict]] = {}
    for t in ticks:
        by_t.setdefault(t["t_sim"], []).append(t)
    served = sum(1 for rows in by_t.values() if any(r["serving"] and r["in_zone"] for r in rows))
    assert served >= 0.99 * len(by_t), (served, len(by_t))

    # Every request was sent from the client node and recorded as such.
    reqs = st.rows(run_id, "requests")
    assert len(reqs) >= 50
    client_host = hosts["Send the requests (the emulation's wall time), every one recorded"]
    assert {r["client_host"] for r in reqs} == {client_host}
    ok = [r for r in reqs if r["status"] == "ok"]
    assert len(ok) >= 0.95 * len(reqs), (len(ok), len(reqs))
    assert {r["node"] for r in ok} <= workers

    # The sweep: both schedulers, latency growing with the delay injected by the proxy, recorded as such.
    meta = st.run(run_id)["meta"]
    assert meta["injection"]["sweep"] == "proxy", meta["injection"]
    assert meta["injection"]["chosen"] == "proxy"
    assert meta["injection"]["emulator"] == "none" and meta["injection"]["client"] == "none"
    rows = [r for r in st.rows(run_id, "pod_latency") if not r["warmup"]]
    assert not [r["error"] for r in rows if r["error"]]
    for sched in ("krios-scheduler", "default-scheduler"):
        med = {}
        for d in (0.0, 50.0, 100.0):
            vals = sorted(r["schedulingLatency"] for r in rows if r["scheduler"] == sched and r["latency_ms"] == d)
            assert vals, (sched, d)
            med[d] = vals[len(vals) // 2]
        assert med[0.0] < med[50.0] < med[100.0], (sched, med)
        assert med[100.0] >= 200.0, (sched, med)  # two one-way delays at least
    assert "### schedulingLatency" in text and "krios-scheduler" in text and "default-scheduler" in text
    assert "[" in text.split("### schedulingLatency", 1)[1].split("###", 1)[0]  # bootstrap CIs
    assert '"sweep": "proxy"' in text
    assert f"requests ({len(reqs)} from {client_host})" in text  # the report names where requests came from
    assert f'"host": "{emulator_host}"' in text  # and where the emulator ran

    # Every node sampled its telemetry (CPU, memory, network, its daemons) through the emulation, merged here.
    telemetry = st.rows(run_id, "telemetry")
    nodes = {n.fqdn for n in env["state"].nodes}
    assert {r["node"] for r in telemetry if r["kind"] == "cpu" and r["item"] == "total"} == nodes
    assert {r["item"] for r in telemetry if r["kind"] == "proc"} >= {"kubelet", "containerd"}
    assert "## Node telemetry" in text

    # Cold start and churn of real containerd sandboxes (the nodes' pause image) against the cluster's own
    # schedulers, after the proxy sweep put them back: every arrival of both schedulers recorded and Ready.
    turnover = st.rows(run_id, "coldstart")
    assert {r["mode"] for r in turnover} == {"coldstart", "churn"}
    assert {r["scheduler"] for r in turnover} == {"krios-scheduler", "default-scheduler"}
    assert "## Cold-start sweep" in text and "## Churn" in text
    print(text[text.index("## Cold-start sweep"):][:3000])
    # where each scheduler put the sandboxes and how long each node took to Ready (the Ready-time gap)
    for sched in ("default-scheduler", "krios-scheduler"):
        by_node: dict[str, list[float]] = {}
        for r in turnover:
            if r["scheduler"] == sched and r.get("node") and r.get("t_ready") and r.get("t_submit"):
                by_node.setdefault(r["node"], []).append(r["t_ready"] - r["t_submit"])
        print(sched, {n: (len(v), round(sorted(v)[len(v) // 2], 2)) for n, v in sorted(by_node.items())})

    # krios_injection: netem renders and checks the exact tc commands on the control node, and stops with one
    # line where the kernel has no netem (this machine) instead of recording a sweep that injected nothing.
    events, _ = _site(env, "playbooks/measure.yml", ok=False, krios_measure=True, krios_injection="netem",
                        krios_latency_ms=[0, 50], krios_samples_per_latency=1)
    shown = [e["event_data"]["res"].get("msg") for e in events if e["event"] == "runner_item_on_ok"
             and e["event_data"].get("task") == "The tc commands per delay (ms)"]
    tc = [c for cmds in shown for c in cmds]
    assert any(c.startswith("tc qdisc") and "netem delay 50" in c.replace("50.0", "50") for c in tc), tc
    failures = [str(e["event_data"]["res"].get("msg")) for e in events if e["event"] == "runner_on_failed"]
    # The reason is the kernel's (krios netem check on the node), not a missing program.
    assert any("krios_injection: netem:" in m and "cannot apply it" in m and "sch_netem" in m
               for m in failures), failures
    (bad,) = [r for r in ResultsStore(db).runs() if r["kind"] == "experiment" and r["id"] != run_id]
    assert bad["status"] == "failed"
