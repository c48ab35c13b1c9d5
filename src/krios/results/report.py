"""The Markdown report of a run, with its exports, summaries and figures.

:func:`generate` (re)writes ``results/<run-id>/``:

- ``run.json`` and ``<table>.jsonl`` / ``<table>.csv`` for every table with rows;
- ``summary.csv`` / ``summary.json``: per scheduler x injected delay x metric
  n, errors, min, p50, p90, p95, p99, max, mean with bootstrap 95% CIs;
- ``podLatencyMeasurement.jsonl``: kube-burner-style documents, one per pod;
- ``latency_cdf.png``, ``latency_vs_delay.png``, ``handover_timeline.png``;
- ``groups.csv`` and ``telemetry.png`` when the run has workload groups / node telemetry
  (:mod:`krios.results.workloads`);
- ``report.md`` tying them together.

It reads only the results store, so ``krios report <run-id>`` regenerates
everything after the fact.
"""

from __future__ import annotations

import csv
import itertools
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from krios.config.times import iso
from krios.results import plots, stats, turnover, workloads
from krios.results.export import kube_burner_documents, write_jsonl
from krios.results.store import ResultsStore
from krios.results.timeline import handovers_from_ticks

SUMMARY_FIELDS = ["scheduler", "latency_ms", "metric", "n", "errors"] + [
    f"{s}{suffix}" for s in stats.STATISTICS for suffix in ("", "_lo", "_hi")
]


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _ci(cell: Mapping[str, Any], stat: str) -> str:
    return f"{_fmt(cell[stat])} [{_fmt(cell[stat + '_lo'])}, {_fmt(cell[stat + '_hi'])}]"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s" if m else f"{seconds:.1f} s"


def write_summary(summary: Sequence[Mapping[str, Any]], out: Path) -> list[Path]:
    """``summary.csv`` and ``summary.json`` into ``out``."""
    csv_path, json_path = out / "summary.csv", out / "summary.json"
    with csv_path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
        w.writeheader()
        for row in summary:
            w.writerow({k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()})
    clean = [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()} for r in summary]
    json_path.write_text(json.dumps(clean, indent=1) + "\n")
    return [csv_path, json_path]


def _run_section(run: Mapping[str, Any], counts: Mapping[str, int]) -> list[str]:
    meta = run.get("meta") or {}
    git = meta.get("git") or {}
    versions = meta.get("versions") or {}
    finished = run.get("finished_at")
    lines = [
        f"# Run `{run['id']}`",
        "",
        "| | |",
        "| --- | --- |",
        f"| kind | {run['kind']} |",
        f"| scenario | {run.get('scenario') or '–'} |",
        f"| seed | {_fmt(run.get('seed'))} |",
        f"| status | **{run['status']}** |",
        f"| started | {iso(run['started_at'])} |",
        f"| finished | {iso(finished) if finished else '–'} |",
        f"| duration | {_duration(finished - run['started_at'] if finished else None)} |",
        f"| git revision | `{git.get('commit', 'unknown')[:12]}`{' (dirty)' if git.get('dirty') else ''} |",
        f"| versions | {', '.join(f'{k} {v}' for k, v in sorted(versions.items())) or '–'} |",
        f"| samples | {', '.join(f'{t}: {n}' for t, n in counts.items() if n) or 'none'} |",
    ]
    for key in ("injection", "emulator", "cluster", "kube_version"):
        if key in meta:
            lines.append(f"| {key} | {_fmt(meta[key]) if not isinstance(meta[key], dict) else json.dumps(meta[key])} |")
    if run["status"] == "incomplete":
        lines += ["", "> This run never finished (its process stopped); the samples below are those written so far."]
    lines += ["", "<details><summary>tc state at the start</summary>", "", "```", str(meta.get("tc", "–")), "```",
              "", "</details>", ""]
    return lines


def _bench_section(
    rows: list[dict], summary: list[dict], figures: Mapping[str, Path | None], meta: Mapping
) -> list[str]:
    warm = sum(1 for r in rows if r.get("warmup"))
    bench = meta.get("bench") or {}
    lines = [
        "## Pod latency benchmark",
        "",
        "Per pod, a watch client talking to the apiserver directly recorded when the create request was "
        "sent, and when the pod was bound, running, ready, deleted (kube-burner / ClusterLoader2 method). "
        "`schedulingLatency` = bound − submitted, `podReadyLatency` = ready − submitted, "
        "`deletionLatency` = deleted − delete requested. The injected delay is one-way, per direction, "
        f"between the schedulers and the apiserver ({bench.get('injection', 'see run metadata')}). "
        f"{len(rows) - warm} samples ({warm} warm-up samples discarded); cells ran in a seeded random order "
        "with the zero-delay cell repeated last. Values in ms; brackets: bootstrap 95% CI.",
        "",
    ]
    for metric in stats.METRICS:
        cells = [s for s in summary if s["metric"] == metric]
        if not cells:
            continue
        lines += [
            f"### {metric}",
            "",
            "| scheduler | delay | n | errors | min | p50 | p90 | p95 | p99 | max | mean |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for c in cells:
            lines.append(
                f"| {c['scheduler']} | {c['latency_ms']:g} | {c['n']} | {c['errors']} | {_fmt(c['min'])} | "
                f"{_ci(c, 'p50')} | {_fmt(c['p90'])} | {_ci(c, 'p95')} | {_fmt(c['p99'])} | {_fmt(c['max'])} | "
                f"{_ci(c, 'mean')} |"
            )
        lines.append("")
    lines += _ratio_lines(summary)
    lines += _drift_lines(rows)
    for name, title in (("latency_vs_delay", "Latency vs injected delay"), ("latency_cdf", "Latency CDFs")):
        if figures.get(name):
            lines += [f"![{title}]({figures[name].name})", ""]
    return lines


def _ratio_lines(summary: Sequence[Mapping[str, Any]]) -> list[str]:
    schedulers = sorted({s["scheduler"] for s in summary})
    if len(schedulers) < 2:
        return []
    base = "default-scheduler" if "default-scheduler" in schedulers else schedulers[-1]
    others = [s for s in schedulers if s != base]
    index = {(s["scheduler"], s["latency_ms"], s["metric"]): s for s in summary}
    delays = sorted({s["latency_ms"] for s in summary})
    lines = [
        f"### Side by side: median ratio to `{base}` (same run)",
        "",
        "| scheduler | metric | " + " | ".join(f"{d:g} ms" for d in delays) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in delays) + " |",
    ]
    for other in others:
        for metric in stats.METRICS:
            cols = []
            for d in delays:
                a, b = index.get((other, d, metric)), index.get((base, d, metric))
                if a and b and a["n"] and b["n"] and b["p50"]:
                    cols.append(f"{a['p50'] / b['p50']:.2f}×")
                else:
                    cols.append("–")
            lines.append(f"| {other} | {metric} | " + " | ".join(cols) + " |")
    return [*lines, ""]


def _drift_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Zero-delay cell first vs repeated last: did the system drift during the run?"""
    out = []
    for sched in sorted({str(r.get("scheduler")) for r in rows}):
        zero = [r for r in rows if r.get("scheduler") == sched and not r.get("warmup") and not r.get("latency_ms")]
        cell_ids = sorted({r.get("cell") for r in zero if r.get("cell") is not None})
        if len(cell_ids) < 2:
            continue
        first = [r["schedulingLatency"] for r in zero if r.get("cell") == cell_ids[0] and r.get("schedulingLatency")]
        last = [r["schedulingLatency"] for r in zero if r.get("cell") == cell_ids[-1] and r.get("schedulingLatency")]
        if first and last:
            out.append(
                f"| {sched} | {stats.point(first, 'p50'):.1f} | {stats.point(last, 'p50'):.1f} | "
                f"{stats.point(last, 'p50') / stats.point(first, 'p50'):.2f} |"
            )
    if not out:
        return []
    return [
        "### Drift check: zero-delay cell, first vs repeated last (schedulingLatency p50, ms)",
        "",
        "| scheduler | first | last | last/first |",
        "| --- | ---: | ---: | ---: |",
        *out,
        "",
    ]


def served_share(ticks: list[dict]) -> dict[str, Any]:
    """What the ``ticks`` rows say about service: one tick is the rows one emulator tick wrote.

    A tick (rows sharing ``t_sim`` and ``t_wall``, unix s) is served when one of its rows has
    ``serving`` and ``in_zone``. Nothing is deduplicated by ``t_sim``: an instant ticked twice
    counts twice (``repeated``), so a rewound emulator cannot hide an unserved tick behind a served
    one. ``missing``: ticks absent between the first and last ``t_sim``, at the run's smallest
    tick spacing. Returns ``{"ticks", "served", "share", "repeated", "missing"}``.
    """
    by_tick: dict[tuple[float, float], bool] = {}
    for t in ticks:
        if t.get("t_sim") is None:
            continue
        key = (float(t["t_sim"]), float(t.get("t_wall") or 0.0))
        by_tick[key] = by_tick.get(key, False) or bool(t.get("serving") and t.get("in_zone"))
    instants = sorted({k[0] for k in by_tick})
    steps = [b - a for a, b in itertools.pairwise(instants) if b - a > 1e-6]
    missing = 0
    if steps:
        tick_s = min(steps)
        missing = max(0, round((instants[-1] - instants[0]) / tick_s) + 1 - len(instants))
    served = sum(by_tick.values())
    return {"ticks": len(by_tick), "served": served, "share": served / len(by_tick) if by_tick else 0.0,
            "repeated": len(by_tick) - len(instants), "missing": missing}


def _emulation_section(
    ticks: list[dict], requests: list[dict], handovers: list[dict], figure: Path | None
) -> list[str]:
    lines = ["## Emulation", ""]
    if ticks:
        ts = [float(t["t_sim"]) for t in ticks if t.get("t_sim") is not None]
        tw = [float(t["t_wall"]) for t in ticks if t.get("t_wall") is not None]
        span_sim = max(ts) - min(ts) if ts else 0.0
        span_wall = max(tw) - min(tw) if tw else 0.0
        nodes = sorted({t.get("node") for t in ticks if t.get("node")})
        share = served_share(ticks)
        lines += [
            f"- emulated {_duration(span_sim)} in {_duration(span_wall)} of wall time "
            f"({span_sim / span_wall:.3g}× acceleration)" if span_wall > 0 else f"- emulated {_duration(span_sim)}",
            f"- {len(nodes)} nodes, {len({t.get('sat_id') for t in ticks})} satellites mapped over the run",
            f"- zone served by an in-zone satellite at {100.0 * share['share']:.1f}% of ticks "
            f"({share['served']} of {share['ticks']})",
        ]
        if share["repeated"]:
            lines.append(f"- {share['repeated']} emulated instants were ticked more than once "
                         "(an emulator restarted without resuming); each tick counts")
        if share["missing"]:
            lines.append(f"- {share['missing']} ticks missing between the first and the last "
                         "(skipped or the emulator was down); not counted as served")
    if handovers:
        modes: dict[str, int] = {}
        for h in handovers:
            modes[str(h.get("mode"))] = modes.get(str(h.get("mode")), 0) + 1
        leads = [float(h["lead_s"]) for h in handovers if h.get("lead_s") is not None]
        lines.append(
            f"- {len(handovers)} handovers ({', '.join(f'{n} {m}' for m, n in sorted(modes.items()))})"
            + (f", lead before zone exit: median {np.median(leads):.1f} s, min {min(leads):.1f} s" if leads else "")
        )
    if requests:
        lat = [float(r["latency_ms"]) for r in requests if r.get("latency_ms") is not None]
        errors = len(requests) - len(lat)
        s = stats.summarize(lat, errors=errors, n_boot=1000)
        hosts: dict[str, int] = {}
        for r in requests:
            host = str(r.get("client_host") or "unrecorded")
            hosts[host] = hosts.get(host, 0) + 1
        sent_from = ", ".join(f"{n} from {h}" for h, n in sorted(hosts.items()))
        lines.append(
            f"- client: {len(requests)} requests ({sent_from}), {errors} failed "
            f"({100.0 * errors / len(requests):.1f}%); latency p50 {_ci(s, 'p50')} ms, "
            f"p95 {_ci(s, 'p95')} ms, max {_fmt(s['max'])} ms"
        )
    lines.append("")
    if figure:
        lines += [f"![Handover timeline]({figure.name})", ""]
    return lines


def generate(store: ResultsStore, run_id: str, out_dir: str | Path | None = None) -> Path:
    """(Re)write the exports, summary, figures and ``report.md`` of a run; return report.md's path."""
    run = store.run(run_id)
    run_id = run["id"]
    out = Path(out_dir) if out_dir is not None else store.run_dir(run_id)
    out.mkdir(parents=True, exist_ok=True)
    written = store.export(run_id, out)
    pod_rows = store.rows(run_id, "pod_latency")
    ticks = store.rows(run_id, "ticks")
    requests = store.rows(run_id, "requests")
    handovers = store.rows(run_id, "handovers")
    derived = False
    if not handovers and ticks:
        handovers, derived = handovers_from_ticks(ticks), True
    summary = stats.pod_latency_summary(pod_rows, seed=run.get("seed") or 0) if pod_rows else []
    figures: dict[str, Path | None] = {}
    if pod_rows:
        written += write_summary(summary, out)
        written.append(write_jsonl(
            out / "podLatencyMeasurement.jsonl",
            kube_burner_documents(pod_rows, uuid=run_id, namespace=(run.get("meta") or {}).get("namespace", "")),
        ))
        figures["latency_cdf"] = plots.latency_cdfs(pod_rows, out / "latency_cdf.png")
        figures["latency_vs_delay"] = plots.latency_vs_delay(summary, out / "latency_vs_delay.png")
    if ticks:
        timeline = out / "handover_timeline.png"
        figures["handover_timeline"] = plots.handover_timeline(ticks, requests, handovers, timeline)
    written += [p for p in figures.values() if p]

    lines = _run_section(run, store.counts(run_id))
    if ticks or requests or handovers:
        lines += _emulation_section(ticks, requests, handovers, figures.get("handover_timeline"))
        if derived and handovers:
            path = out / "handovers_from_ticks.csv"
            with path.open("w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(handovers[0]))
                w.writeheader()
                w.writerows(handovers)
            written.append(path)
            lines += ["Handovers above are read off the ticks (a change of the serving node); lead = emulated "
                      "time until the old satellite left the zone (`handovers_from_ticks.csv`).", ""]
    more, files = workloads.group_section(requests, out)  # krios client --workload: per-group latency
    lines += more
    written += files
    more, files = workloads.telemetry_section(store.rows(run_id, "telemetry"), ticks, handovers, out)
    lines += more
    written += files
    if pod_rows:
        lines += _bench_section(pod_rows, summary, figures, run.get("meta") or {})
    turnover_rows = store.rows(run_id, "coldstart")
    if turnover_rows:  # krios bench coldstart / churn
        more, files = turnover.section(turnover_rows, store.rows(run_id, "churn"), run.get("meta") or {}, out,
                                       seed=run.get("seed") or 0)
        lines += more
        written += files
    events = store.rows(run_id, "events")
    if events:
        lines += ["## Events", "", "| time | kind | data |", "| --- | --- | --- |"]
        lines += [f"| {iso(e['t'])} | {e['kind']} | `{json.dumps(e['data'], sort_keys=True)}` |" for e in events[:200]]
        if len(events) > 200:
            lines.append(f"| … | {len(events) - 200} more in events.jsonl | |")
        lines.append("")
    report = out / "report.md"
    files = sorted({p.name for p in written} | {"report.md"})
    lines += ["## Files", "", *[f"- [`{f}`]({f})" for f in files], "",
              f"_Generated {iso(time.time())} by `krios report {run_id}`._", ""]
    report.write_text("\n".join(lines))
    return report
