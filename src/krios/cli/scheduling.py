"""``krios scheduler``, ``krios controller`` and ``krios bench scheduler``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

from krios.config import defaults as D
from krios.errors import ConfigError
from krios.kube.names import CONTROLLER_NAME, SCHEDULER_NAME

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
    p.add_argument("--parallelism", type=int, default=D.PARALLELISM, metavar="N",
                   help=f"concurrent scheduling attempts / binds (default {D.PARALLELISM})")
    p.add_argument("--backup-reservations", action="store_true",
                   help='reserve a backup node for every delay_ pod without leozone (default: only pods '
                        'labelled krios.io/backup: "true")')
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
                   help=f"handover mode (default: the scenario's handover.mode, else {D.HANDOVER_MODE})")
    c.add_argument("--lookahead-s", type=float, metavar="S",
                   help=f"proactive lead, emulated seconds before the exit (default: scenario, else {D.LOOKAHEAD_S:g})")
    c.add_argument("--ready-timeout-s", type=float, metavar="S",
                   help="wall seconds a successor may take to become Ready "
                        f"(default: scenario, else {D.READY_TIMEOUT_S:g})")
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
    b.add_argument("--qps", type=float, default=D.KUBE_API_QPS,
                   help=f"client QPS of both schedulers (default {D.KUBE_API_QPS:g})")
    b.add_argument("--burst", type=int, default=D.KUBE_API_BURST,
                   help=f"client burst of both schedulers (default {D.KUBE_API_BURST})")
    b.add_argument("--rate", type=float, default=20.0, metavar="PODS_PER_S",
                   help="submission rate of the paced (latency) phase (default 20)")
    b.add_argument("--unthrottled-qps", type=float, default=10000.0,
                   help="client QPS of both schedulers in the unthrottled comparison (default 10000)")
    b.add_argument("--unthrottled-burst", type=int, default=20000,
                   help="client burst of both in the unthrottled comparison (default 20000)")
    b.add_argument("--backlog", type=int, default=80, metavar="N",
                   help="pending leozone pods in distinct zones of the backlog phase (default 80; 0: skip)")
    b.add_argument("--parallelism", type=int, default=D.PARALLELISM, metavar="N",
                   help=f"krios-scheduler workers (default {D.PARALLELISM})")
    b.add_argument("--state-dir", metavar="DIR", help="cluster state folder (default: a temporary one)")
    b.add_argument("--json", action="store_true", help="print the figures as JSON")
    b.set_defaults(func=cmd_bench)

    f = bench.add_parser(
        "failover",
        help="kill the controller leader (SIGKILL) mid-handover N times: emulated seconds without an "
             "in-zone copy and with two copies",
        description="On a local real control plane with virtual kubelets and the emulated clock at --rate, "
        "run two krios controllers, play a handover, SIGKILL the leader as soon as it has created the "
        "successor, and measure (per kill) the emulated seconds with no Ready copy on an in-zone satellite "
        "and with two Ready copies, against the Lease sized by the default rule. Modes: same-host (the "
        "standby sees the dead leader's process is gone), expiry (it waits for the Lease to expire) and "
        "freeze (SIGSTOP before the handover is due: the standby must start it).",
    )
    f.add_argument("--kills", type=int, default=3, metavar="N", help="SIGKILLs per mode (default 3)")
    f.add_argument("--rate", type=float, default=10.0, help="emulated seconds per wall second (default 10)")
    f.add_argument("--scenario", default="sf_4workers", metavar="NAME", help="scenario (default sf_4workers)")
    f.add_argument("--lookahead-s", type=float, metavar="S",
                   help="handover lookahead, emulated s (default: the scenario's)")
    f.add_argument("--workers", type=int, default=2, metavar="N", help="virtual workers (default 2)")
    f.add_argument("--modes", default=",".join(("same-host", "expiry", "freeze")),
                   help="comma-separated: same-host, expiry, freeze (default all three)")
    f.add_argument("--state-dir", metavar="DIR", help="cluster state folder (default: a temporary one)")
    f.add_argument("--json", action="store_true", help="print the figures as JSON")
    f.set_defaults(func=cmd_bench_failover)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", help="kubeconfig (default: $KUBECONFIG, the local cluster, in-cluster)")
    con = p.add_argument_group("constellation and zone defaults")
    con.add_argument("--scenario", metavar="NAME", help="scenario name or file: constellation, policy, handover")
    con.add_argument("--tles", metavar="FILE", help="3-line TLE file (instead of the scenario's constellation)")
    con.add_argument("--shell", metavar="NAME", help="Walker preset, e.g. starlink-1 (with --epoch)")
    con.add_argument("--epoch", metavar="ISO", help=f"epoch of the Walker elements (default {D.EPOCH})")
    con.add_argument("--min-elevation-deg", type=float, metavar="DEG",
                     help=f"elevation mask for leozone labels (default: scenario, else {D.MIN_ELEVATION_DEG:g})")
    con.add_argument("--default-radius-km", type=float, metavar="KM",
                     help="zone radius of a pod labelled leozone without a radius label "
                          f"(default: the scenario's zone.radius_km, else {D.ZONE_RADIUS_KM:g})")
    con.add_argument("--horizon-s", type=float, default=D.TRACKER_HORIZON_S, metavar="S",
                     help=f"pass prediction window (default {D.TRACKER_HORIZON_S:g})")
    pol = p.add_argument_group("policy")
    pol.add_argument("--policy", choices=("krios", "closest", "random"),
                     help=f"placement policy (default: scenario, else {D.POLICY})")
    pol.add_argument("--seed", type=int, help=f"seed of the random policy (default: scenario, else {D.SEED})")
    pol.add_argument("--scheduler-name", default=D.SCHEDULER_NAME,
                     help=f"spec.schedulerName handled (default {D.SCHEDULER_NAME})")
    api = p.add_argument_group("API")
    api.add_argument("--kube-api-qps", type=float, default=D.KUBE_API_QPS,
                     help=f"client QPS (default {D.KUBE_API_QPS:g}, as kube-scheduler)")
    api.add_argument("--kube-api-burst", type=int, default=D.KUBE_API_BURST,
                     help=f"client burst (default {D.KUBE_API_BURST})")
    api.add_argument("--no-leader-elect", dest="leader_elect", action="store_false",
                     help="act without taking the Lease (single replica)")
    api.add_argument("--lease-namespace", default=D.LEASE_NAMESPACE,
                     help=f"namespace of the Lease (default {D.LEASE_NAMESPACE})")
    api.add_argument("--leader-elect-lease-duration", type=float, metavar="S",
                     help="how long a silent leader keeps the Lease, wall s (default: sized from the handover "
                          "lookahead and the emulated clock's rate, see docs/guide/scheduling.md; "
                          f"{D.LEASE_DURATION_S:g} if only the other two are given)")
    api.add_argument("--leader-elect-renew-deadline", type=float, metavar="S",
                     help="a leader that cannot renew for this long stops acting (default: 2/3 of the lease; "
                          f"{D.RENEW_DEADLINE_S:g} with explicit timing)")
    api.add_argument("--leader-elect-wait-expiry", dest="lease_take_over_dead", action="store_false",
                     help="wait for the Lease to expire even when its holder's process is gone from this host "
                          "(default: take it over at once, see docs/guide/reliability.md)")
    api.add_argument("--leader-elect-retry-period", type=float, metavar="S",
                     help="renew / retry period (default: 1/10 of the lease; "
                          f"{D.RETRY_PERIOD_S:g} with explicit timing)")


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
        epoch = parse_time(args.epoch or D.EPOCH, source="--epoch")
        return Constellation.from_shell(args.shell, epoch, source="--shell"), scenario
    if scenario is None:
        raise ConfigError("give --scenario NAME, --tles FILE or --shell NAME", source="options",
                          field="constellation")
    return Constellation.from_scenario(scenario), scenario


def _config(cls: Any, args: argparse.Namespace, scenario: Any, **more: Any) -> Any:
    """``cls.from_scenario`` with the common flags as overrides (``None``: not given)."""
    return cls.from_scenario(
        scenario,
        scheduler_name=args.scheduler_name, policy=args.policy, seed=args.seed,
        min_elevation_deg=args.min_elevation_deg, default_radius_km=args.default_radius_km, horizon_s=args.horizon_s,
        qps=args.kube_api_qps, burst=args.kube_api_burst, leader_elect=args.leader_elect,
        lease_namespace=args.lease_namespace,
        lease_timing_s=lease_flags(args), lease_take_over_dead=args.lease_take_over_dead,
        **more,
    )


def lease_flags(args: argparse.Namespace) -> tuple[float, float, float] | None:
    """The ``--leader-elect-*`` timing; ``None`` when none is given (sized from the lookahead and the
    clock rate by the daemon); a flag left out of an explicit timing keeps client-go's default."""
    given = (args.leader_elect_lease_duration, args.leader_elect_renew_deadline, args.leader_elect_retry_period)
    if all(v is None for v in given):
        return None
    defaults = (D.LEASE_DURATION_S, D.RENEW_DEADLINE_S, D.RETRY_PERIOD_S)
    lease, renew, retry = (d if v is None else v for v, d in zip(given, defaults, strict=True))
    return lease, renew, retry


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
    lease = (f"lease {daemon.elector.namespace}/{daemon.elector.name} as {daemon.identity} "
             f"({daemon.elector.lease_duration_s:g} s{', sized from the clock' if daemon.auto_lease else ''})"
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
    from krios.control.scheduler import Scheduler, SchedulerConfig
    from krios.kube.config import load_client

    constellation, scenario = load_orbits(args)
    cfg = _config(SchedulerConfig, args, scenario, parallelism=args.parallelism,
                  backup_reservations=args.backup_reservations or None)
    api = load_client(args.kubeconfig)
    return _run(Scheduler(api, constellation, **cfg.kwargs()), SCHEDULER_NAME, scenario)


def cmd_controller(args: argparse.Namespace) -> int:
    from krios.control.controller import Controller, ControllerConfig
    from krios.kube.config import load_client

    constellation, scenario = load_orbits(args)
    cfg = _config(ControllerConfig, args, scenario, mode=args.mode, lookahead_s=args.lookahead_s,
                  ready_timeout_s=args.ready_timeout_s)
    record = None
    if args.run_id:
        from krios.results.store import ResultsStore

        store = ResultsStore(args.results_db)
        run_id = store.start_run("controller", scenario=scenario.name if scenario else None,
                                 meta={"mode": cfg.mode, "lookahead_s": cfg.lookahead_s, "policy": cfg.policy},
                                 run_id=args.run_id)

        def record(row: dict[str, Any]) -> None:
            store.add(run_id, "handovers", row)

    elif args.results_db:
        raise ConfigError("--results-db goes with --run-id", source="options", field="--results-db")
    api = load_client(args.kubeconfig)
    daemon = Controller(api, constellation, on_handover=record, **cfg.kwargs())
    return _run(daemon, CONTROLLER_NAME, scenario)


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _bench_out(args: argparse.Namespace, result: Any, format_report: Any) -> int:
    """Print a benchmark's result: JSON with ``--json``, else its text report."""
    if args.json:
        import json

        print(json.dumps(result, indent=2))
    else:
        print(format_report(result))
    return 0


def cmd_bench_failover(args: argparse.Namespace) -> int:
    from krios.bench.failover import FailoverConfig, format_report, run_bench

    cfg = FailoverConfig(kills=args.kills, rate=args.rate, scenario=args.scenario, lookahead_s=args.lookahead_s,
                         workers=args.workers, modes=tuple(m for m in args.modes.split(",") if m),
                         state_dir=args.state_dir)
    cfg.check()
    return _bench_out(args, run_bench(cfg, progress=_progress), format_report)


def cmd_bench(args: argparse.Namespace) -> int:
    from krios.bench.scheduler import BenchConfig, format_report, run_bench

    cfg = BenchConfig(nodes=args.nodes, pods=args.pods, qps=args.qps, burst=args.burst, rate=args.rate,
                      fast_qps=args.unthrottled_qps, fast_burst=args.unthrottled_burst, backlog=args.backlog,
                      parallelism=args.parallelism, state_dir=args.state_dir)
    cfg.check()
    return _bench_out(args, run_bench(cfg, progress=_progress), format_report)
