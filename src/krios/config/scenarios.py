"""Experiment scenarios: data files in ``scenarios/*.yml``.

A scenario names the ground zone an app is pinned to, how many worker nodes
emulate satellites, the constellation, and the emulator, handover, latency
and benchmark defaults. ``scenarios/README.md`` documents every key.

Search order: the folders in ``KRIOS_SCENARIO_PATH`` (colon-separated), then
the repository's ``scenarios/`` folder.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from krios.config import defaults as D
from krios.config.keys import check_known_keys
from krios.config.leozone import leozone_label
from krios.config.workload import Group, parse_workload
from krios.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DIR = REPO_ROOT / "scenarios"

#: Keys every scenario must define, with the type each must have.
REQUIRED: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "zone": dict,
    "workers": int,
}

#: What a scenario file may leave out, from :mod:`krios.config.defaults`.
DEFAULTS: dict[str, Any] = {
    "description": "",
    "constellation": {"shell": D.SHELL, "epoch": D.EPOCH},
    "start": D.START,
    "duration_s": D.DURATION_S,
    "acceleration": D.ACCELERATION,
    "seed": D.SEED,
    "tick_s": D.TICK_S,
    "policy": D.POLICY,
    "handover": {"mode": D.HANDOVER_MODE, "lookahead_s": D.LOOKAHEAD_S, "ready_timeout_s": D.READY_TIMEOUT_S},
    "latency": {"per_hop_ms": D.PER_HOP_MS, "hop_km": D.HOP_KM, "rtt_model": D.RTT_MODEL},
    "client": {"rate_hz": D.CLIENT_RATE_HZ, "timeout_s": D.CLIENT_TIMEOUT_S},
    "benchmark": {"latency_ms": list(D.BENCH_LATENCY_MS), "samples_per_latency": D.BENCH_SAMPLES_PER_LATENCY,
                  "warmup_samples": D.BENCH_WARMUP_SAMPLES},
}
#: Zone keys a scenario may leave out.
ZONE_DEFAULTS: dict[str, Any] = {"radius_km": D.ZONE_RADIUS_KM, "min_elevation_deg": D.MIN_ELEVATION_DEG}
#: Keys a scenario may hold besides those of :data:`REQUIRED`, :data:`DEFAULTS` and
#: :data:`ZONE_DEFAULTS` (``zone.lat``/``zone.lon`` are required; ``constellation.tles``
#: replaces the Walker shell). Any other key is refused (a typo would silently fall
#: back to the default).
EXTRA_KEYS: dict[str, frozenset[str]] = {"zone": frozenset({"lat", "lon"}), "constellation": frozenset({"tles"})}
#: Keys (dotted) whose value is one of a fixed set (mirrors ``krios.control.policies.POLICIES``,
#: ``krios.control.handover.MODES`` and ``krios.orbits.rtt.RTT_MODELS``, which
#: ``tests/test_reliability_inputs.py`` and ``tests/test_fidelity.py`` check).
CHOICES: dict[str, tuple[str, ...]] = {
    "policy": ("krios", "closest", "random"),
    "handover.mode": ("proactive", "reactive"),
    "latency.rtt_model": ("physical", "krios-emulator"),
}
#: Keys (dotted) whose value must be a whole number; other numeric keys take any number.
INTEGER_KEYS = frozenset({"seed", "benchmark.samples_per_latency", "benchmark.warmup_samples"})
#: Keys (dotted) that take a time: an ISO 8601 string, ``now`` or unix seconds.
TIME_KEYS = frozenset({"start", "constellation.epoch"})


def _check_keys(raw: dict[str, Any], schema: dict[str, Any], path: Path, prefix: str = "") -> None:
    """Raise :class:`ConfigError` naming the file and the dotted key for a key the scenario format
    does not have (``handover.lookhead_s``), with the closest known key if one is close."""
    section = prefix.rstrip(".")
    known = set(schema) | EXTRA_KEYS.get(section, frozenset())
    check_known_keys(raw, known, source=str(path), prefix=prefix)
    for key, sub in schema.items():
        if isinstance(sub, dict) and isinstance(raw.get(key), dict):
            _check_keys(raw[key], sub, path, prefix=f"{prefix}{key}.")


def _check_types(raw: dict[str, Any], defaults: dict[str, Any], path: Path, prefix: str = "") -> None:
    """Raise :class:`ConfigError` naming file and key for a value whose type does not fit the
    default's (``handover: oops``, ``seed: abc``, ``tick_s: [1]``); unknown keys are not checked."""
    for key, default in defaults.items():
        if key not in raw:
            continue
        value, dotted = raw[key], f"{prefix}{key}"
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"must be a mapping (keys: {', '.join(default)})", source=str(path), field=dotted)
            _check_types(value, default, path, prefix=f"{dotted}.")
        elif dotted in TIME_KEYS:
            if not (isinstance(value, str) or number):
                raise ConfigError("must be an ISO 8601 time, 'now' or unix seconds", source=str(path), field=dotted)
        elif isinstance(default, str):
            if not isinstance(value, str):
                raise ConfigError("must be a string", source=str(path), field=dotted)
            if dotted in CHOICES and value not in CHOICES[dotted]:
                raise ConfigError(f"unknown value {value!r} (known: {', '.join(CHOICES[dotted])})",
                                  source=str(path), field=dotted)
        elif isinstance(default, list | tuple):
            items = value if isinstance(value, list) else [value]
            if not items or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in items):
                raise ConfigError("must be a number or a list of numbers", source=str(path), field=dotted)
        elif dotted in INTEGER_KEYS:
            if not (number and float(value).is_integer()):
                raise ConfigError("must be an integer", source=str(path), field=dotted)
        elif isinstance(default, int | float) and not (number and math.isfinite(value)):
            raise ConfigError("must be a number", source=str(path), field=dotted)


@dataclass(frozen=True)
class Scenario:
    """One scenario file, merged over :data:`DEFAULTS`.

    ``data`` holds every key (nested dicts as in the file); the properties
    below are the ones most callers need.
    """

    name: str
    path: Path
    data: dict[str, Any] = field(repr=False)
    #: The ``workload:`` client groups, parsed and checked (:mod:`krios.config.workload`); may be empty.
    workload: tuple[Group, ...] = field(default=(), repr=False)

    @property
    def workers(self) -> int:
        return int(self.data["workers"])

    @property
    def zone(self) -> dict[str, Any]:
        """``{"lat": deg, "lon": deg, "radius_km": km, "min_elevation_deg": deg}``."""
        return self.data["zone"]

    @property
    def leozone(self) -> str:
        """The pod label value of this scenario's zone: ``<lat>_<lon>`` where Kubernetes accepts it,
        else the hemisphere form ``s33.8688_e151.2093`` (:func:`krios.config.leozone.leozone_label`)."""
        return leozone_label(self.zone["lat"], self.zone["lon"])

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


def search_path() -> list[Path]:
    """Folders searched for scenario files, first match wins."""
    extra = [Path(p) for p in os.environ.get("KRIOS_SCENARIO_PATH", "").split(":") if p]
    return [*extra, DEFAULT_DIR]


def available() -> list[str]:
    """Names of every scenario on the search path, sorted."""
    names: set[str] = set()
    for folder in search_path():
        if folder.is_dir():
            names.update(p.stem for p in folder.glob("*.yml"))
    return sorted(names)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load(name_or_path: str | os.PathLike[str]) -> Scenario:
    """Load a scenario by name (searched on :func:`search_path`) or by file path.

    Raises :class:`~krios.errors.ConfigError` naming the file and field for an
    unknown scenario (listing the known ones), unreadable or invalid YAML, or a
    missing or mistyped key.
    """
    text = str(name_or_path)
    if text.endswith((".yml", ".yaml")) or os.sep in text:
        path = Path(text)
        if not path.is_file():
            raise ConfigError("no such scenario file", source=text)
    else:
        found = [d / f"{text}.yml" for d in search_path() if (d / f"{text}.yml").is_file()]
        if not found:
            known = ", ".join(available()) or "none"
            raise ConfigError(f"unknown scenario (known: {known})", source="scenario", field=text)
        path = found[0]
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=str(path)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else None
        raise ConfigError(f"invalid YAML: {getattr(exc, 'problem', exc)}", source=str(path), field=where) from exc
    if not isinstance(raw, dict):
        raise ConfigError("a scenario must be a mapping", source=str(path))
    for key, typ in REQUIRED.items():
        if key not in raw:
            raise ConfigError("missing key", source=str(path), field=key)
        if not isinstance(raw[key], typ) or isinstance(raw[key], bool):
            raise ConfigError(f"must be a {getattr(typ, '__name__', typ)}", source=str(path), field=key)
    if raw["name"] != path.stem:
        raise ConfigError(f"must equal the file name {path.stem!r}", source=str(path), field="name")
    if raw["workers"] < 1:
        raise ConfigError("must be at least 1", source=str(path), field="workers")
    _check_keys(raw, {**REQUIRED, **DEFAULTS, "zone": ZONE_DEFAULTS, "workload": None}, path)
    _check_types(raw, {**DEFAULTS, "zone": ZONE_DEFAULTS}, path)
    zone = raw["zone"]
    for key in ("lat", "lon"):
        if not isinstance(zone.get(key), int | float) or isinstance(zone.get(key), bool):
            raise ConfigError("must be a number in degrees", source=str(path), field=f"zone.{key}")
    if not -90 <= zone["lat"] <= 90:
        raise ConfigError("latitude must be within [-90, 90]", source=str(path), field="zone.lat")
    if not -180 <= zone["lon"] <= 180:
        raise ConfigError("longitude must be within [-180, 180]", source=str(path), field="zone.lon")
    data = _merge(DEFAULTS, raw)
    for key, value in ZONE_DEFAULTS.items():
        data["zone"].setdefault(key, value)
    # the client groups (krios.config.workload), checked now: a bad group fails the load, naming its field
    workload = parse_workload(raw.get("workload"), source=str(path), base_dir=path.parent,
                              default_seed=int(data["seed"]), zone_label=leozone_label(zone["lat"], zone["lon"]))
    return Scenario(name=raw["name"], path=path, data=data, workload=workload)


def reference(scenario: Scenario) -> str:
    """How to name ``scenario`` so that :func:`load` finds this very file again.

    Its name when the search path resolves that name to the same file (the
    scenarios shipped in ``scenarios/``), else the file's absolute path (e.g. the
    ``lab_<N>workers.yml`` that ``krios lab up`` writes beside its inventory).
    """
    try:
        if load(scenario.name).path.resolve() == scenario.path.resolve():
            return scenario.name
    except ConfigError:
        pass
    return str(scenario.path.resolve())
