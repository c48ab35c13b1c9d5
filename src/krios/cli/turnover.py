"""``krios bench coldstart`` and ``krios bench churn``: sandbox turnover of both schedulers."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from krios.config import defaults as D
from krios.errors import ConfigError

DB_HELP = "results database (default: $KRIOS_RESULTS_DB or results/krios.sqlite)"


def register(sub: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    _register_coldstart(bench)
    _register_churn(bench)


def _common(p: argparse.ArgumentParser, duration: str) -> None:
    p.add_argument("--duration-s", default=duration, metavar="S",
                   help=f"wall seconds of arrivals per cell ({duration})")
    p.add_argument("--schedulers", default="krios-scheduler,default-scheduler",
                   help="comma-separated schedulerNames compared (default: krios-scheduler,default-scheduler)")
    p.add_argument("--seed", default=str(D.SEED), help=f"arrival and cell-order seed ({D.SEED})")
    p.add_argument("--timeout-s", default=f"{D.BENCH_TIMEOUT_S:g}", metavar="S",
                   help=f"per-stage timeout of a pod: an arrival not Ready (or not gone) by then is an error "
                        f"({D.BENCH_TIMEOUT_S:g})")
    p.add_argument("--max-inflight", metavar="N",
                   help="pods in flight at once; an arrival beyond is dropped and counts as an error "
                        "(coldstart 500, churn 2000)")
    p.add_argument("--image", default="registry.k8s.io/pause:3.2",
                   help="container image of the pods (virtual kubelets never pull it)")
    p.add_argument("--namespace", default=D.BENCH_NAMESPACE,
                   help=f"namespace of the benchmark pods ({D.BENCH_NAMESPACE})")
    p.add_argument("--kubeconfig", help="cluster kubeconfig (default: $KUBECONFIG or the local cluster)")
    p.add_argument("--state-dir", help="local cluster state folder (its kube-scheduler is paused while the "
                   "benchmark runs its own)")
    p.add_argument("--no-spawn", action="store_true",
                   help="the schedulers already run (a lab, the local experiment): do not start them")
    p.add_argument("--no-repeat", action="store_true", help="do not repeat the baseline cell at the end")
    p.add_argument("--run-id", help="add the rows to this run (e.g. the experiment's) instead of a new one")
    p.add_argument("--db", help=DB_HELP)
    p.add_argument("--no-report", action="store_true", help="do not write results/<run-id>/ at the end")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def _register_coldstart(bench: argparse._SubParsersAction) -> None:
    p = bench.add_parser(
        "coldstart", help="cold-start rate sweep: every request a new pod, rate raised until latency breaks",
        description="Open-loop arrivals (seeded Poisson) at each rate step; every arrival creates a new pod, waits "
        "until it is Ready, sends it one request (virtual kubelets: served = Ready), deletes it. A step stops "
        "once the p99 cold-start latency passes --p99-bound-ms or errors pass --max-error-share; a scheduler's "
        "rate is not raised after its first saturated step. Prints each scheduler's saturation rate; writes "
        "the results store (table coldstart) and results/<run-id>/.",
    )
    p.add_argument("--rps", default=",".join(f"{v:g}" for v in (1, 2, 5, 10, 20, 50, 100, 200)),
                   help="target arrival rates of the steps, 1/s, comma-separated (default 1,2,5,10,20,50,100,200)")
    _common(p, "10")
    p.add_argument("--p99-bound-ms", default="2000", metavar="MS",
                   help="a step saturates once its p99 cold-start latency passes this (2000)")
    p.add_argument("--max-error-share", default="0.05", metavar="SHARE",
                   help="... or once more than this share of its arrivals failed (0.05)")
    p.add_argument("--min-samples", default="20", metavar="N",
                   help="arrivals judged before a step may stop early (20)")
    p.add_argument("--serve", default="ready",
                   help="ready (served = Ready; virtual kubelets) or http (GET the pod IP; real nodes and an "
                        "HTTP --image such as nginx)")
    p.add_argument("--serve-port", default="80", help="port of the pod's HTTP server with --serve http (80)")
    p.add_argument("--serve-path", default="/", help="path requested with --serve http (/)")
    p.set_defaults(func=_coldstart)


def _register_churn(bench: argparse._SubParsersAction) -> None:
    p = bench.add_parser(
        "churn", help="sustained pod create/delete at a target rate: achieved sandboxes/s, latency, backlog",
        description="Create pods open loop at --rate per second for --duration-s, each deleted --lifetime-s after "
        "it turned Ready; per scheduler (seeded order, the first one repeated last) prints achieved creations "
        "and Ready sandboxes per second, scheduling and Ready latency quantiles (bootstrap 95%% CIs) and the "
        "peak backlog; writes the results store (tables coldstart and churn) and results/<run-id>/.",
    )
    p.add_argument("--rate", default="10", help="target pod creations per second (10)")
    _common(p, "30")
    p.add_argument("--lifetime-s", default="5", metavar="S", help="seconds a pod lives after Ready (5)")
    p.add_argument("--sample-s", default="0.5", metavar="S", help="backlog sampling period (0.5)")
    p.set_defaults(func=_churn)


def _number(text: Any, flag: str, *, integer: bool = False) -> float | int:
    """``text`` as a number, or one :class:`ConfigError` naming ``flag``."""
    try:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(text)
        if integer:
            if not value.is_integer():
                raise ValueError(text)
            return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"must be {'an integer' if integer else 'a number'}", source=flag, field=str(text)) from None
    return value


def _schedulers(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class _Bench:
    """What both commands share: kubeconfig, results run, schedulers (spawned or running), report."""

    def __init__(self, args: argparse.Namespace, kind: str, meta_key: str, cfg: Any):
        from krios.cli.results import _kubeconfig_path, _store
        from krios.kube.client import as_client
        from krios.kube.config import client_with_pool, load_client
        from krios.measure.coldstart import config_dict
        from krios.results.store import check_run_id

        if args.run_id is not None:
            check_run_id(args.run_id)
        self.args, self.cfg, self.meta_key = args, cfg, meta_key
        self.kubeconfig = _kubeconfig_path(args)
        # many arrivals in flight at once: a pool large enough that none waits for a connection
        self.api = client_with_pool(load_client(str(self.kubeconfig)), 64)
        try:
            kube_version = as_client(self.api).get("/version")["gitVersion"]
        except Exception as exc:  # unreachable apiserver: one line, no traceback
            raise ConfigError(f"apiserver not reachable: {str(exc).splitlines()[0]}", source=str(self.kubeconfig),
                              field="server") from exc
        self.store = _store(args.db)
        self.run_id = self.store.start_run(kind, seed=cfg.seed, run_id=args.run_id,
                                           meta={meta_key: config_dict(cfg), "kube_version": kube_version})
        # A joined run (--run-id of an experiment) keeps its own metadata; the report judges the steps by
        # this benchmark's bound and settings, so they are merged in either way.
        self.store.update_meta(self.run_id, **{meta_key: config_dict(cfg)})
        self.run_label = self.run_id.rsplit("-", 1)[-1] + time.strftime("%H%M%S")
        self.injector: Any = None

    def start_schedulers(self) -> None:
        from krios.measure import injection

        if self.args.no_spawn:
            self.injector = injection.NoInjector()
            how = "schedulers already running (--no-spawn)"
        else:
            self.injector = injection.SpawnInjector(
                self.kubeconfig, self.cfg.schedulers, self.store.run_dir(self.run_id) / "bench",
                state_dir=Path(self.args.state_dir) if self.args.state_dir else None)
            how = "schedulers started by the benchmark behind a 0 ms delay proxy"
        self.store.update_meta(self.run_id, schedulers=how, injector=self.injector.info())
        print(f"bench {self.meta_key} run {self.run_id}: {how}", file=sys.stderr, flush=True)

    def wait_ready(self, core: Any, watcher: Any, scheduler: str) -> None:
        from krios.measure.sweep import wait_scheduler_ready

        wait_scheduler_ready(core, watcher, self.cfg, scheduler, self.run_label, check=self.injector.check)

    def record(self, table: str, row: dict[str, Any]) -> None:
        self.store.add(self.run_id, table, row)

    def close(self, status: str) -> None:
        if self.injector is not None:
            self.injector.close()
        self.store.finish_run(self.run_id, status)

    def report(self) -> None:
        if not self.args.no_report:
            from krios.results.report import generate

            print(generate(self.store, self.run_id))


def _coldstart(args: argparse.Namespace) -> int:
    from krios.measure.coldstart import ColdstartConfig, Progress, run_coldstart, summary_lines

    cfg = ColdstartConfig(
        rps=args.rps, duration_s=_number(args.duration_s, "--duration-s"), schedulers=_schedulers(args.schedulers),
        seed=_number(args.seed, "--seed", integer=True), namespace=args.namespace,
        timeout_s=_number(args.timeout_s, "--timeout-s"), p99_bound_ms=_number(args.p99_bound_ms, "--p99-bound-ms"),
        max_error_share=_number(args.max_error_share, "--max-error-share"),
        min_samples=_number(args.min_samples, "--min-samples", integer=True),
        max_inflight=_number(args.max_inflight, "--max-inflight", integer=True) if args.max_inflight else 500,
        repeat_baseline=not args.no_repeat, serve=args.serve,
        serve_port=_number(args.serve_port, "--serve-port", integer=True), serve_path=args.serve_path,
        image=args.image,
    ).check()
    bench = _Bench(args, "bench-coldstart", "coldstart", cfg)

    def measure(progress: Any) -> Any:
        result = run_coldstart(bench.api, cfg, lambda row: bench.record("coldstart", row), run_label=bench.run_label,
                               progress=progress, check=bench.injector.check, wait_ready=bench.wait_ready)
        bench.store.update_meta(bench.run_id, saturation=result.saturation, cells=result.cells)
        return result

    print("\n".join(summary_lines(_measure(bench, measure, Progress("coldstart", enabled=not args.quiet)), cfg)))
    bench.report()
    return 0


def _measure(bench: _Bench, measure: Any, progress: Any) -> Any:
    """``measure(progress)`` with the schedulers started; the run finished ``complete`` or ``failed`` whatever
    happens, SIGTERM turned into an orderly stop meanwhile."""
    status = "failed"
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        bench.start_schedulers()
        result = measure(progress)
        status = "complete"
    finally:
        signal.signal(signal.SIGTERM, previous)
        bench.close(status)
    return result


def _churn(args: argparse.Namespace) -> int:
    from krios.measure.churn import ChurnConfig, run_churn, summary_lines
    from krios.measure.coldstart import Progress

    cfg = ChurnConfig(
        rate=_number(args.rate, "--rate"), duration_s=_number(args.duration_s, "--duration-s"),
        lifetime_s=_number(args.lifetime_s, "--lifetime-s"), schedulers=_schedulers(args.schedulers),
        seed=_number(args.seed, "--seed", integer=True), namespace=args.namespace,
        timeout_s=_number(args.timeout_s, "--timeout-s"), sample_s=_number(args.sample_s, "--sample-s"),
        max_inflight=_number(args.max_inflight, "--max-inflight", integer=True) if args.max_inflight else 2000,
        repeat_baseline=not args.no_repeat, image=args.image,
    ).check()
    bench = _Bench(args, "bench-churn", "churn", cfg)

    def measure(progress: Any) -> Any:
        return run_churn(bench.api, cfg, bench.record, run_label=bench.run_label, progress=progress,
                         check=bench.injector.check, wait_ready=bench.wait_ready)

    print("\n".join(summary_lines(_measure(bench, measure, Progress("churn", enabled=not args.quiet)), cfg)))
    bench.report()
    return 0
