"""Sandbox turnover: the cold-start rate sweep and the churn benchmark, from their rows.

``krios bench coldstart`` (:mod:`krios.measure.coldstart`) writes one
``coldstart`` row per arrival; ``krios bench churn`` (:mod:`krios.measure.churn`)
one ``coldstart`` row (``mode = 'churn'``) per pod and one ``churn`` row per
backlog sample. This module holds what both the benchmark (while it runs) and
the report (afterwards, from the store alone) compute from them:

- :func:`verdict`: whether a rate step is *saturated*: the p99 of
  ``coldStartLatency`` (ms, served - scheduled arrival) passed the bound, or the
  share of failed arrivals passed the maximum;
- :func:`coldstart_cells` / :func:`saturation`: per (scheduler, rate step)
  summaries with bootstrap 95% CIs and the saturation rate of each scheduler:
  the highest rate step below the first saturated one;
- :func:`churn_summary`: achieved sandboxes/s, latency quantiles and peak backlog per cell;
- :func:`section`: the report's section and its two figures.

Rates are per second (1/s); latencies milliseconds; times UTC unix seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from krios.results import plots, stats

#: Per-arrival latency metrics (ms) of the ``coldstart`` table, in report order.
METRICS = ("schedulingLatency", "podReadyLatency", "coldStartLatency", "deletionLatency")
#: The metric a rate step's p99 bound applies to.
BOUND_METRIC = "coldStartLatency"


@dataclass(frozen=True)
class Verdict:
    """Whether a rate step is saturated, and why (``reason`` empty when it is not)."""

    saturated: bool
    reason: str
    n: int  # arrivals judged (completed, plus those still in flight past the bound)
    errors: int
    p99_ms: float  # nan without samples

    @property
    def error_share(self) -> float:
        return self.errors / self.n if self.n else 0.0


def verdict(
    latencies_ms: Sequence[float],
    errors: int,
    *,
    p99_bound_ms: float,
    max_error_share: float,
    over_bound_ms: Sequence[float] = (),
    min_samples: int = 1,
) -> Verdict:
    """Judge a rate step from its arrivals so far.

    ``latencies_ms``: ``coldStartLatency`` of the arrivals that completed;
    ``errors``: how many failed (not counted in the p99); ``over_bound_ms``: the
    ages of arrivals still in flight that are already older than the bound
    (their latency will be at least that: counting them keeps a stalled
    cluster from looking healthy because nothing completes). Below
    ``min_samples`` judged arrivals a step is never saturated.
    """
    values = [float(v) for v in latencies_ms] + [float(v) for v in over_bound_ms]
    n = len(values) + errors
    p99 = stats.point(values, "p99")
    if n == 0 or n < min_samples:
        return Verdict(False, "", n, errors, p99)
    if errors / n > max_error_share:
        return Verdict(True, f"errors {100.0 * errors / n:.0f}% > {100.0 * max_error_share:g}%", n, errors, p99)
    if values and p99 > p99_bound_ms:
        return Verdict(True, f"p99 {p99:.0f} ms > {p99_bound_ms:g} ms", n, errors, p99)
    return Verdict(False, "", n, errors, p99)


def _cell_key(r: Mapping[str, Any]) -> tuple[int, str, float, int, int]:
    return (int(r.get("cell") or 0), str(r.get("scheduler")), float(r.get("rps") or 0.0), int(r.get("step") or 0),
            int(r.get("repeat") or 0))


def achieved_rate(rows: Sequence[Mapping[str, Any]]) -> float:
    """Arrivals sent per second in a cell: ``(n - 1) / (last submit - first submit)``; nan below 2."""
    t = sorted(float(r["t_submit"]) for r in rows if r.get("t_submit") is not None)
    if len(t) < 2 or t[-1] <= t[0]:
        return float("nan")
    return (len(t) - 1) / (t[-1] - t[0])


def coldstart_cells(
    rows: Sequence[Mapping[str, Any]], *, p99_bound_ms: float, max_error_share: float, n_boot: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Per cell (in run order): scheduler, rps, step, repeat, arrivals, errors, achieved rps, the verdict
    and :func:`krios.results.stats.summarize` of each metric (key = metric name)."""
    groups: dict[tuple[int, str, float, int, int], list[Mapping[str, Any]]] = {}
    for r in rows:
        if (r.get("mode") or "coldstart") == "coldstart":
            groups.setdefault(_cell_key(r), []).append(r)
    out = []
    for (cell, sched, rps, step, repeat), group in sorted(groups.items()):
        errors = sum(1 for r in group if r.get("error"))
        ok = [float(r[BOUND_METRIC]) for r in group if not r.get("error") and r.get(BOUND_METRIC) is not None]
        v = verdict(ok, errors, p99_bound_ms=p99_bound_ms, max_error_share=max_error_share)
        entry: dict[str, Any] = {
            "cell": cell, "scheduler": sched, "rps": rps, "step": step, "repeat": repeat, "arrivals": len(group),
            "errors": errors, "achieved_rps": achieved_rate(group), "saturated": v.saturated, "reason": v.reason,
            "lag_p99_ms": stats.point([float(r["lagMs"]) for r in group if r.get("lagMs") is not None], "p99"),
        }
        for metric in METRICS:
            entry[metric] = stats.summarize([r.get(metric) for r in group if not r.get("error")], n_boot=n_boot,
                                            seed=seed)
        out.append(entry)
    return out


def saturation(cells: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per scheduler: ``rps`` (highest step below the first saturated one; ``None`` if the first
    step saturated), ``at`` (the saturated step's rps, ``None`` if none saturated), ``reason``
    and ``max_rps`` (the highest step run). Repeated baseline cells do not count."""
    out: dict[str, dict[str, Any]] = {}
    for sched in sorted({str(c["scheduler"]) for c in cells}):
        ramp = sorted((c for c in cells if c["scheduler"] == sched and not c["repeat"]), key=lambda c: c["rps"])
        best, at, reason = None, None, ""
        for c in ramp:
            if c["saturated"]:
                at, reason = c["rps"], c["reason"]
                break
            best = c["rps"]
        out[sched] = {"rps": best, "at": at, "reason": reason, "max_rps": ramp[-1]["rps"] if ramp else None}
    return out


#: A cell whose sender lag p99 passes this share of the bound was limited by the measuring host too.
LAG_SHARE = 0.1


def lag_note(cells: Sequence[Mapping[str, Any]], bound_ms: float) -> str | None:
    """A warning naming the cells whose sender lag p99 passed :data:`LAG_SHARE` of the bound, or None."""
    late = [c for c in cells if np.isfinite(c["lag_p99_ms"]) and c["lag_p99_ms"] > LAG_SHARE * bound_ms]
    if not late:
        return None
    where = ", ".join(f"cell {c['cell']} ({c['scheduler']} @ {c['rps']:g} rps: {c['lag_p99_ms']:.0f} ms)"
                      for c in late)
    return (f"sender lag p99 above {100 * LAG_SHARE:g}% of the bound in {where}: the measuring host, not only the "
            "cluster, limited these steps")


def saturation_text(sat: Mapping[str, Any]) -> str:
    """``20 rps (saturated at 50 rps: p99 3120 ms > 2000 ms)`` and the like."""
    if sat["at"] is None:
        return f">= {sat['max_rps']:g} rps (no step saturated)"
    below = f"{sat['rps']:g} rps" if sat["rps"] is not None else f"< {sat['at']:g} rps (the first step saturated)"
    return f"{below} (saturated at {sat['at']:g} rps: {sat['reason']})"


# --------------------------------------------------------------------------- churn


def churn_summary(rows: Sequence[Mapping[str, Any]], samples: Sequence[Mapping[str, Any]], *,
                  n_boot: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """Per churn cell: scheduler, target rate, pods, errors, achieved creations/s and Ready sandboxes/s
    over the arrival window, scheduling and Ready latency summaries, and peak backlogs."""
    groups: dict[tuple[int, str, float, int, int], list[Mapping[str, Any]]] = {}
    for r in rows:
        if r.get("mode") == "churn":
            groups.setdefault(_cell_key(r), []).append(r)
    out = []
    for (cell, sched, rate, _step, repeat), group in sorted(groups.items()):
        arrivals = sorted(float(r["t_arrival"]) for r in group if r.get("t_arrival") is not None)
        readies = sorted(float(r["t_ready"]) for r in group if r.get("t_ready") is not None)
        window = (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else float("nan")
        in_window = [t for t in readies if arrivals and arrivals[0] <= t <= arrivals[-1]]
        cell_samples = [s for s in samples if s.get("cell") == cell]
        entry: dict[str, Any] = {
            "cell": cell, "scheduler": sched, "rate": rate, "repeat": repeat, "pods": len(group),
            "errors": sum(1 for r in group if r.get("error")),
            "created_per_s": achieved_rate(group),
            "ready_per_s": len(in_window) / window if window and window > 0 else float("nan"),
            "peak_not_ready": max((int(s.get("not_ready") or 0) for s in cell_samples), default=0),
            "peak_not_deleted": max((int(s.get("not_deleted") or 0) for s in cell_samples), default=0),
        }
        for metric in ("schedulingLatency", "podReadyLatency", "deletionLatency"):
            entry[metric] = stats.summarize([r.get(metric) for r in group if not r.get("error")], n_boot=n_boot,
                                            seed=seed)
        out.append(entry)
    return out


# --------------------------------------------------------------------------- figures


def plot_coldstart(cells: Sequence[Mapping[str, Any]], sat: Mapping[str, Mapping[str, Any]], bound_ms: float,
                   path: Path) -> Path | None:
    """coldStartLatency p50 (solid) and p99 (dashed) vs target rate per scheduler, 95% CI bars, the bound
    (grey line) and each scheduler's saturation rate (dotted vertical line); None without data."""
    ramp = [c for c in cells if not c["repeat"] and c[BOUND_METRIC]["n"]]
    if not ramp:
        return None
    schedulers = sorted({c["scheduler"] for c in ramp})
    with matplotlib.rc_context(plots.RC):
        fig = Figure(figsize=(plots.WIDTH_IN * 0.7, 2.8))
        ax = fig.subplots()
        for k, sched in enumerate(schedulers):
            mine = sorted((c for c in ramp if c["scheduler"] == sched), key=lambda c: c["rps"])
            color = plots.SCHEDULER_COLORS[k % len(plots.SCHEDULER_COLORS)]
            marker = plots.SCHEDULER_MARKERS[k % len(plots.SCHEDULER_MARKERS)]
            x = np.array([c["rps"] for c in mine]) * (1.0 + 0.03 * (k - (len(schedulers) - 1) / 2))
            for stat, style in (("p50", "-"), ("p99", "--")):
                s = [c[BOUND_METRIC] for c in mine]
                y = np.array([v[stat] for v in s])
                err = np.array([[v[stat] - v[f"{stat}_lo"] for v in s], [v[f"{stat}_hi"] - v[stat] for v in s]])
                ax.errorbar(x, y, yerr=np.clip(np.nan_to_num(err), 0, None), color=color, linestyle=style,
                            marker=marker, markersize=3.5 if stat == "p50" else 2.5, capsize=2, elinewidth=0.8,
                            markerfacecolor=color if stat == "p50" else "white")
            s_rate = (sat.get(sched) or {}).get("rps")
            if s_rate is not None and (sat.get(sched) or {}).get("at") is not None:
                ax.axvline(s_rate, color=color, linestyle=":", linewidth=1.0)
            hit = [c for c in mine if c["saturated"]]
            if hit:  # the saturated step: a cross on its p99
                ax.plot([c["rps"] for c in hit], [c[BOUND_METRIC]["p99"] for c in hit], linestyle="none",
                        marker="x", color=color, markersize=6)
        ax.axhline(bound_ms, color="0.5", linewidth=0.8)
        ax.set_xscale("log")
        ys = np.array([c[BOUND_METRIC][k] for c in ramp for k in ("p50", "p99")] + [bound_ms], dtype=float)
        if plots._log_axis(ys):
            ax.set_yscale("log")
        rates = sorted({c["rps"] for c in ramp})
        ax.xaxis.set_major_locator(FixedLocator(rates))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.set_xlabel("target arrival rate (1/s), every arrival a new pod")
        ax.set_ylabel("cold-start latency (ms)")
        handles = [Line2D([], [], color=plots.SCHEDULER_COLORS[k % 6], marker=plots.SCHEDULER_MARKERS[k % 6],
                          label=s) for k, s in enumerate(schedulers)]
        handles += [Line2D([], [], color="0.3", linestyle="-", label="median"),
                    Line2D([], [], color="0.3", linestyle="--", label="p99"),
                    Line2D([], [], color="0.5", label=f"bound {bound_ms:g} ms"),
                    Line2D([], [], color="0.3", linestyle=":", label="saturation rate"),
                    Line2D([], [], color="0.3", linestyle="none", marker="x", label="saturated step")]
        fig.legend(handles=handles, loc="lower center", ncol=3, bbox_to_anchor=(0.5, 1.0), frameon=False,
                   title="bars: bootstrap 95% CI")
        fig.tight_layout()
        return plots._save(fig, path)


def plot_backlog(samples: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """Backlog (created not yet Ready: solid; created not yet gone: dashed) over time, one line per cell."""
    if not samples:
        return None
    cells = sorted({(int(s.get("cell") or 0), str(s.get("scheduler")), int(s.get("repeat") or 0)) for s in samples})
    schedulers = sorted({c[1] for c in cells})
    with matplotlib.rc_context(plots.RC):
        fig = Figure(figsize=(plots.WIDTH_IN * 0.7, 2.6))
        ax = fig.subplots()
        for cell, sched, repeat in cells:
            mine = sorted((s for s in samples if s.get("cell") == cell), key=lambda s: s["t"])
            t = np.array([s["t"] for s in mine]) - mine[0]["t"]
            color = plots.SCHEDULER_COLORS[schedulers.index(sched) % 6]
            alpha = 0.5 if repeat else 1.0
            ax.plot(t, [s["not_ready"] for s in mine], color=color, alpha=alpha)
            ax.plot(t, [s["not_deleted"] for s in mine], color=color, alpha=alpha, linestyle="--")
        ax.set_xlabel("time since the cell started (s)")
        ax.set_ylabel("pods")
        ax.set_ylim(bottom=0)
        handles = [Line2D([], [], color=plots.SCHEDULER_COLORS[k % 6], label=s) for k, s in enumerate(schedulers)]
        handles += [Line2D([], [], color="0.3", label="not yet Ready"),
                    Line2D([], [], color="0.3", linestyle="--", label="not yet deleted")]
        fig.legend(handles=handles, loc="lower center", ncol=4, bbox_to_anchor=(0.5, 1.0), frameon=False)
        fig.tight_layout()
        return plots._save(fig, path)


# --------------------------------------------------------------------------- report section


def _f(v: Any, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _ci(s: Mapping[str, Any], stat: str) -> str:
    return f"{_f(s[stat])} [{_f(s[stat + '_lo'])}, {_f(s[stat + '_hi'])}]"


def section(rows: Sequence[Mapping[str, Any]], samples: Sequence[Mapping[str, Any]], meta: Mapping[str, Any],
            out: Path, *, seed: int = 0) -> tuple[list[str], list[Path]]:
    """The report's "Cold start and churn" Markdown lines and the figures written into ``out``."""
    lines: list[str] = []
    files: list[Path] = []
    cs = meta.get("coldstart") or {}
    bound = float(cs.get("p99_bound_ms") or 0.0) or float("inf")
    share = float(cs.get("max_error_share") if cs.get("max_error_share") is not None else 1.0)
    cells = coldstart_cells(rows, p99_bound_ms=bound, max_error_share=share, seed=seed)
    if cells:
        sat = saturation(cells)
        via = sorted({str(r.get("served_via")) for r in rows if r.get("mode") == "coldstart" and r.get("served_via")})
        lines += [
            "## Cold-start sweep", "",
            "Open-loop arrivals (Poisson, seeded) at each target rate; every arrival creates a new pod, waits "
            "for it to be Ready, sends it one request, deletes it. `coldStartLatency` = served − scheduled "
            f"arrival (served via {', '.join(via) or '–'}; `ready`: virtual kubelets run no container, so "
            "served = Ready). A step is saturated once the p99 of `coldStartLatency` passes "
            f"{_f(bound, 0)} ms or more than {100.0 * share:g}% of its arrivals fail; the rate is not raised "
            "after the first saturated step. The lowest step is repeated last (drift check). "
            "Values in ms; brackets: bootstrap 95% CI.", "",
            "| scheduler | saturation rate |", "| --- | --- |",
            *[f"| {s} | {saturation_text(v)} |" for s, v in sat.items()], "",
            "| cell | scheduler | target rps | achieved rps | arrivals | errors | scheduling p50 | ready p50 | "
            "cold start p50 | cold start p99 | sender lag p99 | verdict |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for c in cells:
            tag = " (repeat)" if c["repeat"] else ""
            lines.append(
                f"| {c['cell']} | {c['scheduler']}{tag} | {c['rps']:g} | {_f(c['achieved_rps'], 2)} | "
                f"{c['arrivals']} | {c['errors']} | {_ci(c['schedulingLatency'], 'p50')} | "
                f"{_ci(c['podReadyLatency'], 'p50')} | {_ci(c[BOUND_METRIC], 'p50')} | {_ci(c[BOUND_METRIC], 'p99')} | "
                f"{_f(c['lag_p99_ms'])} | {c['reason'] or 'ok'} |")
        lines.append("")
        note = lag_note(cells, bound)
        if note:
            lines += [f"Note: {note}.", ""]
        fig = plot_coldstart(cells, sat, bound if np.isfinite(bound) else 0.0, out / "coldstart_vs_rate.png")
        if fig:
            files.append(fig)
            lines += [f"![Cold-start latency vs arrival rate]({fig.name})", ""]
    churn = churn_summary(rows, samples, seed=seed)
    if churn:
        ch = meta.get("churn") or {}
        lines += [
            "## Churn", "",
            f"Pods created open-loop at the target rate for {_f(ch.get('duration_s'), 0)} s each cell, each "
            f"deleted {_f(ch.get('lifetime_s'), 1)} s after it was Ready. Ready sandboxes/s: pods turning Ready "
            "during the arrival window per second of it. Backlog: pods created but not yet Ready / not yet "
            "gone. Values in ms; brackets: bootstrap 95% CI.", "",
            "| cell | scheduler | target /s | created /s | Ready sandboxes /s | pods | errors | scheduling p50 | "
            "scheduling p99 | ready p50 | ready p99 | peak not Ready | peak not deleted |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for c in churn:
            tag = " (repeat)" if c["repeat"] else ""
            lines.append(
                f"| {c['cell']} | {c['scheduler']}{tag} | {c['rate']:g} | {_f(c['created_per_s'], 2)} | "
                f"{_f(c['ready_per_s'], 2)} | {c['pods']} | {c['errors']} | {_ci(c['schedulingLatency'], 'p50')} | "
                f"{_ci(c['schedulingLatency'], 'p99')} | {_ci(c['podReadyLatency'], 'p50')} | "
                f"{_ci(c['podReadyLatency'], 'p99')} | {c['peak_not_ready']} | {c['peak_not_deleted']} |")
        lines.append("")
        fig = plot_backlog(samples, out / "churn_backlog.png")
        if fig:
            files.append(fig)
            lines += [f"![Churn backlog over time]({fig.name})", ""]
    return lines, files
