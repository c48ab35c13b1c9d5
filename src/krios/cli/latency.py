"""``krios latency publish|measure|probe|assemble|serve``: RTT sources besides the emulator (krios.measure.rtt_sources).

Each publishes the ``krios-latency`` ConfigMap the scheduler reads (the same
document the emulator writes, with ``source``/``method`` added) and records it
in the results store: a run of kind ``latency`` (or the ``--run-id`` run it
joins) gets the document under ``meta.latency.<method>``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from krios.errors import ConfigError

DB_HELP = "results database (default: $KRIOS_RESULTS_DB or results/krios.sqlite)"


def register(sub: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    from krios.measure.rtt_sources import DEFAULT_PORT, DEFAULT_PROBES, SYMMETRIC

    top = sub.add_parser("latency", help="publish a static or measured RTT matrix (ConfigMap krios-latency)",
                         description="RTT sources for the scheduler's delay_<ref> labels besides the emulator: "
                         "a static matrix file, ping, or an HTTP prober. Do not run the emulator at the same "
                         "time: it republishes krios-latency every tick.")
    cmds = top.add_subparsers(dest="latency", metavar="ACTION")
    top.set_defaults(func=lambda _a: (top.print_help(sys.stderr), 2)[1])

    p = cmds.add_parser("publish", help="publish a static matrix file",
                        description="Validate a square RTT matrix (ms) and publish it: .json (list of rows), "
                        ".csv (rows; an optional header row of node names) or .npy; row/column names from "
                        "--nodes (a JSON list of names or {name, ip} objects).")
    p.add_argument("--file", required=True, help="matrix.json | matrix.csv | matrix.npy (ms)")
    p.add_argument("--nodes", required=True, help="nodes.json: the names of the matrix's rows and columns")
    _common(p)
    p.set_defaults(func=_cmd_publish)

    p = cmds.add_parser("measure", help="measure pairwise RTTs and publish them",
                        description="Measure the RTT of every pair of nodes in parallel (median of --probes "
                        "samples) and publish the matrix. ping: from each node's own address (local nodes: "
                        "the local cluster's loopback nodes), ICMP by the ping binary when installed and "
                        "allowed, else a TCP connect (SYN to SYN/ACK or RST). http: every node runs "
                        "`krios latency serve`; each probes the others, the matrix keeps the max of both "
                        "directions.")
    p.add_argument("--method", required=True, choices=("ping", "http"))
    p.add_argument("--nodes", help="nodes.json with {name, ip[, port]} (default: the cluster's nodes and their "
                                   "InternalIP)")
    p.add_argument("--probes", type=int, default=DEFAULT_PROBES, help=f"samples per pair (default {DEFAULT_PROBES})")
    p.add_argument("--symmetric", action="store_true",
                   help="ping: measure one direction per pair and mirror it (http is always symmetric: max)")
    _sample_args(p)
    _common(p)
    p.set_defaults(func=_cmd_measure)

    p = cmds.add_parser("probe", help="measure one row ON a node: its RTT to every other node",
                        description="Run on the node --from (a host process per node, as the seed's ping "
                        "pods): the median of --probes samples to every other node of --nodes, in parallel "
                        "over the targets, written to --out as a row for `krios latency assemble`. ping: ICMP "
                        "by the ping binary (auto: when installed and allowed, else a TCP connect); http: "
                        "GET /healthz on every target's `krios latency serve`. Publishes nothing.")
    p.add_argument("--method", required=True, choices=("ping", "http"))
    p.add_argument("--nodes", required=True, help="nodes.json with {name, ip[, port]} of every node")
    p.add_argument("--from", dest="source", required=True, help="this node's name (as in --nodes)")
    p.add_argument("--out", required=True, help="the row file to write ('-': stdout)")
    p.add_argument("--probes", type=int, default=DEFAULT_PROBES, help=f"samples per target (default {DEFAULT_PROBES})")
    _sample_args(p)
    p.set_defaults(func=_cmd_probe)

    p = cmds.add_parser("assemble", help="put the nodes' rows together into the matrix and publish it",
                        description="Check the rows of `krios latency probe` (one per node of --nodes, one "
                        "method), make them one matrix and publish it as `publish` does. --symmetric: max "
                        "(default) or mean of both directions of a pair, or none (each row as measured).")
    p.add_argument("--rows", required=True, nargs="+", help="row files of `krios latency probe`, one per node")
    p.add_argument("--nodes", required=True, help="nodes.json: the nodes (names as in the cluster)")
    p.add_argument("--symmetric", choices=SYMMETRIC, default="max",
                   help="both directions of a pair as one figure: max (default), mean, or none")
    _common(p)
    p.set_defaults(func=_cmd_assemble)

    p = cmds.add_parser("serve", help="the HTTP prober one node runs for `measure --method http`",
                        description="Answer GET /healthz and POST /check (probe the listed peers from this "
                        "address; median ms per peer) until interrupted.")
    p.add_argument("--name", required=True, help="this node's name (as in the matrix)")
    p.add_argument("--listen", default=f"0.0.0.0:{DEFAULT_PORT}", help="HOST:PORT (default 0.0.0.0:%(default)s)")
    p.add_argument("--delay-ms", type=float, default=0.0,
                   help="answer /healthz this much later (tests: a known added delay)")
    p.set_defaults(func=_cmd_serve)


def _sample_args(p: argparse.ArgumentParser) -> None:
    """The options of one sample (``measure`` and ``probe``): --probe, --port, --timeout-s."""
    from krios.measure.rtt_sources import DEFAULT_PORT, DEFAULT_TIMEOUT_S

    p.add_argument("--probe", choices=("auto", "icmp", "tcp"), default="auto",
                   help="ping's sample: ICMP, TCP connect, or auto (ICMP when allowed; default)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port of `krios latency serve` / of the TCP probe when nodes.json gives none "
                        f"(default {DEFAULT_PORT})")
    p.add_argument("--timeout-s", type=float, default=DEFAULT_TIMEOUT_S,
                   help=f"timeout of one sample, s (default {DEFAULT_TIMEOUT_S:g})")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", help="kubeconfig (default: $KUBECONFIG, the local cluster, in-cluster)")
    p.add_argument("--no-publish", action="store_true", help="do not write the ConfigMap (validate/measure only)")
    p.add_argument("--output", help="also write the document to this file ('-': stdout)")
    p.add_argument("--run-id", help="record into this results run (default: a new run of kind latency)")
    p.add_argument("--no-record", action="store_true", help="do not record into the results store")
    p.add_argument("--db", help=DB_HELP)


def _client(args: argparse.Namespace) -> Any:
    from krios.kube.client import as_client
    from krios.kube.config import load_client

    return as_client(load_client(args.kubeconfig))


def _cluster_nodes(client: Any) -> list[dict[str, Any]]:
    from krios.kube.client import list_items

    return list_items(client, "/api/v1/nodes")


def _cmd_publish(args: argparse.Namespace) -> int:
    from krios.kube.objects import name_of
    from krios.measure.rtt_sources import static_document

    client = None if args.no_publish else _client(args)
    known = None if client is None else [name_of(n) for n in _cluster_nodes(client)]
    doc = static_document(args.file, args.nodes, known)
    return _finish(args, client, doc)


def _cmd_measure(args: argparse.Namespace) -> int:
    from krios.kube.objects import name_of, node_internal_ip
    from krios.measure import rtt_sources as R

    if args.probes < 1:
        raise ConfigError("must be at least 1", source="--probes", field=str(args.probes))
    if not args.timeout_s > 0:
        raise ConfigError("must be positive", source="--timeout-s", field=str(args.timeout_s))
    client = None if args.no_publish and args.nodes else _client(args)
    if args.nodes:
        nodes = R.load_nodes(args.nodes, default_port=args.port)
    else:
        nodes = [R.Endpoint(name_of(n), node_internal_ip(n), args.port) for n in _cluster_nodes(client)]
    if args.method == "ping":
        doc = R.measure_ping(nodes, probes=args.probes, symmetric=args.symmetric, timeout_s=args.timeout_s,
                             probe=args.probe)
    else:
        doc = R.measure_http(nodes, probes=args.probes, timeout_s=args.timeout_s)
    doc["nodes"] = [n.as_json() for n in nodes]
    return _finish(args, client, doc)


def _cmd_probe(args: argparse.Namespace) -> int:
    from krios.measure import rtt_sources as R

    if not args.timeout_s > 0:
        raise ConfigError("must be positive", source="--timeout-s", field=str(args.timeout_s))
    nodes = R.load_nodes(args.nodes, default_port=args.port)
    row = R.probe_row(nodes, args.source, method=args.method, probes=args.probes, timeout_s=args.timeout_s,
                      probe=args.probe)
    text = json.dumps(row, sort_keys=True)
    if args.out == "-":
        print(text)
    else:
        out = Path(args.out)
        part = out.with_name(out.name + ".part")  # a reader never sees half a row
        part.write_text(text + "\n")
        part.replace(out)
    values = list(row["rtt"].values())
    spread = f"median {statistics.median(values):.3f} ms" if values else "no answer"
    missing = f"; no answer from {', '.join(row['unanswered'])}" if row["unanswered"] else ""
    print(f"krios latency probe: {args.source} -> {len(values)} of {len(nodes) - 1} nodes, {row['probe']} "
          f"(median of {row['probes']}), {spread}{missing}", file=sys.stderr)
    return 0


def _cmd_assemble(args: argparse.Namespace) -> int:
    from krios.kube.objects import name_of
    from krios.measure.rtt_sources import assemble_rows, load_nodes

    client = None if args.no_publish else _client(args)
    known = None if client is None else [name_of(n) for n in _cluster_nodes(client)]
    doc = assemble_rows(args.rows, args.nodes, symmetric=args.symmetric, known_nodes=known)
    doc["nodes"] = [n.as_json() for n in load_nodes(args.nodes)]
    return _finish(args, client, doc)


def _finish(args: argparse.Namespace, client: Any, doc: dict[str, Any]) -> int:
    """Write ``--output``, publish the ConfigMap, record the run, print a summary."""
    from krios.kube.client import ensure_namespace, put_configmap
    from krios.kube.names import LATENCY_CONFIGMAP, LATENCY_KEY, SYSTEM_NAMESPACE

    text = json.dumps(doc, sort_keys=True)
    if args.output == "-":
        print(text)
    elif args.output:
        Path(args.output).write_text(text + "\n")
    run_id = None
    store = None
    if not args.no_record:
        from krios.results.store import ResultsStore, check_run_id

        if args.run_id is not None:
            check_run_id(args.run_id)
        store = ResultsStore(args.db)
        run_id = store.start_run("latency", meta={"latency": {doc["method"]: doc}}, run_id=args.run_id)
    status = "failed"
    try:
        if client is not None:
            ensure_namespace(client, SYSTEM_NAMESPACE)
            put_configmap(client, SYSTEM_NAMESPACE, LATENCY_CONFIGMAP, {LATENCY_KEY: text})
        if store is not None and run_id is not None:
            store.merge_meta(run_id, "latency", **{doc["method"]: doc})
        status = "complete"
    finally:
        if store is not None and run_id is not None:
            store.finish_run(run_id, status)
            store.close()
    values = [v for a, row in doc["rtt"].items() for b, v in row.items() if a != b]
    spread = (f"RTT min {min(values):.3f} / median {statistics.median(values):.3f} / max {max(values):.3f} ms"
              if values else "no RTT")
    how = doc["method"] + (f" ({doc['probe']}, median of {doc['probes']})" if "probe" in doc else "")
    where = "published" if client is not None else "not published"
    print(f"krios-latency {where}: {len(doc['rtt'])} nodes, {how}, {spread}"
          + (f"; run {run_id}" if run_id else ""), file=sys.stderr)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from krios.measure.rtt_sources import ProbeServer

    host, _, port = args.listen.rpartition(":")
    try:
        server = ProbeServer(args.name, host.strip("[]") or "0.0.0.0", int(port), delay_ms=args.delay_ms)
    except ValueError:
        raise ConfigError("must be HOST:PORT", source="--listen", field=args.listen) from None
    except OSError as exc:
        raise ConfigError(f"cannot listen: {exc.strerror}", source="--listen", field=args.listen) from None
    print(f"krios latency serve: {args.name} on {server.host}:{server.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
