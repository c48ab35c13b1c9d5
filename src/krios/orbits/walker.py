"""Walker-delta constellation shells, generated as TLEs through sgp4's ``sgp4init``.

A Walker-delta shell ``i: t/p/f`` has ``p`` equally spaced orbital planes
(right ascensions ``360/p`` degrees apart), ``t/p`` satellites equally spaced in
each plane, and a phase offset ``f``: satellite ``k`` of plane ``j`` has mean
anomaly ``360*k/(t/p) + 360*f*j/t`` degrees. Orbits are circular.

The mean motion comes from the altitude with the WGS72 constants SGP4 uses
(``mu = 398600.8 km^3/s^2``, equatorial radius 6378.135 km): the Kozai mean
motion ``sqrt(mu / a^3)`` for ``a = R + altitude``, as a TLE carries it.
The element sets go through :func:`sgp4.exporter.export_tle`, so a generated
file and an in-memory shell (:meth:`krios.orbits.constellation.Constellation.from_shell`)
are the same satellites to the digit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sgp4.api import WGS72, Satrec
from sgp4.exporter import export_tle

from krios.errors import ConfigError
from krios.orbits.tle import TLE, checksum

#: WGS72 gravitational parameter (km^3/s^2) and equatorial radius (km), as in sgp4.
MU_KM3_S2 = 398600.8
EARTH_RADIUS_KM = 6378.135

#: Julian date of the sgp4init epoch origin, 1949-12-31 00:00 UTC.
_SGP4_EPOCH0_JD = 2433281.5
_UNIX0_JD = 2440587.5


@dataclass(frozen=True)
class WalkerShell:
    """One Walker-delta shell: ``planes`` x ``per_plane`` satellites in circular orbits.

    ``altitude_km`` above the WGS72 equatorial radius, ``inclination_deg`` in
    degrees, ``phase_offset`` the Walker ``f`` (0 .. planes-1; fractions allowed).
    """

    name: str
    planes: int
    per_plane: int
    altitude_km: float
    inclination_deg: float
    phase_offset: float = 1.0

    @property
    def total(self) -> int:
        return self.planes * self.per_plane

    def check(self, source: str = "walker shell") -> None:
        """Raise :class:`ConfigError` for a shell that cannot be generated."""
        if self.planes < 1:
            raise ConfigError("must be at least 1", source=source, field="planes")
        if self.per_plane < 1:
            raise ConfigError("must be at least 1", source=source, field="per-plane")
        if self.total > 339999:
            raise ConfigError("more satellites than TLE catalog numbers allow (339999)",
                              source=source, field="planes x per-plane")
        if not 100.0 <= self.altitude_km <= 50000.0:
            raise ConfigError("altitude must be within [100, 50000] km", source=source,
                              field="altitude-km")
        if not 0.0 <= self.inclination_deg <= 180.0:
            raise ConfigError("inclination must be within [0, 180] deg", source=source,
                              field="inclination-deg")
        if not 0.0 <= self.phase_offset < max(self.planes, 1):
            raise ConfigError("phase offset must be within [0, planes)", source=source,
                              field="phase-offset")


#: Starlink Gen1 shells (FCC filing): planes x per-plane, altitude km, inclination deg.
SHELLS: dict[str, WalkerShell] = {
    "starlink-1": WalkerShell("starlink-1", 72, 22, 550.0, 53.0),
    "starlink-2": WalkerShell("starlink-2", 72, 22, 540.0, 53.2),
    "starlink-3": WalkerShell("starlink-3", 36, 20, 570.0, 70.0),
    "starlink-4": WalkerShell("starlink-4", 6, 58, 560.0, 97.6),
    "starlink-5": WalkerShell("starlink-5", 4, 43, 560.0, 97.6),
}


def shell(name: str, *, source: str = "shell") -> WalkerShell:
    """The preset called ``name``; unknown names raise :class:`ConfigError` listing the presets."""
    try:
        return SHELLS[name]
    except KeyError:
        known = ", ".join(SHELLS)
        raise ConfigError(f"unknown Walker shell (known: {known})", source=source,
                          field=name) from None


def mean_motion_rad_min(altitude_km: float) -> float:
    """Kozai mean motion (rad/min) of a circular orbit ``altitude_km`` above the WGS72 radius."""
    a = EARTH_RADIUS_KM + altitude_km
    return math.sqrt(MU_KM3_S2 / a**3) * 60.0


def _catalog(number: int) -> str:
    """A 5-character catalog field; Alpha-5 (``A0000``) above 99999."""
    if number <= 99999:
        return f"{number:05d}"
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # Alpha-5 skips I and O
    head, tail = divmod(number - 100000, 10000)
    return f"{letters[head]}{tail:04d}"


def walker_delta(spec: WalkerShell, epoch: float, *, first_catalog: int = 1) -> list[TLE]:
    """The element sets of shell ``spec`` at ``epoch`` (unix seconds, UTC).

    Satellites are ordered plane by plane, so ``sat_id = plane * per_plane + slot``.
    Names are ``<SHELL>-P<plane>-S<slot>``; catalog numbers count up from
    ``first_catalog``.
    """
    spec.check()
    epoch_days = (_UNIX0_JD + epoch / 86400.0) - _SGP4_EPOCH0_JD
    n = mean_motion_rad_min(spec.altitude_km)
    incl = math.radians(spec.inclination_deg)
    prefix = spec.name.upper()
    width = max(2, len(str(max(spec.planes, spec.per_plane) - 1)))
    out = []
    for plane in range(spec.planes):
        raan = math.radians(360.0 * plane / spec.planes)
        for slot in range(spec.per_plane):
            mean_anom = (360.0 * slot / spec.per_plane
                         + 360.0 * spec.phase_offset * plane / spec.total) % 360.0
            sat = Satrec()
            sat.sgp4init(WGS72, "i", 0, epoch_days, 0.0, 0.0, 0.0, 0.0, 0.0, incl,
                         math.radians(mean_anom), n, raan)
            line1, line2 = export_tle(sat)
            catalog = _catalog(first_catalog + plane * spec.per_plane + slot)
            line1 = _with_catalog(line1, catalog)
            line2 = _with_catalog(line2, catalog)
            out.append(TLE(f"{prefix}-P{plane:0{width}d}-S{slot:0{width}d}", line1, line2))
    return out


def _with_catalog(line: str, catalog: str) -> str:
    """``line`` with its catalog field replaced and its checksum recomputed."""
    body = line[:2] + catalog + line[7:68]
    return body + str(checksum(body))
