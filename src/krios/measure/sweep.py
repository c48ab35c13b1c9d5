"""The scheduling / deployment / deletion latency sweep (``krios bench latency``).

A run is a grid of *cells*, one per (scheduler, injected delay). Each cell
creates ``warmup + samples_per_latency`` pods one after the other, each with
``spec.schedulerName`` set to the cell's scheduler; per pod, the
:class:`krios.measure.podlatency.PodWatcher` records submit/seen/bound/running/ready/
delete-requested/deleted. The first ``warmup`` samples of a cell are stored
with ``warmup=1`` and left out of the statistics. Cells run in a random order
(seeded), and the zero-delay cells are repeated at the end, so slow drift of
the machine shows up as a difference between the first and last zero-delay
cell instead of as a trend along the delay axis. Both schedulers are measured
in the same run, on the same cluster, interleaved.

The delay is injected between the *schedulers under test* and the apiserver by
a :class:`krios.measure.delayproxy.DelayProxy` (no netem needed); the watch client
that measures talks to the apiserver directly. Two ways to set it up:

- **spawn** (default): the benchmark starts the proxy in-process and runs the
  schedulers itself behind it: ``kube-scheduler`` (for ``default-scheduler``)
  from the cached control-plane binaries and ``krios scheduler`` (for
  ``krios-scheduler``). A local cluster's own kube-scheduler is paused meanwhile.
- **attach** (``--proxy-control URL``): the schedulers already talk through a
  running ``krios delayproxy`` (the local experiment starts them that way); the
  benchmark only changes its delay through the control endpoint.

On real nodes, inject the delay with tc netem instead (``krios.emulation.netem``, role
krios_netem) and run with ``--no-inject`` per delay value (``--latency-ms``).
"""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, TextIO

from kubernetes.client.exceptions import ApiException

from krios.config import defaults as D
from krios.config import resolve
from krios.errors import ConfigError
from krios.kube import client as kube
from krios.kube.client import RawClient, pod_path
from krios.kube.names import BENCH_LABEL, DEFAULT_SCHEDULER_NAME, SCHEDULER_NAME
from krios.measure.podlatency import PodTimes, PodWatcher

log = logging.getLogger(__name__)

KNOWN_SCHEDULERS = (SCHEDULER_NAME, DEFAULT_SCHEDULER_NAME)
DEFAULT_NAMESPACE = D.BENCH_NAMESPACE


@dataclass
class SweepConfig:
    """What a latency sweep measures (all delays one-way, ms; timeout wall s).

    Defaults in :mod:`krios.config.defaults`; build it with :meth:`from_scenario`.
    """

    latency_ms: list[float] = field(default_factory=lambda: [float(v) for v in D.BENCH_LATENCY_MS])
    samples_per_latency: int = D.BENCH_SAMPLES_PER_LATENCY
    warmup: int = D.BENCH_WARMUP_SAMPLES
    schedulers: list[str] = field(default_factory=lambda: list(KNOWN_SCHEDULERS))
    seed: int = D.SEED
    namespace: str = DEFAULT_NAMESPACE
    timeout_s: float = D.BENCH_TIMEOUT_S
    repeat_zero: bool = True
    #: Extra pod labels (e.g. ``leozone`` to exercise the krios zone path).
    labels: dict[str, str] = field(default_factory=dict)
    image: str = "registry.k8s.io/pause:3.2"

    #: Config field -> scenario key.
    SCENARIO_KEYS: ClassVar[dict[str, str]] = {
        "latency_ms": "benchmark.latency_ms", "samples_per_latency": "benchmark.samples_per_latency",
        "warmup": "benchmark.warmup_samples", "seed": "seed",
    }

    @classmethod
    def from_scenario(cls, scenario: Any = None, **overrides: Any) -> SweepConfig:
        """Defaults, then ``scenario``'s ``benchmark:`` keys and seed (may be ``None``), then overrides."""
        return resolve.from_scenario(cls, scenario, cls.SCENARIO_KEYS, overrides)

    def check(self) -> SweepConfig:
        """Validate and normalise; raises ConfigError naming the field."""
        if not isinstance(self.latency_ms, list | tuple):
            self.latency_ms = [self.latency_ms]
        if not self.latency_ms:
            raise resolve.field_error("latency_ms", "", "at least one value is needed")
        for v in self.latency_ms:
            if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
                raise resolve.field_error("latency_ms", v, "must be a number >= 0")
        if self.samples_per_latency < 1:
            raise resolve.field_error("samples_per_latency", self.samples_per_latency, "must be at least 1")
        if self.warmup < 0:
            raise resolve.field_error("warmup", self.warmup, "must not be negative")
        if not self.schedulers:
            raise resolve.field_error("schedulers", "", "at least one scheduler is needed")
        for s in self.schedulers:
            if not s or any(c not in "abcdefghijklmnopqrstuvwxyz0123456789-." for c in s):
                raise resolve.field_error("schedulers", s, "not a scheduler name (lower-case DNS name)")
        resolve.check_positive(self, "timeout_s")
        self.latency_ms = sorted(dict.fromkeys(float(v) for v in self.latency_ms))
        self.schedulers = list(dict.fromkeys(self.schedulers))
        return self

    @property
    def samples_per_cell(self) -> int:
        return self.warmup + self.samples_per_latency


@dataclass(frozen=True)
class Cell:
    """One (scheduler, delay) cell at position ``index`` of the run's order."""

    index: int
    scheduler: str
    latency_ms: float
    repeat: bool = False


def plan(cfg: SweepConfig) -> list[Cell]:
    """The cells in run order: shuffled with ``cfg.seed``, zero-delay cells repeated last."""
    grid = [(s, d) for s in cfg.schedulers for d in cfg.latency_ms]
    random.Random(cfg.seed).shuffle(grid)
    cells = [Cell(i, s, d) for i, (s, d) in enumerate(grid)]
    if cfg.repeat_zero and 0.0 in cfg.latency_ms and len(cfg.latency_ms) > 1:
        zero = [c for c in cells if c.latency_ms == 0.0]
        cells += [Cell(len(cells) + k, c.scheduler, 0.0, repeat=True) for k, c in enumerate(zero)]
    return cells


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """Terminal progress: samples done, elapsed and estimated remaining time.

    On a terminal one status line is rewritten; otherwise a line per cell.
    """

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True):
        self.total = total
        self.done = 0
        self.errors = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.monotonic()
        self.cell: Cell | None = None

    def line(self, done_cell: bool = False) -> str:
        elapsed = time.monotonic() - self.t0
        rate = self.done / elapsed if elapsed > 0 and self.done else 0.0
        remaining = (self.total - self.done) / rate if rate else float("nan")
        where = ""
        if self.cell:
            verb = "done" if done_cell else "now"
            where = f"  ({verb}: cell {self.cell.index + 1}, {self.cell.scheduler} @ {self.cell.latency_ms:g} ms)"
        rem = _clock(remaining) if remaining == remaining else "?"
        return (f"[bench latency] {self.done}/{self.total} samples ({100.0 * self.done / max(self.total, 1):.0f}%), "
                f"{self.errors} errors, elapsed {_clock(elapsed)}, remaining ~{rem}{where}")

    def start_cell(self, cell: Cell) -> None:
        self.cell = cell
        self._emit(final=False)

    def sample(self, ok: bool) -> None:
        self.done += 1
        self.errors += 0 if ok else 1
        if self.tty:
            self._emit(final=False)

    def end_cell(self) -> None:
        if not self.tty:
            self._emit(final=True)

    def finish(self) -> None:
        self.cell = None
        if self.enabled and self.tty:
            self.stream.write("\r\033[K" + self.line() + "\n")
            self.stream.flush()

    def _emit(self, final: bool) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\033[K" + self.line())
        elif final:
            self.stream.write(self.line(done_cell=True) + "\n")
        self.stream.flush()


def pod_manifest(name: str, scheduler: str, cfg: SweepConfig, run_label: str) -> dict[str, Any]:
    """The benchmark pod: one pause container, the cell's scheduler, no grace period wait."""
    labels = {BENCH_LABEL: run_label, **cfg.labels}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "schedulerName": scheduler,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "pause", "image": cfg.image, "imagePullPolicy": "IfNotPresent"}],
        },
    }


def ensure_namespace(core: RawClient, name: str) -> None:
    """Create namespace ``name`` if missing (and wait while it is terminating)."""
    try:
        kube.ensure_namespace(core, name, wait_terminating_s=60.0)
    except TimeoutError:
        raise ConfigError("namespace stays Terminating", source="namespace", field=name) from None


def create_pod(core: RawClient, namespace: str, manifest: dict[str, Any], retry_s: float = 60.0) -> None:
    """POST a pod, retrying while the apiserver asks to (HTTP 500/429 with ``retryAfterSeconds``).

    A namespace the sweep has just created has no ``default`` ServiceAccount
    token yet on clusters before Kubernetes 1.24 (``No API token found for
    service account "default", retry after the token is automatically
    created``); such a create is retried for up to ``retry_s`` wall seconds.
    """
    deadline = time.monotonic() + retry_s
    while True:
        try:
            core.post(pod_path(namespace), manifest)
            return
        except ApiException as exc:
            if exc.status not in (429, 500) or "retry" not in str(exc.body or "").lower() \
                    or time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def measure_pod(
    core: RawClient, watcher: PodWatcher, namespace: str, manifest: dict[str, Any], timeout_s: float
) -> PodTimes:
    """Create a pod, wait until Ready, delete it, wait until it is gone; the observed times."""
    name = manifest["metadata"]["name"]
    watcher.submitted(name)
    try:
        core.post(pod_path(namespace), manifest)
    except ApiException as exc:
        watcher.failed(name, f"create: HTTP {exc.status} {exc.reason}")
        return watcher.times(name)
    if not watcher.wait_for(name, "ready", timeout_s):
        times = watcher.times(name)
        stage = "bound" if times.t_bound is None else "ready"
        watcher.failed(name, f"not {stage} within {timeout_s:g} s")
    watcher.delete_requested(name)
    try:
        core.delete(pod_path(namespace, name))
    except ApiException as exc:
        if exc.status != 404:
            watcher.failed(name, f"delete: HTTP {exc.status} {exc.reason}")
            return watcher.times(name)
    if not watcher.wait_for(name, "deleted", timeout_s):
        watcher.failed(name, f"not deleted within {timeout_s:g} s")
        with contextlib.suppress(ApiException):  # do not leave it behind
            core.delete(pod_path(namespace, name), {"gracePeriodSeconds": 0})
    return watcher.times(name)


def wait_scheduler_ready(
    core: RawClient, watcher: PodWatcher, cfg: SweepConfig, scheduler: str, run_label: str,
    timeout_s: float = 90.0, check: Callable[[], None] | None = None,
) -> float:
    """Create a probe pod and wait until ``scheduler`` binds it (it is up); returns the seconds it took.

    ``check()`` is called every second and may raise (e.g. a scheduler process exited).
    """
    t0 = time.monotonic()
    name = f"probe-{scheduler}-{run_label}"[:63].rstrip("-.")
    watcher.submitted(name)
    create_pod(core, cfg.namespace, pod_manifest(name, scheduler, cfg, run_label))
    try:
        while not watcher.wait_for(name, "ready", 1.0):
            if check is not None:
                check()
            if time.monotonic() - t0 > timeout_s:
                raise ConfigError(
                    f"no pod was bound within {timeout_s:.0f} s: is the scheduler running (and alone)?",
                    source="schedulers", field=scheduler,
                )
    finally:
        with contextlib.suppress(ApiException):
            core.delete(pod_path(cfg.namespace, name), {"gracePeriodSeconds": 0})
    return time.monotonic() - t0


def run_sweep(
    api: Any,
    cfg: SweepConfig,
    set_delay: Callable[[float], None],
    record: Callable[[dict[str, Any]], None],
    *,
    run_label: str,
    progress: Progress | None = None,
    settle_s: float = 0.3,
    check: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every cell of :func:`plan`; ``record(row)`` gets each ``pod_latency`` row as it is made.

    ``set_delay(ms)`` sets the injected one-way delay before a cell; ``settle_s``
    later the cell starts (requests already in flight keep the old delay).
    ``check()`` may raise while waiting for the schedulers to come up.
    """
    cfg.check()
    core = kube.as_client(api)
    ensure_namespace(core, cfg.namespace)
    cells = plan(cfg)
    progress = progress or Progress(len(cells) * cfg.samples_per_cell, enabled=False)
    rows: list[dict[str, Any]] = []
    selector = f"{BENCH_LABEL}={run_label}"
    with PodWatcher(core, cfg.namespace, selector) as watcher:
        try:
            _sweep(core, watcher, cfg, cells, set_delay, record, run_label, progress, settle_s, check, rows)
        finally:  # an interrupted sweep leaves no pod behind
            with contextlib.suppress(ApiException):
                core.delete(pod_path(cfg.namespace), {"gracePeriodSeconds": 0}, query={"labelSelector": selector})
    progress.finish()
    return rows


def _sweep(
    core: RawClient, watcher: PodWatcher, cfg: SweepConfig, cells: list[Cell],
    set_delay: Callable[[float], None], record: Callable[[dict[str, Any]], None], run_label: str,
    progress: Progress, settle_s: float, check: Callable[[], None] | None, rows: list[dict[str, Any]],
) -> None:
    """The cells of :func:`run_sweep` (probes first), appending to ``rows``."""
    set_delay(0.0)
    for sched in cfg.schedulers:
        took = wait_scheduler_ready(core, watcher, cfg, sched, run_label, check=check)
        log.info("%s is up (probe pod bound in %.1f s)", sched, took)
    for cell in cells:
        set_delay(cell.latency_ms)
        time.sleep(settle_s)
        progress.start_cell(cell)
        for i in range(cfg.samples_per_cell):
            name = f"b{cell.index:03d}-{i:03d}-{run_label}"[:63].rstrip("-.")
            times = measure_pod(core, watcher, cfg.namespace, pod_manifest(name, cell.scheduler, cfg, run_label),
                                cfg.timeout_s)
            row = {
                "scheduler": cell.scheduler,
                "latency_ms": cell.latency_ms,
                "cell": cell.index,
                "sample": i,
                "warmup": int(i < cfg.warmup),
                **times.row(),
            }
            rows.append(row)
            record(row)
            progress.sample(times.error is None)
        progress.end_cell()
    set_delay(0.0)


def config_dict(cfg: SweepConfig) -> dict[str, Any]:
    """The sweep configuration as stored in the run's metadata."""
    return asdict(cfg)


def side_by_side(summary: Sequence[dict[str, Any]], metric: str = "schedulingLatency") -> list[str]:
    """Text table: per delay, each scheduler's p50 [CI] and the ratio to the last scheduler listed."""
    schedulers = sorted({s["scheduler"] for s in summary})
    base = DEFAULT_SCHEDULER_NAME if DEFAULT_SCHEDULER_NAME in schedulers else schedulers[-1]
    index = {(s["scheduler"], s["latency_ms"]): s for s in summary if s["metric"] == metric}
    delays = sorted({d for _s, d in index})
    head = f"{metric} p50 ms [95% CI]".ljust(28) + "".join(s.rjust(30) for s in schedulers)
    if len(schedulers) > 1:
        head += "  ratio vs " + base
    lines = [head]
    for d in delays:
        line = f"  delay {d:g} ms".ljust(28)
        for s in schedulers:
            c = index.get((s, d))
            cell = f"{c['p50']:.1f} [{c['p50_lo']:.1f}, {c['p50_hi']:.1f}] n={c['n']}" if c and c["n"] else "–"
            line += cell.rjust(30)
        if len(schedulers) > 1:
            b = index.get((base, d))
            ratios = [
                f"{s}: {index[(s, d)]['p50'] / b['p50']:.2f}x"
                for s in schedulers
                if s != base and (s, d) in index and b and b["n"] and index[(s, d)]["n"] and b["p50"]
            ]
            line += "  " + ", ".join(ratios)
        lines.append(line)
    return lines
