"""Workloads as data: the ``workload:`` list of a scenario, and ``krios client``'s equivalent flags.

A workload is a list of *client groups*. Each group sends open-loop HTTP GET
requests to one app and says how many clients it runs and when each client
sends (exactly one of ``rate_hz``, ``ia`` or ``trace``)::

    workload:
      - name: steady                  # optional (default g<index>); unique; recorded as client_group
        service: zone                 # the app: see below
        port: 30080                   # the app's NodePort (zone apps; a Service gives its own)
        path: /                       # optional request path
        clients: 2                    # independent clients (default 1), each with its own schedule
        rate_hz: 5                    # requests per wall second per client, evenly spaced
      - name: bursty
        service: 35.6762_139.6503     # another zone's app (pods labelled leozone=35.6762_139.6503)
        port: 30081
        ia: {dist: expon, mean_s: 0.2, seed: 7}   # inter-arrival times (wall s) drawn per client
      - name: replay
        service: app.default          # Service app in namespace default (its selector and nodePort)
        trace: traces/morning.txt     # timestamps (emulated s), replayed at the run's acceleration

``service`` names the app a group aims at: ``zone`` (the scenario's zone: its
pods carry ``leozone=<the zone's label>``), a zone key ``LAT_LON`` (another
zone's app, pods labelled ``leozone=LAT_LON``) or a Kubernetes Service
``NAME[.NAMESPACE]`` (namespace ``default`` if omitted; the pods are its
selector's, the port its ``nodePort``). Whether the Service exists is checked
when the client starts (:mod:`krios.emulation.workload`), not here.

``ia`` distributions and their parameters (all times in wall seconds):
``constant`` (``mean_s``: every interval), ``expon`` (``mean_s``: exponential
intervals, a Poisson process), ``lognorm`` (``mean_s`` and ``sigma``, the
standard deviation of the underlying normal: ``ln X ~ N(ln mean_s - sigma^2/2,
sigma^2)``, so the mean interval is ``mean_s``). ``seed`` (integer; default
the scenario's ``seed``) makes the schedule reproducible: same seed, same
schedule. A ``trace`` file holds one timestamp per line (seconds, emulated
time; blank lines and ``#`` comments ignored; non-decreasing); it is replayed
relative to its first timestamp, divided by the emulation's ``acceleration``;
a relative path is relative to the scenario file's folder.

This module parses and validates (layer 1); :mod:`krios.emulation.arrivals`
generates the schedules and :mod:`krios.emulation.workload` sends. Every
error is one :class:`~krios.errors.ConfigError` naming the file (or flag) and
the field, e.g. ``scenarios/x.yml: workload[1].ia.dist: unknown distribution
'poisson' (known: constant, expon, lognorm)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from krios.config.keys import check_known_keys
from krios.config.leozone import leozone_coordinates, leozone_label
from krios.errors import ConfigError

#: Inter-arrival distributions and the parameters each requires (besides ``dist`` and ``seed``).
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "constant": ("mean_s",),
    "expon": ("mean_s",),
    "lognorm": ("mean_s", "sigma"),
}
#: Keys of one client group.
GROUP_KEYS = frozenset({"name", "service", "port", "path", "clients", "rate_hz", "ia", "trace"})
#: The keys that say when a client sends; a group has exactly one.
ARRIVAL_KEYS = ("rate_hz", "ia", "trace")
#: ``service`` value meaning "the scenario's zone".
ZONE = "zone"

_NAME_RE = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")  # DNS-1035 label (Service names)
_NS_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # DNS-1123 label (namespaces)
_GROUP_RE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


@dataclass(frozen=True)
class Service:
    """The app a group aims at: a zone's app (``leozone`` label) or a Kubernetes Service."""

    text: str  # as written (``zone``, ``35.6762_139.6503``, ``app.default``); recorded as ``service``
    leozone: str | None = None  # zone apps: the pods' leozone label value
    name: str | None = None  # Services: name and namespace
    namespace: str | None = None

    @property
    def selector(self) -> str | None:
        """The app pods' label selector for a zone app (``leozone=<label>``); ``None`` for a Service."""
        return f"leozone={self.leozone}" if self.leozone else None


@dataclass(frozen=True)
class Arrivals:
    """When one client sends: ``kind`` ``rate`` (``rate_hz``), ``ia`` (``dist``, ``params``, ``seed``)
    or ``trace`` (``trace``: offsets in emulated s from the first timestamp, read from ``trace_file``)."""

    kind: str
    rate_hz: float | None = None
    dist: str | None = None
    params: tuple[tuple[str, float], ...] = ()
    seed: int = 0
    trace: tuple[float, ...] = ()
    trace_file: str | None = None

    def param(self, name: str) -> float:
        """The ``ia`` parameter ``name`` (``mean_s``, ``sigma``)."""
        return dict(self.params)[name]

    def describe(self) -> str:
        """Short text for logs and reports: ``5 Hz``, ``expon mean_s=0.2 seed=7``, ``trace x.txt (120)``."""
        if self.kind == "rate":
            return f"{self.rate_hz:g} Hz"
        if self.kind == "ia":
            return " ".join([str(self.dist), *(f"{k}={v:g}" for k, v in self.params), f"seed={self.seed}"])
        return f"trace {self.trace_file} ({len(self.trace)} timestamps)"


@dataclass(frozen=True)
class Group:
    """One client group: ``clients`` clients each sending to ``service`` on its own ``arrivals`` schedule."""

    name: str
    service: Service
    arrivals: Arrivals
    clients: int = 1
    port: int | None = None
    path: str = "/"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_service(value: Any, *, source: str, field: str, zone_label: str | None = None) -> Service:
    """A :class:`Service` from ``zone``, a zone key ``LAT_LON`` or ``NAME[.NAMESPACE]``; else ConfigError."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("must be a string: zone, a zone key LAT_LON or a Service NAME[.NAMESPACE]",
                          source=source, field=field)
    text = value.strip()
    if text == ZONE:
        if zone_label is None:
            raise ConfigError("unknown service 'zone': no scenario zone here (give a zone key LAT_LON or a "
                              "Service NAME[.NAMESPACE])", source=source, field=field)
        return Service(text, leozone=zone_label)
    if "_" in text:
        try:
            lat, lon = leozone_coordinates(text)
        except ValueError:
            raise ConfigError(f"unknown service {text!r}: not a zone key LAT_LON", source=source,
                              field=field) from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ConfigError(f"unknown service {text!r}: zone key out of range", source=source, field=field)
        return Service(text, leozone=leozone_label(lat, lon))
    name, _, namespace = text.partition(".")
    namespace = namespace or "default"
    if not _NAME_RE.fullmatch(name) or not _NS_RE.fullmatch(namespace):
        raise ConfigError(f"unknown service {text!r} (expected zone, a zone key LAT_LON or a Service "
                          "NAME[.NAMESPACE])", source=source, field=field)
    return Service(text, name=name, namespace=namespace)


def read_trace(path: str | Path, *, source: str, field: str,
               base_dir: Path | None = None) -> tuple[Path, tuple[float, ...]]:
    """The trace file's path and its timestamps as offsets (s) from the first; ConfigError naming ``field``
    (and the line) when it is missing, unreadable, empty, not numbers or not non-decreasing."""
    if not isinstance(path, str | Path) or not str(path).strip():
        raise ConfigError("must be a file name", source=source, field=field)
    p = Path(str(path)).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"trace file not found: {p}", source=source, field=field) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read trace file {p}: {exc}", source=source, field=field) from None
    stamps: list[float] = []
    for n, line in enumerate(text.splitlines(), 1):
        word = line.split("#", 1)[0].strip().split(",")[0].strip()
        if not word:
            continue
        try:
            t = float(word)
        except ValueError:
            raise ConfigError(f"{p} line {n}: not a timestamp in seconds: {word!r}", source=source,
                              field=field) from None
        if not math.isfinite(t) or (stamps and t < stamps[-1]):
            raise ConfigError(f"{p} line {n}: timestamps must be finite and non-decreasing", source=source,
                              field=field)
        stamps.append(t)
    if not stamps:
        raise ConfigError(f"trace file {p} holds no timestamps", source=source, field=field)
    return p, tuple(t - stamps[0] for t in stamps)


def parse_ia(raw: Any, *, source: str, field: str, default_seed: int = 0) -> Arrivals:
    """:class:`Arrivals` of kind ``ia`` from ``{dist: ..., <params>, seed: ...}``; ConfigError naming the key."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"must be a mapping with dist ({', '.join(DISTRIBUTIONS)}), its parameters and seed",
                          source=source, field=field)
    dist = raw.get("dist")
    if dist not in DISTRIBUTIONS:
        what = "missing" if dist is None else f"unknown distribution {dist!r}"
        raise ConfigError(f"{what} (known: {', '.join(DISTRIBUTIONS)})", source=source, field=f"{field}.dist")
    wanted = DISTRIBUTIONS[dist]
    check_known_keys(raw, {"dist", "seed", *wanted}, source=source, prefix=f"{field}.", what=f"{dist} parameter")
    params = []
    for name in wanted:
        value = raw.get(name)
        if value is None:
            raise ConfigError(f"missing (distribution {dist} needs {', '.join(wanted)})", source=source,
                              field=f"{field}.{name}")
        if not _number(value) or value <= 0:
            raise ConfigError(f"must be a positive number, not {value!r}", source=source, field=f"{field}.{name}")
        params.append((name, float(value)))
    seed = raw.get("seed", default_seed)
    if not (_number(seed) and float(seed).is_integer()):
        raise ConfigError(f"must be an integer, not {seed!r}", source=source, field=f"{field}.seed")
    return Arrivals("ia", dist=str(dist), params=tuple(params), seed=int(seed))


def parse_ia_option(text: str, *, source: str = "--ia", default_seed: int = 0) -> Arrivals:
    """``--ia DIST[:KEY=VALUE,...]`` (``expon:mean_s=0.1,seed=7``) as :class:`Arrivals`."""
    dist, _, rest = str(text).partition(":")
    raw: dict[str, Any] = {"dist": dist.strip()}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"expected KEY=VALUE, not {item!r} (e.g. expon:mean_s=0.1,seed=7)", source=source,
                              field=text)
        try:
            raw[key.strip()] = float(value) if key.strip() != "seed" else int(value)
        except ValueError:
            raise ConfigError(f"not a number: {value!r}", source=source, field=f"{text}: {key.strip()}") from None
    return parse_ia(raw, source=source, field="ia", default_seed=default_seed)


def check_rate(value: Any, *, source: str, field: str) -> float:
    """``rate_hz`` as a float; ConfigError naming ``field`` unless a positive finite number."""
    if not _number(value) or value <= 0:
        raise ConfigError(f"must be a positive number (requests per wall second), not {value!r}", source=source,
                          field=field)
    return float(value)


def parse_group(raw: Any, index: int, *, source: str, base_dir: Path | None = None, default_seed: int = 0,
                zone_label: str | None = None) -> Group:
    """Group ``index`` of a ``workload:`` list; ConfigError naming ``workload[index].<key>``."""
    at = f"workload[{index}]"
    if not isinstance(raw, Mapping):
        raise ConfigError("must be a mapping (keys: service, clients, rate_hz | ia | trace, ...)", source=source,
                          field=at)
    check_known_keys(raw, GROUP_KEYS, source=source, prefix=f"{at}.")
    name = raw.get("name", f"g{index}")
    if not isinstance(name, str) or not _GROUP_RE.fullmatch(name):
        raise ConfigError("must be letters, digits, '-', '_' or '.' (at most 63)", source=source, field=f"{at}.name")
    if "service" not in raw:
        raise ConfigError("missing (zone, a zone key LAT_LON or a Service NAME[.NAMESPACE])", source=source,
                          field=f"{at}.service")
    service = parse_service(raw["service"], source=source, field=f"{at}.service", zone_label=zone_label)
    clients = raw.get("clients", 1)
    if not (_number(clients) and float(clients).is_integer() and clients >= 1):
        raise ConfigError(f"must be a whole number >= 1, not {clients!r}", source=source, field=f"{at}.clients")
    port = raw.get("port")
    if port is not None and not (_number(port) and float(port).is_integer() and 1 <= port <= 65535):
        raise ConfigError(f"must be a port number 1-65535, not {port!r}", source=source, field=f"{at}.port")
    path = raw.get("path", "/")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigError(f"must start with '/', not {path!r}", source=source, field=f"{at}.path")
    given = [k for k in ARRIVAL_KEYS if raw.get(k) is not None]
    if len(given) != 1:
        what = "none given" if not given else f"both {given[0]} and {given[1]} given"
        raise ConfigError(f"give exactly one of rate_hz, ia, trace ({what})", source=source,
                          field=f"{at}.{given[1] if len(given) > 1 else 'rate_hz'}")
    kind = given[0]
    if kind == "rate_hz":
        arrivals = Arrivals("rate", rate_hz=check_rate(raw["rate_hz"], source=source, field=f"{at}.rate_hz"))
    elif kind == "ia":
        arrivals = parse_ia(raw["ia"], source=source, field=f"{at}.ia", default_seed=default_seed)
    else:
        p, stamps = read_trace(raw["trace"], source=source, field=f"{at}.trace", base_dir=base_dir)
        arrivals = Arrivals("trace", trace=stamps, trace_file=str(p))
    return Group(name, service, arrivals, clients=int(clients), port=None if port is None else int(port), path=path)


def parse_workload(raw: Any, *, source: str, base_dir: Path | None = None, default_seed: int = 0,
                   zone_label: str | None = None) -> tuple[Group, ...]:
    """A scenario's ``workload:`` list as :class:`Group` s (checked); ConfigError naming the field."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError("must be a list of client groups", source=source, field="workload")
    groups = tuple(parse_group(g, i, source=source, base_dir=base_dir, default_seed=default_seed,
                               zone_label=zone_label) for i, g in enumerate(raw))  # fmt: skip
    seen: set[str] = set()
    for i, g in enumerate(groups):
        if g.name in seen:
            raise ConfigError(f"duplicate group name {g.name!r}", source=source, field=f"workload[{i}].name")
        seen.add(g.name)
    return groups
