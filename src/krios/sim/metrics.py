"""Figures from a :class:`~krios.sim.model.Timeline`: handovers, availability, overlap, RTT.

Definitions (all over the simulated interval ``[start, end)``):

- ``handovers_per_hour``: successors started per simulated hour to take over
  from a serving satellite (``placements`` counts instances started when
  nothing served, after a gap).
- ``availability``: share of the time a ready instance on a satellite inside
  the zone served it.
- ``mean_instances`` / ``max_instances``: time-weighted mean and maximum of the
  number of instances running at once (make-before-break overlap counts 2).
- ``lead_mean_s`` / ``lead_min_s``: seconds from a successor's start to the
  old satellite's exit from the zone (handovers away from a serving satellite).
- ``rtt_*_ms``: client round-trip time from the latency model, sampled every
  ``step_s`` while the zone is served.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from krios.sim.model import Timeline

#: Quantiles kept for the RTT CDF plot (0..100 %).
CDF_PERCENTS = np.linspace(0.0, 100.0, 101)


@dataclass(frozen=True)
class Metrics:
    """One policy in one zone; units in the field names (s, ms, per hour)."""

    policy: str
    zone: str
    duration_s: float
    handovers: int
    handovers_per_hour: float
    placements: int
    availability: float
    unavailable_s: float
    gaps: int
    mean_instances: float
    max_instances: int
    lead_mean_s: float
    lead_min_s: float
    mean_serve_s: float
    rtt_samples: int
    rtt_p50_ms: float
    rtt_p90_ms: float
    rtt_p99_ms: float
    rtt_mean_ms: float

    def as_dict(self) -> dict[str, float | int | str | None]:
        """Plain JSON-able values (``nan`` becomes ``None``)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def concurrency(timeline: Timeline) -> tuple[float, int]:
    """Time-weighted mean and maximum number of instances running at once."""
    edges: list[tuple[float, int]] = []
    for inst in timeline.instances:
        t0, t1 = max(inst.start, timeline.start), min(inst.stop, timeline.end)
        if t1 > t0:
            edges += [(t0, 1), (t1, -1)]
    if not edges or timeline.duration_s <= 0:
        return 0.0, 0
    edges.sort()  # at equal times a stop (-1) sorts before a start (+1)
    area, level, peak, last = 0.0, 0, 0, timeline.start
    for t, step in edges:
        area += level * (t - last)
        level += step
        peak = max(peak, level)
        last = t
    return area / timeline.duration_s, peak


def gaps(timeline: Timeline) -> list[tuple[float, float]]:
    """``(t0, t1)`` intervals in which nothing served the zone."""
    out, last = [], timeline.start
    for t0, t1, _sat in sorted(timeline.service):
        if t0 > last:
            out.append((last, t0))
        last = max(last, t1)
    if timeline.end > last:
        out.append((last, timeline.end))
    return out


def measure(timeline: Timeline, rtt_ms: np.ndarray) -> Metrics:
    """Reduce ``timeline`` and its RTT samples (ms, served instants only) to :class:`Metrics`."""
    duration = timeline.duration_s
    hours = duration / 3600.0 if duration > 0 else math.nan
    served = sum(t1 - t0 for t0, t1, _ in timeline.service)
    holes = gaps(timeline)
    mean_inst, max_inst = concurrency(timeline)
    moves = [h for h in timeline.handovers if h.from_sat is not None]
    leads = [h.lead_s for h in moves if not math.isnan(h.old_exit)]
    rtt = np.asarray(rtt_ms, dtype=float)
    p50, p90, p99 = (np.percentile(rtt, (50, 90, 99)) if rtt.size else (math.nan,) * 3)
    stints = len(timeline.service)
    return Metrics(
        policy=timeline.policy,
        zone=timeline.zone,
        duration_s=duration,
        handovers=len(moves),
        handovers_per_hour=len(moves) / hours if hours else math.nan,
        placements=len(timeline.handovers) - len(moves),
        availability=served / duration if duration > 0 else math.nan,
        unavailable_s=duration - served,
        gaps=len(holes),
        mean_instances=mean_inst,
        max_instances=max_inst,
        lead_mean_s=float(np.mean(leads)) if leads else math.nan,
        lead_min_s=float(np.min(leads)) if leads else math.nan,
        mean_serve_s=served / stints if stints else math.nan,
        rtt_samples=int(rtt.size),
        rtt_p50_ms=float(p50),
        rtt_p90_ms=float(p90),
        rtt_p99_ms=float(p99),
        rtt_mean_ms=float(rtt.mean()) if rtt.size else math.nan,
    )


def rtt_cdf(rtt_ms: np.ndarray) -> list[float]:
    """RTT (ms) at each of :data:`CDF_PERCENTS`; empty when there are no samples."""
    rtt = np.asarray(rtt_ms, dtype=float)
    return [float(v) for v in np.percentile(rtt, CDF_PERCENTS)] if rtt.size else []
