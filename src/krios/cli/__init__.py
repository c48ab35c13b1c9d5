"""The ``krios`` command line.

Each area of the package registers its own sub-commands from a module in this
package (``krios.cli.<area>``), so that no file becomes a dumping ground.
A module exposes ``register(sub, bench)`` where ``sub`` is the top-level
sub-parser collection and ``bench`` the one under ``krios bench``; each parser
it adds sets ``func`` (called with the parsed namespace, returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from krios import __version__
from krios.errors import KriosError

#: Sub-command modules, in the order they appear in ``krios --help``.
AREAS = (
    "cluster",  # krios cluster up|status|down
    "lab",  # krios lab up|status|down (real node containers)
    "orbits",  # krios constellation|visible|passes, bench orbits
    "inventory",  # krios inventory
    "scheduling",  # krios scheduler|controller, bench scheduler
    "emulation",  # krios emulator|client|netem
    "simulation",  # krios simulate, bench simulate
    "results",  # krios runs|report, bench latency
    "turnover",  # bench coldstart|churn
    "latency",  # krios latency publish|measure|serve
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="krios", description="LEO edge-compute experiments on Kubernetes."
    )
    parser.add_argument("--version", action="version", version=f"krios {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench_parser = sub.add_parser("bench", help="benchmarks that print figures and ratios")
    bench = bench_parser.add_subparsers(dest="bench", metavar="BENCH")
    bench_parser.set_defaults(func=lambda _args: _usage(bench_parser))
    for area in AREAS:
        try:
            module = importlib.import_module(f"krios.cli.{area}")
        except ModuleNotFoundError as exc:  # an area not written yet
            if exc.name != f"krios.cli.{area}":
                raise
            continue
        module.register(sub, bench)
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    func = getattr(args, "func", None)
    if func is None:
        return _usage(parser)
    try:
        return int(func(args) or 0)
    except KriosError as err:
        from krios.cli.flags import command_flags, name_flag

        err = name_flag(err, command_flags(parser, sys.argv[1:] if argv is None else argv))
        print(f"krios: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("krios: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `krios passes ... | head`: the reader went away
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
