"""PNG figures of a run (matplotlib, Agg backend, no pyplot state).

- :func:`latency_cdfs`: empirical CDFs of each pod-latency metric, one panel per
  scheduler and metric, one line per injected delay.
- :func:`latency_vs_delay`: median and p95 of each metric against the injected
  one-way delay, one line per scheduler, with bootstrap 95% CI bars.
- :func:`handover_timeline`: the serving satellite over emulated time, and the
  client's RTT (measured requests and the emulator's injected RTT) with the
  handovers marked.
- :func:`telemetry_timeline`: CPU and network traffic per node over wall time
  (``krios telemetry``), handovers marked.

Figures are sized for a two-column paper (7 in wide) at 200 dpi.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure  # saved through the Agg canvas; no pyplot, no GUI
from matplotlib.lines import Line2D

from krios.results import stats

DPI = 200
WIDTH_IN = 7.0
#: Okabe-Ito colours (colour-blind safe), one per scheduler.
SCHEDULER_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
SCHEDULER_MARKERS = ("o", "s", "^", "D", "v", "P")
METRIC_LABELS = {
    "schedulingLatency": "scheduling latency",
    "podReadyLatency": "pod ready latency",
    "deletionLatency": "deletion latency",
}
RC = {
    "font.size": 8,
    "axes.titlesize": 8.5,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.2,
    "savefig.dpi": DPI,
}


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.03)
    return path


def _log_axis(values: np.ndarray) -> bool:
    v = values[np.isfinite(values) & (values > 0)]
    return v.size > 1 and v.max() / v.min() > 30


def latency_cdfs(
    rows: Sequence[Mapping[str, Any]], path: Path, metrics: Sequence[str] = stats.METRICS
) -> Path | None:
    """CDF grid (metric rows x scheduler columns, one line per delay) to ``path``; None if no data."""
    groups = stats.cells(rows)
    if not groups:
        return None
    schedulers = sorted({s for s, _d in groups})
    delays = sorted({d for _s, d in groups})
    cmap = colormaps["viridis"]
    color = {d: cmap(0.9 * i / max(len(delays) - 1, 1)) for i, d in enumerate(delays)}
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(WIDTH_IN, 1.9 * len(metrics) + 0.5))
        axes = fig.subplots(len(metrics), len(schedulers), squeeze=False, sharey=True)
        for i, metric in enumerate(metrics):
            allv = np.array(
                [r.get(metric) for g in groups.values() for r in g if r.get(metric) is not None], dtype=float
            )
            log = _log_axis(allv)
            for j, sched in enumerate(schedulers):
                ax = axes[i][j]
                for d in delays:
                    vals = [r.get(metric) for r in groups.get((sched, d), []) if r.get(metric) is not None]
                    x, y = stats.ecdf(vals)
                    if x.size:
                        ax.step(np.r_[x[0], x], np.r_[0.0, y], where="post", color=color[d])
                if log:
                    ax.set_xscale("log")
                if allv.size:  # one x range per metric row, so the schedulers compare by eye
                    lo, hi = float(np.nanmin(allv)), float(np.nanmax(allv))
                    if log and lo > 0:
                        pad = (hi / lo) ** 0.05
                        ax.set_xlim(lo / pad, hi * pad)
                    else:
                        pad = 0.04 * (hi - lo) or 1.0
                        ax.set_xlim(max(0.0, lo - pad), hi + pad)
                ax.set_ylim(0, 1.02)
                ax.set_title(f"{sched} — {METRIC_LABELS.get(metric, metric)}")
                if i == len(metrics) - 1:
                    ax.set_xlabel("latency (ms)")
                if j == 0:
                    ax.set_ylabel("CDF")
        handles = [Line2D([], [], color=color[d], label=f"{d:g} ms") for d in delays]
        fig.legend(
            handles=handles, title="injected one-way delay", loc="lower center",
            ncol=min(len(delays), 8), bbox_to_anchor=(0.5, 1.0), frameon=False,
        )
        fig.tight_layout()
        return _save(fig, path)


def latency_vs_delay(
    summary: Sequence[Mapping[str, Any]], path: Path, metrics: Sequence[str] = stats.METRICS
) -> Path | None:
    """Median (solid) and p95 (dashed) vs injected delay, 95% CI bars, per scheduler."""
    if not summary:
        return None
    schedulers = sorted({s["scheduler"] for s in summary})
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(WIDTH_IN, 2.4))
        axes = fig.subplots(1, len(metrics), squeeze=False)[0]
        delays_all = sorted({s["latency_ms"] for s in summary})
        span = (max(delays_all) - min(delays_all)) or 1.0
        for ax, metric in zip(axes, metrics, strict=True):
            for k, sched in enumerate(schedulers):
                cells = sorted(
                    (s for s in summary if s["scheduler"] == sched and s["metric"] == metric and s["n"] > 0),
                    key=lambda s: s["latency_ms"],
                )
                if not cells:
                    continue
                offset = (k - (len(schedulers) - 1) / 2) * 0.012 * span  # keep CI bars apart
                x = np.array([c["latency_ms"] for c in cells]) + offset
                c = SCHEDULER_COLORS[k % len(SCHEDULER_COLORS)]
                m = SCHEDULER_MARKERS[k % len(SCHEDULER_MARKERS)]
                for stat, style in (("p50", "-"), ("p95", "--")):
                    y = np.array([cc[stat] for cc in cells])
                    err = np.array(
                        [[cc[stat] - cc[f"{stat}_lo"] for cc in cells], [cc[f"{stat}_hi"] - cc[stat] for cc in cells]]
                    )
                    ax.errorbar(
                        x, y, yerr=np.clip(err, 0, None), color=c, linestyle=style, marker=m,
                        markersize=3.5 if stat == "p50" else 2.5, capsize=2, elinewidth=0.8,
                        markerfacecolor=c if stat == "p50" else "white",
                    )
            ax.set_title(METRIC_LABELS.get(metric, metric))
            ax.set_xlabel("injected one-way delay (ms)")
            ax.set_ylim(bottom=0)
        axes[0].set_ylabel("latency (ms)")
        handles = [
            Line2D([], [], color=SCHEDULER_COLORS[k % 6], marker=SCHEDULER_MARKERS[k % 6], label=s)
            for k, s in enumerate(schedulers)
        ]
        handles += [
            Line2D([], [], color="0.3", linestyle="-", label="median"),
            Line2D([], [], color="0.3", linestyle="--", marker="o", markerfacecolor="white", label="p95"),
        ]
        fig.legend(
            handles=handles, loc="lower center", ncol=len(handles), bbox_to_anchor=(0.5, 1.0), frameon=False,
            title="bars: bootstrap 95% CI",
        )
        fig.tight_layout()
        return _save(fig, path)


def _sim_time(t_wall: np.ndarray, ticks: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Map wall-clock times to emulated times using the ticks' (t_wall, t_sim) pairs."""
    pairs = sorted({(float(t["t_wall"]), float(t["t_sim"])) for t in ticks if t.get("t_wall") and t.get("t_sim")})
    if len(pairs) < 2:
        return t_wall
    w, s = np.array(pairs).T
    rate = (s[-1] - s[0]) / (w[-1] - w[0]) if w[-1] > w[0] else 1.0
    inside = np.interp(t_wall, w, s)
    # Extrapolate linearly outside the ticks' span.
    return np.where(t_wall < w[0], s[0] + (t_wall - w[0]) * rate,
                    np.where(t_wall > w[-1], s[-1] + (t_wall - w[-1]) * rate, inside))


def handover_timeline(
    ticks: Sequence[Mapping[str, Any]],
    requests: Sequence[Mapping[str, Any]],
    handovers: Sequence[Mapping[str, Any]],
    path: Path,
) -> Path | None:
    """Serving satellite and client RTT over emulated time, handovers marked; None if no ticks."""
    serving = [t for t in ticks if t.get("serving")]
    if not ticks:
        return None
    t0 = min(float(t["t_sim"]) for t in ticks)

    def minutes(t: np.ndarray | float) -> np.ndarray:
        return (np.asarray(t, dtype=float) - t0) / 60.0

    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(WIDTH_IN, 3.6))
        ax_sat, ax_rtt = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1.4]})
        # (a) serving satellite: one horizontal bar per serving interval, labelled by node.
        if serving:
            ts = np.array([float(t["t_sim"]) for t in serving])
            sats = np.array([int(t["sat_id"]) if t.get("sat_id") is not None else -1 for t in serving])
            nodes = [str(t.get("node")) for t in serving]
            order = np.argsort(ts, kind="stable")
            ts, sats, nodes = ts[order], sats[order], [nodes[i] for i in order]
            node_names = sorted(set(nodes))
            ncolor = {n: SCHEDULER_COLORS[i % len(SCHEDULER_COLORS)] for i, n in enumerate(node_names)}
            # One thick segment per run of ticks with the same (node, satellite).
            start = 0
            for i in range(1, len(ts) + 1):
                if i == len(ts) or sats[i] != sats[start] or nodes[i] != nodes[start]:
                    end = ts[i] if i < len(ts) else ts[-1]
                    ax_sat.hlines(sats[start], minutes(ts[start]), minutes(end), color=ncolor[nodes[start]],
                                  linewidth=3.0)
                    start = i
            pad = max(1.0, 0.08 * (sats.max() - sats.min()))
            ax_sat.set_ylim(sats.min() - pad, sats.max() + pad)
            ax_sat.legend(
                handles=[Line2D([], [], color=ncolor[n], linewidth=3.0, label=n)
                         for n in node_names],
                loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, title="serving node",
            )
        ax_sat.set_ylabel("serving satellite\n(sat_id)")
        ax_sat.yaxis.get_major_locator().set_params(integer=True)
        # (b) RTT: the injected client RTT of the serving node and the measured request latency.
        if serving:
            rtt = np.array([np.nan if t.get("rtt_ms") is None else float(t["rtt_ms"]) for t in serving])[order]
            ax_rtt.plot(minutes(ts), rtt, color="0.35", linewidth=1.0, label="injected RTT (emulator)")
        ok = [r for r in requests if r.get("latency_ms") is not None and r.get("sent_at")]
        bad = [r for r in requests if r.get("latency_ms") is None and r.get("sent_at")]
        if ok:
            tr = _sim_time(np.array([float(r["sent_at"]) for r in ok]), ticks)
            ax_rtt.scatter(minutes(tr), [float(r["latency_ms"]) for r in ok], s=3, color=SCHEDULER_COLORS[0],
                           linewidths=0, alpha=0.7, label="request latency (client)")
        if bad:
            tb = _sim_time(np.array([float(r["sent_at"]) for r in bad]), ticks)
            ymax = max([float(r["latency_ms"]) for r in ok] + [1.0])
            ax_rtt.scatter(minutes(tb), np.full(len(bad), ymax * 1.05), marker="x", s=10,
                           color=SCHEDULER_COLORS[1], linewidths=0.8, label="failed request")
        ax_rtt.set_ylabel("RTT (ms)")
        ax_rtt.set_xlabel("emulated time (min)")
        ax_rtt.set_ylim(bottom=0)
        # Handovers: vertical lines on both panels.
        styles = {"proactive": ("#009E73", "-"), "reactive": ("#D55E00", "--"),
                  "before exit": ("#009E73", "-"), "at or after exit": ("#D55E00", "--")}
        seen_modes = set()
        for h in handovers:
            if h.get("t_sim") is None:
                continue
            mode = str(h.get("mode") or "handover")
            c, ls = styles.get(mode, ("0.5", ":"))
            for ax in (ax_sat, ax_rtt):
                ax.axvline(float(minutes(float(h["t_sim"]))), color=c, linestyle=ls, linewidth=0.8, alpha=0.8)
            seen_modes.add(mode)
        handles, _labels = ax_rtt.get_legend_handles_labels()
        for mode in sorted(seen_modes):
            c, ls = styles.get(mode, ("0.5", ":"))
            handles.append(Line2D([], [], color=c, linestyle=ls, label=f"handover ({mode})"))
        ax_rtt.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        fig.tight_layout()
        return _save(fig, path)


def wall_time(t_sim: np.ndarray | Sequence[float], ticks: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Map emulated times (unix s) to wall-clock times using the ticks' (t_sim, t_wall) pairs
    (the inverse of the emulator's clock; linear outside the ticks' span). Without ticks: unchanged."""
    t = np.asarray(t_sim, dtype=float)
    pairs = sorted({(float(k["t_sim"]), float(k["t_wall"])) for k in ticks if k.get("t_wall") and k.get("t_sim")})
    if len(pairs) < 2:
        return t
    s, w = np.array(pairs).T
    rate = (w[-1] - w[0]) / (s[-1] - s[0]) if s[-1] > s[0] else 1.0
    inside = np.interp(t, s, w)
    return np.where(t < s[0], w[0] + (t - s[0]) * rate, np.where(t > s[-1], w[-1] + (t - s[-1]) * rate, inside))


def net_rates(rows: Sequence[Mapping[str, Any]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per node, ``(t, bytes/s)``: received + sent over every interface, from the ``net`` telemetry
    counters (difference of consecutive samples; a counter that went down, e.g. an interface that
    came back, contributes 0)."""
    by_node: dict[str, dict[float, dict[str, int]]] = {}
    for r in rows:
        if r.get("kind") != "net" or r.get("t") is None:
            continue
        total = int(r.get("rx_bytes") or 0) + int(r.get("tx_bytes") or 0)
        by_node.setdefault(str(r.get("node")), {}).setdefault(float(r["t"]), {})[str(r.get("item"))] = total
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for node, samples in by_node.items():
        ts = sorted(samples)
        t_out, rate = [], []
        for a, b in itertools.pairwise(ts):
            if b <= a:
                continue
            moved = sum(max(0, v - samples[a].get(i, v)) for i, v in samples[b].items())
            t_out.append(b)
            rate.append(moved / (b - a))
        out[node] = (np.array(t_out), np.array(rate))
    return out


def telemetry_timeline(
    rows: Sequence[Mapping[str, Any]],
    handover_walls: Sequence[float],
    path: Path,
) -> Path | None:
    """Total CPU (%) and network traffic (received + sent, MB/s) per node over wall time, handovers
    (wall unix s) marked as vertical lines; ``None`` without ``cpu`` rows."""
    cpu = [r for r in rows if r.get("kind") == "cpu" and r.get("item") == "total" and r.get("t") is not None]
    if not cpu:
        return None
    t0 = min(float(r["t"]) for r in cpu)
    # Nodes sampled on one host (a local cluster's virtual nodes) share its numbers: one line per host.
    hosts: dict[str, list[str]] = {}
    for node in sorted({str(r.get("node")) for r in cpu}):
        host = next((str(r.get("host")) for r in cpu if str(r.get("node")) == node and r.get("host")), node)
        hosts.setdefault(host, []).append(node)
    series = {ns[0]: (ns[0] if len(ns) == 1 else f"{host} ({len(ns)} nodes)") for host, ns in hosts.items()}
    colors = {n: SCHEDULER_COLORS[i % len(SCHEDULER_COLORS)] for i, n in enumerate(series)}
    styles = ("-", "--", ":", "-.")
    rates = net_rates(rows)
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(WIDTH_IN, 3.6))
        ax_cpu, ax_net = fig.subplots(2, 1, sharex=True)
        for i, (node, label) in enumerate(series.items()):
            style = styles[i // len(SCHEDULER_COLORS) % len(styles)]
            mine = sorted((float(r["t"]), float(r.get("cpu_pct") or 0.0)) for r in cpu if str(r.get("node")) == node)
            t, v = np.array(mine).T
            ax_cpu.plot(t - t0, v, color=colors[node], linestyle=style, label=label)
            t, rate = rates.get(node, (np.array([]), np.array([])))
            if len(t):
                ax_net.plot(t - t0, rate / 1e6, color=colors[node], linestyle=style, label=label)
        for h in handover_walls:
            for ax in (ax_cpu, ax_net):
                ax.axvline(float(h) - t0, color="#009E73", linestyle="-", linewidth=0.8, alpha=0.8)
        ax_cpu.set_ylabel("CPU busy, all cores (%)")
        ax_cpu.set_ylim(bottom=0)
        ax_net.set_ylabel("network rx+tx (MB/s)")
        ax_net.set_xlabel("wall time since the first sample (s)")
        ax_net.set_ylim(bottom=0)
        handles, _labels = ax_cpu.get_legend_handles_labels()
        if handover_walls:
            handles.append(Line2D([], [], color="#009E73", linewidth=0.8, label="handover"))
        ax_cpu.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, title="node")
        fig.tight_layout()
        return _save(fig, path)
