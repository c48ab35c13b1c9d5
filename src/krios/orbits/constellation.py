"""A constellation: satellites from TLEs, propagated together with sgp4's ``SatrecArray``.

The element sets are parsed once (:meth:`Constellation.from_file` and friends);
every later call propagates the cached ``Satrec`` objects, vectorised over
satellites and times. Positions come out in TEME from SGP4 and are rotated to
the Earth-fixed ITRS frame by :mod:`krios.orbits.geometry`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sgp4.api import WGS72, Satrec, SatrecArray

from krios.errors import ConfigError
from krios.orbits import geometry
from krios.orbits.tle import TLE, load_tles
from krios.orbits.walker import EARTH_RADIUS_KM, WalkerShell, shell, walker_delta

#: Slack (km) added around the perigee/apogee radii from the mean elements, for
#: SGP4's short-period terms (J2 makes a circular orbit's radius wander ~10 km).
RADIUS_SLACK_KM = 30.0
#: The Earth's rotation rate (rad/s) relative to TEME: the GMST 1982 rate, rounded up.
EARTH_ROTATION_RAD_S = 7.2921159e-5


class Constellation:
    """Satellites ``0 .. N-1`` (``sat_id`` = position in the TLE list) and their SGP4 models.

    Attributes
    ----------
    tles:
        The element sets, in ``sat_id`` order.
    names:
        Satellite names, in ``sat_id`` order.
    satrecs:
        One :class:`sgp4.api.Satrec` per satellite (parsed once).
    array:
        A :class:`sgp4.api.SatrecArray` over ``satrecs``.
    source:
        Where the element sets came from (a file, or ``shell:<name>``).
    """

    def __init__(self, tles: Sequence[TLE], source: str = "<tles>"):
        if not tles:
            raise ConfigError("a constellation needs at least one satellite", source=source)
        self.tles = list(tles)
        self.names = [t.name for t in self.tles]
        self.source = source
        # WGS72 like skyfield's EarthSatellite, so positions agree with it.
        self.satrecs = [Satrec.twoline2rv(t.line1, t.line2, WGS72) for t in self.tles]
        self.array = SatrecArray(self.satrecs)
        self._radius_range: tuple[float, float] | None = None

    def __len__(self) -> int:
        return len(self.tles)

    def __repr__(self) -> str:
        return f"Constellation({len(self)} satellites from {self.source})"

    # -- construction --------------------------------------------------------------
    @classmethod
    def from_tles(cls, tles: Sequence[TLE], source: str = "<tles>") -> Constellation:
        """From element sets already parsed (:func:`krios.orbits.tle.parse_tles`)."""
        return cls(tles, source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Constellation:
        """From a 3-line or 2-line TLE file (checksums validated)."""
        return cls(load_tles(path), str(path))

    @classmethod
    def from_shell(
        cls, spec: str | WalkerShell, epoch: float, *, source: str = "shell"
    ) -> Constellation:
        """A Walker-delta shell: a preset name from :data:`krios.orbits.walker.SHELLS` or a
        :class:`~krios.orbits.walker.WalkerShell`, with elements at ``epoch`` (unix s)."""
        if isinstance(spec, str):
            spec = shell(spec, source=source)
        return cls(walker_delta(spec, epoch), f"shell:{spec.name}")

    @classmethod
    def from_scenario(cls, scenario: Any) -> Constellation:
        """From a scenario's ``constellation`` key: ``{shell, epoch}`` or ``{tles}``.

        A relative ``tles`` path is taken relative to the scenario file, then to
        the current directory.
        """
        from krios.config.times import parse_time

        conf = scenario["constellation"]
        where = str(getattr(scenario, "path", "scenario"))
        if not isinstance(conf, dict):
            raise ConfigError("must be a mapping with shell or tles", source=where,
                              field="constellation")
        if conf.get("tles"):
            path = Path(str(conf["tles"]))
            if not path.is_absolute():
                base = Path(getattr(scenario, "path", ".")).parent
                path = base / path if (base / path).exists() else path
            return cls.from_file(path)
        name = conf.get("shell")
        if not name:
            raise ConfigError("needs shell or tles", source=where, field="constellation")
        epoch = parse_time(conf.get("epoch", "2026-01-01T00:00:00Z"),
                           source=f"{where}: constellation.epoch")
        return cls.from_shell(str(name), epoch, source=f"{where}: constellation.shell")

    # -- orbits --------------------------------------------------------------------
    @property
    def radius_range_km(self) -> tuple[float, float]:
        """Smallest and largest geocentric distance (km) any satellite can reach,
        from perigee and apogee of the mean elements, widened by :data:`RADIUS_SLACK_KM`."""
        if self._radius_range is None:
            a = np.array([s.a for s in self.satrecs]) * EARTH_RADIUS_KM  # Satrec.a is in WGS72 Earth radii
            e = np.array([s.ecco for s in self.satrecs])
            self._radius_range = (float(np.min(a * (1 - e))) - RADIUS_SLACK_KM,
                                  float(np.max(a * (1 + e))) + RADIUS_SLACK_KM)
        return self._radius_range

    @property
    def max_angular_rate(self) -> float:
        """Upper bound (rad/s) on how fast any sub-satellite point moves across the
        ground: the fastest mean motion at perigee plus the Earth's rotation."""
        n = np.array([s.no_kozai for s in self.satrecs]) / 60.0  # rad/s
        e = np.array([s.ecco for s in self.satrecs])
        perigee_rate = n * np.sqrt(1 + e) / (1 - e) ** 1.5  # vis-viva angular rate at perigee
        return float(np.max(perigee_rate) * 1.02 + EARTH_ROTATION_RAD_S)

    def teme(self, times: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """TEME positions (km) and velocities (km/s), each ``(N, T, 3)``, at unix seconds ``times``.

        Satellites SGP4 cannot propagate at a time (decayed) get ``nan``.
        """
        jd, fr = geometry.jd_utc(np.atleast_1d(times))
        err, r, v = self.array.sgp4(jd, fr)
        if err.any():
            r[err != 0] = np.nan
            v[err != 0] = np.nan
        return r, v

    def itrs(self, times: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Earth-fixed ITRS positions (km) and velocities (km/s), each ``(N, T, 3)``."""
        times = np.atleast_1d(np.asarray(times, dtype=float))
        r, v = self.teme(times)
        return geometry.teme_to_itrs(r, v, times)

    def subset(self, sat_ids: Sequence[int]) -> Constellation:
        """A constellation of some satellites (their ``sat_id`` becomes their new position)."""
        return Constellation([self.tles[i] for i in sat_ids], self.source)

