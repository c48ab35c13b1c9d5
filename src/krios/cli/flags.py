"""The one mapping from config fields to command-line flags.

The domain names the config *field* in its errors (``tick_s: 0.0: must be a
positive number``, see :func:`krios.config.resolve.field_error`), because it
is called from Ansible modules and Python as well as from the command line.
The command line prints the *flag* the user typed instead: :func:`name_flag`
rewrites an error whose source is a field that the running command has a flag
for (``--tick-s: 0.0: must be a positive number``).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable

from krios.errors import KriosError

#: Config field -> the flags that set it, first match (among the command's flags) wins.
#: Fields not listed here are never rewritten.
FIELD_FLAGS: dict[str, tuple[str, ...]] = {
    # emulator, simulator, client
    "tick_s": ("--tick-s",),
    "duration_s": ("--duration-s", "--duration"),
    "start": ("--start",),
    "seed": ("--seed",),
    "acceleration": ("--acceleration",),
    "horizon_s": ("--horizon-s",),
    "lookahead_s": ("--lookahead-s",),
    "step_s": ("--step-s",),
    "startup_s": ("--startup-s",),
    "zones": ("--zone",),
    "rtt_model": ("--rtt-model",),
    "rate_hz": ("--rate-hz",),
    "ia": ("--ia",),
    "trace": ("--trace",),
    "clients": ("--clients",),
    "timeout_s": ("--timeout-s",),
    "jobs": ("--jobs",),
    "nodes": ("--nodes",),
    "target": ("--target",),
    # scheduler and controller
    "policy": ("--policy",),
    "mode": ("--mode",),
    "ready_timeout_s": ("--ready-timeout-s",),
    "min_elevation_deg": ("--min-elevation-deg",),
    "default_radius_km": ("--default-radius-km",),
    "scheduler_name": ("--scheduler-name",),
    "parallelism": ("--parallelism",),
    "qps": ("--kube-api-qps", "--qps"),
    "burst": ("--kube-api-burst", "--burst"),
    "lease_timing_s": ("--leader-elect-lease-duration",),
    # latency sweep
    "latency_ms": ("--latency-ms",),
    "samples_per_latency": ("--samples-per-latency",),
    "warmup": ("--warmup",),
    "schedulers": ("--schedulers",),
    "namespace": ("--namespace",),
    "proxy_control": ("--proxy-control",),
    # cold-start sweep and churn (krios bench coldstart|churn)
    "rps": ("--rps",),
    "rate": ("--rate",),
    "lifetime_s": ("--lifetime-s",),
    "sample_s": ("--sample-s",),
    "p99_bound_ms": ("--p99-bound-ms",),
    "max_error_share": ("--max-error-share",),
    "min_samples": ("--min-samples",),
    "max_inflight": ("--max-inflight",),
    "serve": ("--serve",),
    "serve_port": ("--serve-port",),
}
#: How a field set by several flags is named in an error.
SHOWN_AS: dict[str, str] = {"lease_timing_s": "--leader-elect-*"}


def command_flags(parser: argparse.ArgumentParser, argv: Iterable[str]) -> set[str]:
    """The long option strings of the (sub-)command ``argv`` selects in ``parser``."""
    flags: set[str] = set()
    args = list(argv)
    while True:
        subs = None
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                subs = action
            flags.update(o for o in action.option_strings if o.startswith("--"))
        if subs is None:
            return flags
        chosen = next((a for a in args if a in subs.choices), None)
        if chosen is None:
            return flags
        args = args[args.index(chosen) + 1:]
        parser = subs.choices[chosen]
        flags = set()


def name_flag(err: KriosError, flags: set[str]) -> KriosError:
    """``err`` with its field source renamed to the flag the command has for it (else ``err``)."""
    field = err.source
    if field not in FIELD_FLAGS:
        return err
    flag = next((f for f in FIELD_FLAGS[field] if f in flags), None)
    if flag is None:
        return err
    return type(err)(err.message, source=SHOWN_AS.get(field, flag), field=err.field)


#: What argparse must read as a value, not an option: a negative number, or a leozone label
#: whose latitude is negative (``-33.87_151.21``, ``-33.87_-70.6``).
NEGATIVE_VALUE = re.compile(r"^-\d+$|^-\d*\.\d+$|^-[\d.]+_[-+]?[\d.]+$")


def accept_negative_zones(parser: argparse.ArgumentParser) -> None:
    """Let ``parser`` take ``--zone -33.87_151.21`` as well as ``--zone=-33.87_151.21``.

    argparse reads a word starting with ``-`` as an option unless it looks like a
    negative number (and the parser has no option that does); this widens "looks
    like a negative number" to :data:`NEGATIVE_VALUE` for this parser.
    """
    parser._negative_number_matcher = NEGATIVE_VALUE  # type: ignore[attr-defined]
