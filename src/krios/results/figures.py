"""The headline counts and figures of one results run, as plain JSON-able values.

What the Ansible modules ``krios.testbed.krios_emulator``, ``krios_client`` and
``krios_bench`` return after a phase (and what later tasks or
``ansible-runner`` job events read), computed from the run's rows in the
results store -- the same definitions as ``report.md``
(:mod:`krios.results.report`):

- ``served_share``: fraction (0..1) of emulator ticks at which the app ran on
  a node whose satellite was in the zone;
- ``handover_lead_median_s``: median of the handovers' ``lead_s`` (emulated s
  between starting the handover and the old satellite's zone exit);
- ``request_latency_ms``: ``p50``/``p99`` of the successful requests' latency (ms);
- ``scheduling_latency_median_ms``: per scheduler, per injected one-way delay
  (ms, as a string key ``"50"``), the median ``schedulingLatency`` (ms) of the
  measured (non-warm-up) pods.

Figures without samples are ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from krios.results.stats import cells


def _median(values: Sequence[float]) -> float | None:
    return round(float(np.median(values)), 3) if values else None


def _percentile(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def _delay_key(ms: float) -> str:
    return f"{ms:g}"


def counts(rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, int]:
    """``ticks`` (distinct emulated instants), ``handovers``, ``requests_ok``, ``requests_failed`` and
    ``pods_measured`` (non-warm-up benchmark pods with a scheduling latency) of a run's ``rows`` by table."""
    requests = rows.get("requests", ())
    ok = sum(1 for r in requests if r.get("status") == "ok")
    return {
        "ticks": len({r.get("t_sim") for r in rows.get("ticks", ())}),
        "handovers": len(rows.get("handovers", ())),
        "requests_ok": ok,
        "requests_failed": len(requests) - ok,
        "pods_measured": sum(1 for r in rows.get("pod_latency", ())
                             if not r.get("warmup") and r.get("schedulingLatency") is not None),
    }


def summary(rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """The figures of the module docstring from a run's ``rows`` by table."""
    ticks = rows.get("ticks", ())
    instants = {r.get("t_sim") for r in ticks}
    served = {r.get("t_sim") for r in ticks if r.get("serving") and r.get("in_zone")}
    leads = [float(h["lead_s"]) for h in rows.get("handovers", ()) if h.get("lead_s") is not None]
    latency = [float(r["latency_ms"]) for r in rows.get("requests", ())
               if r.get("status") == "ok" and r.get("latency_ms") is not None]
    sched: dict[str, dict[str, float | None]] = {}
    for (scheduler, delay), group in cells(rows.get("pod_latency", ())).items():
        values = [float(r["schedulingLatency"]) for r in group if r.get("schedulingLatency") is not None]
        sched.setdefault(scheduler, {})[_delay_key(delay)] = _median(values)
    return {
        "served_share": round(len(served) / len(instants), 4) if instants else None,
        "handover_lead_median_s": _median(leads),
        "request_latency_ms": {"p50": _percentile(latency, 50), "p99": _percentile(latency, 99)},
        "scheduling_latency_median_ms": sched,
    }


def run_figures(store: Any, run_id: str) -> dict[str, Any]:
    """``{"counts": ..., "summary": ...}`` of run ``run_id`` in ``store`` (a
    :class:`krios.results.store.ResultsStore`)."""
    rows = {t: store.rows(run_id, t) for t in ("ticks", "handovers", "requests", "pod_latency")}
    return {"counts": counts(rows), "summary": summary(rows)}
