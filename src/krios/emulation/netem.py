"""Per-destination delay shaping with ``tc`` (htb + netem + u32), as pure plans.

Layout on the client's egress device ``DEV`` (krios owns root handle ``1:``)::

    qdisc htb 1: root default 0            unclassified traffic bypasses shaping
      class htb 1:<m>  (one per destination, m = 0x10, 0x11, ...)
        qdisc netem <m>:  delay D ms [J ms]
      filter u32 pref <m> match ip dst <IP>/32 flowid 1:<m>

``m`` is both the class minor (hex in tc's notation) and the filter
preference (decimal), so every destination is one class, one netem leaf and
one filter that can be changed or deleted on its own.

The functions here are pure: :func:`parse_state` turns what ``tc`` prints
(``tc -j qdisc show``, ``tc class show``, ``tc -j filter show``; the plain text
forms are parsed too) into a :class:`TcState`, and :func:`plan` turns that state
and the desired delays into a list of argument vectors (``["tc", "qdisc", ...]``,
never shell strings). The plan is empty when the state already matches, so
applying it twice changes nothing. Delays are updated in place with
``tc qdisc change`` (no instant without delay). :class:`Shaper` runs plans,
and removes everything on exit or SIGINT/SIGTERM.

Support: many kernels build ``sch_netem`` as a module; some (this project's
CI machine among them) lack it. :func:`netem_support` probes a throwaway
network namespace and says why it cannot be used.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from krios.errors import ConfigError, KriosError

log = logging.getLogger(__name__)

ROOT_MAJOR = 1
#: First class minor (and filter preference) used for a destination.
FIRST_MINOR = 0x10
LAST_MINOR = 0xFFFF
#: htb class parameters: classification only; the rate is far above any test traffic.
CLASS_RATE = "10gbit"
CLASS_BURST = "1mb"
CLASS_QUANTUM = "60000"
#: Delays closer than this (ms) count as equal (the kernel keeps nanoseconds; tc prints rounded).
TOLERANCE_MS = 0.0015

Argv = list[str]
Runner = Callable[[Sequence[str]], subprocess.CompletedProcess]


class NetemError(KriosError):
    """A ``tc``/``ip`` command failed or the device is not in a state krios can manage."""

    exit_code = 4


# --------------------------------------------------------------------------- desired state


@dataclass(frozen=True)
class Destination:
    """Delay added to packets leaving for ``ip`` (IPv4): ``delay_ms`` ± ``jitter_ms``."""

    ip: str
    delay_ms: float
    jitter_ms: float = 0.0

    def __post_init__(self) -> None:
        try:
            addr = ipaddress.ip_address(self.ip)
        except ValueError as exc:
            raise ConfigError("not an IP address", source="destination", field=str(self.ip)) from exc
        if addr.version != 4:
            raise ConfigError("only IPv4 destinations are supported", source="destination", field=self.ip)
        object.__setattr__(self, "ip", str(addr))
        for name in ("delay_ms", "jitter_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value != value:
                raise ConfigError(f"{name} must be a non-negative number of ms", source="destination", field=self.ip)
            object.__setattr__(self, name, float(value))


def parse_destination(text: str, *, source: str = "--dest") -> Destination:
    """``IP=MS`` or ``IP=MS/JITTER_MS`` into a :class:`Destination`."""
    m = re.fullmatch(r"\s*([^=\s]+)\s*=\s*([0-9.]+)\s*(?:ms)?\s*(?:/\s*([0-9.]+)\s*(?:ms)?)?\s*", text)
    if not m:
        raise ConfigError("expected IP=MS or IP=MS/JITTER_MS (e.g. 127.0.1.2=25)", source=source, field=text)
    try:
        delay = float(m.group(2))
        jitter = float(m.group(3)) if m.group(3) else 0.0
    except ValueError as exc:
        raise ConfigError("delay is not a number", source=source, field=text) from exc
    return Destination(m.group(1), delay, jitter)


def normalise(destinations: Iterable[Destination | Mapping[str, Any]]) -> list[Destination]:
    """Destinations sorted by address; a repeated address must repeat the same delay."""
    out: dict[str, Destination] = {}
    for item in destinations:
        if isinstance(item, Mapping):
            if "ip" not in item or "delay_ms" not in item:
                raise ConfigError("needs ip and delay_ms", source="destinations", field=json.dumps(dict(item)))
            item = Destination(str(item["ip"]), item["delay_ms"], item.get("jitter_ms") or 0.0)
        prev = out.get(item.ip)
        if prev is not None and prev != item:
            raise ConfigError("listed twice with different delays", source="destinations", field=item.ip)
        out[item.ip] = item
    return sorted(out.values(), key=lambda d: ipaddress.ip_address(d.ip))


# --------------------------------------------------------------------------- observed state


@dataclass(frozen=True)
class Leaf:
    """A qdisc attached under an htb class (``parent`` minor); delays in ms (netem only)."""

    minor: int
    handle_major: int
    kind: str
    delay_ms: float | None = None
    jitter_ms: float | None = None


@dataclass(frozen=True)
class Filter:
    """A u32 filter on ``1:`` at preference ``pref`` sending ``ip`` to class ``1:<flow_minor>``."""

    pref: int
    ip: str | None = None
    flow_minor: int | None = None


@dataclass
class TcState:
    """What ``tc`` reports for one device (only what the plan needs)."""

    dev: str
    root_kind: str | None = None
    root_handle: str | None = None
    classes: set[int] = field(default_factory=set)  # minors of htb classes under 1:
    leaves: dict[int, Leaf] = field(default_factory=dict)  # class minor -> leaf qdisc
    filters: dict[int, Filter] = field(default_factory=dict)  # pref -> filter

    @property
    def managed(self) -> bool:
        """Whether the root qdisc is krios's (htb with handle 1:)."""
        return self.root_kind == "htb" and self.root_handle == f"{ROOT_MAJOR}:"

    @property
    def default_root(self) -> bool:
        """Whether the root is absent or a kernel default (handle 0:) that ``add`` replaces."""
        return self.root_kind is None or self.root_handle in (None, "0:")


def _handle(text: str) -> tuple[int, int]:
    """``"1:10"`` -> ``(1, 16)``; ``"10:"`` -> ``(16, 0)`` (tc handles are hex)."""
    major, _, minor = text.strip().partition(":")
    return int(major or "0", 16), int(minor or "0", 16)


_TIME_UNITS = {"s": 1000.0, "sec": 1000.0, "ms": 1.0, "msec": 1.0, "us": 1e-3, "usec": 1e-3, "ns": 1e-6}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(s|sec|ms|msec|us|usec|ns)?", text.strip())
    if not m:
        raise ValueError(f"not a tc time: {text!r}")
    return float(m.group(1)) * _TIME_UNITS[m.group(2) or "us"]


def _loads(text: str) -> Any | None:
    text = text.strip()
    if not text.startswith("["):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def parse_qdiscs(text: str, state: TcState) -> None:
    """Fill root and leaves of ``state`` from ``tc [-j] qdisc show dev DEV``."""
    data = _loads(text)
    entries: list[dict[str, Any]] = []
    if data is not None:
        for q in data:
            opts = q.get("options") or {}
            delay = opts.get("delay") if isinstance(opts.get("delay"), dict) else None
            entries.append(
                {
                    "kind": q.get("kind"),
                    "handle": q.get("handle"),
                    "root": bool(q.get("root")),
                    "parent": q.get("parent"),
                    "delay_ms": None if delay is None else float(delay.get("delay", 0.0)) * 1000.0,
                    "jitter_ms": None if delay is None else float(delay.get("jitter", 0.0)) * 1000.0,
                }
            )
    else:
        for line in text.splitlines():
            words = line.split()
            if len(words) < 3 or words[0] != "qdisc":
                continue
            entry: dict[str, Any] = {"kind": words[1], "handle": words[2], "root": "root" in words[3:4]}
            if "parent" in words:
                entry["parent"] = words[words.index("parent") + 1]
            if words[1] == "netem":
                entry["delay_ms"], entry["jitter_ms"] = 0.0, 0.0
                if "delay" in words:
                    i = words.index("delay")
                    entry["delay_ms"] = _ms(words[i + 1])
                    if i + 2 < len(words) and re.fullmatch(r"[0-9.]+(s|ms|us|ns)", words[i + 2]):
                        entry["jitter_ms"] = _ms(words[i + 2])
            entries.append(entry)
    for e in entries:
        if e["root"]:
            state.root_kind, state.root_handle = e["kind"], e["handle"]
        elif e.get("parent"):
            pmaj, pmin = _handle(e["parent"])
            if pmaj == ROOT_MAJOR and pmin:
                hmaj, _ = _handle(e["handle"] or "0:")
                delay = e.get("delay_ms") if e["kind"] == "netem" else None
                jitter = e.get("jitter_ms") if e["kind"] == "netem" else None
                state.leaves[pmin] = Leaf(pmin, hmaj, e["kind"], delay, jitter)


def parse_classes(text: str, state: TcState) -> None:
    """Fill the htb classes under ``1:`` from ``tc [-j] class show dev DEV``."""
    data = _loads(text)
    if data is not None:
        for c in data:
            if c.get("class") in ("htb", None) and c.get("handle"):
                major, minor = _handle(c["handle"])
                if major == ROOT_MAJOR and minor:
                    state.classes.add(minor)
        return
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "class" and words[1] == "htb":
            major, minor = _handle(words[2])
            if major == ROOT_MAJOR and minor:
                state.classes.add(minor)


def _ip_from_match(value: str, mask: str, off: int) -> str | None:
    if off != 16 or mask.lower() != "ffffffff":
        return None
    return str(ipaddress.IPv4Address(int(value, 16)))


def parse_filters(text: str, state: TcState) -> None:
    """Fill the u32 filters on ``1:`` from ``tc [-j] filter show dev DEV``."""
    found: dict[int, Filter] = {}
    data = _loads(text)
    if data is not None:
        for f in data:
            if f.get("parent") not in (None, f"{ROOT_MAJOR}:") or "pref" not in f:
                continue
            pref = int(f["pref"])
            found.setdefault(pref, Filter(pref))
            opts = f.get("options") or {}
            if f.get("kind") != "u32" or "flowid" not in opts:
                continue
            matches = opts.get("match") or []
            matches = [matches] if isinstance(matches, dict) else matches
            ip = None
            if len(matches) == 1:
                m = matches[0]
                ip = _ip_from_match(str(m.get("value", "")), str(m.get("mask", "")), int(m.get("off", -1)))
            fmaj, fmin = _handle(str(opts["flowid"]))
            found[pref] = Filter(pref, ip, fmin if fmaj == ROOT_MAJOR else None)
    else:
        current: dict[str, Any] | None = None
        for line in text.splitlines():
            words = line.split()
            if words[:1] == ["filter"] and "pref" in words:
                pref = int(words[words.index("pref") + 1])
                found.setdefault(pref, Filter(pref))
                bare = [w.lstrip("*") for w in words]
                flow = words[bare.index("flowid") + 1] if "flowid" in bare[:-1] else None
                current = {"pref": pref, "flow": flow, "matches": []} if flow else None
                if current:
                    found[pref] = _filter_from(current)
            elif words[:1] == ["match"] and current is not None and len(words) >= 4:
                value, _, mask = words[1].partition("/")
                current["matches"].append((value, mask, int(words[3])))
                found[current["pref"]] = _filter_from(current)
    state.filters.update(found)


def _filter_from(current: dict[str, Any]) -> Filter:
    major, minor = _handle(current["flow"])
    ip = None
    if len(current["matches"]) == 1:
        ip = _ip_from_match(*current["matches"][0])
    return Filter(current["pref"], ip, minor if major == ROOT_MAJOR else None)


def parse_state(dev: str, qdiscs: str, classes: str = "", filters: str = "") -> TcState:
    """A :class:`TcState` from the three ``show`` outputs (JSON or text)."""
    state = TcState(dev)
    parse_qdiscs(qdiscs, state)
    parse_classes(classes, state)
    parse_filters(filters, state)
    return state


# --------------------------------------------------------------------------- commands


def _num(ms: float) -> str:
    return f"{ms:.3f}".rstrip("0").rstrip(".") + "ms"


def netem_args(dest: Destination) -> Argv:
    """``netem delay D [J]`` arguments for a destination."""
    args = ["netem", "delay", _num(dest.delay_ms)]
    if dest.jitter_ms > 0:
        args.append(_num(dest.jitter_ms))
    return args


def cmd_root_add(dev: str) -> Argv:
    return ["tc", "qdisc", "add", "dev", dev, "root", "handle", f"{ROOT_MAJOR}:", "htb", "default", "0"]


def cmd_root_del(dev: str) -> Argv:
    return ["tc", "qdisc", "del", "dev", dev, "root"]


def cmd_class_add(dev: str, minor: int) -> Argv:
    return [
        "tc", "class", "add", "dev", dev, "parent", f"{ROOT_MAJOR}:", "classid", f"{ROOT_MAJOR}:{minor:x}",
        "htb", "rate", CLASS_RATE, "burst", CLASS_BURST, "cburst", CLASS_BURST, "quantum", CLASS_QUANTUM,
    ]  # fmt: skip


def cmd_class_del(dev: str, minor: int) -> Argv:
    return ["tc", "class", "del", "dev", dev, "classid", f"{ROOT_MAJOR}:{minor:x}"]


def cmd_leaf(verb: str, dev: str, minor: int, dest: Destination) -> Argv:
    """``tc qdisc add|change|replace`` of the netem leaf of class ``1:<minor>``."""
    return [
        "tc", "qdisc", verb, "dev", dev, "parent", f"{ROOT_MAJOR}:{minor:x}", "handle", f"{minor:x}:",
        *netem_args(dest),
    ]  # fmt: skip


def cmd_filter_add(dev: str, minor: int, ip: str) -> Argv:
    return [
        "tc", "filter", "add", "dev", dev, "parent", f"{ROOT_MAJOR}:", "protocol", "ip", "prio", str(minor),
        "u32", "match", "ip", "dst", f"{ip}/32", "flowid", f"{ROOT_MAJOR}:{minor:x}",
    ]  # fmt: skip


def cmd_filter_del(dev: str, pref: int) -> Argv:
    return ["tc", "filter", "del", "dev", dev, "parent", f"{ROOT_MAJOR}:", "protocol", "ip", "prio", str(pref), "u32"]


def plan_clear(state: TcState) -> list[Argv]:
    """Commands that remove krios's shaping from the device (none if there is none)."""
    return [cmd_root_del(state.dev)] if state.managed else []


def plan(state: TcState, desired: Iterable[Destination | Mapping[str, Any]]) -> list[Argv]:
    """Commands taking ``state`` to the ``desired`` per-destination delays.

    Empty when nothing needs to change. An empty ``desired`` removes krios's
    root qdisc. Raises :class:`NetemError` if the device's root qdisc was set
    up by someone else (a non-default root other than krios's htb ``1:``).

    Order: root first; removed destinations (filter, then class with its
    leaf); then each new or changed destination, in address order, as class,
    netem leaf and, last, the filter (so traffic is only steered into a class
    whose delay is already in place). Changed delays use ``qdisc change``.
    """
    dests = normalise(desired)
    dev = state.dev
    if not dests:
        return plan_clear(state)
    cmds: list[Argv] = []
    if not state.managed:
        if not state.default_root:
            raise NetemError(
                f"root qdisc {state.root_kind} {state.root_handle} was not set up by krios; "
                f"remove it first (tc qdisc del dev {dev} root)",
                source="dev",
                field=dev,
            )
        state = TcState(dev)
        cmds.append(cmd_root_add(dev))
    # A filter is krios's and sound when its pref equals its class minor and it matches one IPv4 dst.
    owned: dict[str, int] = {}
    stale: list[int] = []
    for pref, f in sorted(state.filters.items()):
        if f.ip is not None and f.flow_minor == pref and FIRST_MINOR <= pref <= LAST_MINOR and f.ip not in owned:
            owned[f.ip] = pref
        else:
            stale.append(pref)
    wanted = {d.ip for d in dests}
    removed = [pref for ip, pref in sorted(owned.items(), key=lambda kv: kv[1]) if ip not in wanted]
    for pref in sorted(stale + removed):
        cmds.append(cmd_filter_del(dev, pref))
    keep_minors = {pref for ip, pref in owned.items() if ip in wanted}
    for minor in sorted(state.classes):
        if minor not in keep_minors and minor >= FIRST_MINOR:
            cmds.append(cmd_class_del(dev, minor))
    used = set(state.classes) | set(state.filters) | keep_minors
    free = (m for m in range(FIRST_MINOR, LAST_MINOR + 1) if m not in used)
    for dest in dests:
        minor = owned.get(dest.ip)
        if minor is None:
            try:
                minor = next(free)
            except StopIteration as exc:
                raise NetemError("too many destinations", source="dev", field=dev) from exc
            cmds += [cmd_class_add(dev, minor), cmd_leaf("add", dev, minor, dest), cmd_filter_add(dev, minor, dest.ip)]
            continue
        if minor not in state.classes:  # filter survived but class is gone: rebuild the chain
            cmds += [
                cmd_filter_del(dev, minor),
                cmd_class_add(dev, minor),
                cmd_leaf("add", dev, minor, dest),
                cmd_filter_add(dev, minor, dest.ip),
            ]
            continue
        leaf = state.leaves.get(minor)
        if leaf is None:
            cmds.append(cmd_leaf("add", dev, minor, dest))
        elif leaf.kind != "netem" or leaf.handle_major != minor:
            cmds.append(cmd_leaf("replace", dev, minor, dest))
        elif abs((leaf.delay_ms or 0.0) - dest.delay_ms) > TOLERANCE_MS or abs(
            (leaf.jitter_ms or 0.0) - dest.jitter_ms
        ) > TOLERANCE_MS:
            cmds.append(cmd_leaf("change", dev, minor, dest))
    return cmds


# --------------------------------------------------------------------------- running


def run_argv(argv: Sequence[str]) -> subprocess.CompletedProcess:
    """Run one command (argument list, no shell); output captured as text."""
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)


def netns_prefix(netns: str | None) -> Argv:
    """``ip netns exec NS`` prefix, or nothing."""
    return ["ip", "netns", "exec", netns] if netns else []


@dataclass
class Tc:
    """Runs ``tc`` for one device (optionally inside network namespace ``netns``)."""

    dev: str
    netns: str | None = None
    runner: Runner = run_argv

    def _run(self, argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess:
        full = netns_prefix(self.netns) + list(argv)
        proc = self.runner(full)
        if check and proc.returncode != 0:
            msg = (proc.stderr or proc.stdout or "").strip().splitlines()
            if any("Cannot find device" in m for m in msg):
                raise ConfigError("no such network device", source="dev", field=self.dev)
            raise NetemError(f"{' '.join(full)} failed: {msg[-1] if msg else f'exit {proc.returncode}'}",
                             source="tc", field=self.dev)  # fmt: skip
        return proc

    def state(self) -> TcState:
        """The device's current :class:`TcState`."""
        q = self._run(["tc", "-j", "qdisc", "show", "dev", self.dev])
        c = self._run(["tc", "class", "show", "dev", self.dev])
        f = self._run(["tc", "-j", "filter", "show", "dev", self.dev, "parent", f"{ROOT_MAJOR}:"], check=False)
        return parse_state(self.dev, q.stdout, c.stdout, f.stdout if f.returncode == 0 else "")

    def execute(self, cmds: Iterable[Sequence[str]]) -> None:
        for argv in cmds:
            log.debug("tc: %s", " ".join(argv))
            self._run(argv)

    def apply(self, desired: Iterable[Destination | Mapping[str, Any]], *, dry_run: bool = False) -> list[Argv]:
        """Plan against the current state and run it (unless ``dry_run``); returns the plan."""
        cmds = plan(self.state(), desired)
        if not dry_run:
            self.execute(cmds)
        return cmds

    def clear(self, *, dry_run: bool = False) -> list[Argv]:
        cmds = plan_clear(self.state())
        if not dry_run:
            self.execute(cmds)
        return cmds


def route_device(ip: str, *, netns: str | None = None, runner: Runner = run_argv) -> str:
    """The device the kernel would send packets for ``ip`` out of (``ip -j route get``)."""
    proc = runner([*netns_prefix(netns), "ip", "-j", "route", "get", ip])
    try:
        return str(json.loads(proc.stdout)[0]["dev"])
    except (ValueError, LookupError, TypeError) as exc:
        err = (proc.stderr or "").strip() or "no route"
        raise ConfigError(f"cannot find the egress interface: {err}", source="destination", field=ip) from exc


def egress_device(ips: Iterable[str], *, netns: str | None = None, runner: Runner = run_argv) -> str:
    """The one egress device for all ``ips``; a :class:`ConfigError` if they differ (use ``--dev``)."""
    devs = {ip: route_device(ip, netns=netns, runner=runner) for ip in ips}
    names = sorted(set(devs.values()))
    if len(names) != 1:
        raise ConfigError(
            f"destinations leave through different interfaces ({', '.join(names) or 'none'}); give --dev",
            source="destinations",
            field=",".join(sorted(devs)),
        )
    return names[0]


@functools.lru_cache(maxsize=1)
def netem_support() -> tuple[bool, str]:
    """Whether this kernel can run ``netem`` qdiscs, and why not.

    Probes a throwaway network namespace (``unshare --net``), so the host's
    own devices are never touched.
    """
    if not shutil.which("tc"):
        return False, "tc (iproute2) is not installed"
    if not shutil.which("unshare"):
        return False, "unshare (util-linux) is not installed; cannot probe netem"
    argv = ["unshare", "--net"]
    if os.geteuid() != 0:
        argv.append("--map-root-user")
    proc = run_argv([*argv, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])
    if proc.returncode == 0:
        return True, "netem qdisc added in a throwaway network namespace"
    err = (proc.stderr or "").strip().splitlines()
    last = err[-1] if err else f"exit {proc.returncode}"
    if "unknown" in last.lower():
        return False, f"the kernel has no netem qdisc (sch_netem): tc says {last!r}"
    return False, f"cannot probe netem in a network namespace: {last}"


class Shaper:
    """Keeps per-destination delays on one device up to date and removes them at the end.

    Use as a context manager; :meth:`install_signal_handlers` makes SIGINT and
    SIGTERM remove the shaping before the process exits.
    """

    def __init__(self, dev: str | None = None, *, netns: str | None = None, runner: Runner = run_argv,
                 dry_run: bool = False):  # fmt: skip
        self.dev = dev
        self.netns = netns
        self.runner = runner
        self.dry_run = dry_run
        self._tc: Tc | None = None
        self._last: list[Destination] | None = None
        self.history: list[Argv] = []

    def update(self, desired: Iterable[Destination | Mapping[str, Any]]) -> list[Argv]:
        """Bring the device to ``desired``; returns the commands run (none if unchanged)."""
        dests = normalise(desired)
        if dests == self._last:
            return []
        if self._tc is None:
            dev = self.dev or egress_device([d.ip for d in dests], netns=self.netns, runner=self.runner)
            self._tc = Tc(dev, self.netns, self.runner)
        cmds = self._tc.apply(dests, dry_run=self.dry_run)
        self.history += cmds
        self._last = dests
        return cmds

    def clear(self) -> list[Argv]:
        """Remove krios's shaping from the device (the given ``dev``, or the one shaped so far)."""
        if self._tc is None:
            if self.dev is None:
                return []
            self._tc = Tc(self.dev, self.netns, self.runner)
        cmds = self._tc.clear(dry_run=self.dry_run)
        self.history += cmds
        self._last = None
        return cmds

    def __enter__(self) -> Shaper:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.clear()
        except KriosError as err:
            log.error("could not remove tc shaping: %s", err)

    def install_signal_handlers(self) -> None:
        """On SIGTERM/SIGINT: remove the shaping, then exit (130/143) via ``SystemExit``."""

        def handler(signum: int, _frame: FrameType | None) -> None:
            try:
                self.clear()
            finally:
                raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
