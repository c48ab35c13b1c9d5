"""``krios bench simulate``: how fast the policy simulator runs a whole shell.

Runs every policy for ``--duration`` (default 24 h) of a constellation
(default Starlink shell 1, 1584 satellites; ``--shell starlink-gen1``: all five
Gen1 shells, 4,408 satellites) over ``--zones`` (default 10, at most 100) zones:
the cities in :data:`BENCH_ZONES`, then :func:`bench_zones`' evenly spread
points (zones in ``--jobs`` worker processes), and
prints the CPU time of each stage side by side with the wall and CPU time of
the whole run, the simulated seconds per wall second (the whole run, and per
zone-policy) and the ratio to the target of a simulated day in under a
minute. The machine's load average is printed too: on a shared machine the
wall time grows with other load, the CPU time does not.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

from krios.config import defaults as D
from krios.errors import ConfigError
from krios.orbits.constellation import Constellation
from krios.orbits.zones import Zone
from krios.sim import run as simulate
from krios.sim.model import parse_policies

#: Cities under shell 1's coverage (|lat| < 53 deg): name, lat, lon (deg).
BENCH_ZONES: tuple[tuple[str, float, float], ...] = (
    ("san_francisco", 37.7749, -122.4194),
    ("seattle", 47.6062, -122.3321),
    ("tokyo", 35.6762, 139.6503),
    ("new_york", 40.7128, -74.0060),
    ("london", 51.5074, -0.1278),
    ("sao_paulo", -23.5505, -46.6333),
    ("sydney", -33.8688, 151.2093),
    ("nairobi", -1.2921, 36.8219),
    ("singapore", 1.3521, 103.8198),
    ("madrid", 40.4168, -3.7038),
)
#: The target: a simulated day in under a minute of wall time (issue #16: all five Gen1 shells,
#: ``--shell starlink-gen1 --zones 100``, four policies, on 2 cores).
TARGET_SIM_S_PER_WALL_S = 86400.0 / 60.0
#: Most zones ``--zones`` takes.
MAX_ZONES = 100
#: ``--shell`` value for every Starlink Gen1 shell at once (:data:`krios.orbits.walker.SHELLS`).
GEN1 = "starlink-gen1"


def bench_zones(n: int) -> list[tuple[str, float, float]]:
    """``n`` zones: :data:`BENCH_ZONES`, then a Fibonacci lattice of points within +-52 deg latitude
    (under shell 1's coverage), deterministic; name, lat, lon (deg)."""
    out = list(BENCH_ZONES[:n])
    golden = (1.0 + 5.0 ** 0.5) / 2.0
    extra = n - len(out)
    for i in range(extra):
        lat = math.degrees(math.asin((2.0 * (i + 0.5) / extra - 1.0) * math.sin(math.radians(52.0))))
        lon = (360.0 * i / golden) % 360.0 - 180.0
        out.append((f"grid_{i:03d}", round(lat, 4), round(lon, 4)))
    return out


def gen1_constellation(epoch: float) -> Constellation:
    """Every Starlink Gen1 shell in one constellation (``sat_id`` s shell by shell, 4,408)."""
    from krios.orbits.walker import SHELLS, walker_delta

    tles = [tle for name in SHELLS for tle in walker_delta(SHELLS[name], epoch)]
    return Constellation.from_tles(tles, source=f"shell:{GEN1}")


def run(args: Any) -> dict[str, Any]:
    """Run the benchmark for parsed ``krios bench simulate`` arguments; return its figures."""
    if not 1 <= args.zones <= MAX_ZONES:
        raise ConfigError(f"must be within [1, {MAX_ZONES}]", source="--zones", field=str(args.zones))
    zones = [
        simulate.zone_spec(name, Zone(lat, lon, D.SIM_ZONE_RADIUS_KM, D.MIN_ELEVATION_DEG))
        for name, lat, lon in bench_zones(args.zones)
    ]
    config = simulate.SimConfig.from_scenario(
        None, zones=zones, policies=parse_policies(args.policy), start=args.start, duration_s=args.duration,
        step_s=args.step_s, seed=args.seed, lookahead_s=args.lookahead_s, startup_s=args.startup_s,
    )
    start = config.start
    if not (args.tles or args.shell or args.planes):
        args.shell = D.SHELL
    if args.shell == GEN1:
        constellation = gen1_constellation(start)
    else:
        constellation = simulate.constellation_from_args(args, None, start)
    load_before = os.getloadavg()[0]
    result = simulate.simulate(constellation, config, jobs=simulate.jobs_for(args.jobs, len(config.zones)))
    load_after = os.getloadavg()[0]
    t = result.timings
    runs = len(config.zones) * len(config.policies)
    return {
        "constellation": result.constellation,
        "satellites": result.satellites,
        "zones": len(config.zones),
        "policies": [p.name for p in config.policies],
        "simulated_s": config.duration_s,
        "step_s": config.step_s,
        "jobs": t["jobs"],
        "wall_s": t["wall_s"],
        "cpu_s": t["cpu_s"],
        "passes_s": t["passes_s"],
        "samples_s": t["samples_s"],
        "decisions_s": t["decisions_s"],
        "metrics_s": t["metrics_s"],
        "sim_s_per_wall_s": t["sim_s_per_wall_s"],
        "sim_s_per_cpu_s": config.duration_s / t["cpu_s"] if t["cpu_s"] > 0 else float("inf"),
        "load_before": load_before,
        "load_after": load_after,
        "cpus": os.cpu_count() or 1,
        "zone_policy_sim_s_per_wall_s": config.duration_s * runs / t["wall_s"],
        "target_sim_s_per_wall_s": TARGET_SIM_S_PER_WALL_S,
        "ratio_to_target": t["sim_s_per_wall_s"] / TARGET_SIM_S_PER_WALL_S,
        "passes": sum(result.passes.values()),
        "handovers": {s["policy"]: s["handovers"] for s in _summary(result)},
    }


def _summary(result: simulate.SimResult) -> list[dict[str, Any]]:
    from krios.sim.report import summarize

    return summarize(result.metrics)


def main(args: Any) -> int:
    """``krios bench simulate``: print the figures (a table, or JSON with ``--json``)."""
    fig = run(args)
    if args.json:
        print(json.dumps(fig, indent=2))
        return 0
    out = sys.stdout
    wall = fig["wall_s"]
    out.write(
        f"{fig['constellation']} ({fig['satellites']} satellites), {fig['zones']} zones, "
        f"{fig['simulated_s'] / 3600:g} h simulated, step {fig['step_s']:g} s, "
        f"policies {','.join(fig['policies'])}\n"
    )
    for key, label in (("passes_s", "pass prediction"), ("samples_s", "grid ranges"),
                       ("decisions_s", "handover decisions"), ("metrics_s", "metrics + RTT")):
        out.write(f"  {label:<20} {fig[key]:8.2f} s\n")
    out.write(f"  (CPU seconds per stage, summed over zones; {fig['jobs']} worker process(es))\n")
    out.write(f"  {'wall total':<20} {wall:8.2f} s   CPU {fig['cpu_s']:.2f} s\n")
    out.write(f"simulated seconds per wall second: {fig['sim_s_per_wall_s']:.0f} "
              f"(all {fig['zones']} zones x {len(fig['policies'])} policies at once; "
              f"{fig['zone_policy_sim_s_per_wall_s']:.0f} zone-policy-seconds per wall second)\n")
    out.write(f"simulated seconds per CPU second: {fig['sim_s_per_cpu_s']:.0f}; "
              f"load average before/after: {fig['load_before']:.2f}/{fig['load_after']:.2f} "
              f"on {fig['cpus']} CPUs\n")
    out.write(f"target {fig['target_sim_s_per_wall_s']:.0f} (a simulated day in under a minute): "
              f"{fig['ratio_to_target']:.2f}x the target\n")
    out.write(f"passes {fig['passes']}, handovers " +
              ", ".join(f"{k} {v}" for k, v in fig["handovers"].items()) + "\n")
    return 0
