"""Report sections for workload groups (per-group request latency) and node telemetry.

:func:`group_rows` / :func:`group_section`: one row per client group and
service of a run's ``requests`` (``client_group`` set by ``krios client
--workload``): requests, errors, latency p50/p95/p99/mean (ms, answered
requests) and the sender's lag (``sent_at - created_at``, ms: an open-loop
client keeps it near 0 however slow the server is). Written as
``groups.csv``.

:func:`telemetry_section`: per node, mean and peak total CPU (%), peak memory
and mean network traffic from the ``telemetry`` table (``krios telemetry``),
the watched processes' (and their cgroups') mean CPU and peak memory, and the figure
``telemetry.png`` (:func:`krios.results.plots.telemetry_timeline`).

Each section appears only when the run has such rows.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from krios.results import plots

GROUP_FIELDS = ["group", "service", "clients", "requests", "errors", "p50_ms", "p95_ms", "p99_ms", "mean_ms",
                "lag_p99_ms", "lag_max_ms", "bytes"]


def _pct(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def group_rows(requests: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (client group, service): counts, latency percentiles (ms), sender lag (ms) and bytes received."""
    by: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in requests:
        if r.get("client_group") is None:
            continue
        by.setdefault((str(r["client_group"]), str(r.get("service") or "")), []).append(r)
    out = []
    for (group, service), rs in sorted(by.items()):
        lat = [float(r["latency_ms"]) for r in rs if r.get("latency_ms") is not None and r.get("status") == "ok"]
        lag = [1000.0 * (float(r["sent_at"]) - float(r["created_at"])) for r in rs
               if r.get("sent_at") is not None and r.get("created_at") is not None]  # fmt: skip
        out.append({
            "group": group, "service": service, "clients": len({r.get("client") for r in rs}), "requests": len(rs),
            "errors": sum(1 for r in rs if r.get("status") != "ok"),
            "p50_ms": _pct(lat, 50), "p95_ms": _pct(lat, 95), "p99_ms": _pct(lat, 99),
            "mean_ms": float(np.mean(lat)) if lat else None,
            "lag_p99_ms": _pct(lag, 99), "lag_max_ms": max(lag) if lag else None,
            "bytes": sum(int(r.get("bytes") or 0) for r in rs),
        })  # fmt: skip
    return out


def _f(v: Any, digits: int = 1) -> str:
    return "–" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def group_section(requests: Sequence[Mapping[str, Any]], out: Path) -> tuple[list[str], list[Path]]:
    """The "Workload groups" Markdown lines and ``groups.csv``; nothing without grouped requests."""
    rows = group_rows(requests)
    if not rows:
        return [], []
    path = out / "groups.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=GROUP_FIELDS)
        w.writeheader()
        w.writerows(rows)
    lines = ["## Workload groups", "",
             "Latency of answered requests per client group; lag = sent − scheduled (open loop keeps it near 0).",
             "", "| group | service | clients | requests | errors | p50 ms | p95 ms | p99 ms | mean ms | "
             "lag p99 ms | lag max ms |", "| --- | --- " + "| ---: " * 9 + "|"]
    for r in rows:
        lines.append(f"| {r['group']} | `{r['service']}` | {r['clients']} | {r['requests']} | {r['errors']} | "
                     f"{_f(r['p50_ms'])} | {_f(r['p95_ms'])} | {_f(r['p99_ms'])} | {_f(r['mean_ms'])} | "
                     f"{_f(r['lag_p99_ms'], 2)} | {_f(r['lag_max_ms'], 2)} |")
    lines.append("")
    return lines, [path]


def telemetry_section(rows: Sequence[Mapping[str, Any]], ticks: Sequence[Mapping[str, Any]],
                      handovers: Sequence[Mapping[str, Any]], out: Path) -> tuple[list[str], list[Path]]:
    """The "Node telemetry" Markdown lines and ``telemetry.png``; nothing without telemetry rows."""
    if not rows:
        return [], []
    t_sims = [float(h["t_sim"]) for h in handovers if h.get("t_sim") is not None]
    walls = [float(x) for x in plots.wall_time(t_sims, ticks)] if t_sims and ticks else []
    figure = plots.telemetry_timeline(rows, walls, out / "telemetry.png")
    intervals = {r.get("interval") for r in rows}
    nodes = sorted({str(r.get("node")) for r in rows})
    hosts = sorted({str(r.get("host")) for r in rows if r.get("host")})
    rates = plots.net_rates(rows)
    lines = ["## Node telemetry", "",
             f"{len(intervals)} samples of {len(nodes)} nodes on {len(hosts)} host(s) "
             f"({', '.join(hosts)}); CPU is the busy share of all cores of the host.", "",
             "| node | CPU mean % | CPU max % | memory max MB | network mean MB/s |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for node in nodes:
        cpu = [float(r["cpu_pct"]) for r in rows if r.get("node") == node and r.get("kind") == "cpu"
               and r.get("item") == "total" and r.get("cpu_pct") is not None]  # fmt: skip
        mem = [int(r["mem_bytes"]) for r in rows if r.get("node") == node and r.get("kind") == "mem"
               and r.get("mem_bytes") is not None]  # fmt: skip
        net = rates.get(node, (np.array([]), np.array([])))[1]
        net_mb = float(np.mean(net)) / 1e6 if len(net) else None
        lines.append(f"| {node} | {_f(float(np.mean(cpu)) if cpu else None)} | {_f(max(cpu) if cpu else None)} | "
                     f"{_f(max(mem) / 1e6 if mem else None, 0)} | {_f(net_mb, 3)} |")
    procs: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        if r.get("kind") in ("proc", "cgroup"):
            label = str(r.get("item")) if r.get("kind") == "proc" else f"cgroup `{r.get('item')}`"
            procs.setdefault((str(r.get("node")), label), []).append(r)
    if procs:
        lines += ["", "| node | process or cgroup | CPU mean % of a core | CPU max % | memory max MB |",
                  "| --- | --- | ---: | ---: | ---: |"]
        for (node, name), rs in sorted(procs.items()):
            cpu = [float(r["cpu_pct"]) for r in rs if r.get("cpu_pct") is not None]
            rss = [int(r["mem_bytes"]) for r in rs if r.get("mem_bytes") is not None]
            lines.append(f"| {node} | {name} | {_f(float(np.mean(cpu)) if cpu else None)} | "
                         f"{_f(max(cpu) if cpu else None)} | {_f(max(rss) / 1e6 if rss else None, 0)} |")
    lines.append("")
    if figure:
        lines += ["![CPU and network per node, handovers marked](telemetry.png)", ""]
    return lines, [figure] if figure else []
