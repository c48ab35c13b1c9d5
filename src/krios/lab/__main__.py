"""``python -m krios.lab up|status|down`` until ``krios lab`` is wired into the CLI.

python -m krios.lab up --workers 2 --clients 1 --state-dir .krios/lab
python -m krios.lab status --state-dir .krios/lab
python -m krios.lab down --state-dir .krios/lab
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from krios.errors import KriosError
from krios.lab import down, status, up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m krios.lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "status", "down"):
        p = sub.add_parser(name)
        p.add_argument("--state-dir", type=Path, default=Path(".krios/lab"))
        if name == "up":
            p.add_argument("--workers", type=int, default=2)
            p.add_argument("--clients", type=int, default=1)
            p.add_argument("--subnet", default="10.213.0.0/24")
            p.add_argument("--name", default="krios-lab")
            p.add_argument("--scenario", default=None)
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            state = up(args.workers, args.clients, args.state_dir, args.subnet, args.name, args.scenario)
            print(f"lab {state.name}: {len(state.nodes)} nodes; ansible -i {state.inventory} all -m ping")
        elif args.command == "status":
            print(json.dumps(status(args.state_dir), indent=2))
        else:
            print("removed" if down(args.state_dir) else f"no lab recorded in {args.state_dir}")
    except KriosError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
