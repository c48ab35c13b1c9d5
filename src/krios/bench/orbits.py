"""``krios bench orbits``: how fast the orbital engine decides who is in which zone.

One *tick* is one instant: propagate every satellite and decide, for every
zone, which satellites are in it. Three ways are timed side by side in one
run, on the same satellites and zones:

engine
    :meth:`krios.zones.ZoneSet.in_zones` (vectorised SGP4, one matrix-product
    cull in TEME, exact worst-point elevations for the few pairs near a
    zone's edge).
raw sgp4
    The bare ``SatrecArray.sgp4`` call for the same satellites at one instant:
    the floor any SGP4-based engine pays.
naive
    The original's loop: per satellite per tick, parse its TLE
    (``Satrec.twoline2rv``), run ``sgp4``, and check the distance to every zone
    in Python. It is timed on a subset of the satellites and scaled linearly
    to the full count (the loop does the same work for every satellite).

The three are interleaved tick by tick, so a machine shared with other work
slows them alike; the medians over the ticks are reported.
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

from krios import geometry
from krios.constellation import Constellation
from krios.walker import WalkerShell
from krios.zones import Zone, ZoneSet

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
    engine_ms: float
    raw_sgp4_ms: float
    naive_ms: float
    naive_sats_measured: int
    naive_ticks_measured: int
    in_zone_pairs_per_tick: float

    @property
    def vs_naive(self) -> float:
        return self.naive_ms / self.engine_ms

    @property
    def vs_raw(self) -> float:
        return self.engine_ms / self.raw_sgp4_ms

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "engine_vs_naive_speedup": self.vs_naive,
                "engine_vs_raw_sgp4_ratio": self.vs_raw,
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


def run(sats: int = 10_000, zones: int = 100, ticks: int = 30, naive_sats: int = 300,
        naive_ticks: int | None = None, seed: int = 0) -> OrbitsBench:
    """Time engine, raw SGP4 and the naive loop tick by tick; see the module docstring.

    The three are interleaved within each tick (their order rotating), so load
    from other processes falls on all of them alike. The naive loop runs on
    ``naive_sats`` evenly spread satellites in the first ``naive_ticks`` ticks
    (default: every tick) and is scaled linearly to all satellites.
    """
    constellation = bench_constellation(sats)
    zone_list = bench_zones(zones, seed)
    zone_set = ZoneSet(constellation, zone_list)
    naive_ticks = ticks if naive_ticks is None else min(naive_ticks, ticks)
    step = max(1, len(constellation) // max(1, naive_sats))
    subset = [(t.line1, t.line2) for t in constellation.tles[::step]][:naive_sats]
    scale = len(constellation) / len(subset)
    times = EPOCH + 3600.0 + 7.3 * np.arange(ticks + 1)
    jd = np.zeros(1)
    fr = np.zeros(1)
    engine: list[float] = []
    raw: list[float] = []
    naive: list[float] = []
    pairs = []
    zone_set.in_zones(float(times[0]))  # warm up
    for k, t in enumerate(times[1:]):
        jd[0], fr[0] = (float(x[0]) for x in geometry.jd_utc([t]))
        when = datetime.fromtimestamp(float(t), tz=UTC)
        for which in np.roll(np.arange(3), k):
            start = time.perf_counter()
            if which == 0:
                out = zone_set.in_zones(float(t))
                engine.append(time.perf_counter() - start)
                pairs.append(sum(len(o) for o in out))
            elif which == 1:
                constellation.array.sgp4(jd, fr)
                raw.append(time.perf_counter() - start)
            elif k < naive_ticks:
                _naive_tick(subset, zone_list, when)
                naive.append((time.perf_counter() - start) * scale)
    return OrbitsBench(
        sats=len(constellation), zones=zones, ticks=ticks,
        engine_ms=statistics.median(engine) * 1e3, raw_sgp4_ms=statistics.median(raw) * 1e3,
        naive_ms=statistics.median(naive) * 1e3, naive_sats_measured=len(subset),
        naive_ticks_measured=len(naive), in_zone_pairs_per_tick=float(np.mean(pairs)))


def report(result: OrbitsBench) -> str:
    """Human-readable figures and ratios."""
    ok_naive = "meets" if result.vs_naive >= TARGET_VS_NAIVE else "MISSES"
    ok_raw = "meets" if result.vs_raw <= TARGET_VS_RAW else "MISSES"
    return "\n".join([
        f"orbits benchmark: {result.sats} satellites x {result.zones} zones, "
        f"median of {result.ticks} ticks (one tick = propagate all + decide all zones)",
        f"  engine (ZoneSet.in_zones)     {result.engine_ms:10.2f} ms/tick  "
        f"({result.in_zone_pairs_per_tick:.0f} satellite-zone pairs in zone per tick)",
        f"  raw SatrecArray.sgp4          {result.raw_sgp4_ms:10.2f} ms/tick",
        f"  naive loop (original)         {result.naive_ms:10.2f} ms/tick  "
        f"(measured on {result.naive_sats_measured} satellites x {result.naive_ticks_measured} "
        f"ticks, scaled linearly to {result.sats})",
        f"  engine vs naive: {result.vs_naive:7.1f}x faster   (target >= {TARGET_VS_NAIVE:g}x: "
        f"{ok_naive})",
        f"  engine / raw sgp4: {result.vs_raw:5.2f}x        (target <= {TARGET_VS_RAW:g}x: {ok_raw})",
        f"  naive / raw sgp4:  {result.naive_ms / result.raw_sgp4_ms:5.1f}x        (the most any "
        f"engine that runs SGP4 for every satellite each tick could gain over the naive loop)",
    ])
