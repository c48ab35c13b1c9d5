"""``krios cluster up|status|down|kubeconfig|add-nodes``: the local control plane."""

from __future__ import annotations

import argparse
import json
import time

from krios.errors import ConfigError
from krios.localcluster import LocalCluster, default_state_dir
from krios.localcluster.components import OPTIONAL


def register(sub: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("cluster", help="local Kubernetes control plane with virtual nodes")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    parser.set_defaults(func=lambda _args: _usage(parser))

    def with_state_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--state-dir",
            help=f"state folder (default: $KRIOS_STATE_DIR or {default_state_dir()})",
        )
        return p

    up = with_state_dir(verbs.add_parser("up", help="start etcd, kube-apiserver, components, virtual nodes"))
    up.add_argument("--workers", type=int, default=4, help="virtual worker nodes (default 4)")
    up.add_argument("--control-plane-nodes", type=int, default=1, help="virtual control-plane nodes (default 1)")
    up.add_argument(
        "--components",
        default="kube-scheduler",
        help=f"comma-separated, from {', '.join(OPTIONAL)}; '' for none (default kube-scheduler)",
    )
    up.add_argument("--ready-delay-s", type=float, default=1.0, help="bound pod -> Running/Ready delay (1.0)")
    up.add_argument("--jitter-s", type=float, default=0.2, help="uniform extra delay, up to (0.2)")
    up.set_defaults(func=cmd_up)

    status = with_state_dir(verbs.add_parser("status", help="component health and nodes"))
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)

    down = with_state_dir(verbs.add_parser(
        "down", help="stop every process started by `up`, remove the state (only a folder `up` marked)"))
    down.set_defaults(func=cmd_down)

    kcfg = with_state_dir(verbs.add_parser("kubeconfig", help="print the kubeconfig path"))
    kcfg.set_defaults(func=cmd_kubeconfig)

    add = with_state_dir(verbs.add_parser("add-nodes", help="add virtual Ready workers"))
    add.add_argument("names", nargs="+", metavar="NAME")
    add.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="node label (repeatable)")
    add.set_defaults(func=cmd_add_nodes)

    ks = verbs.add_parser(
        "kube-scheduler",
        help="run the cached kube-scheduler against a kubeconfig, in the foreground (krios's flags)",
        description="Replace this process with the cached kube-scheduler binary (never built here) and the one "
        "command line krios runs it with: no leader election, loopback only, HTTPS health on --port (0: none). "
        "For a supervisor such as the Ansible module krios.testbed.krios_background.",
    )
    ks.add_argument("--kubeconfig", required=True, help="kubeconfig kube-scheduler talks through")
    ks.add_argument("--port", type=int, default=0, help="HTTPS health port on 127.0.0.1 (default 0: none)")
    ks.add_argument("--kube-api-qps", type=float, help="client QPS (default: kube-scheduler's)")
    ks.add_argument("--kube-api-burst", type=int, help="client burst (default: kube-scheduler's)")
    ks.add_argument("--print", action="store_true", help="print the command line (one argument per line), run nothing")
    ks.set_defaults(func=cmd_kube_scheduler)

    b = bench.add_parser("cluster", help="local control plane: up time, pods bound/Ready/deleted per second")
    b.add_argument("--workers", type=int, default=100, help="virtual nodes (default 100)")
    b.add_argument("--pods", type=int, default=500, help="pods to create (default 500)")
    b.add_argument("--ready-delay-s", type=float, default=1.0)
    b.add_argument("--jitter-s", type=float, default=0.2)
    b.set_defaults(func=cmd_bench)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _components(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip() and n.strip() != "none")
    for name in names:
        if name not in OPTIONAL:
            raise ConfigError(f"unknown component (known: {', '.join(OPTIONAL)})", source="--components", field=name)
    return names


def _count(value: int, option: str) -> int:
    if value < 0:
        raise ConfigError("must be >= 0", source=option, field=str(value))
    return value


def cmd_up(args: argparse.Namespace) -> int:
    for option, value in (("--ready-delay-s", args.ready_delay_s), ("--jitter-s", args.jitter_s)):
        if value < 0:
            raise ConfigError("must be >= 0", source=option, field=str(value))
    cluster = LocalCluster(
        args.state_dir,
        workers=_count(args.workers, "--workers"),
        control_plane_nodes=_count(args.control_plane_nodes, "--control-plane-nodes"),
        components=_components(args.components),
        kubelet_ready_delay_s=args.ready_delay_s,
        kubelet_jitter_s=args.jitter_s,
    )
    t0 = time.monotonic()
    cluster.up()
    extra = f" + {', '.join(cluster.components)}" if cluster.components else ""
    print(
        f"cluster up in {time.monotonic() - t0:.1f} s: {cluster.server} "
        f"(etcd + kube-apiserver{extra}), {args.workers} workers, "
        f"{args.control_plane_nodes} control-plane node(s), all Ready"
    )
    print(f"kubeconfig: {cluster.kubeconfig}")
    print(f"  export KUBECONFIG={cluster.kubeconfig}")
    flag = f" --state-dir {cluster.state_dir}" if args.state_dir else ""
    print(f"stop it with: krios cluster down{flag}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    info = LocalCluster(args.state_dir).status()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0 if info["healthy"] else 1
    print(f"cluster {info['state_dir']}  {info['server']}")
    print(f"kubeconfig {info['kubeconfig']}")
    print()
    print(f"{'COMPONENT':<25} {'STATE':<6} {'PID':>8} {'PORT':>6}  DETAIL")
    for c in info["components"]:
        state = "up" if c["healthy"] else "down"
        print(f"{c['name']:<25} {state:<6} {c['pid'] or '-':>8} {c['port'] or '-':>6}  {c['detail']}")
    print()
    if info["nodes"] is None:
        print(f"nodes: unknown ({info['nodes_error']})")
    else:
        print(f"{'NODE':<22} {'READY':<6} {'ROLE':<14} {'SAT_ID':<7} IP")
        for n in info["nodes"]:
            sat = n["sat_id"] if n["sat_id"] is not None else "-"
            print(f"{n['name']:<22} {n['ready']!s:<6} {n['role']:<14} {sat:<7} {n['ip']}")
    if not info["healthy"]:
        down = [c["name"] for c in info["components"] if not c["healthy"]]
        print(f"\nunhealthy: {', '.join(down)}")
    return 0 if info["healthy"] else 1


def cmd_down(args: argparse.Namespace) -> int:
    cluster = LocalCluster(args.state_dir)
    if not cluster.state_dir.exists():
        print(f"no cluster in {cluster.state_dir}")
        return 0
    stopped = cluster.down()
    what = f"removed {cluster.state_dir}" if not cluster.state_dir.exists() else (
        f"removed the cluster's files from {cluster.state_dir} (kept: it holds files the cluster did not make)")
    print(f"stopped {', '.join(stopped) if stopped else 'nothing (no process was running)'}; {what}")
    return 0


def cmd_kubeconfig(args: argparse.Namespace) -> int:
    cluster = LocalCluster(args.state_dir)
    _ = cluster.server  # one clear error when there is no cluster
    print(cluster.kubeconfig)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from krios.bench import cluster as bench

    _count(args.workers, "--workers")
    if args.pods < 1:
        raise ConfigError("must be >= 1", source="--pods", field=str(args.pods))
    with tempfile.TemporaryDirectory(prefix="krios-bench-cluster-") as tmp:
        result = bench.run(Path(tmp) / "cluster", workers=args.workers, pods=args.pods,
                           ready_delay_s=args.ready_delay_s, jitter_s=args.jitter_s)
    for line in result.lines():
        print(line)
    return 0


def cmd_add_nodes(args: argparse.Namespace) -> int:
    labels = {}
    for item in args.label:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("expected KEY=VALUE", source="--label", field=item)
        labels[key] = value
    LocalCluster(args.state_dir).add_nodes(args.names, labels)
    print(f"added {', '.join(args.names)} (Ready)")
    return 0


def cmd_kube_scheduler(args: argparse.Namespace) -> int:
    import os
    import sys
    from pathlib import Path

    from krios.localcluster.components import kube_scheduler

    if not 0 <= args.port <= 65535:
        raise ConfigError("must be within [0, 65535]", source="--port", field=str(args.port))
    kubeconfig = Path(args.kubeconfig)
    if not kubeconfig.is_file():
        raise ConfigError("no such file", source="--kubeconfig", field=str(kubeconfig))
    cmd = kube_scheduler(kubeconfig, args.port, qps=args.kube_api_qps, burst=args.kube_api_burst)
    if args.print:
        print("\n".join(cmd))
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(cmd[0], cmd)
    return 0  # pragma: no cover (execv does not return)
