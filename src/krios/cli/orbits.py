"""``krios constellation generate|import``, ``krios visible``, ``krios passes`` and ``krios bench orbits``."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from krios.cli.flags import accept_negative_zones
from krios.config import defaults as D
from krios.errors import ConfigError

DEFAULT_EPOCH = D.EPOCH
#: The RTT models (:data:`krios.orbits.rtt.RTT_MODELS`, also ``latency.rtt_model`` in a scenario).
RTT_MODEL_CHOICES = ("physical", "krios-emulator")


def _add_source(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("constellation (one of)")
    one = src.add_mutually_exclusive_group(required=True)
    one.add_argument("--tles", metavar="FILE", help="3-line or 2-line TLE file (sat_id = position)")
    one.add_argument("--shell", metavar="NAME", help="Walker preset: starlink-1 .. starlink-5")
    src.add_argument("--epoch", default=DEFAULT_EPOCH, metavar="ISO",
                     help=f"epoch of a --shell's elements (default {DEFAULT_EPOCH})")


def _add_zone(parser: argparse.ArgumentParser) -> None:
    accept_negative_zones(parser)
    zone = parser.add_argument_group("zone")
    zone.add_argument("--zone", required=True, metavar="LAT_LON",
                      help="zone centre as a leozone label, e.g. 37.7749_-122.4194 or -33.87_151.21 (degrees)")
    zone.add_argument("--radius-km", default="0", metavar="KM",
                      help="zone radius: in the zone = above the minimum elevation from every "
                      "point within this distance of the centre (default 0: the centre)")
    zone.add_argument("--min-elevation-deg", default=str(D.MIN_ELEVATION_DEG), metavar="DEG",
                      help=f"minimum elevation above the horizon (default {D.MIN_ELEVATION_DEG:g})")


def register(sub: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    con = sub.add_parser("constellation", help="generate Walker-delta constellations as TLE files")
    con_sub = con.add_subparsers(dest="constellation_command", metavar="ACTION")
    con.set_defaults(func=lambda _a: (con.print_help(sys.stderr), 2)[1])
    gen = con_sub.add_parser(
        "generate", help="write a Walker-delta shell as a 3-line TLE file",
        description="Generate a Walker-delta shell (circular orbits, RAAN spacing 360/planes, "
        "in-plane phasing 360*f/total) through sgp4's sgp4init and write it as TLEs. "
        "Defaults to Starlink shell 1; explicit options override the chosen --shell.")
    gen.add_argument("--shell", default=D.SHELL, metavar="NAME",
                     help=f"preset to start from (default {D.SHELL}; see --list)")
    gen.add_argument("--planes", type=int, metavar="P", help="orbital planes")
    gen.add_argument("--per-plane", type=int, metavar="S", help="satellites per plane")
    gen.add_argument("--altitude-km", type=float, metavar="KM", help="altitude above 6378.135 km")
    gen.add_argument("--inclination-deg", type=float, metavar="DEG", help="inclination")
    gen.add_argument("--phase-offset", type=float, metavar="F", help="Walker phase offset f (default 1)")
    gen.add_argument("--epoch", default=DEFAULT_EPOCH, metavar="ISO",
                     help=f"element epoch (default {DEFAULT_EPOCH})")
    gen.add_argument("-o", "--output", metavar="FILE", help="TLE file to write")
    gen.add_argument("--list", action="store_true", help="list the presets and exit")
    gen.set_defaults(func=cmd_generate)

    imp = con_sub.add_parser(
        "import", help="filter a real TLE snapshot (e.g. CelesTrak's) to one shell",
        description="Read a 3-line TLE snapshot, drop duplicate (same catalog number: the newest\n"
        "epoch is kept) and decayed satellites with a warning, keep those in the shell\n"
        "(inclination band, mean-altitude band from the mean motion, name pattern), report\n"
        "the epoch spread and write the shell as a TLE file for --tles or a scenario's\n"
        "constellation.tles.",
        epilog="example (Starlink shell 1 out of CelesTrak's starlink group):\n"
        "  krios constellation import starlink.tle --name '^STARLINK' --inclination-deg 52.9:53.1 \\\n"
        "      --altitude-km 535:565 -o shell1.tle",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    imp.add_argument("file", metavar="FILE", help="the snapshot: 3-line (or 2-line) TLE file")
    imp.add_argument("-o", "--output", required=True, metavar="FILE", help="TLE file to write")
    imp.add_argument("--inclination-deg", metavar="LOW:HIGH", help="inclination band, deg (default: any)")
    imp.add_argument("--altitude-km", metavar="LOW:HIGH",
                     help="mean-altitude band from the mean motion, km (default: any)")
    imp.add_argument("--name", metavar="REGEX", help="regular expression searched in each name (default: any)")
    imp.add_argument("--decay-floor-km", type=float, default=None, metavar="KM",
                     help="drop as decayed below this mean altitude (default 200)")
    imp.add_argument("--json", action="store_true", help="print the summary as JSON")
    imp.set_defaults(func=cmd_import)

    vis = sub.add_parser(
        "visible", help="satellites in a zone at an instant",
        description="Satellites in the zone at --at (default now): elevation, azimuth and range "
        "from the zone centre and the seconds until each leaves the zone.")
    _add_source(vis)
    _add_zone(vis)
    vis.add_argument("--at", metavar="ISO", help="instant (default now)")
    vis.add_argument("--rtt-model", choices=RTT_MODEL_CHOICES, metavar="MODEL",
                     help="also print each satellite's client RTT under this model: "
                     f"{' or '.join(RTT_MODEL_CHOICES)} (docs/guide/fidelity.md)")
    vis.add_argument("--json", action="store_true", help="print a JSON list")
    vis.set_defaults(func=cmd_visible)

    pas = sub.add_parser(
        "passes", help="every entry and exit of every satellite in a window",
        description="Every pass through the zone overlapping [--start, --start + --duration-s]; "
        "entry and exit are the true crossings (to 0.01 s), even outside the window.")
    _add_source(pas)
    _add_zone(pas)
    pas.add_argument("--start", metavar="ISO", help="window start (default now)")
    pas.add_argument("--duration-s", required=True, metavar="S", help="window length: 3600, 90m, 24h")
    pas.add_argument("--json", action="store_true", help="print a JSON list")
    pas.set_defaults(func=cmd_passes)

    bo = bench.add_parser(
        "orbits", help="ms per tick: the runtime in-zone engine vs the naive loop and raw SatrecArray.sgp4",
        description="One tick = one instant: which satellites are in each zone and when each "
        "leaves, as the emulator and the daemons ask the runtime engine (ZoneTracker, one per "
        "zone). Times, side by side over consecutive ticks, the engine (queries plus its pass "
        "predictions, amortised; answers checked every tick against the in-zone rule on every "
        "satellite), the original's naive loop and the raw SatrecArray.sgp4 call, and prints "
        "their ratios.")
    bo.add_argument("--sats", type=int, default=10_000, metavar="N", help="satellites (default 10000)")
    bo.add_argument("--zones", type=int, default=100, metavar="N", help="zones (default 100)")
    bo.add_argument("--ticks", type=int, default=120, metavar="N",
                    help="consecutive ticks timed (default 120)")
    bo.add_argument("--tick-s", type=float, default=1.0, metavar="S",
                    help="emulated seconds between ticks (default 1)")
    bo.add_argument("--naive-sats", type=int, default=300, metavar="N",
                    help="satellites the naive loop is timed on, scaled to --sats (default 300)")
    bo.add_argument("--naive-ticks", type=int, metavar="N",
                    help="ticks the naive loop is timed in (default: all)")
    bo.add_argument("--seed", type=int, default=0, help="zone layout seed (default 0)")
    bo.add_argument("--json", action="store_true", help="print the figures as JSON")
    bo.set_defaults(func=cmd_bench)


def _constellation(args: argparse.Namespace) -> Any:
    from krios.config.times import parse_time
    from krios.orbits.constellation import Constellation

    if args.tles:
        return Constellation.from_file(args.tles)
    epoch = parse_time(args.epoch, source="--epoch")
    return Constellation.from_shell(args.shell, epoch, source="--shell")


def _zone(args: argparse.Namespace) -> Any:
    from krios.orbits.zones import parse_leozone

    return parse_leozone(args.zone, args.radius_km, args.min_elevation_deg, source="--zone",
                         radius_source="--radius-km", elevation_source="--min-elevation-deg")


def cmd_generate(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from krios.config.times import parse_time
    from krios.orbits.tle import write_tles
    from krios.orbits.walker import SHELLS, shell, walker_delta

    if args.list:
        for s in SHELLS.values():
            print(f"{s.name:<11} {s.planes:>3} planes x {s.per_plane:>2} = {s.total:>4}  "
                  f"{s.altitude_km:g} km  {s.inclination_deg:g} deg")
        return 0
    if not args.output:
        raise ConfigError("an output file is required", source="-o/--output")
    spec = shell(args.shell, source="--shell")
    overrides = {k: v for k, v in (("planes", args.planes), ("per_plane", args.per_plane),
                                   ("altitude_km", args.altitude_km),
                                   ("inclination_deg", args.inclination_deg),
                                   ("phase_offset", args.phase_offset)) if v is not None}
    if overrides:
        spec = replace(spec, **overrides)
        if set(overrides) - {"phase_offset"}:
            spec = replace(spec, name="walker")
    spec.check(source="krios constellation generate")
    epoch = parse_time(args.epoch, source="--epoch")
    tles = walker_delta(spec, epoch)
    write_tles(tles, args.output)
    print(f"wrote {len(tles)} satellites to {args.output}: {spec.planes} planes x "
          f"{spec.per_plane}, {spec.altitude_km:g} km, {spec.inclination_deg:g} deg, "
          f"phase offset {spec.phase_offset:g}, epoch {args.epoch}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from krios.orbits import snapshot

    flt = snapshot.ShellFilter(
        inclination_deg=None if args.inclination_deg is None
        else snapshot.parse_range(args.inclination_deg, "--inclination-deg"),
        altitude_km=None if args.altitude_km is None else snapshot.parse_range(args.altitude_km, "--altitude-km"),
        name=args.name,
        decay_floor_km=snapshot.DECAY_FLOOR_KM if args.decay_floor_km is None else args.decay_floor_km,
    )
    if not (math.isfinite(flt.decay_floor_km) and flt.decay_floor_km >= 0):
        raise ConfigError("must be a number of km >= 0", source="--decay-floor-km", field=str(args.decay_floor_km))
    try:
        result = snapshot.import_snapshot(args.file, flt)
    except ConfigError as err:
        if err.source == "name":  # a bad --name pattern
            raise ConfigError(err.message, source="--name", field=err.field) from None
        raise
    snapshot.write_shell(result, args.output)
    for line in result.warnings():
        print(f"krios: warning: {line}", file=sys.stderr)
    if args.json:
        print(json.dumps({**result.as_dict(), "output": args.output, "filter": flt.describe()}, indent=1))
        return 0
    assert result.spread is not None and result.snapshot_spread is not None
    print(f"read {result.read} element sets from {args.file}; dropped {len(result.duplicates)} duplicate, "
          f"{len(result.decayed)} decayed; {result.outside} outside the shell ({flt.describe()})")
    print(f"wrote {len(result.kept)} satellites to {args.output}: {result.spread.describe()}")
    print(f"the whole snapshot: {result.snapshot_spread.describe()}")
    return 0


def cmd_visible(args: argparse.Namespace) -> int:
    from krios.config.times import iso, parse_time
    from krios.orbits.passes import ZoneTracker

    zone = _zone(args)
    at = parse_time(args.at, source="--at")
    constellation = _constellation(args)
    tracker = ZoneTracker(constellation, zone, horizon_s=600.0)
    cands = tracker.candidates(at)
    ids = [c.sat_id for c in cands]
    elev, az, rng = tracker.look(ids, at)
    rows = [{"sat_id": c.sat_id, "name": constellation.names[c.sat_id],
             "elevation_deg": round(float(elev[k]), 4), "azimuth_deg": round(float(az[k]), 4),
             "range_km": round(float(rng[k]), 3), "seconds_to_exit": round(c.remaining_s, 2)}
            for k, c in enumerate(cands)]
    if args.rtt_model:
        from krios.orbits.rtt import LatencyModel

        model = LatencyModel(zone, per_hop_ms=D.PER_HOP_MS, hop_km=D.HOP_KM, rtt_model=args.rtt_model)
        rtt = model.client_rtt_ms(constellation.positions(ids, at)) if ids else []
        for r, ms in zip(rows, rtt, strict=True):
            r.update(rtt_ms=round(float(ms), 3), rtt_model=args.rtt_model)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{len(rows)} of {len(constellation)} satellites in zone {zone.label} "
          f"(radius {zone.radius_km:g} km, min elevation {zone.min_elevation_deg:g} deg) "
          f"at {iso(at)}" + (f", client RTT model {args.rtt_model}" if args.rtt_model else ""))
    if rows:
        rtt_head = f" {'rtt_ms':>7}" if args.rtt_model else ""
        print(f"{'sat_id':>6}  {'name':<22} {'elev_deg':>8} {'az_deg':>7} {'range_km':>9} "
              f"{'exit_in_s':>9}{rtt_head}")
        for r in rows:
            rtt_col = f" {r['rtt_ms']:>7.1f}" if args.rtt_model else ""
            print(f"{r['sat_id']:>6}  {r['name'][:22]:<22} {r['elevation_deg']:>8.2f} "
                  f"{r['azimuth_deg']:>7.2f} {r['range_km']:>9.1f} {r['seconds_to_exit']:>9.1f}{rtt_col}")
    return 0


def cmd_passes(args: argparse.Namespace) -> int:
    from krios.config.times import iso, parse_duration, parse_time
    from krios.orbits.passes import find_passes

    zone = _zone(args)
    start = parse_time(args.start, source="--start")
    duration = parse_duration(args.duration_s, source="--duration-s")
    constellation = _constellation(args)
    passes = find_passes(constellation, zone, start, duration)
    rows = [{"sat_id": p.sat_id, "name": p.name, "enter": iso(p.enter), "exit": iso(p.exit),
             "enter_unix": round(p.enter, 3), "exit_unix": round(p.exit, 3),
             "duration_s": round(p.duration_s, 2),
             "max_elevation_deg": round(p.max_elevation_deg, 3)} for p in passes]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{len(rows)} passes through zone {zone.label} (radius {zone.radius_km:g} km, "
          f"min elevation {zone.min_elevation_deg:g} deg) from {iso(start)} for {duration:g} s")
    if rows:
        print(f"{'sat_id':>6}  {'name':<22} {'enter':<24} {'exit':<24} {'dur_s':>7} {'max_el':>6}")
        for r in rows:
            print(f"{r['sat_id']:>6}  {r['name'][:22]:<22} {r['enter']:<24} {r['exit']:<24} "
                  f"{r['duration_s']:>7.1f} {r['max_elevation_deg']:>6.1f}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from krios.bench import orbits

    for name in ("sats", "zones", "ticks", "naive_sats", "naive_ticks"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ConfigError("must be at least 1", source=f"--{name.replace('_', '-')}",
                              field=str(getattr(args, name)))
    if not (args.tick_s > 0 and math.isfinite(args.tick_s)):
        raise ConfigError("must be a positive number of seconds", source="--tick-s",
                          field=str(args.tick_s))
    result = orbits.run(sats=args.sats, zones=args.zones, ticks=args.ticks,
                        naive_sats=args.naive_sats, naive_ticks=args.naive_ticks, seed=args.seed,
                        tick_s=args.tick_s)
    if args.json:
        print(json.dumps(result.as_dict(), indent=1))
    else:
        print(orbits.report(result))
    return 0
