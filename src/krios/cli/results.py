"""``krios runs``, ``krios report``, ``krios delayproxy`` and ``krios bench latency``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from krios.config import defaults as D
from krios.errors import ConfigError

DB_HELP = "results database (default: $KRIOS_RESULTS_DB or results/krios.sqlite)"


def register(sub: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    _register_runs(sub)
    _register_report(sub)
    _register_delayproxy(sub)
    _register_bench_latency(bench)


def _store(path: str | None) -> Any:
    from krios.results.store import ResultsStore

    return ResultsStore(path)


# --------------------------------------------------------------------------- runs


def _register_runs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list the runs in the results database (start/finish one)",
                       description="List runs (id, kind, scenario, status, duration, samples). "
                       "`krios runs start` creates a run other processes join with --run-id; "
                       "`krios runs finish` sets its status.")
    p.add_argument("--db", help=DB_HELP)
    p.add_argument("--kind", help="only runs of this kind")
    p.add_argument("--json", action="store_true", help="JSON Lines instead of a table")
    p.set_defaults(func=_runs_list)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    # default=SUPPRESS: `krios runs --db X start` keeps X (a sub-command's default would overwrite it)
    s = actions.add_parser("start", help="create a run; print its id")
    s.add_argument("--db", help=DB_HELP, default=argparse.SUPPRESS)
    s.add_argument("--kind", default="experiment")
    s.add_argument("--scenario")
    s.add_argument("--seed", type=int)
    s.add_argument("--meta", default="{}", help="JSON object stored in the run's metadata")
    s.set_defaults(func=_runs_start)
    f = actions.add_parser("finish", help="set a run's status")
    f.add_argument("run_id")
    f.add_argument("--db", help=DB_HELP, default=argparse.SUPPRESS)
    f.add_argument("--status", default="complete", choices=("complete", "failed", "incomplete"))
    f.set_defaults(func=_runs_finish)
    # Rows measured on another node join the controller's run: export there, import here.
    e = actions.add_parser("export", help="print a run's rows of one table as JSON Lines")
    e.add_argument("run_id")
    e.add_argument("table", help="e.g. pod_latency, requests, ticks")
    e.add_argument("--db", help=DB_HELP, default=argparse.SUPPRESS)
    e.set_defaults(func=_runs_export)
    i = actions.add_parser("import", help="add JSON Lines rows (from `krios runs export`) to a run's table")
    i.add_argument("run_id")
    i.add_argument("table")
    i.add_argument("file", nargs="?", default="-", help="JSON Lines file ('-': standard input, the default)")
    i.add_argument("--db", help=DB_HELP, default=argparse.SUPPRESS)
    i.add_argument("--meta", action="append", default=[], metavar="KEY.NAME=VALUE",
                   help="also merge NAME=VALUE into the run's metadata object KEY (repeatable)")
    i.set_defaults(func=_runs_import)


def _runs_export(args: argparse.Namespace) -> int:
    from krios.results.store import check_run_id

    check_run_id(args.run_id, source="run id")
    for row in _store(args.db).rows(args.run_id, args.table):
        row.pop("run_id", None)
        print(json.dumps(row, default=str))
    return 0


def _runs_import(args: argparse.Namespace) -> int:
    from krios.results.store import check_run_id

    check_run_id(args.run_id, source="run id")
    meta: dict[str, dict[str, str]] = {}
    for item in args.meta:
        key, sep, value = item.partition("=")
        obj, dot, name = key.partition(".")
        if not sep or not dot or not obj or not name:
            raise ConfigError("must be KEY.NAME=VALUE", source="--meta", field=item[:60])
        meta.setdefault(obj, {})[name] = value
    source = args.file
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not JSON: {exc.msg}", source=source, field=f"line {n}") from exc
        if not isinstance(row, dict):
            raise ConfigError("must be a JSON object", source=source, field=f"line {n}")
        row.pop("run_id", None)
        rows.append(row)
    st = _store(args.db)
    added = st.add_many(args.run_id, args.table, rows)
    for obj, items in meta.items():
        st.merge_meta(args.run_id, obj, **items)
    print(f"{args.run_id}: {added} {args.table} rows added")
    return 0


def _runs_list(args: argparse.Namespace) -> int:
    st = _store(args.db)
    runs = st.runs(kind=args.kind)
    if args.json:
        for r in runs:
            print(json.dumps({**r, "samples": st.counts(r["id"])}, default=str))
        return 0
    if not runs:
        print(f"no runs in {st.path}")
        return 0
    from krios.config.times import iso

    print(f"{'RUN ID':40} {'KIND':14} {'SCENARIO':18} {'STATUS':10} {'STARTED':20} {'DURATION':>9}  SAMPLES")
    for r in runs:
        dur = f"{r['finished_at'] - r['started_at']:.0f} s" if r.get("finished_at") else "–"
        counts = ", ".join(f"{t} {n}" for t, n in st.counts(r["id"]).items() if n) or "–"
        print(f"{r['id']:40} {r['kind']:14} {(r.get('scenario') or '–'):18} {r['status']:10} "
              f"{iso(r['started_at'])[:19]:20} {dur:>9}  {counts}")
    return 0


def _runs_start(args: argparse.Namespace) -> int:
    try:
        meta = json.loads(args.meta)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not JSON: {exc.msg}", source="--meta", field=args.meta[:40]) from exc
    if not isinstance(meta, dict):
        raise ConfigError("must be a JSON object", source="--meta", field=args.meta[:40])
    st = _store(args.db)
    print(st.start_run(args.kind, scenario=args.scenario, seed=args.seed, meta=meta))
    return 0


def _runs_finish(args: argparse.Namespace) -> int:
    from krios.results.store import check_run_id

    check_run_id(args.run_id, source="run id")
    st = _store(args.db)
    run = st.run(args.run_id)
    st.finish_run(run["id"], args.status, force=True)
    print(f"{run['id']}: {args.status}")
    return 0


# --------------------------------------------------------------------------- report


def _register_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="(re)write results/<run-id>/ (report.md, plots, CSV, JSON Lines)",
                       description="Write the run's exports (JSON Lines, CSV), summary with bootstrap 95%% CIs, "
                       "PNG plots and report.md into results/<run-id>/ from the results database.")
    p.add_argument("run_id", help="run id (a unique prefix is enough; see `krios runs`)")
    p.add_argument("--db", help=DB_HELP)
    p.add_argument("--out", help="folder to write (default: results/<run-id>/ beside the database)")
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from krios.results.report import generate
    from krios.results.store import check_run_id

    check_run_id(args.run_id, source="run id")
    st = _store(args.db)
    path = generate(st, args.run_id, args.out)
    print(path)
    return 0


# --------------------------------------------------------------------------- delayproxy


def _register_delayproxy(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "delayproxy", help="TCP proxy on loopback adding one-way delay in front of the apiserver",
        description="Forward a loopback port to the kube-apiserver, delaying every chunk by --delay-ms in each "
        "direction (injected control-plane latency where tc netem is unavailable). Components use it through "
        "the kubeconfig written with --write-kubeconfig. The delay can be changed while running through the "
        "control endpoint (PUT /delay?ms=N). Runs until SIGTERM/SIGINT.",
    )
    tgt = p.add_mutually_exclusive_group(required=True)
    tgt.add_argument("--target", help="apiserver HOST:PORT or URL (loopback)")
    tgt.add_argument("--kubeconfig", help="take the target from this kubeconfig's server")
    p.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT to listen on (default: a free port)")
    p.add_argument("--control", default="127.0.0.1:0", help="HOST:PORT of the control endpoint")
    p.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay per direction, ms (0)")
    p.add_argument("--write-kubeconfig", help="write a copy of --kubeconfig pointing at the proxy here")
    p.add_argument("--state-file", help="write {proxy, control, pid} JSON here once listening")
    p.set_defaults(func=_delayproxy)


def _delayproxy(args: argparse.Namespace) -> int:
    import os

    from krios.measure.delayproxy import (
        ControlServer,
        DelayProxy,
        kubeconfig_server,
        parse_hostport,
        proxied_kubeconfig,
    )

    target = args.target or kubeconfig_server(args.kubeconfig)
    if args.delay_ms < 0:
        raise ConfigError("must not be negative", source="--delay-ms", field=f"{args.delay_ms:g}")
    proxy = DelayProxy(parse_hostport(target, source="--target"), parse_hostport(args.listen, source="--listen"),
                       delay_ms=args.delay_ms)
    proxy.start()
    control = ControlServer(proxy, parse_hostport(args.control, source="--control")).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_a: stop.set())
    try:
        if args.write_kubeconfig:
            if not args.kubeconfig:
                raise ConfigError("needs --kubeconfig", source="--write-kubeconfig", field=args.write_kubeconfig)
            proxied_kubeconfig(args.kubeconfig, proxy.url, args.write_kubeconfig)
        state = {"proxy": proxy.url, "control": control.url, "target": target, "pid": os.getpid(),
                 "delay_ms": proxy.delay_ms, "kubeconfig": args.write_kubeconfig}
        if args.state_file:
            Path(args.state_file).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(args.state_file + ".tmp")
            tmp.write_text(json.dumps(state) + "\n")
            tmp.replace(args.state_file)
        print(json.dumps(state), flush=True)
        stop.wait()
    finally:
        control.stop()
        proxy.stop()
    return 0


# --------------------------------------------------------------------------- bench latency


def _floats(text: str) -> list[float]:
    out = []
    for part in text.replace(",", " ").split():
        try:
            out.append(float(part))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not a number: {part!r}") from exc
    return out


def _register_bench_latency(bench: argparse._SubParsersAction) -> None:
    p = bench.add_parser(
        "latency", help="scheduling/ready/deletion latency of krios-scheduler vs kube-scheduler over injected delay",
        description="Sweep injected control-plane delay x scheduler; per cell create warm-up + N pods one at a "
        "time and time them with a watch client (kube-burner fields schedulingLatency, podReadyLatency, "
        "deletionLatency). Cells run in seeded random order with the zero-delay cells repeated last. Prints "
        "a per-cell summary (bootstrap 95%% CIs) and the ratios side by side; writes the results store and "
        "results/<run-id>/.",
    )
    p.add_argument("--latency-ms", type=_floats, action="extend", metavar="MS",
                   help="injected one-way delays, ms (repeat or comma-separate; default: scenario or "
                        f"{','.join(str(v) for v in D.BENCH_LATENCY_MS)})")
    p.add_argument("--samples-per-latency", type=int,
                   help=f"measured pods per cell (default: scenario or {D.BENCH_SAMPLES_PER_LATENCY})")
    p.add_argument("--warmup", type=int,
                   help=f"discarded pods at the start of each cell (default: scenario or {D.BENCH_WARMUP_SAMPLES})")
    p.add_argument("--schedulers", default="krios-scheduler,default-scheduler",
                   help="comma-separated schedulerNames compared (default: krios-scheduler,default-scheduler)")
    p.add_argument("--seed", type=int, help="cell order seed (default: scenario seed or 0)")
    p.add_argument("--scenario", help="scenario giving the defaults above (benchmark: section)")
    p.add_argument("--kubeconfig", help="cluster kubeconfig (default: $KUBECONFIG or the local cluster)")
    p.add_argument("--state-dir", help="local cluster state folder (its kube-scheduler is paused while measuring)")
    p.add_argument("--namespace", default=D.BENCH_NAMESPACE,
                   help=f"namespace of the benchmark pods ({D.BENCH_NAMESPACE})")
    p.add_argument("--timeout-s", type=float, default=D.BENCH_TIMEOUT_S,
                   help=f"per-stage timeout of a pod ({D.BENCH_TIMEOUT_S:g})")
    p.add_argument("--leozone", help="label benchmark pods leozone=LAT_LON (krios-scheduler's zone path; needs "
                   "the emulator running)")
    inj = p.add_mutually_exclusive_group()
    inj.add_argument("--proxy-control", metavar="URL",
                     help="schedulers already run behind `krios delayproxy`; set its delay via this endpoint")
    inj.add_argument("--no-inject", action="store_true",
                     help="inject nothing (delay set outside, e.g. tc netem); delays only label the cells")
    p.add_argument("--run-id", help="add the samples to this run (e.g. the experiment's) instead of a new one")
    p.add_argument("--db", help=DB_HELP)
    p.add_argument("--no-report", action="store_true", help="do not write results/<run-id>/ at the end")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_bench_latency)


def _sweep_config(args: argparse.Namespace) -> Any:
    from krios.measure.sweep import SweepConfig

    scenario = None
    if args.scenario:
        from krios.config import scenarios

        scenario = scenarios.load(args.scenario)
    labels = {}
    if args.leozone:
        from krios.kube.names import LEOZONE_LABEL
        from krios.orbits.zones import is_label_value, parse_leozone

        zone = parse_leozone(args.leozone, source="--leozone")  # one clear error for a bad value
        # -33.86_151.2 parses but is no label value: write it as s33.86_e151.2
        labels[LEOZONE_LABEL] = args.leozone if is_label_value(args.leozone) else zone.label
    cfg = SweepConfig.from_scenario(
        scenario,
        latency_ms=args.latency_ms or None,
        samples_per_latency=args.samples_per_latency,
        warmup=args.warmup,
        schedulers=[s.strip() for s in args.schedulers.split(",") if s.strip()],
        seed=args.seed,
        namespace=args.namespace,
        timeout_s=args.timeout_s,
        labels=labels,
    )
    if args.no_inject and len(cfg.latency_ms) > 1:
        print("krios: warning: --no-inject: the delay values only label the cells", file=sys.stderr)
    return cfg, scenario


def _kubeconfig_path(args: argparse.Namespace) -> Path:
    import os

    from krios.localcluster.state import KUBECONFIG, default_state_dir

    if args.kubeconfig:
        return Path(args.kubeconfig)
    if os.environ.get("KUBECONFIG"):
        return Path(os.environ["KUBECONFIG"].split(":")[0])
    folder = Path(args.state_dir) if args.state_dir else default_state_dir()
    path = folder / KUBECONFIG
    if not path.is_file():
        raise ConfigError("no kubeconfig: pass --kubeconfig or start a local cluster (`krios cluster up`)",
                          source="--kubeconfig", field=str(path))
    return path


def _bench_latency(args: argparse.Namespace) -> int:
    from krios.kube.client import as_client
    from krios.kube.config import load_client
    from krios.measure import injection
    from krios.measure.sweep import Progress, config_dict, plan, run_sweep, side_by_side
    from krios.results import stats
    from krios.results.report import generate
    from krios.results.store import check_run_id

    if args.run_id is not None:
        check_run_id(args.run_id)
    cfg, scenario = _sweep_config(args)
    kubeconfig = _kubeconfig_path(args)
    api = load_client(str(kubeconfig))
    try:
        kube_version = as_client(api).get("/version")["gitVersion"]
    except Exception as exc:  # unreachable apiserver: one line, no traceback
        raise ConfigError(f"apiserver not reachable: {str(exc).splitlines()[0]}", source=str(kubeconfig),
                          field="server") from exc
    st = _store(args.db)
    run_id = st.start_run("bench-latency", scenario=scenario.name if scenario else None, seed=cfg.seed,
                          meta={"bench": config_dict(cfg), "kube_version": kube_version}, run_id=args.run_id)
    run_label = run_id.rsplit("-", 1)[-1] + time.strftime("%H%M%S")
    status = "failed"
    injector: Any = None
    try:
        if args.proxy_control:
            injector = injection.AttachInjector(args.proxy_control)
        elif args.no_inject:
            injector = injection.NoInjector()
        else:
            injector = injection.SpawnInjector(
                kubeconfig, cfg.schedulers, st.run_dir(run_id) / "bench",
                state_dir=Path(args.state_dir) if args.state_dir else None,
                scenario=args.scenario,
            )
        st.update_meta(run_id, bench={**config_dict(cfg), "injection": injector.description,
                                      "injector": injector.info()})
        cells = plan(cfg)
        total = len(cells) * cfg.samples_per_cell
        print(f"bench latency run {run_id}: {len(cells)} cells x {cfg.samples_per_cell} pods = {total} samples; "
              f"injection: {injector.description}", file=sys.stderr)
        progress = Progress(total, enabled=not args.quiet)
        rows = run_sweep(api, cfg, injector.set_delay, lambda row: st.add(run_id, "pod_latency", row),
                         run_label=run_label, progress=progress, check=injector.check)
        status = "complete"
    finally:
        if injector is not None:
            injector.close()
        st.finish_run(run_id, status)
    summary = stats.pod_latency_summary(rows, seed=cfg.seed)
    for metric in stats.METRICS:
        print("\n".join(side_by_side(summary, metric)))
    if not args.no_report:
        print(generate(st, run_id))
    return 0
