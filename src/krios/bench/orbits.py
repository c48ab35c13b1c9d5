"""``krios bench orbits``: how fast the orbital engine decides who is in which zone.

One *tick* is one instant: decide, for every zone, which satellites are in it.
The ticks are consecutive instants ``--tick-s`` apart (1 s by default, as the
emulator and the scheduler tick). Four things are timed side by side in one
run, on the same satellites, zones and instants:

naive
    The original's loop: per satellite per tick, parse its TLE
    (``Satrec.twoline2rv``), run ``sgp4``, and check the distance to every zone
    in Python. It is timed on a subset of the satellites and scaled linearly
    to the full count (the loop does the same work for every satellite).
raw sgp4
    The bare ``SatrecArray.sgp4`` call for all satellites at one instant
    (propagation only, no decision): the floor of any engine that propagates
    every satellite every tick.
full engine
    :meth:`krios.orbits.zones.ZoneSet.in_zones`: each tick on its own (vectorised SGP4
    for all satellites, a cell-table cull, exact worst-point elevations for the
    few pairs near a zone's edge).
sequence engine
    :class:`krios.orbits.zonesequence.ZoneSequence`: the same answers (checked every tick
    here), but each tick propagates only the satellites whose decision could
    have changed since they were last propagated (:mod:`krios.orbits.zonesequence`).
    Its figure is *amortised*: the mean over all ticks, the first one (which
    propagates everything) included.

The four are interleaved tick by tick, in rotating order, so a machine shared
with other work slows them alike; the naive, raw and full figures are medians
over the ticks.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sgp4.api import Satrec, jday

from krios.orbits import geometry
from krios.orbits.constellation import Constellation
from krios.orbits.walker import WalkerShell
from krios.orbits.zones import Zone, ZoneSet
from krios.orbits.zonesequence import ZoneSequence

#: Targets from issue 4.
TARGET_VS_NAIVE = 50.0
TARGET_VS_RAW = 2.0
EPOCH = 1767225600.0  # 2026-01-01T00:00:00Z
#: The original hard-codes the shell altitude (km) in its distance check.
NAIVE_ALTITUDE_KM = 550.0


@dataclass
class OrbitsBench:
    sats: int
    zones: int
    ticks: int
    tick_s: float
    engine_ms: float
    sequence_ms: float
    sequence_median_ms: float
    sequence_first_ms: float
    sequence_propagated_per_tick: float
    sequence_identical_ticks: int
    raw_sgp4_ms: float
    naive_ms: float
    naive_sats_measured: int
    naive_ticks_measured: int
    in_zone_pairs_per_tick: float
    zoneset_setup_ms: float
    sequence_setup_ms: float

    @property
    def vs_naive(self) -> float:
        """Full engine: how many times faster than the naive loop."""
        return self.naive_ms / self.engine_ms

    @property
    def vs_raw(self) -> float:
        """Full engine: its time over the raw SGP4 call's."""
        return self.engine_ms / self.raw_sgp4_ms

    @property
    def sequence_vs_naive(self) -> float:
        return self.naive_ms / self.sequence_ms

    @property
    def sequence_vs_raw(self) -> float:
        return self.sequence_ms / self.raw_sgp4_ms

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "engine_vs_naive_speedup": self.vs_naive,
                "engine_vs_raw_sgp4_ratio": self.vs_raw,
                "sequence_vs_naive_speedup": self.sequence_vs_naive,
                "sequence_vs_raw_sgp4_ratio": self.sequence_vs_raw,
                "naive_vs_raw_sgp4_ratio": self.naive_ms / self.raw_sgp4_ms,
                "target_speedup_vs_naive": TARGET_VS_NAIVE, "target_max_ratio_vs_raw": TARGET_VS_RAW}


def bench_constellation(sats: int) -> Constellation:
    """A Walker shell of about ``sats`` satellites at 550 km, 53 deg (100 per plane)."""
    per_plane = min(100, sats)
    planes = max(1, math.ceil(sats / per_plane))
    shell = WalkerShell("bench", planes, per_plane, 550.0, 53.0)
    return Constellation.from_shell(shell, EPOCH)


def bench_zones(count: int, seed: int = 0) -> list[Zone]:
    """``count`` zones under a 53 deg shell: random centres, radii 0/50/100 km, 25 deg."""
    rng = np.random.default_rng(seed)
    return [Zone(float(rng.uniform(-55, 55)), float(rng.uniform(-180, 180)),
                 float(rng.choice([0.0, 50.0, 100.0])), 25.0) for _ in range(count)]


def _naive_tick(lines: list[tuple[str, str]], zones: list[Zone], when: datetime) -> int:
    """The original's per-tick loop over ``lines``; returns the in-zone pair count.

    As the original scheduler does it: per zone, the point at orbit altitude
    above the centre and the "allowable distance"; per satellite, parse its TLE,
    take the Julian date, run SGP4, and compare the straight-line distance with
    the allowable distance for every zone, all in Python.
    """
    targets = [(_geodetic_xyz(z.lat_deg, z.lon_deg, NAIVE_ALTITUDE_KM * 1000.0),
                allowable_distance_km(z)) for z in zones]
    count = 0
    for line1, line2 in lines:
        sat = Satrec.twoline2rv(line1, line2)
        jd, fr = jday(when.year, when.month, when.day, when.hour, when.minute, when.second)
        _, pos, _ = sat.sgp4(jd, fr)
        for (x, y, z), limit in targets:
            dist = math.sqrt((x - pos[0]) * (x - pos[0]) + (y - pos[1]) * (y - pos[1])
                             + (z - pos[2]) * (z - pos[2]))
            if dist < limit:
                count += 1
    return count


def _geodetic_xyz(lat_deg: float, lon_deg: float, height_m: float) -> tuple[float, float, float]:
    """The original's geodetic-to-Cartesian conversion (WGS72 ellipsoid), km."""
    a, f = 6378135.0, 1.0 / 298.26
    e2 = 2.0 * f - f * f
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    v = a / math.sqrt(1.0 - e2 * math.sin(lat) ** 2)
    return ((v + height_m) * math.cos(lat) * math.cos(lon) / 1000.0,
            (v + height_m) * math.cos(lat) * math.sin(lon) / 1000.0,
            (v * (1.0 - e2) + height_m) * math.sin(lat) / 1000.0)


def allowable_distance_km(zone: Zone, altitude_km: float = NAIVE_ALTITUDE_KM) -> float:
    """The original's "allowable distance": the chord, at orbit radius, of the Earth
    central angle within which a satellite sees the whole zone above the minimum
    elevation (spherical Earth of radius 6378.135 km)."""
    r_e = 6378.135
    e = math.radians(zone.min_elevation_deg)
    at_orbit = np.arcsin(np.sin(np.pi / 2 + e) * r_e / (altitude_km + r_e))
    phi = np.pi / 2 - e - at_orbit - zone.radius_km / r_e
    return float(2 * (r_e + altitude_km) * np.sin(phi / 2))


def run(sats: int = 10_000, zones: int = 100, ticks: int = 120, naive_sats: int = 300,
        naive_ticks: int | None = None, seed: int = 0, tick_s: float = 1.0) -> OrbitsBench:
    """Time naive loop, raw SGP4, full engine and sequence engine tick by tick over
    ``ticks`` consecutive instants ``tick_s`` apart; see the module docstring.

    The four are interleaved within each tick (their order rotating), so load
    from other processes falls on all of them alike. The naive loop runs on
    ``naive_sats`` evenly spread satellites in the first ``naive_ticks`` ticks
    (default: every tick) and is scaled linearly to all satellites.
    """
    constellation = bench_constellation(sats)
    zone_list = bench_zones(zones, seed)
    start = time.perf_counter()
    zone_set = ZoneSet(constellation, zone_list)
    zoneset_setup = time.perf_counter() - start
    naive_ticks = ticks if naive_ticks is None else min(naive_ticks, ticks)
    step = max(1, len(constellation) // max(1, naive_sats))
    subset = [(t.line1, t.line2) for t in constellation.tles[::step]][:naive_sats]
    scale = len(constellation) / len(subset)
    times = EPOCH + 3600.0 + tick_s * np.arange(ticks)
    jd = np.zeros(1)
    fr = np.zeros(1)
    engine: list[float] = []
    sequence: list[float] = []
    propagated: list[int] = []
    raw: list[float] = []
    naive: list[float] = []
    pairs = []
    identical = 0
    zone_set.in_zones(float(times[0]) - 600.0)  # warm up (an instant outside the run)
    start = time.perf_counter()
    seq = ZoneSequence(zone_set)  # set up once, like the ZoneSet (reported apart); its first tick is timed
    sequence_setup = time.perf_counter() - start
    for k, t in enumerate(times):
        jd[0], fr[0] = (float(x[0]) for x in geometry.jd_utc([t]))
        when = datetime.fromtimestamp(float(t), tz=UTC)
        full_out: list[np.ndarray] = []
        seq_out: list[np.ndarray] = []
        for which in np.roll(np.arange(4), k):
            start = time.perf_counter()
            if which == 0:
                full_out = zone_set.in_zones(float(t))
                engine.append(time.perf_counter() - start)
            elif which == 1:
                seq_out = seq.in_zones(float(t))
                sequence.append(time.perf_counter() - start)
                propagated.append(seq.last_propagated)
            elif which == 2:
                constellation.array.sgp4(jd, fr)
                raw.append(time.perf_counter() - start)
            elif k < naive_ticks:
                _naive_tick(subset, zone_list, when)
                naive.append((time.perf_counter() - start) * scale)
        pairs.append(sum(len(o) for o in full_out))
        identical += all(np.array_equal(a, b) for a, b in zip(full_out, seq_out, strict=True))
    return OrbitsBench(
        sats=len(constellation), zones=zones, ticks=ticks, tick_s=tick_s,
        engine_ms=statistics.median(engine) * 1e3,
        sequence_ms=statistics.fmean(sequence) * 1e3,
        sequence_median_ms=statistics.median(sequence) * 1e3,
        sequence_first_ms=sequence[0] * 1e3,
        sequence_propagated_per_tick=float(np.mean(propagated[1:])) if ticks > 1 else float(sats),
        sequence_identical_ticks=identical,
        raw_sgp4_ms=statistics.median(raw) * 1e3,
        naive_ms=statistics.median(naive) * 1e3, naive_sats_measured=len(subset),
        naive_ticks_measured=len(naive), in_zone_pairs_per_tick=float(np.mean(pairs)),
        zoneset_setup_ms=zoneset_setup * 1e3, sequence_setup_ms=sequence_setup * 1e3)


def report(result: OrbitsBench) -> str:
    """Human-readable figures and ratios."""
    def verdict(ok: bool) -> str:
        return "meets" if ok else "MISSES"

    r = result
    return "\n".join([
        f"orbits benchmark: {r.sats} satellites x {r.zones} zones, {r.ticks} consecutive ticks "
        f"{r.tick_s:g} s apart (one tick = which satellites are in each zone at one instant)",
        f"  naive loop (original)         {r.naive_ms:10.2f} ms/tick  median; TLE parse + sgp4 + "
        f"distance per satellite in Python, timed on {r.naive_sats_measured} satellites x "
        f"{r.naive_ticks_measured} ticks, scaled linearly to {r.sats}",
        f"  raw SatrecArray.sgp4          {r.raw_sgp4_ms:10.2f} ms/tick  median; all {r.sats} "
        f"satellites, propagation only, no zone decided",
        f"  full engine (in_zones)        {r.engine_ms:10.2f} ms/tick  median; every tick on its "
        f"own: propagate all, decide all zones ({r.in_zone_pairs_per_tick:.0f} pairs in zone)",
        f"  sequence engine (sequence())  {r.sequence_ms:10.2f} ms/tick  amortised: mean of all "
        f"{r.ticks} ticks incl. the first ({r.sequence_first_ms:.1f} ms, propagates all); "
        f"median {r.sequence_median_ms:.2f} ms; {r.sequence_propagated_per_tick:.0f} of {r.sats} "
        f"satellites propagated per later tick",
        f"  sequence answers identical to the full engine's in {r.sequence_identical_ticks} of "
        f"{r.ticks} ticks",
        f"                      vs naive (target >= {TARGET_VS_NAIVE:g}x)    "
        f"/ raw sgp4 (target <= {TARGET_VS_RAW:g}x)",
        f"  full engine       {r.vs_naive:8.1f}x faster  {verdict(r.vs_naive >= TARGET_VS_NAIVE):<6}     "
        f"{r.vs_raw:6.2f}x  {verdict(r.vs_raw <= TARGET_VS_RAW)}",
        f"  sequence engine   {r.sequence_vs_naive:8.1f}x faster  "
        f"{verdict(r.sequence_vs_naive >= TARGET_VS_NAIVE):<6}     "
        f"{r.sequence_vs_raw:6.2f}x  {verdict(r.sequence_vs_raw <= TARGET_VS_RAW)}",
        f"  naive / raw sgp4: {r.naive_ms / r.raw_sgp4_ms:6.1f}x (the most an engine that runs "
        f"SGP4 for every satellite every tick could gain over the naive loop)",
        f"  set up once, not in the figures: ZoneSet {r.zoneset_setup_ms:.0f} ms, "
        f"sequence {r.sequence_setup_ms:.0f} ms",
    ])
