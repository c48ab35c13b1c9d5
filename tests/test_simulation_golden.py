"""The simulator's figures on Starlink shell 1 are those recorded before it was optimised (issue #16).

``tests/data/sim_golden_shell1.json`` was written by this module (``python
tests/test_simulation_golden.py --write``) from the simulator as it was before
the per-zone work was shared and vectorised: shell 1 (1,584 satellites, the
generated Walker shell at its epoch), four zones (three cities at 1 deg to 51 deg
latitude and one of :func:`krios.bench.simulate.bench_zones`' lattice points),
2 h, the four policies, default settings (1 s step, 30 s lookahead, 5 s startup,
seed 0). The test re-runs the same configuration, in one process and in two
worker processes, and compares.

Tolerances, and why they are not zero everywhere:

- Everything discrete must be *equal*: per zone and policy, the number of
  handovers, placements, gaps, instances, RTT samples, and every handover's
  satellites and reason, every service interval's satellite.
- Times (handover instants, old exits, service interval ends, instance times,
  lead and serve figures) within :data:`TIME_TOL_S` = 1 microsecond. They come
  from pass entry/exit times found by root search to 0.01 s; the same search on
  the same positions returns the same float, so any change beyond floating-point
  reassociation (sub-nanosecond at unix-time magnitudes, 1e9 s x 2e-16) would be
  a changed pass, which this bound still catches by 4 orders of magnitude.
- RTT (ms) within :data:`RTT_RTOL` = 1e-9 relative: the client RTT is computed
  from ITRS positions (km, ~7000) that a different but equivalent evaluation
  order (one SGP4 call for many satellites instead of one per satellite; the
  same rotation applied as one matrix product) may change in the last bit
  (~1e-12 km), i.e. ~1e-15 relative, far below 1e-9; a genuinely different
  position (a metre is 1.5e-4 relative in the range) would fail it.
- Availability, mean instances and other ratios of times: 1e-9 absolute
  (time tolerance / 7200 s is 1.4e-10).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from krios.bench.simulate import BENCH_ZONES, bench_zones
from krios.config import defaults as D
from krios.orbits.constellation import Constellation
from krios.orbits.zones import Zone
from krios.sim import run as simulate
from krios.sim.model import parse_policies

GOLDEN = Path(__file__).parent / "data" / "sim_golden_shell1.json"
START = 1767225600.0  # 2026-01-01T00:00:00Z, the shell's epoch
DURATION_S = 7200.0
#: Allowed difference of any time (s); see the module docstring.
TIME_TOL_S = 1e-6
#: Allowed relative difference of an RTT (ms); see the module docstring.
RTT_RTOL = 1e-9
#: Allowed absolute difference of a ratio (availability, mean instances).
RATIO_TOL = 1e-9
#: Metrics fields compared exactly.
EXACT = ("policy", "zone", "duration_s", "handovers", "placements", "gaps", "max_instances", "rtt_samples")
#: Metrics fields that are times (s) or per-hour counts of exactly compared integers.
TIMES = ("unavailable_s", "lead_mean_s", "lead_min_s", "mean_serve_s", "handovers_per_hour")
RATIOS = ("availability", "mean_instances")
RTTS = ("rtt_p50_ms", "rtt_p90_ms", "rtt_p99_ms", "rtt_mean_ms")


def _zones() -> list[simulate.ZoneSpec]:
    cities = {name: (lat, lon) for name, lat, lon in BENCH_ZONES}
    chosen = [(n, *cities[n]) for n in ("san_francisco", "london", "singapore")]
    chosen.append(bench_zones(14)[13])  # a lattice point, not a city
    return [simulate.zone_spec(n, Zone(lat, lon, D.SIM_ZONE_RADIUS_KM, D.MIN_ELEVATION_DEG))
            for n, lat, lon in chosen]


def figures(jobs: int = 1) -> dict[str, Any]:
    """The run the golden file records, as plain JSON-able data."""
    shell = Constellation.from_shell("starlink-1", START)
    config = simulate.SimConfig(zones=_zones(), policies=parse_policies("krios,reactive,closest,random"),
                                start=START, duration_s=DURATION_S)
    result = simulate.simulate(shell, config, jobs=jobs)
    return {
        "metrics": [m.as_dict() for m in result.metrics],
        "passes": result.passes,
        "timelines": [
            {
                "zone": t.zone,
                "policy": t.policy,
                "handovers": [[h.time, h.from_sat, h.to_sat, None if math.isnan(h.old_exit) else h.old_exit,
                               h.reason] for h in t.handovers],
                "instances": [[i.sat_id, i.start, i.ready, i.stop] for i in t.instances],
                "service": [list(s) for s in t.service],
            }
            for t in result.timelines
        ],
        "cdfs": [[z, p, v] for (z, p), v in result.cdfs.items()],
    }


def _close(a: float | None, b: float | None, tol: float, what: str) -> None:
    if a is None or b is None:
        assert a is None and b is None, what
    else:
        assert abs(a - b) <= tol, f"{what}: {a!r} != {b!r} (tolerance {tol})"


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("jobs", [1, 2])
def test_figures_on_shell_1_are_unchanged(golden, jobs):
    now = figures(jobs)
    assert now["passes"] == golden["passes"]
    assert len(now["metrics"]) == len(golden["metrics"]) == 16
    for m, g in zip(now["metrics"], golden["metrics"], strict=True):
        what = f"{g['zone']} {g['policy']}"
        for k in EXACT:
            assert m[k] == g[k], f"{what} {k}"
        for k in TIMES:
            _close(m[k], g[k], TIME_TOL_S, f"{what} {k}")
        for k in RATIOS:
            _close(m[k], g[k], RATIO_TOL, f"{what} {k}")
        for k in RTTS:
            _close(m[k], g[k], RTT_RTOL * abs(g[k] or 0.0), f"{what} {k}")
    for t, g in zip(now["timelines"], golden["timelines"], strict=True):
        what = f"{g['zone']} {g['policy']}"
        assert (t["zone"], t["policy"]) == (g["zone"], g["policy"])
        assert [h[1:3] + h[4:] for h in t["handovers"]] == [h[1:3] + h[4:] for h in g["handovers"]], what
        for h, gh in zip(t["handovers"], g["handovers"], strict=True):
            _close(h[0], gh[0], TIME_TOL_S, f"{what} handover time")
            _close(h[3], gh[3], TIME_TOL_S, f"{what} old exit")
        assert [i[0] for i in t["instances"]] == [i[0] for i in g["instances"]], what
        for i, gi in zip(t["instances"], g["instances"], strict=True):
            for a, b in zip(i[1:], gi[1:], strict=True):
                _close(a, b, TIME_TOL_S, f"{what} instance")
        assert [s[2] for s in t["service"]] == [s[2] for s in g["service"]], what
        for s, gs in zip(t["service"], g["service"], strict=True):
            _close(s[0], gs[0], TIME_TOL_S, f"{what} service start")
            _close(s[1], gs[1], TIME_TOL_S, f"{what} service end")
    assert [c[:2] for c in now["cdfs"]] == [c[:2] for c in golden["cdfs"]]
    for c, gc in zip(now["cdfs"], golden["cdfs"], strict=True):
        assert len(c[2]) == len(gc[2])
        for a, b in zip(c[2], gc[2], strict=True):
            _close(a, b, RTT_RTOL * abs(b), f"{c[0]} {c[1]} RTT CDF")


if __name__ == "__main__":  # pragma: no cover - regenerates the golden file
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_simulation_golden.py --write")
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(figures(), separators=(",", ":")) + "\n")
    print(f"wrote {GOLDEN}")
