"""``krios scheduler``, ``krios controller`` and ``krios bench scheduler``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

from krios.errors import ConfigError

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "scheduler",
        help="run the krios scheduler (place leozone pods on in-zone satellites)",
        description="Schedule pods whose spec.schedulerName is --scheduler-name: leozone pods onto "
        "nodes whose sat_id satellite is in the zone now (ranked by the policy), delay_<from> "
        "pods onto nodes within the latency matrix's limits, others onto the least loaded worker.",
    )
    _add_common(p)
    p.add_argument("--parallelism", type=int, default=8, metavar="N",
                   help="concurrent scheduling attempts / binds (default 8)")
    p.set_defaults(func=cmd_scheduler)

    c = sub.add_parser(
        "controller",
        help="run the krios handover controller (make-before-break moves between satellites)",
        description="Start a replacement of each Ready leozone pod on the best successor node before "
        "(proactive) or after (reactive) its satellite leaves the zone; delete the old copy once the "
        "new one is Ready.",
    )
    _add_common(c)
    c.add_argument("--mode", choices=("proactive", "reactive"),
                   help="handover mode (default: the scenario's handover.mode, else proactive)")
    c.add_argument("--lookahead-s", type=float, metavar="S",
                   help="proactive lead, emulated seconds before the exit (default: scenario, else 30)")
    c.add_argument("--ready-timeout-s", type=float, metavar="S",
                   help="wall seconds a successor may take to become Ready (default: scenario, else 60)")
    c.add_argument("--run-id", help="record each handover in this results run (table handovers)")
    c.add_argument("--results-db", metavar="PATH",
                   help="results database for --run-id (default: $KRIOS_RESULTS_DB or results/krios.sqlite)")
    c.set_defaults(func=cmd_controller)

    b = bench.add_parser(
        "scheduler",
        help="krios-scheduler vs kube-scheduler: latency and throughput at the same client QPS",
        description="Start a local cluster with --nodes virtual nodes, then submit --pods pods to "
        "kube-scheduler and to krios-scheduler (same client QPS/burst) and report p50/p99 "
        "scheduling latency (submit -> bound seen by a watch) and pods/s for both, with ratios.",
    )
    b.add_argument("--nodes", type=int, default=100, metavar="N", help="virtual worker nodes (default 100)")
    b.add_argument("--pods", type=int, default=500, metavar="N", help="pods per scheduler and phase (default 500)")
    b.add_argument("--qps", type=float, default=50.0, help="client QPS of both schedulers (default 50)")
    b.add_argument("--burst", type=int, default=100, help="client burst of both schedulers (default 100)")
    b.add_argument("--rate", type=float, default=20.0, metavar="PODS_PER_S",
                   help="submission rate of the paced (latency) phase (default 20)")
    b.add_argument("--parallelism", type=int, default=8, metavar="N", help="krios-scheduler workers (default 8)")
    b.add_argument("--state-dir", metavar="DIR", help="cluster state folder (default: a temporary one)")
    b.add_argument("--json", action="store_true", help="print the figures as JSON")
    b.set_defaults(func=cmd_bench)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", help="kubeconfig (default: $KUBECONFIG, the local cluster, in-cluster)")
    con = p.add_argument_group("constellation and zone defaults")
    con.add_argument("--scenario", metavar="NAME", help="scenario name or file: constellation, policy, handover")
    con.add_argument("--tles", metavar="FILE", help="3-line TLE file (instead of the scenario's constellation)")
    con.add_argument("--shell", metavar="NAME", help="Walker preset, e.g. starlink-1 (with --epoch)")
    con.add_argument("--epoch", metavar="ISO", help="epoch of the Walker elements (default 2026-01-01T00:00:00Z)")
    con.add_argument("--min-elevation-deg", type=float, metavar="DEG",
                     help="elevation mask for leozone labels (default: scenario, else 25)")
    con.add_argument("--horizon-s", type=float, default=3600.0, metavar="S",
                     help="pass prediction window (default 3600)")
    pol = p.add_argument_group("policy")
    pol.add_argument("--policy", choices=("krios", "closest", "random"),
                     help="placement policy (default: scenario, else krios)")
    pol.add_argument("--seed", type=int, help="seed of the random policy (default: scenario, else 0)")
    pol.add_argument("--scheduler-name", default="krios-scheduler",
                     help="spec.schedulerName handled (default krios-scheduler)")
    api = p.add_argument_group("API")
    api.add_argument("--kube-api-qps", type=float, default=50.0, help="client QPS (default 50, as kube-scheduler)")
    api.add_argument("--kube-api-burst", type=int, default=100, help="client burst (default 100)")
    api.add_argument("--no-leader-elect", dest="leader_elect", action="store_false",
                     help="act without taking the Lease (single replica)")
    api.add_argument("--lease-namespace", default="krios-system", help="namespace of the Lease (default krios-system)")
    api.add_argument("--leader-elect-lease-duration", type=float, default=15.0, metavar="S",
                     help="how long a silent leader keeps the Lease (default 15)")
    api.add_argument("--leader-elect-renew-deadline", type=float, default=10.0, metavar="S",
                     help="a leader that cannot renew for this long stops acting (default 10)")
    api.add_argument("--leader-elect-retry-period", type=float, default=2.0, metavar="S",
                     help="renew / retry period (default 2)")


def load_orbits(args: argparse.Namespace) -> tuple[Any, Any]:
    """``(constellation, scenario or None)`` from ``--scenario``/``--tles``/``--shell --epoch``."""
    from krios.config import scenarios
    from krios.config.times import parse_time
    from krios.orbits.constellation import Constellation

    scenario = scenarios.load(args.scenario) if args.scenario else None
    if args.tles and args.shell:
        raise ConfigError("give only one of --tles and --shell", source="options", field="--tles/--shell")
    if args.epoch and not args.shell:
        raise ConfigError("--epoch goes with --shell", source="options", field="--epoch")
    if args.tles:
        return Constellation.from_file(args.tles), scenario
    if args.shell:
        epoch = parse_time(args.epoch or "2026-01-01T00:00:00Z", source="--epoch")
        return Constellation.from_shell(args.shell, epoch, source="--shell"), scenario
    if scenario is None:
        raise ConfigError("give --scenario NAME, --tles FILE or --shell NAME", source="options",
                          field="constellation")
    return Constellation.from_scenario(scenario), scenario


def _daemon_kw(args: argparse.Namespace, scenario: Any) -> dict[str, Any]:
    from krios.control.policies import check_policy

    zone = scenario.zone if scenario is not None else {}
    policy = args.policy or (scenario.get("policy") if scenario is not None else None) or "krios"
    seed = args.seed if args.seed is not None else (scenario.get("seed", 0) if scenario is not None else 0)
    elev = args.min_elevation_deg if args.min_elevation_deg is not None else zone.get("min_elevation_deg", 25.0)
    if not 0 <= float(elev) < 90:
        raise ConfigError("must be within [0, 90)", source="--min-elevation-deg", field=str(elev))
    timing = (args.leader_elect_lease_duration, args.leader_elect_renew_deadline, args.leader_elect_retry_period)
    if not 0 < timing[2] < timing[1] < timing[0]:
        raise ConfigError("need 0 < retry period < renew deadline < lease duration",
                          source="--leader-elect-*", field=" ".join(f"{t:g}" for t in timing))
    if args.kube_api_qps < 0 or args.kube_api_burst < 1:
        raise ConfigError("QPS must be >= 0 and burst >= 1", source="--kube-api-qps/--kube-api-burst")
    return {
        "scheduler_name": args.scheduler_name,
        "policy": check_policy(policy, source="--policy"),
        "seed": int(seed),
        "min_elevation_deg": float(elev),
        "horizon_s": args.horizon_s,
        "qps": args.kube_api_qps,
        "burst": args.kube_api_burst,
        "leader_elect": args.leader_elect,
        "lease_namespace": args.lease_namespace,
        "lease_timing_s": timing,
    }


def _run(daemon: Any, what: str, scenario: Any) -> int:
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.warning("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    # Hand the GIL over every 1 ms instead of 5: a pod passes through several threads
    # (watch, worker, HTTP), and each hand-over waited up to the interval.
    sys.setswitchinterval(0.001)
    daemon.start()
    if scenario is not None:  # the scenario's zone is the one pods will ask about first
        from dataclasses import replace

        from krios.orbits.zones import Zone

        zone = Zone.from_scenario(scenario)
        daemon.prewarm(replace(zone, min_elevation_deg=daemon.min_elevation_deg))
    lease = (f"lease {daemon.elector.namespace}/{daemon.elector.name} as {daemon.identity}"
             if daemon.elector else "no leader election")
    print(f"{what}: caches synced ({len(daemon.nodes.list())} nodes, {len(daemon.pods.list())} pods); {lease}",
          file=sys.stderr, flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        daemon.stop()
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    from krios.control.scheduler import Scheduler
    from krios.kube.config import load_client

    constellation, scenario = load_orbits(args)
    kw = _daemon_kw(args, scenario)
    if args.parallelism < 1:
        raise ConfigError("must be at least 1", source="--parallelism", field=str(args.parallelism))
    api = load_client(args.kubeconfig)
    return _run(Scheduler(api, constellation, parallelism=args.parallelism, **kw), "krios-scheduler", scenario)


def cmd_controller(args: argparse.Namespace) -> int:
    from krios.control.controller import Controller
    from krios.control.handover import check_mode
    from krios.kube.config import load_client

    constellation, scenario = load_orbits(args)
    kw = _daemon_kw(args, scenario)
    ho = (scenario.get("handover") if scenario is not None else None) or {}
    mode = check_mode(args.mode or ho.get("mode", "proactive"), source="--mode")
    lookahead = args.lookahead_s if args.lookahead_s is not None else float(ho.get("lookahead_s", 30.0))
    timeout = args.ready_timeout_s if args.ready_timeout_s is not None else float(ho.get("ready_timeout_s", 60.0))
    if lookahead < 0:
        raise ConfigError("must not be negative", source="--lookahead-s", field=str(lookahead))
    if timeout <= 0:
        raise ConfigError("must be positive", source="--ready-timeout-s", field=str(timeout))
    record = None
    if args.run_id:
        from krios.results.store import ResultsStore

        store = ResultsStore(args.results_db)
        run_id = store.start_run("controller", scenario=scenario.name if scenario else None,
                                 meta={"mode": mode, "lookahead_s": lookahead, "policy": kw["policy"]},
                                 run_id=args.run_id)

        def record(row: dict[str, Any]) -> None:
            store.add(run_id, "handovers", row)

    elif args.results_db:
        raise ConfigError("--results-db goes with --run-id", source="options", field="--results-db")
    api = load_client(args.kubeconfig)
    daemon = Controller(api, constellation, mode=mode, lookahead_s=lookahead, ready_timeout_s=timeout,
                        on_handover=record, **kw)
    return _run(daemon, "krios-controller", scenario)


def cmd_bench(args: argparse.Namespace) -> int:
    from krios.bench.scheduler import BenchConfig, format_report, run_bench

    cfg = BenchConfig(nodes=args.nodes, pods=args.pods, qps=args.qps, burst=args.burst, rate=args.rate,
                      parallelism=args.parallelism, state_dir=args.state_dir)
    cfg.check()
    result = run_bench(cfg, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    if args.json:
        import json

        print(json.dumps(result, indent=2))
    else:
        print(format_report(result))
    return 0
