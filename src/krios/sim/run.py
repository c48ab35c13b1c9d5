"""The policy simulator: handovers, availability and client RTT over simulated hours.

It drives the scheduler's and controller's own decision code
(:mod:`krios.control.policies`, :mod:`krios.control.handover`) with simulated time instead of
a cluster, over pass predictions from the orbital engine
(:mod:`krios.orbits.passes`), for several policies and zones at once. The pieces
live in :mod:`krios.sim`: the event engine, grid samples, metrics, report and
plots; this module wires them together and reads the command line's choices.

Example::

    c = Constellation.from_shell("starlink-1", epoch=start)
    config = SimConfig(zones=[zone_spec("sf", Zone(37.77, -122.42, 100.0))],
                       policies=parse_policies("krios,closest"), start=start, duration_s=86400)
    result = simulate(c, config)
    print(report.table(result.metrics))
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from krios.config import defaults as D
from krios.config import resolve, scenarios
from krios.config.times import iso, parse_duration, parse_time
from krios.errors import ConfigError
from krios.orbits import geometry, snapshot
from krios.orbits.constellation import Constellation
from krios.orbits.passes import ZoneTracker, prepare_scan
from krios.orbits.rtt import LatencyModel
from krios.orbits.snapshot import EpochSpread
from krios.orbits.walker import WalkerShell
from krios.orbits.zones import Zone, parse_leozone
from krios.sim import engine, report
from krios.sim.metrics import CDF_PERCENTS, Metrics, measure, rtt_cdf
from krios.sim.model import PolicySpec, Timeline, parse_policies
from krios.sim.samples import ZoneSamples

log = logging.getLogger(__name__)

#: Seconds of pass predictions beyond the end of the run, so that exits after it are known.
HORIZON_MARGIN_S = 3600.0


@dataclass(frozen=True)
class ZoneSpec:
    """A zone to simulate: a display name, the zone, and the client RTT model."""

    name: str
    zone: Zone
    latency: LatencyModel


def zone_spec(name: str, zone: Zone, per_hop_ms: float = D.PER_HOP_MS, hop_km: float = D.HOP_KM,
              rtt_model: str = D.RTT_MODEL) -> ZoneSpec:
    """A :class:`ZoneSpec` whose latency model (``rtt_model``, :data:`krios.orbits.rtt.RTT_MODELS`)
    has its client anywhere in ``zone``."""
    return ZoneSpec(name, zone, LatencyModel(zone, per_hop_ms=per_hop_ms, hop_km=hop_km, rtt_model=rtt_model))


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. Times in unix s, durations in s; defaults in :mod:`krios.config.defaults`.

    Build it with :meth:`from_scenario`.
    """

    zones: list[ZoneSpec]
    policies: list[PolicySpec]
    start: float
    duration_s: float
    step_s: float = D.SIM_STEP_S
    seed: int = D.SEED
    lookahead_s: float = D.LOOKAHEAD_S
    startup_s: float = D.SIM_STARTUP_S

    #: Config field -> scenario key.
    SCENARIO_KEYS: ClassVar[dict[str, str]] = {"start": "start", "seed": "seed",
                                               "lookahead_s": "handover.lookahead_s"}

    @classmethod
    def from_scenario(cls, scenario: scenarios.Scenario | None, **overrides: Any) -> SimConfig:
        """Defaults, then ``scenario``'s keys (may be ``None``), then ``overrides`` that are not ``None``.

        ``zones`` and ``policies`` are required overrides; ``start`` may be unix s
        or ISO 8601, ``duration_s`` seconds or a duration string (``90m``, ``24h``).
        """
        base = {"start": D.START if scenario is None else None, "duration_s": D.SIM_DURATION}
        return resolve.from_scenario(
            cls, scenario, cls.SCENARIO_KEYS,
            {**base, **{k: v for k, v in overrides.items() if v is not None}},
            convert={"start": _as_time, "duration_s": _as_duration},
        )

    def check(self) -> None:
        """Raise :class:`ConfigError` naming the field of a value the simulator cannot run with."""
        for name, low in (("duration_s", 1e-9), ("step_s", 1e-3), ("lookahead_s", 0.0), ("startup_s", 0.0)):
            resolve.check_at_least(self, low, name)
        if self.step_s > self.duration_s:
            raise resolve.field_error("step_s", self.step_s, "must not exceed the duration")
        if not self.zones:
            raise ConfigError("no zone to simulate", source="zones")

    @property
    def end(self) -> float:
        return self.start + self.duration_s


@dataclass
class SimResult:
    """Everything a run produced: figures, timelines, RTT CDFs and wall-clock timings."""

    config: SimConfig
    constellation: str
    satellites: int
    metrics: list[Metrics] = field(default_factory=list)
    timelines: list[Timeline] = field(default_factory=list)
    cdfs: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    passes: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    #: The element sets' epochs, and a warning when the run is far from them (a TLE file only).
    epochs: EpochSpread | None = None
    epoch_warning: str | None = None

    @property
    def rtt_models(self) -> list[str]:
        """The client RTT models of the zones, each once, in zone order."""
        return list(dict.fromkeys(z.latency.rtt_model for z in self.config.zones))

    def headline(self) -> str:
        """Lines naming the constellation and its TLE epochs, the zones, time span, settings and RTT model."""
        c = self.config
        line = (
            f"{self.constellation} ({self.satellites} satellites), {len(c.zones)} zone(s), "
            f"{iso(c.start)} + {c.duration_s / 3600:g} h, step {c.step_s:g} s, "
            f"lookahead {c.lookahead_s:g} s, startup {c.startup_s:g} s, seed {c.seed}"
        )
        line += "\nclient RTT model: " + ", ".join(self.rtt_models)
        if self.epochs is not None:
            line += f"; TLE {self.epochs.describe()}"
        return line

    def document(self) -> dict[str, Any]:
        """The JSON document of ``--json`` and ``simulation.json``."""
        c = self.config
        return {
            "kind": "simulation",
            "config": {
                "constellation": self.constellation,
                "satellites": self.satellites,
                "start": iso(c.start),
                "start_unix": c.start,
                "duration_s": c.duration_s,
                "step_s": c.step_s,
                "seed": c.seed,
                "lookahead_s": c.lookahead_s,
                "startup_s": c.startup_s,
                "rtt_model": self.rtt_models[0] if len(self.rtt_models) == 1 else self.rtt_models,
                "tle_epochs": self.epochs.as_dict() if self.epochs is not None else None,
                "epoch_warning": self.epoch_warning,
                "policies": [
                    {"name": p.name, "chooser": p.chooser, "mode": p.mode, "follow_best": p.follow_best}
                    for p in c.policies
                ],
            },
            "zones": [
                {
                    "name": z.name,
                    "lat_deg": z.zone.lat_deg,
                    "lon_deg": z.zone.lon_deg,
                    "radius_km": z.zone.radius_km,
                    "min_elevation_deg": z.zone.min_elevation_deg,
                    "rtt_model": z.latency.rtt_model,
                    "per_hop_ms": z.latency.per_hop_ms,
                    "hop_km": z.latency.hop_km,
                    "passes": self.passes.get(z.name, 0),
                }
                for z in c.zones
            ],
            "metrics": [m.as_dict() for m in self.metrics],
            "summary": report.summarize(self.metrics),
            "rtt_cdf": {
                "percent": [float(p) for p in CDF_PERCENTS],
                "series": [{"zone": z, "policy": p, "rtt_ms": v} for (z, p), v in self.cdfs.items()],
            },
            "timing": dict(self.timings),
        }


@dataclass
class ZoneOutcome:
    """What one zone produced (returned by worker processes, so plain picklable data)."""

    name: str
    passes: int
    metrics: list[Metrics]
    timelines: list[Timeline]
    cdfs: dict[tuple[str, str], list[float]]
    timings: dict[str, float]


def simulate_zone(
    constellation: Constellation, config: SimConfig, spec: ZoneSpec, gmst: np.ndarray | None = None
) -> ZoneOutcome:
    """Every policy of ``config`` in one zone.

    A :class:`~krios.orbits.passes.ZoneTracker` whose cache spans the run (plus
    :data:`HORIZON_MARGIN_S`) answers the decisions and lists the passes;
    :class:`~krios.sim.samples.ZoneSamples` knows the closest satellite at every
    instant of the ``step_s`` grid and propagates the served samples for the
    RTT; then the event engine runs per policy
    with its own seeded ``random.Random`` (``"<seed>:<zone>:<policy>"``), so
    results do not depend on the order or the process zones run in.
    """
    eligible: dict[int, str | None] = dict.fromkeys(range(len(constellation)))
    timings = {"passes_s": 0.0, "samples_s": 0.0, "decisions_s": 0.0, "metrics_s": 0.0}
    t0 = time.process_time()
    tracker = ZoneTracker(constellation, spec.zone, horizon_s=config.duration_s + HORIZON_MARGIN_S,
                          start=config.start)
    passes = tracker.passes(config.start, config.end + HORIZON_MARGIN_S)
    t1 = time.process_time()
    samples = ZoneSamples(constellation, spec.zone, passes, config.start, config.end, config.step_s, gmst)
    timings["passes_s"] = t1 - t0
    timings["samples_s"] = time.process_time() - t1
    out = ZoneOutcome(spec.name, sum(1 for p in passes if p.enter < config.end), [], [], {}, timings)
    for policy in config.policies:
        t3 = time.process_time()
        rng = random.Random(f"{config.seed}:{spec.name}:{policy.name}")
        out.timelines.append(engine.run(
            policy, spec.name, tracker, samples, eligible, config.start, config.end,
            lookahead_s=config.lookahead_s, startup_s=config.startup_s, rng=rng,
        ))
        timings["decisions_s"] += time.process_time() - t3
    t4 = time.process_time()
    # Every policy's served samples in one call: each distinct sample propagated once, each
    # satellite's run of them in one SGP4 call.
    served = [samples.served_pairs(timeline.service) for timeline in out.timelines]
    rtts = np.split(samples.client_rtt_ms(spec.latency, np.concatenate(served)),
                    np.cumsum([len(pairs) for pairs in served])[:-1])
    for policy, timeline, rtt in zip(config.policies, out.timelines, rtts, strict=True):
        out.metrics.append(measure(timeline, rtt))
        out.cdfs[(spec.name, policy.name)] = rtt_cdf(rtt)
    timings["metrics_s"] += time.process_time() - t4
    return out


#: The constellation worker processes inherit (set before forking them).
_WORKER_CONSTELLATION: Constellation | None = None


def _zone_job(config: SimConfig, spec: ZoneSpec, gmst: np.ndarray) -> ZoneOutcome:
    assert _WORKER_CONSTELLATION is not None
    return simulate_zone(_WORKER_CONSTELLATION, config, spec, gmst)


#: Names under which OpenBLAS builds export their thread-count setter.
_BLAS_SETTERS = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_",
                 "scipy_openblas_set_num_threads", "openblas_set_num_threads64_")


def _one_blas_thread() -> None:
    """Worker initialiser: let the BLAS library numpy loaded use one thread in this process.

    The simulator's matrix products are small (a zone's ring, a few hundred thousand
    3-vectors), and the zones already run one worker per CPU: BLAS threads on top
    only compete for the same cores (on a loaded 2-core machine they cost the RTT
    stage ~1.8x its single-threaded CPU time). Best effort: a BLAS that is not
    OpenBLAS, or that cannot be found, is left as it is.
    """
    import ctypes

    try:
        with open("/proc/self/maps") as maps:
            libs = {line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return
    for path in sorted(libs):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _BLAS_SETTERS:
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(ctypes.c_int(1))
                return


def jobs_for(requested: int, zones: int) -> int:
    """Worker processes for ``zones`` zones: ``requested``, or (0) one per CPU; never more than zones."""
    if requested < 0:
        raise ConfigError("must be 0 (one per CPU) or more", source="jobs", field=str(requested))
    return max(1, min(zones, requested or os.cpu_count() or 1))


def simulate(
    constellation: Constellation,
    config: SimConfig,
    progress: Callable[[str], None] | None = None,
    jobs: int = 1,
) -> SimResult:
    """Run every policy of ``config`` in every zone (:func:`simulate_zone`); return the figures.

    ``jobs > 1`` runs zones in that many forked worker processes (the
    constellation and the orbital engine's scan of it are inherited, not copied
    through pipes; each worker's BLAS runs one thread, :func:`_one_blas_thread`);
    the figures are the same as with ``jobs=1``. ``timings`` holds the wall and CPU time of the
    whole run and, per stage, the CPU time of the process that ran it, summed
    over zones (robust against other load on the machine).
    """
    global _WORKER_CONSTELLATION
    config.check()
    result = SimResult(config, getattr(constellation, "source", "constellation"), len(constellation))
    result.epochs = snapshot.constellation_epochs(constellation.satrecs)
    if not result.constellation.startswith("shell:"):  # a generated shell's elements are exact by definition
        result.epoch_warning = snapshot.window_warning(result.epochs, config.start, config.end, result.constellation)
    wall0 = time.perf_counter()
    cpu0 = _cpu_s()
    n_steps = max(0, math.ceil(config.duration_s / config.step_s - 1e-9))
    gmst = geometry.gmst_angle(config.start + config.step_s * np.arange(n_steps))
    jobs = max(1, min(int(jobs), len(config.zones)))
    scan_cpu = 0.0
    if jobs == 1:
        outcomes = (simulate_zone(constellation, config, spec, gmst) for spec in config.zones)
        pool = None
    else:
        # The orbital engine keeps its last coarse scan of the constellation per window;
        # scanning once here lets every forked worker inherit it instead of repeating it.
        # It runs in ``jobs`` processes too (its CPU time counts in the pass stage).
        scan0 = time.process_time()
        helpers_cpu = prepare_scan(constellation, config.start, config.duration_s + HORIZON_MARGIN_S, jobs=jobs)
        scan_cpu = time.process_time() - scan0 + helpers_cpu
        _WORKER_CONSTELLATION = constellation
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork"),
                                   initializer=_one_blas_thread)
        outcomes = pool.map(_zone_job, *zip(*((config, spec, gmst) for spec in config.zones), strict=True))
    timings = {"passes_s": scan_cpu, "samples_s": 0.0, "decisions_s": 0.0, "metrics_s": 0.0}
    try:
        for zone in outcomes:
            result.passes[zone.name] = zone.passes
            result.metrics += zone.metrics
            result.timelines += zone.timelines
            result.cdfs.update(zone.cdfs)
            for key, value in zone.timings.items():
                timings[key] += value
            if progress:
                for m in zone.metrics:
                    progress(f"{m.zone} {m.policy}: {m.handovers} handovers, "
                             f"availability {100 * m.availability:.3f} %")
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
            _WORKER_CONSTELLATION = None
    wall = time.perf_counter() - wall0
    timings["wall_s"] = wall
    timings["cpu_s"] = _cpu_s() - cpu0
    timings["jobs"] = jobs
    timings["sim_s_per_wall_s"] = config.duration_s / wall if wall > 0 else float("inf")
    result.timings = timings
    return result


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# -- command-line choices -------------------------------------------------------------
def _scenario_zone(s: scenarios.Scenario, radius_km: float | None, min_elev: float | None,
                   rtt_model: str | None = None) -> ZoneSpec:
    zone = Zone.from_scenario(s)
    if radius_km is not None or min_elev is not None:
        zone = _zone(zone.lat_deg, zone.lon_deg,
                     zone.radius_km if radius_km is None else radius_km,
                     zone.min_elevation_deg if min_elev is None else min_elev)
    lat = s.get("latency", {}) or {}
    return zone_spec(s.name, zone, float(lat.get("per_hop_ms", D.PER_HOP_MS)), float(lat.get("hop_km", D.HOP_KM)),
                     rtt_model or str(lat.get("rtt_model", D.RTT_MODEL)))


def _zone(lat: float, lon: float, radius_km: float, min_elev: float) -> Zone:
    try:
        return Zone(lat, lon, radius_km, min_elev)
    except ConfigError as err:
        option = {"radius_km": "--radius-km", "min_elevation_deg": "--min-elevation-deg"}
        key = (err.field or "").split(" ")[0]
        raise ConfigError(err.message, source=option.get(key, "--zone"),
                          field=(err.field or "").split(" ", 1)[-1]) from None


def zones_from_args(args: Any) -> tuple[list[ZoneSpec], scenarios.Scenario | None]:
    """The zones named by ``--scenario``, ``--all-scenarios`` and ``--zone`` (default
    ``sf_4workers``), and the first scenario (for defaults), if any."""
    names = list(args.scenario or [])
    if getattr(args, "all_scenarios", False):
        names += scenarios.available()
    if not names and not args.zone:
        names = ["sf_4workers"]
    loaded = [scenarios.load(n) for n in dict.fromkeys(names)]
    rtt_model = getattr(args, "rtt_model", None)
    out = [_scenario_zone(s, args.radius_km, args.min_elevation_deg, rtt_model) for s in loaded]
    latency = scenarios.DEFAULTS["latency"]
    for label in args.zone or []:
        zone = parse_leozone(
            label,
            radius=D.SIM_ZONE_RADIUS_KM if args.radius_km is None else args.radius_km,
            min_elevation=D.MIN_ELEVATION_DEG if args.min_elevation_deg is None else args.min_elevation_deg,
            source="--zone", radius_source="--radius-km", elevation_source="--min-elevation-deg",
        )
        out.append(zone_spec(label, zone, latency["per_hop_ms"], latency["hop_km"], rtt_model or latency["rtt_model"]))
    seen: set[str] = set()
    unique = []
    for z in out:
        if z.name not in seen:
            seen.add(z.name)
            unique.append(z)
    return unique, (loaded[0] if loaded else None)


def constellation_from_args(args: Any, scenario: scenarios.Scenario | None, start: float) -> Constellation:
    """``--tles``, ``--shell`` or Walker parameters; else the scenario's; else ``starlink-1``.

    Generated elements have their epoch at the scenario's ``constellation.epoch``
    (or ``start``).
    """
    epoch = start
    if scenario is not None and scenario["constellation"].get("epoch"):
        epoch = parse_time(scenario["constellation"]["epoch"], source=f"{scenario.path}: constellation.epoch")
    if args.tles:
        return Constellation.from_file(args.tles)
    if args.shell:
        return Constellation.from_shell(args.shell, epoch, source="--shell")
    walker = {"--planes": args.planes, "--per-plane": args.per_plane,
              "--altitude-km": args.altitude_km, "--inclination-deg": args.inclination_deg}
    given = [k for k, v in walker.items() if v is not None]
    if given:
        missing = [k for k, v in walker.items() if v is None]
        if missing:
            raise ConfigError("Walker parameters need " + ", ".join(walker), source=given[0],
                              field="missing " + ", ".join(missing))
        spec = WalkerShell(f"walker-{args.planes}x{args.per_plane}", args.planes, args.per_plane,
                           args.altitude_km, args.inclination_deg, args.phasing)
        spec.check(source="walker")
        return Constellation.from_shell(spec, epoch)
    if scenario is not None:
        return Constellation.from_scenario(scenario)
    return Constellation.from_shell(D.SHELL, epoch)


def config_from_args(args: Any) -> tuple[SimConfig, Constellation]:
    """The :class:`SimConfig` and constellation of a parsed ``krios simulate`` command line."""
    policies = parse_policies(args.policy)
    zones, first = zones_from_args(args)
    config = SimConfig.from_scenario(
        first, zones=zones, policies=policies, start=args.start, duration_s=args.duration,
        step_s=args.step_s, seed=args.seed, lookahead_s=args.lookahead_s, startup_s=args.startup_s,
    )
    return config, constellation_from_args(args, first, config.start)


def _as_time(value: Any, source: str) -> float:
    return float(value) if isinstance(value, int | float) else parse_time(value, source=source)


def _as_duration(value: Any, source: str) -> float:
    return float(value) if isinstance(value, int | float) else parse_duration(value, source=source)


def write_outputs(folder: Path, result: SimResult) -> list[Path]:
    """Write ``simulation.json``, ``metrics.csv``, ``handovers.csv`` and the PNG plots to ``folder``."""
    from krios.sim.plots import plot_all

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create: {exc.strerror}", source="-o", field=str(folder)) from exc
    paths = [folder / "simulation.json", folder / "metrics.csv", folder / "handovers.csv"]
    paths[0].write_text(report.to_json(result.document()))
    report.write_metrics_csv(paths[1], result.metrics)
    report.write_handovers_csv(paths[2], result.timelines)
    paths += plot_all(folder, result.metrics, result.cdfs)
    return paths
