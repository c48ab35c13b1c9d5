"""The cold-start rate sweep (``krios bench coldstart``), after Dirigent's cold-start sweep.

Every request needs a new sandbox: per *arrival* the benchmark creates a fresh
pod (``spec.schedulerName`` = the cell's scheduler), waits until it is Ready,
sends it one request, deletes it and waits until it is gone. A
:class:`krios.measure.podlatency.PodWatcher` (a watch client talking to the
apiserver directly) times each stage; the row of an arrival is handed to
``record`` (the results store) as soon as its pod is gone, so a killed run keeps
every arrival that completed.

Arrivals are **open loop**: their times are drawn up front (a Poisson process
of the step's rate, seeded; every scheduler gets the same sequence at a rate),
a dispatcher sleeps until each and starts the arrival in a thread of its own,
so a slow cluster never slows the sender (the sender's lateness is recorded
as ``lagMs``). ``coldStartLatency`` is measured from the *scheduled* arrival
time, so queueing in the sender is not hidden.

The rate steps run in ascending order; within a step the schedulers still
being measured run in a seeded random order (one cell each). A step is
*saturated* (:func:`krios.results.turnover.verdict`) once the p99 of
``coldStartLatency`` passes ``p99_bound_ms`` or more than ``max_error_share``
of its arrivals failed (timeouts, API errors, or dropped because
``max_inflight`` arrivals were already running): its dispatcher stops, and
that scheduler's rate is not raised again. Its saturation rate is the highest
step below. The lowest step is repeated at the end for each scheduler (a
drift check, as ``krios bench latency`` repeats its zero-delay cell).

**Served.** On virtual kubelets no container runs, so there is nothing to
request: with ``serve="ready"`` (the default) the served time is the Ready
time. With ``serve="http"`` (real nodes and an HTTP image, e.g. the app's
nginx) the request is a GET of ``http://<podIP>:<serve_port><serve_path>``,
retried every 20 ms until it answers 2xx.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, TextIO

from kubernetes.client.exceptions import ApiException

from krios.config import defaults as D
from krios.config import resolve
from krios.kube import client as kube
from krios.kube.client import RawClient, pod_path
from krios.kube.names import BENCH_LABEL, DEFAULT_SCHEDULER_NAME, SCHEDULER_NAME
from krios.measure.podlatency import PodTimes, PodWatcher
from krios.results import stats, turnover

log = logging.getLogger(__name__)

KNOWN_SCHEDULERS = (SCHEDULER_NAME, DEFAULT_SCHEDULER_NAME)
#: Default target rates of the steps (1/s).
DEFAULT_RPS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0)
SERVE_MODES = ("ready", "http")


def parse_rates(value: Any, field_name: str = "rps") -> list[float]:
    """Rates (1/s) from ``"1,2,5"``, a number or a list; a :class:`ConfigError` naming ``field_name``."""
    if isinstance(value, str):
        parts = [p for p in value.replace(",", " ").split()]
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        parts = [value]
    if not parts:
        raise resolve.field_error(field_name, value, "at least one rate is needed")
    out = []
    for p in parts:
        try:
            v = float(p)
        except (TypeError, ValueError):
            raise resolve.field_error(field_name, p, "must be a number > 0 (requests per second)") from None
        if isinstance(p, bool) or not math.isfinite(v) or v <= 0:
            raise resolve.field_error(field_name, p, "must be a number > 0 (requests per second)")
        out.append(v)
    return out


def check_schedulers(schedulers: list[str]) -> list[str]:
    """The schedulers, deduplicated; each must be one the benchmarks know."""
    if not schedulers:
        raise resolve.field_error("schedulers", "", "at least one scheduler is needed")
    for s in schedulers:
        if s not in KNOWN_SCHEDULERS:
            raise resolve.field_error("schedulers", s, f"unknown scheduler (known: {', '.join(KNOWN_SCHEDULERS)})")
    return list(dict.fromkeys(schedulers))


def check_common(cfg: Any) -> None:
    """Checks shared by the cold-start and churn configurations (fields ``duration_s`` ... ``max_inflight``)."""
    resolve.check_positive(cfg, "duration_s", "timeout_s")
    if not isinstance(cfg.max_inflight, int) or isinstance(cfg.max_inflight, bool) or cfg.max_inflight < 1:
        raise resolve.field_error("max_inflight", cfg.max_inflight, "must be an integer >= 1")
    cfg.schedulers = check_schedulers(cfg.schedulers)


@dataclass
class ColdstartConfig:
    """What a cold-start sweep measures: rates 1/s, durations and timeouts wall s, bounds ms."""

    rps: list[float] = field(default_factory=lambda: list(DEFAULT_RPS))
    duration_s: float = 10.0
    schedulers: list[str] = field(default_factory=lambda: list(KNOWN_SCHEDULERS))
    seed: int = D.SEED
    namespace: str = D.BENCH_NAMESPACE
    timeout_s: float = D.BENCH_TIMEOUT_S
    p99_bound_ms: float = 2000.0
    max_error_share: float = 0.05
    #: Arrivals judged before a step may stop early (the end of a step is always judged).
    min_samples: int = 20
    #: Arrivals running at once; one more is dropped (an error) instead of starting a thread.
    max_inflight: int = 500
    repeat_baseline: bool = True
    serve: str = "ready"
    serve_port: int = 80
    serve_path: str = "/"
    image: str = "registry.k8s.io/pause:3.2"
    labels: dict[str, str] = field(default_factory=dict)

    SCENARIO_KEYS: ClassVar[dict[str, str]] = {"seed": "seed"}

    def check(self) -> ColdstartConfig:
        """Validate and normalise; raises ConfigError naming the field."""
        self.rps = sorted(dict.fromkeys(parse_rates(self.rps)))
        check_common(self)
        resolve.check_positive(self, "p99_bound_ms")
        if not (isinstance(self.max_error_share, int | float) and 0 <= self.max_error_share < 1):
            raise resolve.field_error("max_error_share", self.max_error_share, "must be a number in [0, 1)")
        if self.min_samples < 1:
            raise resolve.field_error("min_samples", self.min_samples, "must be at least 1")
        if self.serve not in SERVE_MODES:
            raise resolve.field_error("serve", self.serve, f"must be one of {', '.join(SERVE_MODES)}")
        if not 0 < self.serve_port < 65536:
            raise resolve.field_error("serve_port", self.serve_port, "must be a port number (1-65535)")
        return self


@dataclass(frozen=True)
class Cell:
    """One (scheduler, rate step) cell at position ``index`` of the run."""

    index: int
    scheduler: str
    rps: float
    step: int
    repeat: bool = False


def arrival_offsets(rate: float, duration_s: float, rng: random.Random) -> list[float]:
    """A Poisson process of ``rate`` (1/s): arrival offsets (s) from the step's start, below ``duration_s``."""
    out: list[float] = []
    t = rng.expovariate(rate)
    while t < duration_s:
        out.append(t)
        t += rng.expovariate(rate)
    return out


def cell_rng(seed: int, cell: Cell) -> random.Random:
    """The arrival generator of a cell: same seed and rate -> the same arrivals for every scheduler
    (common random numbers: the schedulers are compared on identical arrival sequences)."""
    return random.Random(f"{seed}/{cell.rps:g}/{int(cell.repeat)}")


def pod_manifest(name: str, scheduler: str, image: str, labels: dict[str, str], port: int | None = None
                 ) -> dict[str, Any]:
    """A benchmark pod: one container (``image``), the cell's scheduler, 1 s grace period."""
    container: dict[str, Any] = {"name": "app", "image": image, "imagePullPolicy": "IfNotPresent"}
    if port:
        container["ports"] = [{"containerPort": port}]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {"schedulerName": scheduler, "terminationGracePeriodSeconds": 1, "containers": [container]},
    }


class _Waiter:
    __slots__ = ("bound", "deleted", "ready")

    def __init__(self) -> None:
        self.bound = threading.Event()
        self.ready = threading.Event()
        self.deleted = threading.Event()


class PodTracker:
    """Per-pod events (bound, Ready, deleted) set from a :class:`PodWatcher`'s listener.

    Each arrival waits on its own events, so hundreds in flight cost nothing
    while they wait (no shared condition woken on every watch event).
    """

    def __init__(self, watcher: PodWatcher):
        self.watcher = watcher
        self._waiters: dict[str, _Waiter] = {}
        self._lock = threading.Lock()
        watcher.add_listener(self._on_event)

    def register(self, name: str) -> _Waiter:
        with self._lock:
            w = self._waiters[name] = _Waiter()
            return w

    def forget(self, name: str) -> None:
        with self._lock:
            self._waiters.pop(name, None)

    def _on_event(self, name: str, times: PodTimes) -> None:
        with self._lock:
            w = self._waiters.get(name)
        if w is None:
            return
        if times.t_bound is not None:
            w.bound.set()
        if times.t_ready is not None:
            w.ready.set()
        if times.t_deleted is not None:
            w.deleted.set()


def _ms(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else (b - a) * 1000.0


def http_get_until_ok(url: str, deadline: float) -> float | None:
    """GET ``url`` every 20 ms until it answers 2xx (unix s of that answer) or ``deadline`` (monotonic): None."""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=max(0.1, min(2.0, deadline - time.monotonic()))) as resp:
                resp.read()
                if 200 <= resp.status < 300:
                    return time.time()
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.02)
    return None


@dataclass
class Lifecycle:
    """What one pod's life needs: the API client, the watcher's tracker and the timing knobs."""

    core: RawClient
    tracker: PodTracker
    namespace: str
    timeout_s: float
    serve: str = "ready"
    serve_port: int = 80
    serve_path: str = "/"

    def run(self, manifest: dict[str, Any], t_arrival: float, *, hold_s: float = 0.0,
            stop: threading.Event | None = None) -> dict[str, Any]:
        """Create, wait Ready, serve one request, hold ``hold_s`` wall s, delete, wait gone; the times.

        Returns the ``coldstart`` columns of this pod (times, node, latencies, ``served_via``, error).
        """
        name = manifest["metadata"]["name"]
        watcher = self.tracker.watcher
        waiter = self.tracker.register(name)
        t_served = None
        error = None
        try:
            watcher.submitted(name)
            try:
                self.core.post(pod_path(self.namespace), manifest)
            except ApiException as exc:
                watcher.failed(name, f"create: HTTP {exc.status} {exc.reason}")
                return self._row(name, t_arrival, None)
            except Exception as exc:  # connection refused / reset: the apiserver gave up
                watcher.failed(name, f"create: {type(exc).__name__}")
                return self._row(name, t_arrival, None)
            if waiter.ready.wait(self.timeout_s):
                t_served = self._serve(name)
                if t_served is None:
                    error = f"no 2xx answer within {self.timeout_s:g} s"
            else:
                stage = "ready" if waiter.bound.is_set() else "bound"
                error = f"not {stage} within {self.timeout_s:g} s"
            if error:
                watcher.failed(name, error)
            if hold_s > 0 and stop is not None and error is None:
                stop.wait(hold_s)
            watcher.delete_requested(name)
            try:
                self.core.delete(pod_path(self.namespace, name))
            except ApiException as exc:
                if exc.status != 404:
                    watcher.failed(name, f"delete: HTTP {exc.status} {exc.reason}")
            except Exception as exc:
                watcher.failed(name, f"delete: {type(exc).__name__}")
            if not waiter.deleted.wait(self.timeout_s):
                watcher.failed(name, f"not deleted within {self.timeout_s:g} s")
                with contextlib.suppress(Exception):  # do not leave it behind
                    self.core.delete(pod_path(self.namespace, name), {"gracePeriodSeconds": 0})
            return self._row(name, t_arrival, t_served)
        finally:
            self.tracker.forget(name)

    def _serve(self, name: str) -> float | None:
        times = self.tracker.watcher.times(name)
        if self.serve == "ready":
            return times.t_ready
        deadline = time.monotonic() + self.timeout_s
        try:
            pod = self.core.get(pod_path(self.namespace, name))
        except Exception:
            return None
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            return None
        host = f"[{ip}]" if ":" in ip else ip
        return http_get_until_ok(f"http://{host}:{self.serve_port}{self.serve_path}", deadline)

    def _row(self, name: str, t_arrival: float, t_served: float | None) -> dict[str, Any]:
        t = self.tracker.watcher.times(name)
        return {
            "pod": name, "node": t.node, "served_via": self.serve,
            "t_arrival": t_arrival, "t_submit": t.t_submit, "t_bound": t.t_bound, "t_ready": t.t_ready,
            "t_served": t_served, "t_delete": t.t_delete, "t_deleted": t.t_deleted,
            "lagMs": _ms(t_arrival, t.t_submit),
            "schedulingLatency": _ms(t.t_submit, t.t_bound),
            "podReadyLatency": _ms(t.t_submit, t.t_ready),
            "coldStartLatency": _ms(t_arrival, t_served),
            "deletionLatency": _ms(t.t_delete, t.t_deleted),
            "error": t.error,
        }


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """A status line on stderr: cell, rate step, arrivals sent/done, achieved rate, p99, errors, ETA.

    On a terminal the line is rewritten twice a second; otherwise one line per finished cell.
    ``eta()`` is supplied by the engine (remaining planned seconds, an upper bound).
    """

    def __init__(self, what: str, stream: TextIO | None = None, enabled: bool = True):
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.monotonic()
        self.status: Callable[[], str] = lambda: ""
        self.eta: Callable[[], float] = lambda: float("nan")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def line(self) -> str:
        return (f"[bench {self.what}] {self.status()} elapsed {_clock(time.monotonic() - self.t0)}, "
                f"ETA ~{_clock(self.eta())}")

    def start(self) -> Progress:
        if self.tty:
            self._thread = threading.Thread(target=self._loop, name="bench-progress", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self.stream.write("\r\033[K" + self.line())
            self.stream.flush()

    def cell_done(self) -> None:
        if self.enabled and not self.tty:
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def finish(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self.stream.write("\r\033[K" + self.line() + "\n")
            self.stream.flush()


class CellRun:
    """One cell's open-loop arrivals, judged as they complete (see the module docstring)."""

    def __init__(self, life: Lifecycle, cfg: Any, cell: Cell, rng: random.Random, run_label: str, mode: str,
                 record: Callable[[dict[str, Any]], None], *, hold_s: float = 0.0,
                 judge: Callable[[CellRun, bool], turnover.Verdict | None] | None = None):
        self.life, self.cfg, self.cell, self.run_label, self.mode = life, cfg, cell, run_label, mode
        self.record, self.hold_s, self.judge = record, hold_s, judge
        self.offsets = arrival_offsets(cell.rps, cfg.duration_s, rng)
        self.lock = threading.Lock()
        self.inflight: dict[str, float] = {}  # pod -> t_arrival
        self.rows: list[dict[str, Any]] = []
        self.sent = 0
        self.ready = 0
        self.stopped_early: turnover.Verdict | None = None
        self.stop = threading.Event()  # cuts holds short (churn) when the benchmark is interrupted
        self.t_start = time.time()
        self._threads: list[threading.Thread] = []

    # -- counts for progress and samples --------------------------------------------------
    def achieved_rate(self) -> float:
        """Arrivals sent per wall second of the arrival window so far (1/s)."""
        elapsed = min(time.time() - self.t_start, self.cfg.duration_s)
        return self.sent / elapsed if elapsed > 0 else 0.0

    def ok_latencies(self, metric: str = turnover.BOUND_METRIC) -> list[float]:
        with self.lock:
            return [r[metric] for r in self.rows if not r.get("error") and r.get(metric) is not None]

    def errors(self) -> int:
        with self.lock:
            return sum(1 for r in self.rows if r.get("error"))

    def over_bound(self, bound_ms: float) -> list[float]:
        now = time.time()
        with self.lock:
            return [a for a in ((now - t) * 1000.0 for t in self.inflight.values()) if a > bound_ms]

    # -- running --------------------------------------------------------------------------
    def run(self) -> None:
        """Dispatch every arrival at its time (stopping early if ``judge`` says so), then wait for all."""
        self.t_start = time.time() + 0.05
        for seq, offset in enumerate(self.offsets):
            t_arrival = self.t_start + offset
            delay = t_arrival - time.time()
            if delay > 0:
                time.sleep(delay)
            if self.judge is not None:
                v = self.judge(self, False)
                if v is not None and v.saturated:
                    self.stopped_early = v
                    break
            name = f"{self.mode[0]}{self.cell.index:03d}-{seq:05d}-{self.run_label}"[:63].rstrip("-.")
            with self.lock:
                busy = len(self.inflight)
                if busy < self.cfg.max_inflight:
                    self.inflight[name] = t_arrival
            self.sent += 1
            if busy >= self.cfg.max_inflight:
                self._done(seq, {"pod": name, "t_arrival": t_arrival, "served_via": self.life.serve,
                                 "error": f"dropped: {busy} arrivals in flight (max_inflight)"})
                continue
            th = threading.Thread(target=self._arrival, args=(seq, name, t_arrival), daemon=True,
                                  name=f"arrival-{name}")
            th.start()
            self._threads.append(th)
        for th in self._threads:
            th.join()

    def _arrival(self, seq: int, name: str, t_arrival: float) -> None:
        manifest = pod_manifest(name, self.cell.scheduler, self.cfg.image,
                                {BENCH_LABEL: self.run_label, **self.cfg.labels},
                                getattr(self.cfg, "serve_port", None) if self.life.serve == "http" else None)
        try:
            row = self.life.run(manifest, t_arrival, hold_s=self.hold_s, stop=self.stop)
        except Exception as exc:  # never lose an arrival: record what went wrong
            log.exception("arrival %s failed", name)
            row = {"pod": name, "t_arrival": t_arrival, "error": f"{type(exc).__name__}: {exc}"[:200]}
        with self.lock:
            self.inflight.pop(name, None)
        self._done(seq, row)

    def _done(self, seq: int, row: dict[str, Any]) -> None:
        full = {"mode": self.mode, "scheduler": self.cell.scheduler, "rps": self.cell.rps, "step": self.cell.step,
                "cell": self.cell.index, "repeat": int(self.cell.repeat), "seq": seq, **row}
        with self.lock:
            self.rows.append(full)
            if full.get("t_ready") is not None:
                self.ready += 1
        try:
            self.record(full)
        except Exception:
            log.exception("could not record arrival %s", row.get("pod"))


def _judge(cfg: ColdstartConfig) -> Callable[[CellRun, bool], turnover.Verdict]:
    def judge(run: CellRun, final: bool) -> turnover.Verdict:
        return turnover.verdict(
            run.ok_latencies(), run.errors(), p99_bound_ms=cfg.p99_bound_ms, max_error_share=cfg.max_error_share,
            over_bound_ms=() if final else run.over_bound(cfg.p99_bound_ms),
            min_samples=1 if final else cfg.min_samples,
        )
    return judge


def cleanup(core: RawClient, namespace: str, run_label: str) -> None:
    """Delete every pod of this run at once (an interrupted benchmark leaves none behind)."""
    with contextlib.suppress(Exception):
        core.delete(pod_path(namespace), {"gracePeriodSeconds": 0},
                    query={"labelSelector": f"{BENCH_LABEL}={run_label}"})


@dataclass
class ColdstartResult:
    """Per cell: its verdict; per scheduler: the saturation (see :func:`krios.results.turnover.saturation`)."""

    cells: list[dict[str, Any]]
    saturation: dict[str, dict[str, Any]]
    rows: list[dict[str, Any]]


def run_coldstart(
    api: Any, cfg: ColdstartConfig, record: Callable[[dict[str, Any]], None], *, run_label: str,
    progress: Progress | None = None, check: Callable[[], None] | None = None,
    wait_ready: Callable[[RawClient, PodWatcher, str], None] | None = None,
) -> ColdstartResult:
    """Run the sweep; ``record(row)`` gets each ``coldstart`` row as soon as its arrival is done.

    ``check()`` is called between cells and may raise (a scheduler process exited);
    ``wait_ready(core, watcher, scheduler)`` is called once per scheduler before
    the first cell (e.g. bind a probe pod).
    """
    cfg.check()
    core = kube.as_client(api)
    kube.ensure_namespace(core, cfg.namespace, wait_terminating_s=60.0)
    progress = progress or Progress("coldstart", enabled=False)
    judge = _judge(cfg)
    order = random.Random(cfg.seed)
    active = list(cfg.schedulers)
    verdicts: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    state: dict[str, Any] = {"cell": None, "index": 0, "queued": 0,
                             "repeats": len(cfg.schedulers) if cfg.repeat_baseline and len(cfg.rps) > 1 else 0}
    life_kw = {"serve": cfg.serve, "serve_port": cfg.serve_port, "serve_path": cfg.serve_path}

    def eta() -> float:
        """Planned seconds left if no further step saturates (an upper bound; drains not counted)."""
        cur: CellRun | None = state["cell"]
        left = state["queued"] * cfg.duration_s
        if cur is not None:
            left += max(0.0, cur.t_start + cfg.duration_s - time.time())
            if not cur.cell.repeat:
                left += (len(cfg.rps) - cur.cell.step - 1) * len(active) * cfg.duration_s
        return left + state["repeats"] * cfg.duration_s

    def status() -> str:
        cur: CellRun | None = state["cell"]
        if cur is None:
            return "starting;"
        lat = cur.ok_latencies()
        p99 = stats.point(lat, "p99")
        tag = " (repeat)" if cur.cell.repeat else ""
        return (f"step {cur.cell.step + 1}/{len(cfg.rps)} {cur.cell.rps:g} rps, {cur.cell.scheduler}{tag}: "
                f"{cur.sent}/{len(cur.offsets)} sent, {len(cur.rows)} done, achieved {cur.achieved_rate():.1f} rps, "
                f"p99 {p99:.0f} ms, {cur.errors()} errors;")

    progress.status, progress.eta = status, eta
    progress.start()
    selector = f"{BENCH_LABEL}={run_label}"
    with PodWatcher(core, cfg.namespace, selector) as watcher:
        tracker = PodTracker(watcher)
        life = Lifecycle(core, tracker, cfg.namespace, cfg.timeout_s, **life_kw)
        try:
            if wait_ready is not None:
                for sched in cfg.schedulers:
                    wait_ready(core, watcher, sched)

            def run_cell(sched: str, rps: float, step: int, repeat: bool) -> turnover.Verdict:
                if check is not None:
                    check()
                cell = Cell(state["index"], sched, rps, step, repeat)
                state["index"] += 1
                run = CellRun(life, cfg, cell, cell_rng(cfg.seed, cell), run_label, "coldstart", record,
                              judge=judge)
                state["cell"] = run
                run.run()
                v = run.stopped_early or judge(run, True)
                rows.extend(run.rows)
                verdicts.append({"cell": cell.index, "scheduler": sched, "rps": rps, "step": step,
                                 "repeat": int(repeat), "arrivals": len(run.rows), "saturated": v.saturated,
                                 "reason": v.reason, "early": run.stopped_early is not None,
                                 "achieved_rps": run.achieved_rate(), "p99_ms": v.p99_ms})
                progress.cell_done()
                return v

            for step, rps in enumerate(cfg.rps):
                if not active:
                    break
                this_step = list(active)
                order.shuffle(this_step)
                for k, sched in enumerate(this_step):
                    state["queued"] = len(this_step) - k - 1
                    if run_cell(sched, rps, step, False).saturated:
                        active.remove(sched)
            if state["repeats"]:
                again = list(cfg.schedulers)
                order.shuffle(again)
                for sched in again:
                    state["repeats"] -= 1
                    run_cell(sched, cfg.rps[0], 0, True)
        finally:
            progress.finish()
            cleanup(core, cfg.namespace, run_label)
    return ColdstartResult(verdicts, turnover.saturation(verdicts), rows)


def config_dict(cfg: Any) -> dict[str, Any]:
    """A benchmark configuration as stored in the run's metadata."""
    return asdict(cfg)


def summary_lines(result: ColdstartResult, cfg: ColdstartConfig) -> list[str]:
    """What ``krios bench coldstart`` prints: per cell the figures, then each scheduler's saturation rate."""
    cells = turnover.coldstart_cells(result.rows, p99_bound_ms=cfg.p99_bound_ms,
                                     max_error_share=cfg.max_error_share, seed=cfg.seed)
    early = {v["cell"]: v for v in result.cells}
    lines = [f"{'cell':>4}  {'scheduler':26}{'rps':>7}{'achieved':>10}{'arrivals':>9}{'errors':>7}"
             f"   coldStartLatency p50 [95% CI] / p99 ms   verdict"]
    for c in cells:
        s = c[turnover.BOUND_METRIC]
        v = early.get(c["cell"], {})
        verdict = v.get("reason") or c["reason"] or "ok"
        if v.get("early"):
            verdict += " (stopped early)"
        name = c["scheduler"] + (" (repeat)" if c["repeat"] else "")
        lines.append(f"{c['cell']:>4}  {name:26}{c['rps']:>7g}{c['achieved_rps']:>10.2f}{c['arrivals']:>9}"
                     f"{c['errors']:>7}   {s['p50']:8.1f} [{s['p50_lo']:.1f}, {s['p50_hi']:.1f}] / {s['p99']:.1f}"
                     f"   {verdict}")
    note = turnover.lag_note(cells, cfg.p99_bound_ms)
    if note:
        lines.append(f"note: {note}")
    lines.append(f"saturation rate (p99 coldStartLatency > {cfg.p99_bound_ms:g} ms or errors > "
                 f"{100.0 * cfg.max_error_share:g}%; served via {cfg.serve}):")
    for sched, sat in result.saturation.items():
        lines.append(f"  {sched:26}{turnover.saturation_text(sat)}")
    return lines
