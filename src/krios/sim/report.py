"""Simulation results as a terminal table, a JSON document and CSV files."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from krios.config.times import iso
from krios.sim.metrics import Metrics
from krios.sim.model import Timeline

_COLUMNS = (
    ("policy", "{}", "policy"),
    ("HO/h", "{:.1f}", "handovers_per_hour"),
    ("HO", "{:d}", "handovers"),
    ("avail %", "{:.3f}", "availability"),
    ("inst mean", "{:.3f}", "mean_instances"),
    ("max", "{:d}", "max_instances"),
    ("lead mean s", "{:.1f}", "lead_mean_s"),
    ("lead min s", "{:.1f}", "lead_min_s"),
    ("RTT p50", "{:.2f}", "rtt_p50_ms"),
    ("p90", "{:.2f}", "rtt_p90_ms"),
    ("p99", "{:.2f}", "rtt_p99_ms"),
    ("mean ms", "{:.2f}", "rtt_mean_ms"),
)


def _cell(fmt: str, key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key == "availability":
        value = 100.0 * value
    return fmt.format(value)


def summarize(metrics: Sequence[Metrics]) -> list[dict[str, Any]]:
    """Per policy over all zones: summed handovers, time-weighted availability, and so on.

    RTT quantiles are not additive; the summary keeps the sample-weighted
    mean RTT and the worst zone's p99.
    """
    out: list[dict[str, Any]] = []
    for policy in dict.fromkeys(m.policy for m in metrics):
        rows = [m for m in metrics if m.policy == policy]
        total_s = sum(m.duration_s for m in rows)
        samples = sum(m.rtt_samples for m in rows)
        handovers = sum(m.handovers for m in rows)
        out.append(
            {
                "policy": policy,
                "zones": len(rows),
                "handovers": handovers,
                "handovers_per_hour": handovers / (total_s / 3600.0) if total_s else math.nan,
                "availability": sum(m.availability * m.duration_s for m in rows) / total_s if total_s else math.nan,
                "min_availability": min(m.availability for m in rows),
                "mean_instances": sum(m.mean_instances * m.duration_s for m in rows) / total_s if total_s else math.nan,
                "max_instances": max(m.max_instances for m in rows),
                "lead_min_s": min((m.lead_min_s for m in rows if not math.isnan(m.lead_min_s)), default=math.nan),
                "rtt_mean_ms": (
                    sum(m.rtt_mean_ms * m.rtt_samples for m in rows if m.rtt_samples) / samples
                    if samples
                    else math.nan
                ),
                "rtt_p99_ms": max((m.rtt_p99_ms for m in rows if m.rtt_samples), default=math.nan),
            }
        )
    return out


def ratio_line(metrics: Sequence[Metrics], base: str = "krios") -> str:
    """``handovers vs krios: closest 7.2x, ...`` over all zones, or ``""`` without ``base``."""
    summary = {row["policy"]: row for row in summarize(metrics)}
    if base not in summary or len(summary) < 2 or not summary[base]["handovers"]:
        return ""
    ref = summary[base]["handovers"]
    parts = [f"{name} {row['handovers'] / ref:.2f}x" for name, row in summary.items() if name != base]
    return f"handovers relative to {base}: " + ", ".join(parts)


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    """First cell left-aligned, the others right-aligned, two spaces apart."""
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))


def table(metrics: Sequence[Metrics]) -> str:
    """A fixed-width table: one block per zone, one row per policy, then a ratio line."""
    head = [title for title, _fmt, _key in _COLUMNS]
    lines: list[str] = []
    for zone in dict.fromkeys(m.zone for m in metrics):
        rows = [[_cell(fmt, key, getattr(m, key)) for _t, fmt, key in _COLUMNS] for m in metrics if m.zone == zone]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        lines += [f"zone {zone}", _row(head, widths)]
        lines += [_row(r, widths) for r in rows]
        lines.append("")
    ratio = ratio_line(metrics)
    if ratio:
        lines.append(ratio)
    return "\n".join(lines).rstrip() + "\n"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def to_json(document: dict[str, Any]) -> str:
    """``document`` as JSON text; ``nan``/``inf`` become ``null``."""
    return json.dumps(_clean(document), indent=2, sort_keys=False) + "\n"


def write_metrics_csv(path: Path, metrics: Sequence[Metrics]) -> None:
    """One row per policy and zone with every :class:`Metrics` field."""
    rows = [m.as_dict() for m in metrics]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["policy"])
        writer.writeheader()
        writer.writerows(rows)


def write_handovers_csv(path: Path, timelines: Sequence[Timeline]) -> None:
    """Every handover of every run: zone, policy, time, satellites, lead time, reason."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["zone", "policy", "time", "unix_s", "from_sat", "to_sat", "old_exit", "lead_s", "reason"])
        for tl in timelines:
            for h in tl.handovers:
                exit_text = "" if math.isnan(h.old_exit) else iso(h.old_exit)
                lead = "" if math.isnan(h.old_exit) else f"{h.lead_s:.3f}"
                from_sat = "" if h.from_sat is None else h.from_sat
                writer.writerow(
                    [tl.zone, tl.policy, iso(h.time), f"{h.time:.3f}", from_sat, h.to_sat, exit_text, lead, h.reason]
                )
