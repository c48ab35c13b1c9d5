"""``krios simulate`` and ``krios bench simulate``: the policy simulator on the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from krios.cli.flags import accept_negative_zones
from krios.config import defaults as D
from krios.sim.model import POLICY_SPECS

_EPILOG = "policies:\n" + "\n".join(f"  {name:<9} {spec.summary}" for name, spec in POLICY_SPECS.items())


def add_common(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``krios simulate`` and ``krios bench simulate``."""
    con = parser.add_argument_group("constellation (default: the first scenario's, else starlink-1)")
    src = con.add_mutually_exclusive_group()
    src.add_argument("--tles", metavar="FILE", help="3-line TLE file")
    src.add_argument("--shell", metavar="NAME", help="Walker preset (starlink-1, starlink-2, ...)")
    src.add_argument("--planes", type=int, metavar="P", help="Walker-delta: orbital planes")
    con.add_argument("--per-plane", type=int, metavar="S", help="Walker-delta: satellites per plane")
    con.add_argument("--altitude-km", type=float, metavar="KM", help="Walker-delta: altitude (km)")
    con.add_argument("--inclination-deg", type=float, metavar="DEG", help="Walker-delta: inclination (deg)")
    con.add_argument("--phasing", type=float, default=1.0, metavar="F",
                     help="Walker-delta phase offset f (default 1)")
    run = parser.add_argument_group("run")
    run.add_argument("--start", metavar="ISO", help="simulated start (default: the scenario's start)")
    run.add_argument("--step-s", type=float, default=D.SIM_STEP_S, metavar="S",
                     help=f"sampling step for RTT and for 'closest' range comparisons (default {D.SIM_STEP_S:g} s)")
    run.add_argument("--policy", default="krios,reactive,closest,random", metavar="LIST",
                     help="comma-separated policies (default: all four)")
    run.add_argument("--seed", type=int, metavar="N", help="random seed (default: the scenario's)")
    run.add_argument("--lookahead-s", type=float, metavar="S",
                     help="proactive handover lead (default: the scenario's handover.lookahead_s)")
    run.add_argument("--startup-s", type=float, default=D.SIM_STARTUP_S, metavar="S",
                     help=f"seconds from starting a successor until it can serve (default {D.SIM_STARTUP_S:g})")
    run.add_argument("--jobs", type=int, default=0, metavar="N",
                     help="worker processes, one zone each (default 0: one per CPU, at most one per zone)")


def add_zones(parser: argparse.ArgumentParser) -> None:
    """Zone selection options of ``krios simulate``."""
    accept_negative_zones(parser)
    zones = parser.add_argument_group("zones (default: --scenario sf_4workers)")
    zones.add_argument("--scenario", action="append", metavar="NAME", help="a scenario's zone (repeatable)")
    zones.add_argument("--zone", action="append", metavar="LAT_LON",
                       help="a zone as a leozone label, e.g. 37.77_-122.41 or -33.87_151.21 (repeatable)")
    zones.add_argument("--all-scenarios", action="store_true", help="every scenario's zone")
    zones.add_argument("--radius-km", type=float, metavar="KM",
                       help=f"zone radius (default: the scenario's; {D.SIM_ZONE_RADIUS_KM:g} for --zone)")
    zones.add_argument("--min-elevation-deg", type=float, metavar="DEG",
                       help=f"minimum elevation (default: the scenario's; {D.MIN_ELEVATION_DEG:g} for --zone)")


def register(sub: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="compare placement policies over hours without a cluster",
        description="Simulate handovers, availability and client RTT of placement policies "
        "over simulated time, with the scheduler's and controller's own decision code.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_zones(p)
    add_common(p)
    p.add_argument("--rtt-model", choices=("physical", "krios-emulator"), metavar="MODEL",
                   help="client RTT model: physical or krios-emulator (default: each scenario's "
                   f"latency.rtt_model, else {D.RTT_MODEL}; docs/guide/fidelity.md)")
    p.add_argument("--duration", default=D.SIM_DURATION, metavar="D",
                   help=f"simulated time, e.g. 90m, 24h (default {D.SIM_DURATION})")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="write simulation.json, metrics.csv, handovers.csv and PNG plots here")
    p.set_defaults(func=cmd_simulate)

    b = bench.add_parser(
        "simulate",
        help="simulated seconds per wall second (24 h of shell 1, 10 zones)",
        description="Time the policy simulator on a whole constellation shell and several zones.",
    )
    add_common(b)
    b.add_argument("--duration", default=D.SIM_DURATION, metavar="D",
                   help=f"simulated time (default {D.SIM_DURATION})")
    b.add_argument("--zones", type=int, default=10, metavar="N", help="how many of the bench cities (default 10)")
    b.add_argument("--json", action="store_true", help="print the figures as JSON")
    b.set_defaults(func=cmd_bench)


def cmd_simulate(args: argparse.Namespace) -> int:
    from krios.sim import report
    from krios.sim import run as simulate

    config, constellation = simulate.config_from_args(args)
    result = simulate.simulate(constellation, config, jobs=simulate.jobs_for(args.jobs, len(config.zones)))
    for name, count in result.passes.items():
        if count == 0:
            print(f"krios: warning: zone {name}: no satellite of {result.constellation} enters it", file=sys.stderr)
    if result.epoch_warning:
        print(f"krios: warning: {result.epoch_warning}", file=sys.stderr)
    if args.output:
        paths = simulate.write_outputs(Path(args.output), result)
        if not args.json:
            print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    if args.json:
        sys.stdout.write(report.to_json(result.document()))
    else:
        sys.stdout.write(result.headline() + "\n" + report.table(result.metrics))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from krios.bench import simulate as bench_simulate

    return bench_simulate.main(args)
