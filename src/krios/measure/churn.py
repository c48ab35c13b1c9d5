"""Sustained sandbox churn (``krios bench churn``), after Dirigent's churn experiments.

Pods are created open loop at a target rate (a seeded Poisson process, each
arrival in a thread of its own: :class:`krios.measure.coldstart.CellRun`) for
``duration_s`` wall seconds; each pod lives ``lifetime_s`` after it turned
Ready and is then deleted. Per pod the
:class:`krios.measure.podlatency.PodWatcher` times bound / Ready / deleted
(a ``coldstart`` row with ``mode = 'churn'``, written when the pod is gone);
every ``sample_s`` a sampler writes the cell's *backlog* (a ``churn`` row):
pods created but not yet Ready, pods created but not yet gone, and the
creation and Ready rates since the previous sample. After the arrivals the
sampler keeps going until the backlog has drained.

Each scheduler gets one cell, in a seeded random order, and the first cell's
scheduler runs again at the end (the repeated baseline cell: drift shows as a
difference between the two). Achieved sandboxes/s is the number of pods that
turned Ready during the arrival window per second of it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from krios.config import defaults as D
from krios.config import resolve
from krios.kube import client as kube
from krios.kube.client import RawClient
from krios.kube.names import BENCH_LABEL
from krios.measure.coldstart import (
    KNOWN_SCHEDULERS,
    Cell,
    CellRun,
    Lifecycle,
    PodTracker,
    Progress,
    cell_rng,
    check_common,
    cleanup,
)
from krios.measure.podlatency import PodWatcher
from krios.results import turnover

log = logging.getLogger(__name__)


@dataclass
class ChurnConfig:
    """What a churn run does: rate 1/s, durations and timeouts wall s."""

    rate: float = 10.0
    duration_s: float = 30.0
    lifetime_s: float = 5.0
    schedulers: list[str] = field(default_factory=lambda: list(KNOWN_SCHEDULERS))
    seed: int = D.SEED
    namespace: str = D.BENCH_NAMESPACE
    timeout_s: float = D.BENCH_TIMEOUT_S
    sample_s: float = 0.5
    max_inflight: int = 2000
    repeat_baseline: bool = True
    image: str = "registry.k8s.io/pause:3.2"
    labels: dict[str, str] = field(default_factory=dict)

    def check(self) -> ChurnConfig:
        """Validate; raises ConfigError naming the field."""
        resolve.check_positive(self, "rate", "lifetime_s", "sample_s")
        check_common(self)
        return self


def _sample(run: CellRun, last: dict[str, Any]) -> dict[str, Any]:
    """One backlog sample of ``run`` (counts since the cell started; rates since ``last``)."""
    now = time.time()
    with run.lock:
        done = list(run.rows)
        inflight = dict(run.inflight)
    watcher = run.life.tracker.watcher
    ready = failed = not_ready = 0
    for name in inflight:
        t = watcher.times(name)
        if t.t_ready is not None:
            ready += 1
        elif t.error:
            failed += 1
        else:
            not_ready += 1
    for r in done:
        if r.get("t_ready") is not None:
            ready += 1
        if r.get("error"):
            failed += 1
    created = run.sent
    dt = now - last["t"] if last else 0.0
    return {
        "scheduler": run.cell.scheduler, "cell": run.cell.index, "repeat": int(run.cell.repeat),
        "rate": run.cell.rps, "t": now, "created": created, "ready": ready, "deleted": len(done), "failed": failed,
        "not_ready": not_ready, "not_deleted": len(inflight),
        "create_rate": (created - last["created"]) / dt if dt > 0 else None,
        "ready_rate": (ready - last["ready"]) / dt if dt > 0 else None,
    }


def run_churn(
    api: Any, cfg: ChurnConfig, record: Callable[[str, dict[str, Any]], None], *, run_label: str,
    progress: Progress | None = None, check: Callable[[], None] | None = None,
    wait_ready: Callable[[RawClient, PodWatcher, str], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every cell; ``record(table, row)`` gets each ``coldstart`` (pod) and ``churn`` (sample) row
    as it is made. Returns the per-cell summaries (:func:`krios.results.turnover.churn_summary`)."""
    cfg.check()
    core = kube.as_client(api)
    kube.ensure_namespace(core, cfg.namespace, wait_terminating_s=60.0)
    progress = progress or Progress("churn", enabled=False)
    order = list(cfg.schedulers)
    random.Random(cfg.seed).shuffle(order)
    plan = [(s, False) for s in order] + ([(order[0], True)] if cfg.repeat_baseline else [])
    pods: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    state: dict[str, Any] = {"cell": None, "left": len(plan)}

    def status() -> str:
        cur: CellRun | None = state["cell"]
        if cur is None:
            return "starting;"
        last = samples[-1] if samples and samples[-1]["cell"] == cur.cell.index else {}
        tag = " (repeat)" if cur.cell.repeat else ""
        return (f"cell {cur.cell.index + 1}/{len(plan)} {cur.cell.scheduler}{tag} @ {cfg.rate:g}/s: "
                f"{cur.sent} created, achieved {cur.achieved_rate():.1f}/s, {len(cur.rows)} done, "
                f"backlog {last.get('not_ready', 0)} not Ready / {last.get('not_deleted', 0)} not deleted, "
                f"{cur.errors()} errors;")

    def eta() -> float:
        cur: CellRun | None = state["cell"]
        per_cell = cfg.duration_s + cfg.lifetime_s
        left = state["left"] * per_cell
        if cur is not None:
            left += max(0.0, cur.t_start + per_cell - time.time())
        return left

    progress.status, progress.eta = status, eta
    progress.start()
    with PodWatcher(core, cfg.namespace, f"{BENCH_LABEL}={run_label}") as watcher:
        life = Lifecycle(core, PodTracker(watcher), cfg.namespace, cfg.timeout_s)
        runs: list[CellRun] = []
        try:
            if wait_ready is not None:
                for sched in cfg.schedulers:
                    wait_ready(core, watcher, sched)
            for index, (sched, repeat) in enumerate(plan):
                if check is not None:
                    check()
                cell = Cell(index, sched, cfg.rate, 0, repeat)

                def keep(row: dict[str, Any]) -> None:
                    pods.append(row)
                    record("coldstart", row)

                run = CellRun(life, cfg, cell, cell_rng(cfg.seed, cell), run_label, "churn", keep,
                              hold_s=cfg.lifetime_s)
                runs.append(run)
                state["cell"], state["left"] = run, len(plan) - index - 1
                done = threading.Event()
                sampler = threading.Thread(target=_sampler, args=(run, cfg.sample_s, done, samples, record),
                                           name="churn-sampler", daemon=True)
                sampler.start()
                try:
                    run.run()
                finally:
                    done.set()
                    sampler.join()
                progress.cell_done()
        finally:
            for run in runs:
                run.stop.set()
            progress.finish()
            cleanup(core, cfg.namespace, run_label)
    return turnover.churn_summary(pods, samples, seed=cfg.seed)


def _sampler(run: CellRun, period_s: float, done: threading.Event, samples: list[dict[str, Any]],
             record: Callable[[str, dict[str, Any]], None]) -> None:
    last: dict[str, Any] = {}
    while True:
        finished = done.wait(period_s)
        row = _sample(run, last)
        samples.append(row)
        try:
            record("churn", row)
        except Exception:
            log.exception("could not record a churn sample")
        last = row
        if finished:
            return


def summary_lines(summary: list[dict[str, Any]], cfg: ChurnConfig) -> list[str]:
    """What ``krios bench churn`` prints: per cell the achieved rates, latency quantiles and peak backlog."""
    lines = [f"churn: target {cfg.rate:g} pods/s for {cfg.duration_s:g} s, each deleted {cfg.lifetime_s:g} s "
             "after Ready (latencies ms, p50 [95% CI] / p99)",
             f"{'cell':>4}  {'scheduler':26}{'created/s':>10}{'Ready/s':>9}{'pods':>6}{'errors':>7}"
             f"   {'scheduling':>30}   {'ready':>30}   peak backlog (not Ready / not deleted)"]
    for c in summary:
        name = c["scheduler"] + (" (repeat)" if c["repeat"] else "")
        cols = []
        for metric in ("schedulingLatency", "podReadyLatency"):
            s = c[metric]
            cols.append(f"{s['p50']:.1f} [{s['p50_lo']:.1f}, {s['p50_hi']:.1f}] / {s['p99']:.1f}".rjust(30))
        lines.append(f"{c['cell']:>4}  {name:26}{c['created_per_s']:>10.2f}{c['ready_per_s']:>9.2f}{c['pods']:>6}"
                     f"{c['errors']:>7}   {cols[0]}   {cols[1]}   {c['peak_not_ready']} / {c['peak_not_deleted']}")
    base = [c for c in summary if not c["repeat"]]
    if len(base) > 1:
        ref = next((c for c in base if c["scheduler"] == "default-scheduler"), base[-1])
        for c in base:
            if c is ref:
                continue
            a, b = c["podReadyLatency"]["p50"], ref["podReadyLatency"]["p50"]
            if b and a == a and b == b:
                lines.append(f"ready p50 ratio {c['scheduler']} / {ref['scheduler']}: {a / b:.2f}x")
    return lines
