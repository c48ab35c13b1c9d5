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


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        log.warning("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


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
        lookahead_s=args.lookahead_s,
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
        description="Send GET requests at a fixed rate (open loop) for a duration; record each one "
        "(send time, serving node, sat_id, injected RTT, measured latency, status/error) to JSON Lines "
        "and the results store (table requests) as it completes.",
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
    p.add_argument("--rate-hz", type=float,
                   help=f"requests per second (default: scenario client.rate_hz or {D.CLIENT_RATE_HZ:g})")
    p.add_argument("--duration-s", type=float, required=True, help="wall seconds to send for")
    p.add_argument("--timeout-s", type=float, help=f"per-request timeout (default: scenario or {D.CLIENT_TIMEOUT_S:g})")
    p.add_argument("--netem", action="store_true",
                   help="shape the egress to each node with tc netem at the emulator's client RTT "
                        "(needs root and a kernel with netem; removed on exit)")  # fmt: skip
    p.add_argument("--dev", help="egress interface for --netem (default: from the route to the nodes)")
    p.add_argument("--log", help="JSON Lines file (default: results/<run-id>/requests.jsonl)")
    p.add_argument("--run-id", help="results run id (default: generated)")
    p.add_argument("--db", help="results database (default: $KRIOS_RESULTS_DB or results/krios.sqlite)")
    _add_cluster_opts(p)
    p.set_defaults(func=_cmd_client)


def _cmd_client(args: argparse.Namespace) -> int:
    from krios.config import scenarios
    from krios.emulation.appview import ClusterView
    from krios.emulation.workload import Client, ClientConfig, RecordSink, serving_target, static_target
    from krios.results.store import check_run_id

    if args.run_id is not None:
        check_run_id(args.run_id)
    if args.netem:
        from krios.emulation import netem

        ok, why = netem.netem_support()
        if not ok:
            raise ConfigError(why, source="--netem")
    scenario = scenarios.load(args.scenario) if args.scenario else None
    cfg = ClientConfig.from_scenario(scenario, rate_hz=args.rate_hz, timeout_s=args.timeout_s,
                                     duration_s=args.duration_s)
    rate, timeout = cfg.rate_hz, cfg.timeout_s
    need_cluster = args.service_from_cluster or args.netem or args.scenario or args.selector
    view = None
    core = None
    if need_cluster:
        core = _json_client(args.kubeconfig)
        view = ClusterView(core, _app_selector(args), namespace=args.namespace)
    if args.service_from_cluster:
        if args.port is None and args.service is None:
            raise ConfigError("give --port or --service with --service-from-cluster", source="options")
        port = args.port
        if port is None:
            from krios.emulation.standin import node_port

            name, _, ns = args.service.partition(".")
            port = node_port(core, name, ns or "default")
        target = serving_target(port, args.path)
    else:
        target = static_target(args.target)
    shaper = None
    if args.netem:
        shaper = netem.Shaper(args.dev)
        assert view is not None

        def shape(snap: Any) -> None:
            # 0.1 ms steps: the matrix changes every tick, tc need not follow every microsecond
            dests = [netem.Destination(snap.node_ips[n], round(ms, 1)) for n, ms in snap.client_rtt_ms.items()
                     if n in snap.node_ips]  # fmt: skip
            if dests:
                shaper.update(dests)

        view.on_update(shape)
    store = _store(args.db)
    run_id = store.start_run(
        "client", scenario=scenario.name if scenario else None, run_id=args.run_id,
        meta={"rate_hz": rate, "duration_s": args.duration_s, "timeout_s": timeout,
              "target": args.target or "service-from-cluster", "netem": bool(args.netem)},
    )  # fmt: skip
    jsonl = Path(args.log) if args.log else store.results_dir / run_id / "requests.jsonl"
    sink = RecordSink(jsonl, store, run_id)
    client = Client(target, sink, rate_hz=rate, duration_s=cfg.duration_s, timeout_s=timeout, view=view)
    stop = threading.Event()
    _stop_on_signals(stop)
    threading.Thread(target=lambda: (stop.wait(), client.stop()), daemon=True).start()
    print(f"client run {run_id}: {rate:g} req/s for {args.duration_s:g} s, records {jsonl}", file=sys.stderr)
    status = "complete"
    try:
        if view is not None:
            view.start()
        result = client.run()
    except BaseException:
        status = "failed"
        raise
    finally:
        if view is not None:
            view.stop()
        if shaper is not None:
            shaper.clear()
        sink.close()
        store.finish_run(run_id, status if not stop.is_set() else "failed")
    print(json.dumps({"run_id": run_id, "sent": result.sent, "ok": result.ok, "errors": result.errors,
                      "nodes": result.nodes, "jsonl": str(jsonl)}, indent=2))  # fmt: skip
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

