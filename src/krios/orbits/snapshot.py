"""Real constellation snapshots: a CelesTrak-style TLE file filtered down to one shell.

Researchers simulate against element sets published for real satellites (e.g.
CelesTrak's Starlink group, 3-line form). Such a snapshot mixes shells, holds
satellites still raising their orbits or already decaying, may list a
satellite twice, and its element sets were fitted at different epochs.
:func:`import_snapshot` makes one shell out of it:

1. every record's lines are checked (:func:`krios.orbits.tle.parse_tle_records`);
   a bad checksum or a malformed line is one :class:`~krios.errors.ConfigError`
   naming the file and the line;
2. duplicates (the same catalog number) keep the element set with the newest
   epoch (a tie: the later in the file); the others are dropped, with a warning;
3. decayed satellites are dropped, with a warning: elements SGP4 cannot
   propagate or whose perigee is below the surface
   (:func:`krios.orbits.tle.check_orbit`), or a mean altitude below
   :data:`DECAY_FLOOR_KM`;
4. the rest are kept if they lie in the shell: an inclination band (deg), a
   mean-altitude band (km) and a name pattern (a regular expression searched in
   the name line), each optional.

The mean altitude is the semi-major axis from the TLE's (Kozai) mean motion
with the WGS72 constants SGP4 uses, less the WGS72 equatorial radius,
``(mu / n^2)^(1/3) - 6378.135 km``: for a generated Walker shell it returns the
shell's altitude (:mod:`krios.orbits.walker`); for a real satellite it is its
mean altitude to a few km. Epochs are UTC unix seconds.

SGP4's along-track error grows by roughly a kilometre or more per day away from
the epoch, so a simulation far from the snapshot's epochs simulates a
constellation that no longer looks like that (:func:`EpochSpread.gap_days`,
:data:`EPOCH_WARN_DAYS`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sgp4.api import WGS72, Satrec

from krios.config.times import iso
from krios.errors import ConfigError
from krios.orbits.tle import TLE, check_orbit, parse_tle_records, read_tle_text, write_tles
from krios.orbits.walker import EARTH_RADIUS_KM, MU_KM3_S2

#: Mean altitude (km) below which a satellite counts as decayed: below ~200 km an orbit
#: lasts days, and no operational shell flies there.
DECAY_FLOOR_KM = 200.0
#: Days between the simulated window and the nearest TLE epoch beyond which the simulator warns.
EPOCH_WARN_DAYS = 3.0
#: Julian date of the unix epoch.
_UNIX0_JD = 2440587.5


def mean_altitude_km(tle: TLE) -> float:
    """Mean altitude (km) from line 2's mean motion (rev/day): ``(mu / n^2)^(1/3) - R`` (WGS72)."""
    n = float(tle.line2[52:63]) * 2.0 * math.pi / 86400.0  # rad/s
    return (MU_KM3_S2 / n**2) ** (1.0 / 3.0) - EARTH_RADIUS_KM


def inclination_deg(tle: TLE) -> float:
    """Inclination (deg) from line 2."""
    return float(tle.line2[8:16])


def epoch_unix(tle: TLE) -> float:
    """The element set's epoch, UTC unix seconds."""
    sat = Satrec.twoline2rv(tle.line1, tle.line2, WGS72)
    return satrec_epoch_unix(sat)


def satrec_epoch_unix(sat: Satrec) -> float:
    """A parsed :class:`sgp4.api.Satrec`'s epoch, UTC unix seconds."""
    return ((sat.jdsatepoch - _UNIX0_JD) + sat.jdsatepochF) * 86400.0


@dataclass(frozen=True)
class EpochSpread:
    """The epochs of a set of element sets: first, median and last, UTC unix seconds."""

    first: float
    median: float
    last: float

    @classmethod
    def of(cls, epochs: Sequence[float] | np.ndarray) -> EpochSpread:
        e = np.asarray(epochs, dtype=float)
        if e.size == 0:
            raise ValueError("no epochs")
        return cls(float(e.min()), float(np.median(e)), float(e.max()))

    @property
    def spread_days(self) -> float:
        """Days from the first to the last epoch."""
        return (self.last - self.first) / 86400.0

    def gap_days(self, start: float, end: float) -> float:
        """Days between the window ``[start, end]`` (unix s) and ``[first, last]``; 0 if they overlap."""
        return max(0.0, start - self.last, self.first - end) / 86400.0

    def describe(self) -> str:
        """``epochs 2026-01-01T00:00:00Z .. 2026-01-03T12:00:00Z (spread 2.5 d, median ...)``."""
        if self.spread_days == 0:
            return f"epoch {iso(self.first)} (all element sets)"
        return (f"epochs {iso(self.first)} .. {iso(self.last)} (spread {self.spread_days:.2f} d, "
                f"median {iso(self.median)})")

    def as_dict(self) -> dict[str, Any]:
        return {"first": iso(self.first), "median": iso(self.median), "last": iso(self.last),
                "first_unix": self.first, "last_unix": self.last, "spread_days": round(self.spread_days, 4)}


def constellation_epochs(satrecs: Sequence[Satrec]) -> EpochSpread:
    """The :class:`EpochSpread` of parsed satellites (``Constellation.satrecs``)."""
    return EpochSpread.of([satrec_epoch_unix(s) for s in satrecs])


def window_warning(spread: EpochSpread, start: float, end: float, source: str) -> str | None:
    """A warning when the window ``[start, end]`` lies more than :data:`EPOCH_WARN_DAYS` from the
    element sets' epochs, else ``None``."""
    gap = spread.gap_days(start, end)
    if gap <= EPOCH_WARN_DAYS:
        return None
    side = "after the newest" if start > spread.last else "before the oldest"
    return (f"{source}: the simulated window is {gap:.1f} days {side} TLE epoch; SGP4 errors grow by "
            f"km per day, so positions are unreliable: use element sets from the simulated dates")


def parse_range(text: str, source: str) -> tuple[float, float]:
    """``LOW:HIGH`` (numbers, LOW <= HIGH) -> ``(low, high)``; anything else is a :class:`ConfigError`."""
    parts = str(text).split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise ConfigError("must be LOW:HIGH, e.g. 52.9:53.1", source=source, field=str(text)) from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ConfigError("must be LOW:HIGH with LOW <= HIGH", source=source, field=str(text))
    return low, high


@dataclass(frozen=True)
class ShellFilter:
    """Which satellites form the shell; ``None`` bands and pattern match everything.

    ``inclination_deg`` and ``altitude_km`` are closed ``(low, high)`` bands
    (deg; km of mean altitude); ``name`` a regular expression searched in the
    satellite's name; ``decay_floor_km`` the mean altitude below which a satellite
    is dropped as decayed.
    """

    inclination_deg: tuple[float, float] | None = None
    altitude_km: tuple[float, float] | None = None
    name: str | None = None
    decay_floor_km: float = DECAY_FLOOR_KM

    def pattern(self) -> re.Pattern[str] | None:
        if self.name is None:
            return None
        try:
            return re.compile(self.name)
        except re.error as exc:
            raise ConfigError(f"not a regular expression: {exc}", source="name", field=self.name) from None

    def describe(self) -> str:
        parts = []
        if self.inclination_deg:
            parts.append(f"inclination {self.inclination_deg[0]:g}..{self.inclination_deg[1]:g} deg")
        if self.altitude_km:
            parts.append(f"altitude {self.altitude_km[0]:g}..{self.altitude_km[1]:g} km")
        if self.name is not None:
            parts.append(f"name /{self.name}/")
        return ", ".join(parts) or "no filter"


@dataclass(frozen=True)
class Dropped:
    """A satellite left out, with the file line of its line 2 and why."""

    tle: TLE
    line: int
    reason: str

    def describe(self) -> str:
        return f"{self.tle.name} (line {self.line}): {self.reason}"


@dataclass
class ImportResult:
    """What :func:`import_snapshot` read, kept and dropped."""

    source: str
    read: int
    kept: list[TLE] = field(default_factory=list)
    duplicates: list[Dropped] = field(default_factory=list)
    decayed: list[Dropped] = field(default_factory=list)
    outside: int = 0
    spread: EpochSpread | None = None
    snapshot_spread: EpochSpread | None = None

    def warnings(self, limit: int = 5) -> list[str]:
        """One line per kind of drop, naming the first ``limit`` satellites."""
        out = []
        for label, items in (("duplicate", self.duplicates), ("decayed", self.decayed)):
            if items:
                shown = "; ".join(d.describe() for d in items[:limit])
                more = f"; and {len(items) - limit} more" if len(items) > limit else ""
                out.append(f"{self.source}: dropped {len(items)} {label} satellite(s): {shown}{more}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "read": self.read, "kept": len(self.kept), "outside_shell": self.outside,
            "duplicates": [{"name": d.tle.name, "line": d.line, "reason": d.reason} for d in self.duplicates],
            "decayed": [{"name": d.tle.name, "line": d.line, "reason": d.reason} for d in self.decayed],
            "epochs": self.spread.as_dict() if self.spread else None,
            "snapshot_epochs": self.snapshot_spread.as_dict() if self.snapshot_spread else None,
        }


def read_snapshot(path: str | os.PathLike[str]) -> list[tuple[int, TLE]]:
    """Every record of a TLE file with the line number of its line 2, lines checked, orbits not."""
    source = str(path)
    text = read_tle_text(path)
    records = parse_tle_records(text, source, check_orbits=False)
    if not records:
        raise ConfigError("no element sets in the file", source=source)
    return records


def import_snapshot(path: str | os.PathLike[str], flt: ShellFilter) -> ImportResult:
    """Read the snapshot at ``path`` and filter it to the shell ``flt`` (module docs, steps 1-4).

    Raises :class:`ConfigError` for a malformed file (naming file and line), a
    bad filter, or when no satellite is left.
    """
    source = str(path)
    pattern = flt.pattern()
    records = read_snapshot(path)
    result = ImportResult(source, len(records))
    dated = [(lineno, tle, epoch_unix(tle)) for lineno, tle in records]
    result.snapshot_spread = EpochSpread.of([e for _n, _t, e in dated])
    newest: dict[str, tuple[int, TLE, float]] = {}
    for rec in dated:
        catalog = rec[1].catalog
        held = newest.get(catalog)
        if held is None:
            newest[catalog] = rec
            continue
        old = held
        if rec[2] >= held[2]:
            newest[catalog] = rec
        else:
            old = rec
        result.duplicates.append(Dropped(old[1], old[0], f"catalog number {catalog} again; kept the newer "
                                         f"epoch at line {newest[catalog][0]}"))
    kept_epochs = []
    for lineno, tle, epoch in sorted(newest.values(), key=lambda r: r[0]):
        try:
            check_orbit(tle, lineno, source)
        except ConfigError as err:
            result.decayed.append(Dropped(tle, lineno, err.message))
            continue
        alt = mean_altitude_km(tle)
        if alt < flt.decay_floor_km:
            result.decayed.append(Dropped(tle, lineno, f"mean altitude {alt:.0f} km is below "
                                          f"{flt.decay_floor_km:g} km"))
            continue
        inc = inclination_deg(tle)
        if ((flt.inclination_deg and not flt.inclination_deg[0] <= inc <= flt.inclination_deg[1])
                or (flt.altitude_km and not flt.altitude_km[0] <= alt <= flt.altitude_km[1])
                or (pattern is not None and not pattern.search(tle.name))):
            result.outside += 1
            continue
        result.kept.append(tle)
        kept_epochs.append(epoch)
    if not result.kept:
        raise ConfigError(f"no satellite left in the shell ({flt.describe()}): {len(records)} read, "
                          f"{len(result.duplicates)} duplicate, {len(result.decayed)} decayed, "
                          f"{result.outside} outside the shell", source=source)
    result.spread = EpochSpread.of(kept_epochs)
    return result


def write_shell(result: ImportResult, output: str | os.PathLike[str]) -> None:
    """Write the kept satellites to ``output`` (3-line TLE, atomically)."""
    write_tles(result.kept, output)
