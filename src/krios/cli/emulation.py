"""``krios emulator``, ``krios client``, ``krios standin`` and ``krios netem``."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from krios.config import defaults as D
from krios.errors import ConfigError

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    _register_emulator(sub)
    _register_client(sub)
    _register_standin(sub)
    _register_netem(sub)
    _register_telemetry(sub)


# --------------------------------------------------------------------------- shared helpers


def _json_client(kubeconfig: str | None) -> Any:
    """The JSON API client (:class:`krios.kube.client.RawClient`, no rate limit) for ``kubeconfig``."""
    from krios.kube.client import as_client
    from krios.kube.config import load_client

    return as_client(load_client(kubeconfig))


def _store(path: str | None) -> Any:
    from krios.results.store import ResultsStore

    return ResultsStore(path)


def _app_selector(args: argparse.Namespace) -> str:
    if args.selector:
        return args.selector
    if args.scenario:
        from krios.config import scenarios

        return f"leozone={scenarios.load(args.scenario).leozone}"
    raise ConfigError("give --scenario or --selector to find the app's pods", source="options")


def _stop_on_signals(stop: threading.Event) -> list[int]:
    """SIGTERM and SIGINT set ``stop``; returns the list the signals received are appended to."""
    received: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.warning("signal %d: stopping", signum)
        received.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return received


def _add_cluster_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", help="kubeconfig (default: $KUBECONFIG, the local cluster, in-cluster)")


# --------------------------------------------------------------------------- emulator


def _register_emulator(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "emulator",
        help="map worker nodes to satellites over (accelerated) time; publish clock, mapping, latency",
        description="Label the scenario's worker nodes sat_id as the constellation moves over the zone, "
        "keeping the serving node's satellite and a successor in the zone; publish ConfigMaps "
        "krios-clock, krios-emulator and krios-latency (namespace krios-system) every tick and log "
        "each tick to JSON Lines and the results store (table ticks).",
    )
    p.add_argument("--scenario", required=True, help="scenario name or file (see scenarios/README.md)")
    p.add_argument("--duration-s", type=float, help="emulated seconds to run (default: scenario duration_s)")
    p.add_argument("--start", help="emulated start time, ISO 8601 or 'now' (default: scenario start)")
    p.add_argument("--seed", type=int, help="tie-break seed (default: scenario seed)")
    p.add_argument("--acceleration", type=float, help="emulated seconds per wall second (default: scenario)")
    p.add_argument("--tick-s", type=float, help="tick, in emulated seconds (default: scenario tick_s)")
    p.add_argument("--lookahead-s", type=float,
                   help="the controller's proactive lead (default: scenario handover.lookahead_s); successors "
                        f"enter the zone at least this + {D.SUCCESSOR_MARGIN_S:g} s before the satellite they "
                        "follow leaves")
    p.add_argument("--horizon-s", type=float,
                   help="assign satellites entering the zone within this many emulated seconds "
                        f"(default {D.EMULATOR_HORIZON_S:g})")
    p.add_argument("--rtt-model", choices=("physical", "krios-emulator"), metavar="MODEL",
                   help=f"client RTT model: physical or krios-emulator (default: scenario latency.rtt_model, "
                        f"else {D.RTT_MODEL}; docs/guide/fidelity.md)")
    nodes = p.add_mutually_exclusive_group()
    nodes.add_argument("--nodes", help="comma-separated node names (default: the first `workers` workers)")
    nodes.add_argument("--node-selector", help="label selector choosing the nodes")
    p.add_argument("--log", help="JSON Lines tick log (default: results/<run-id>/ticks.jsonl)")
    p.add_argument("--run-id", help="results run id (default: generated); an emulator run that already has "
                                     "ticks is resumed from its last tick")
    p.add_argument("--resume", action="store_true",
                   help="resume the --run-id run after its last tick (error if it has none): emulated time "
                        "continues, the nodes keep their sat_id labels")
    p.add_argument("--db", help="results database (default: $KRIOS_RESULTS_DB or results/krios.sqlite)")
    _add_cluster_opts(p)
    p.set_defaults(func=_cmd_emulator)


def _cmd_emulator(args: argparse.Namespace) -> int:
    from krios.config import scenarios
    from krios.emulation.emulator import Emulator, EmulatorConfig, select_nodes
    from krios.results.store import check_run_id

    if args.run_id is not None:
        check_run_id(args.run_id)
    if args.resume and args.run_id is None:
        raise ConfigError("needs the run id of the emulator run to resume", source="--resume", field="--run-id")
    scenario = scenarios.load(args.scenario)
    config = EmulatorConfig.from_scenario(
        scenario, duration_s=args.duration_s, start=args.start, seed=args.seed,
        acceleration=args.acceleration, tick_s=args.tick_s, horizon_s=args.horizon_s,
        lookahead_s=args.lookahead_s, rtt_model=args.rtt_model,
    )  # fmt: skip
    core = _json_client(args.kubeconfig)
    names = [n.strip() for n in args.nodes.split(",") if n.strip()] if args.nodes else None
    node_list = select_nodes(core, scenario.workers, names=names, selector=args.node_selector)
    store = _store(args.db)
    stop = threading.Event()
    _stop_on_signals(stop)
    emu = Emulator(config, core, node_list, store=store, run_id=args.run_id,
                   log_path=Path(args.log) if args.log else None, resume=args.resume)  # fmt: skip
    resumed = f", resuming after tick {emu.first_tick - 1}" if emu.resumed_from is not None else ""
    print(f"emulator run {emu.run_id}: {len(node_list)} nodes, {config.duration_s:g} emulated s "
          f"at {config.acceleration:g}x, log {emu.log_path}{resumed}", file=sys.stderr)  # fmt: skip
    summary = emu.run(stop)
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0 if summary["status"] == "complete" else 1


# --------------------------------------------------------------------------- client


def _register_client(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "client",
        help="open-loop HTTP requests to the app, every request recorded",
        description="Send GET requests open loop for a duration, at a fixed rate, on drawn inter-arrival "
        "times (--ia), replaying a trace (--trace) or as the scenario's workload groups (--workload); "
        "record each one (request id, client, group, service, created/sent/done times, serving node, "
        "sat_id, injected RTT, measured latency, status, bytes, error) to JSON Lines and the results "
        "store (table requests) as it completes.",
    )
    tgt = p.add_mutually_exclusive_group(required=True)
    tgt.add_argument("--target", help="fixed URL, e.g. http://127.0.1.2:30080/")
    tgt.add_argument("--service-from-cluster", action="store_true",
                     help="send each request to the node serving the app (Ready pod) on the NodePort")  # fmt: skip
    p.add_argument("--scenario", help="scenario whose leozone selects the app's pods")
    p.add_argument("--selector", help="label selector of the app's pods (instead of --scenario)")
    p.add_argument("--namespace", help="namespace of the app's pods (default: all)")
    port = p.add_mutually_exclusive_group()
    port.add_argument("--port", type=int, help="NodePort of the app")
    port.add_argument("--service", help="Service NAME[.NAMESPACE] whose nodePort to use")
    p.add_argument("--path", default="/", help="request path (/)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--rate-hz", type=float,
                      help=f"requests per second, evenly spaced (default: scenario client.rate_hz or "
                           f"{D.CLIENT_RATE_HZ:g})")
    when.add_argument("--ia", metavar="DIST[:KEY=VALUE,...]",
                      help="inter-arrival times (wall s) drawn from DIST: constant:mean_s=S, expon:mean_s=S, "
                           "lognorm:mean_s=S,sigma=X; add seed=N (default: scenario seed)")
    when.add_argument("--trace", metavar="FILE",
                      help="replay the timestamps in FILE (s, one per line), divided by --acceleration")
    when.add_argument("--workload", action="store_true",
                      help="run the scenario's workload: client groups (docs/guide/workloads.md)")
    p.add_argument("--group", action="append", metavar="NAME",
                   help="with --workload: run only this group (repeat; default: every group)")
    p.add_argument("--clients", type=int, default=1, help="independent clients, each on its own schedule (1)")
    p.add_argument("--acceleration", type=float,
                   help="emulated s per wall s, to replay trace timestamps (default: scenario acceleration)")
    p.add_argument("--duration-s", type=float, required=True, help="wall seconds to send for")
    p.add_argument("--timeout-s", type=float, help=f"per-request timeout (default: scenario or {D.CLIENT_TIMEOUT_S:g})")
    p.add_argument("--netem", action="store_true",
                   help="shape the egress to each node with tc netem at the emulator's client RTT "
                        "(needs root and a kernel with netem; removed on exit)")  # fmt: skip
    p.add_argument("--dev", help="egress interface for --netem (default: from the route to the nodes)")
    p.add_argument("--log", help="JSON Lines file (default: results/<run-id>/requests.jsonl)")
    p.add_argument("--run-id", help="results run id (default: generated)")
    p.add_argument("--db", help="results database (default: $KRIOS_RESULTS_DB or results/krios.sqlite)")
    p.add_argument("--client-id", help="recorded in every request (column client; default <host>-<pid>)")
    p.add_argument("--app", help="recorded in every request (column app; default the app's label selector, "
                                 "else the --target URL)")
    _add_cluster_opts(p)
    p.set_defaults(func=_cmd_client)


def _cmd_client(args: argparse.Namespace) -> int:
    from krios.config import scenarios
    from krios.config import workload as wl
    from krios.emulation import workload as w
    from krios.emulation.appview import ClusterView
    from krios.results.store import check_run_id

    if args.run_id is not None:
        check_run_id(args.run_id)
    if args.netem:
        from krios.emulation import netem

        ok, why = netem.netem_support()
        if not ok:
            raise ConfigError(why, source="--netem")
    if args.clients < 1:
        raise ConfigError("must be at least 1", source="--clients", field=str(args.clients))
    if args.group and not args.workload:
        raise ConfigError("selects groups of the scenario's workload: give --workload too", source="--group")
    scenario = scenarios.load(args.scenario) if args.scenario else None
    cfg = w.ClientConfig.from_scenario(scenario, rate_hz=args.rate_hz, timeout_s=args.timeout_s,
                                       duration_s=args.duration_s)
    rate, timeout = cfg.rate_hz, cfg.timeout_s
    acceleration = args.acceleration if args.acceleration is not None else (
        float(scenario["acceleration"]) if scenario else D.ACCELERATION)
    if not acceleration > 0:
        raise ConfigError("must be a positive number", source="--acceleration", field=str(acceleration))
    seed = int(scenario["seed"]) if scenario else D.SEED
    groups: tuple[wl.Group, ...] = ()
    if args.workload:
        if scenario is None:
            raise ConfigError("needs --scenario (the workload is the scenario's workload: list)", source="--workload")
        groups = scenario.workload
        if not groups:
            raise ConfigError("the scenario has no workload: list (docs/guide/workloads.md)", source=str(scenario.path),
                              field="workload")
        if args.group:
            known = {g.name for g in groups}
            for name in args.group:
                if name not in known:
                    raise ConfigError(f"no such group (known: {', '.join(sorted(known))})", source="--group",
                                      field=name)
            groups = tuple(g for g in groups if g.name in args.group)
        if not (args.service_from_cluster or args.target):
            raise ConfigError("give --service-from-cluster or --target with --workload", source="options")
    elif args.ia is not None:
        arrivals = wl.parse_ia_option(args.ia, default_seed=seed)
    elif args.trace is not None:
        _path, stamps = wl.read_trace(args.trace, source="--trace", field=args.trace)
        arrivals = wl.Arrivals("trace", trace=stamps, trace_file=args.trace)
    else:
        arrivals = wl.Arrivals("rate", rate_hz=wl.check_rate(rate, source="rate_hz", field=str(rate)))
    need_cluster = args.service_from_cluster or args.netem or (
        (args.scenario or args.selector) and not (groups and args.target))  # --workload --target: no cluster
    view = None
    views: list[Any] = []
    core = None
    if need_cluster:
        core = _json_client(args.kubeconfig)
    shaper = None
    if args.netem:
        shaper = netem.Shaper(args.dev)

        def shape(snap: Any) -> None:
            # 0.1 ms steps: the matrix changes every tick, tc need not follow every microsecond
            dests = [netem.Destination(snap.node_ips[n], round(ms, 1)) for n, ms in snap.client_rtt_ms.items()
                     if n in snap.node_ips]  # fmt: skip
            if dests:
                shaper.update(dests)

    if groups:
        source = str(scenario.path) if scenario else "workload"
        by_selector: dict[tuple[str, str | None], Any] = {}

        def group_target(g: wl.Group, i: int) -> tuple[Any, Any, str | None]:
            if args.target:
                return w.static_target(args.target), None, args.target
            ref = w.resolve_app(core, g, i, source=source, port=args.port, namespace=args.namespace)
            if ref.port is None:
                raise ConfigError("needs port (the app's NodePort), or give --port", source=source,
                                  field=f"workload[{i}].port")
            key = (ref.selector, ref.namespace)
            if key not in by_selector:
                by_selector[key] = ClusterView(core, ref.selector, namespace=ref.namespace)
                views.append(by_selector[key])
            return w.serving_target(ref.port, g.path), by_selector[key], ref.selector

        senders = w.group_senders(groups, duration_s=cfg.duration_s, acceleration=acceleration,
                                  client_prefix=args.client_id, targets=group_target)
        if shaper is not None and views:
            views[0].on_update(shape)
    else:
        if need_cluster:
            view = ClusterView(core, _app_selector(args), namespace=args.namespace)
            views.append(view)
        if args.service_from_cluster:
            if args.port is None and args.service is None:
                raise ConfigError("give --port or --service with --service-from-cluster", source="options")
            port = args.port
            if port is None:
                from krios.emulation.standin import node_port

                name, _, ns = args.service.partition(".")
                port = node_port(core, name, ns or "default")
            target = w.serving_target(port, args.path)
        else:
            target = w.static_target(args.target)
        if shaper is not None:
            assert view is not None
            view.on_update(shape)
    store = _store(args.db)
    meta: dict[str, Any] = {"rate_hz": rate, "duration_s": args.duration_s, "timeout_s": timeout,
                            "target": args.target or "service-from-cluster", "netem": bool(args.netem)}
    if groups:
        meta["workload"] = [{"group": g.name, "service": g.service.text, "clients": g.clients,
                             "arrivals": g.arrivals.describe()} for g in groups]  # fmt: skip
    elif arrivals.kind != "rate" or args.clients > 1:
        meta["arrivals"] = arrivals.describe()
        meta["clients"] = args.clients
    run_id = store.start_run("client", scenario=scenario.name if scenario else None, run_id=args.run_id,
                             meta=meta)  # fmt: skip
    jsonl = Path(args.log) if args.log else store.results_dir / run_id / "requests.jsonl"
    sink = w.RecordSink(jsonl, store, run_id)
    if groups:
        client: Any = w.Workload(senders, sink, duration_s=cfg.duration_s, timeout_s=timeout)
        what = ", ".join(f"{g.name}: {g.clients} x {g.arrivals.describe()} -> {g.service.text}" for g in groups)
    else:
        app = args.app or (view.selector if view is not None else args.target)
        service = args.service or app
        if arrivals.kind == "rate" and args.clients == 1:
            client = w.Client(target, sink, rate_hz=rate, duration_s=cfg.duration_s, timeout_s=timeout, view=view,
                              client_id=args.client_id, app=app, service=service)
        else:
            single = wl.Group("cli", wl.Service(service or ""), arrivals, clients=args.clients)
            senders = w.group_senders([single], duration_s=cfg.duration_s, acceleration=acceleration,
                                      client_prefix=args.client_id, targets=lambda _g, _i: (target, view, app))
            for sender in senders:
                sender.group, sender.service = None, service
            if args.clients == 1 and args.client_id:
                senders[0].client_id = args.client_id
            client = w.Workload(senders, sink, duration_s=cfg.duration_s, timeout_s=timeout)
        what = f"{args.clients} x {arrivals.describe()}"
    stop = threading.Event()
    received = _stop_on_signals(stop)
    threading.Thread(target=lambda: (stop.wait(), client.stop()), daemon=True).start()
    print(f"client run {run_id}: {what} for {args.duration_s:g} s, records {jsonl}", file=sys.stderr)
    status = "complete"
    try:
        for v in views:
            v.start()
        result = client.run()
    except BaseException:
        status = "failed"
        raise
    finally:
        for v in views:
            v.stop()
        if shaper is not None:
            shaper.clear()
        sink.close()
        store.finish_run(run_id, status if not stop.is_set() else "failed")
    out: dict[str, Any] = {"run_id": run_id, "sent": result.sent, "ok": result.ok, "errors": result.errors,
                           "nodes": result.nodes, "jsonl": str(jsonl)}
    if groups:
        out["groups"] = client.groups
    print(json.dumps(out, indent=2))
    if received:  # stopped early by a signal: the run is marked failed, and so is the exit status
        print(f"krios: client run {run_id} stopped by signal {received[0]} after {result.sent} requests; "
              "marked failed", file=sys.stderr)
        return 128 + received[0]
    return 0


# --------------------------------------------------------------------------- stand-in app


def _register_standin(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "standin",
        help="local stand-in for the app's NodePort on virtual nodes (answers where a Ready pod runs)",
        description="One HTTP server per virtual node on its loopback InternalIP and the NodePort; "
        "answers 200 with its node name only while a Ready app pod is bound to that node, else 503.",
    )
    p.add_argument("--scenario", help="scenario whose leozone selects the app's pods")
    p.add_argument("--selector", help="label selector of the app's pods (instead of --scenario)")
    p.add_argument("--namespace", help="namespace of the app's pods (default: all)")
    port = p.add_mutually_exclusive_group(required=True)
    port.add_argument("--port", type=int, help="port to listen on (the app's NodePort)")
    port.add_argument("--service", help="Service NAME[.NAMESPACE] whose nodePort to listen on")
    p.add_argument("--nodes", help="comma-separated nodes (default: every node with a loopback InternalIP)")
    p.add_argument("--inject-rtt", action="store_true",
                   help="delay each answer by the emulator's client RTT to that node (no-netem substitute)")
    p.add_argument("--duration-s", type=float, default=0.0, help="stop after this many seconds (0: until signal)")
    _add_cluster_opts(p)
    p.set_defaults(func=_cmd_standin)


def _cmd_standin(args: argparse.Namespace) -> int:
    from krios.emulation.appview import ClusterView
    from krios.emulation.standin import StandIn, node_port

    core = _json_client(args.kubeconfig)
    port = args.port
    if port is None:
        name, _, ns = args.service.partition(".")
        port = node_port(core, name, ns or "default")
    view = ClusterView(core, _app_selector(args), namespace=args.namespace)
    nodes = [n.strip() for n in args.nodes.split(",") if n.strip()] if args.nodes else None
    stop = threading.Event()
    _stop_on_signals(stop)
    with StandIn(view, port, nodes=nodes, inject_rtt=args.inject_rtt) as standin:
        for node, url in sorted(standin.addresses.items()):
            print(f"{node} {url}", flush=True)
        stop.wait(args.duration_s or None)
        print(json.dumps({"served": standin.served}), flush=True)
    return 0


# --------------------------------------------------------------------------- netem


def _register_netem(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("netem", help="per-destination delay with tc netem (apply, clear, show, check)")
    ns = p.add_subparsers(dest="netem_cmd", metavar="ACTION")
    p.set_defaults(func=lambda _a: (p.print_help(sys.stderr), 2)[1])

    a = ns.add_parser("apply", help="make DEV delay each destination by its amount (idempotent)")
    a.add_argument("--dest", action="append", required=True, metavar="IP=MS[/JITTER]",
                   help="destination and delay in ms (repeat); destinations not listed lose their delay")
    a.add_argument("--dev", help="egress interface (default: from `ip route get` to the destinations)")
    a.add_argument("--netns", help="run inside this network namespace (ip netns exec)")
    a.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    a.set_defaults(func=_cmd_netem_apply)

    c = ns.add_parser("clear", help="remove krios's shaping (root htb 1:) from DEV")
    c.add_argument("--dev", required=True)
    c.add_argument("--netns")
    c.add_argument("--dry-run", action="store_true")
    c.set_defaults(func=_cmd_netem_clear)

    s = ns.add_parser("show", help="print DEV's shaping as krios reads it (JSON)")
    s.add_argument("--dev", required=True)
    s.add_argument("--netns")
    s.set_defaults(func=_cmd_netem_show)

    k = ns.add_parser("check", help="does this kernel support netem? (probed in a throwaway netns)")
    k.set_defaults(func=_cmd_netem_check)


def _print_cmds(cmds: list[list[str]], dry_run: bool) -> None:
    for argv in cmds:
        print(("would run: " if dry_run else "ran: ") + " ".join(argv))
    if not cmds:
        print("no change")


def _cmd_netem_apply(args: argparse.Namespace) -> int:
    from krios.emulation import netem

    dests = netem.normalise(netem.parse_destination(d) for d in args.dest)
    dev = args.dev or netem.egress_device([d.ip for d in dests], netns=args.netns)
    if not args.dry_run:
        ok, why = netem.netem_support()
        if not ok:
            raise ConfigError(f"{why}; use --dry-run to see the commands", source="krios netem apply")
    _print_cmds(netem.Tc(dev, args.netns).apply(dests, dry_run=args.dry_run), args.dry_run)
    return 0


def _cmd_netem_clear(args: argparse.Namespace) -> int:
    from krios.emulation import netem

    _print_cmds(netem.Tc(args.dev, args.netns).clear(dry_run=args.dry_run), args.dry_run)
    return 0


def _cmd_netem_show(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from krios.emulation import netem

    st = netem.Tc(args.dev, args.netns).state()
    doc = {
        "dev": st.dev, "managed": st.managed, "root": f"{st.root_kind} {st.root_handle}",
        "destinations": [
            {"ip": f.ip, "class": f"1:{f.pref:x}", **({k: v for k, v in asdict(st.leaves[f.pref]).items()
                                                     if k in ("kind", "delay_ms", "jitter_ms")}
                                                  if f.pref in st.leaves else {})}
            for f in sorted(st.filters.values(), key=lambda f: f.pref)
        ],
    }  # fmt: skip
    print(json.dumps(doc, indent=2))
    return 0


def _cmd_netem_check(_args: argparse.Namespace) -> int:
    from krios.emulation import netem

    ok, why = netem.netem_support()
    print(("netem: supported: " if ok else "netem: unsupported: ") + why)
    return 0 if ok else 1



# --------------------------------------------------------------------------- telemetry


def _register_telemetry(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "telemetry",
        help="sample node CPU, memory, network, load and the Krios/app processes into the results store",
        description="Every --interval-s, read /proc: CPU per core and total, memory, network bytes and "
        "packets per interface, load, and CPU/memory of the watched processes; write the rows to the "
        "results store (table telemetry) under the run id and to JSON Lines. SIGUSR1 pauses, SIGUSR2 "
        "resumes (or write 'pause'/'resume' to --control-file); SIGTERM/SIGINT stop.",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--node", help="the node this host is (default: the host name); for cluster nodes")
    where.add_argument("--local", action="store_true",
                       help="sample the local cluster (--state-dir): one row set per virtual node, its processes")
    p.add_argument("--state-dir", help="local cluster state folder (default: $KRIOS_STATE_DIR or the default)")
    p.add_argument("--pid-dir", action="append", default=[], metavar="DIR",
                   help="also watch the processes of the pid files <DIR>/<name>.json (local daemons; repeat)")
    p.add_argument("--match", action="append", default=[], metavar="NAME=TEXT",
                   help="watch processes whose command line contains TEXT, as NAME (repeat; default on a "
                        "node: kubelet, containerd and the krios daemons)")
    p.add_argument("--interval-s", type=float, default=D.TELEMETRY_INTERVAL_S,
                   help=f"wall seconds between samples (default {D.TELEMETRY_INTERVAL_S:g})")
    p.add_argument("--duration-s", type=float, help="stop after this many wall seconds (default: at a signal)")
    p.add_argument("--control-file", help="pause while this file's first word is 'pause'")
    p.add_argument("--paused", action="store_true", help="start paused (resume with SIGUSR2 or the control file)")
    p.add_argument("--log", help="JSON Lines file (default: results/<run-id>/telemetry-<node|local>.jsonl)")
    p.add_argument("--run-id", help="results run id to write under (joined if it exists; default: a new run)")
    p.add_argument("--db", help="results database (default: $KRIOS_RESULTS_DB or results/krios.sqlite)")
    p.set_defaults(func=_cmd_telemetry)


def _cmd_telemetry(args: argparse.Namespace) -> int:
    import socket

    from krios.config.paths import default_state_dir
    from krios.measure import telemetry
    from krios.results.store import check_run_id

    if args.run_id is not None:
        check_run_id(args.run_id)
    if not (args.interval_s > 0):
        raise ConfigError("must be a positive number", source="--interval-s", field=str(args.interval_s))
    if args.duration_s is not None and not args.duration_s > 0:
        raise ConfigError("must be a positive number", source="--duration-s", field=str(args.duration_s))
    matches: dict[str, str] = {}
    for item in args.match:
        name, eq, text = item.partition("=")
        if not eq or not name.strip() or not text.strip():
            raise ConfigError("expected NAME=TEXT", source="--match", field=item)
        matches[name.strip()] = text.strip()
    pid_dirs = [Path(d) for d in args.pid_dir]
    for d in pid_dirs:
        if not d.is_dir():
            raise ConfigError("no such folder", source="--pid-dir", field=str(d))
    if args.local:
        from krios.localcluster.state import load_state

        state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
        state = load_state(state_dir)
        if state is None:
            raise ConfigError("no local cluster here (krios cluster up)", source="--state-dir", field=str(state_dir))
        nodes = [*state.control_plane_nodes, *state.workers]
        label = "local"

        def watches() -> list[telemetry.Watch]:
            found = telemetry.local_watches(state_dir, pid_dirs)
            return found + (telemetry.match_watches(matches) if matches else [])
    else:
        nodes = [args.node or socket.gethostname()]
        label = nodes[0]
        wanted = matches or telemetry.NODE_MATCHES

        def watches() -> list[telemetry.Watch]:
            return telemetry.local_watches(None, pid_dirs) + telemetry.match_watches(wanted)
    store = _store(args.db)
    run_id = store.start_run("telemetry", run_id=args.run_id,
                             meta={"interval_s": args.interval_s, "nodes": nodes, "local": bool(args.local)})
    jsonl = Path(args.log) if args.log else store.results_dir / run_id / f"telemetry-{label}.jsonl"
    sampler = telemetry.Sampler(nodes=nodes, interval_s=args.interval_s, store=store, run_id=run_id, jsonl=jsonl,
                                watches=watches)  # fmt: skip
    if args.paused:
        sampler.pause()
    stop = threading.Event()
    received = _stop_on_signals(stop)
    signal.signal(signal.SIGUSR1, lambda _s, _f: sampler.pause())
    signal.signal(signal.SIGUSR2, lambda _s, _f: sampler.resume())
    print(f"telemetry run {run_id}: {len(nodes)} node(s) every {args.interval_s:g} s, records {jsonl}",
          file=sys.stderr, flush=True)
    status = "complete"
    try:
        samples = sampler.run(stop, duration_s=args.duration_s,
                              control_file=Path(args.control_file) if args.control_file else None)
    except BaseException:
        status = "failed"
        raise
    finally:
        sampler.close()
        store.finish_run(run_id, status)
    print(json.dumps({"run_id": run_id, "samples": samples, "nodes": nodes, "jsonl": str(jsonl)}, indent=2))
    return 0 if not received or received[0] == signal.SIGTERM else 128 + received[0]
