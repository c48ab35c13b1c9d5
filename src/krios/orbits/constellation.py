"""A constellation: satellites from TLEs, propagated together with sgp4's ``SatrecArray``.

The element sets are parsed once (:meth:`Constellation.from_file` and friends);
every later call propagates the cached ``Satrec`` objects, vectorised over
satellites and times. Positions come out in TEME from SGP4 and are rotated to
the Earth-fixed ITRS frame by :mod:`krios.orbits.geometry`.
"""

from __future__ import annotations

import itertools
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
from krios.orbits.walker import EARTH_RADIUS_KM, MU_KM3_S2, WalkerShell, shell, walker_delta

#: Slack (km) added around the perigee/apogee radii from the mean elements, for
#: SGP4's short-period terms (J2 makes a circular orbit's radius wander ~10 km).
RADIUS_SLACK_KM = 30.0
#: The Earth's rotation rate (rad/s) relative to TEME: the GMST 1982 rate, rounded up.
EARTH_ROTATION_RAD_S = 7.2921159e-5
#: Most satellites :meth:`Constellation.positions` takes at one instant on its short path.
_FEW = 256
#: Up to this many satellites that path calls SGP4 per satellite (else one ``SatrecArray``).
_LOOP_MAX = 8
#: A position SGP4 could not compute.
_NAN3 = (float("nan"),) * 3


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
        self._accel_bound: float | None = None

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

    @property
    def direction_accel_bound(self) -> float:
        """Upper bound (rad/s^2) on ``|d^2 s / dt^2|`` for the unit vector ``s`` from the
        Earth's centre to any satellite, in the Earth-fixed frame:
        ``(w_i + w_E)^2 + 2 w_i v_r / r_min + J2`` (``w_i`` the fastest inertial
        angular rate, ``w_E`` the Earth's, ``v_r`` the largest radial speed from the
        mean elements widened by 1 % of the orbital speed, ``J2`` < 1e-8 for the
        torque of the Earth's oblateness), times 1.5 for SGP4's short-period terms.
        So ``s . u`` for a fixed unit vector ``u`` bends at most this fast."""
        if self._accel_bound is None:
            w_i = self.max_angular_rate - EARTH_ROTATION_RAD_S
            e = np.array([s.ecco for s in self.satrecs])
            a = np.array([s.a for s in self.satrecs]) * EARTH_RADIUS_KM
            rdot = float(np.max(np.sqrt(MU_KM3_S2 / (a * (1 - e * e))) * (e + 0.01)))
            r_min = self.radius_range_km[0]
            bound = (w_i + EARTH_ROTATION_RAD_S) ** 2 + 2.0 * w_i * rdot / r_min + 1e-8
            self._accel_bound = 1.5 * bound
        return self._accel_bound

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
        """Earth-fixed ITRS positions (km) and velocities (km/s) of every satellite, each
        ``(N, T, 3)``: the positions are :meth:`positions`'s; the velocities are rotated
        the same way, less the Earth's rotation (:func:`geometry.velocity_teme_to_itrs`)."""
        times = np.atleast_1d(np.asarray(times, dtype=float))
        r_teme, v_teme = self.teme(times)
        r = geometry.rotate_teme_to_itrs(r_teme, geometry.gmst_angle(times))
        return r, geometry.velocity_teme_to_itrs(v_teme, r, times)

    def positions(self, sat_ids: ArrayLike | None, times: ArrayLike,
                  theta: ArrayLike | None = None) -> np.ndarray:
        """ITRS positions (km) of satellites ``sat_ids`` at unix seconds ``times``.

        The one way positions are computed (everything that needs a satellite's
        Earth-fixed position goes through here): SGP4 from the ``Satrec`` objects
        parsed once (UTC Julian date, as skyfield's ``EarthSatellite``), then the
        TEME->ITRS rotation through GMST 1982 at UT1
        (:func:`geometry.rotate_teme_to_itrs`, :func:`geometry.gmst_angle`), which is
        skyfield's ``TEME_to_ITRF`` without polar motion.

        ``sat_ids`` (``None``: every satellite, as a column ``(N, 1)``) and ``times``
        broadcast together like numpy arrays; the result has their broadcast shape
        plus ``(3,)``: ``positions(ids, t)`` for one instant, ``positions(ids, ts)``
        pairwise, ``positions(None, ts)`` for the ``(N, T)`` grid. ``theta``
        (rad, optional) is :func:`geometry.gmst_angle` of ``times`` if the caller has
        it. ``nan`` where SGP4 cannot propagate (decayed). The numbers do not depend
        on the path taken (one instant, a grid, pairs): each is the same SGP4 call
        and the same rotation.
        """
        ids = (np.arange(len(self))[:, None] if sat_ids is None
               else np.asarray(sat_ids, dtype=np.intp))
        if ids.ndim == 1 and theta is None and isinstance(times, float | int) and 0 < len(ids) <= _FEW:
            return self._few_at(ids, float(times))
        t = np.asarray(times, dtype=float)
        shape = np.broadcast_shapes(ids.shape, t.shape)
        if theta is None:
            theta = geometry.gmst_angle(float(t) if t.ndim == 0 else t)
        theta = np.broadcast_to(theta, shape)
        if ids.size == 0 or t.size == 0 or 0 in shape:
            return np.empty((*shape, 3))
        if t.size == 1 and ids.size > 16:  # one instant: one SatrecArray call over the satellites
            flat = ids.reshape(-1)
            jd, fr = geometry.jd_utc(t.reshape(1))
            r = self._array_of(flat).sgp4(jd, fr)
            r_teme = _nan_errors(r[0][:, 0], r[1][:, 0])
            return geometry.rotate_teme_to_itrs(
                np.broadcast_to(r_teme.reshape((*ids.shape, 3)), (*shape, 3)), theta)
        if ids.ndim == 2 and ids.shape[1] == 1 and t.ndim <= 2 and t.shape[:-1] in ((), (1,)):
            # a grid: satellites down, times across
            jd, fr = geometry.jd_utc(t.reshape(-1))
            err, r, _ = self._array_of(ids[:, 0]).sgp4(jd, fr)
            return geometry.rotate_teme_to_itrs(_nan_errors(err, r), theta)
        # pairs: each satellite at its own instants
        sats, times_b = (np.broadcast_to(a, shape).reshape(-1) for a in (ids, t))
        jd, fr = geometry.jd_utc(times_b)
        r_teme = np.empty((len(sats), 3))
        satrecs = self.satrecs
        distinct = np.count_nonzero(np.bincount(sats)) if sats.min() >= 0 else len(np.unique(sats))
        if len(sats) > 3 * distinct:  # runs of several instants per satellite: sgp4_array each
            order = np.argsort(sats, kind="stable")
            by_sat, jd_s, fr_s = sats[order], jd[order], fr[order]
            bounds = [0, *(np.flatnonzero(np.diff(by_sat)) + 1).tolist(), len(order)]
            r_s = np.empty((len(order), 3))
            err_s = np.zeros(len(order), dtype=bool)
            for a, b in itertools.pairwise(bounds):  # one satellite's run: slices, no copies
                err, r_s[a:b], _ = satrecs[int(by_sat[a])].sgp4_array(jd_s[a:b], fr_s[a:b])
                err_s[a:b] = err != 0
            r_s[err_s] = np.nan
            r_teme[order] = r_s
        else:
            out = [satrecs[s].sgp4(j, f) for s, j, f in zip(sats.tolist(), jd.tolist(), fr.tolist(),
                                                               strict=True)]
            r_teme[:] = [o[1] for o in out]
            bad = [k for k, o in enumerate(out) if o[0]]
            if bad:
                r_teme[bad] = np.nan
        return geometry.rotate_teme_to_itrs(r_teme, theta.reshape(-1)).reshape((*shape, 3))

    def _few_at(self, ids: np.ndarray, t: float) -> np.ndarray:
        """:meth:`positions` of a few satellites ``ids`` (1-D) at one instant ``t`` (unix s), the
        same SGP4 call and rotation per satellite without the broadcasting set-up (a handover
        decision asks for a few satellites at one instant, hundreds of thousands of times in a
        simulated day of Gen1): :func:`geometry.jd_utc` and :func:`geometry.rotate_teme_to_itrs`
        in Python floats (the same operations, so the same bits), the rotation's cosine and
        sine from :func:`geometry.rotation_cos_sin`."""
        days, secs = divmod(t, geometry.DAY_S)  # geometry.jd_utc's arithmetic
        j, f = geometry.UNIX0_JD + days, secs / geometry.DAY_S
        satrecs = self.satrecs
        if len(ids) > _LOOP_MAX:
            err, r, _ = SatrecArray([satrecs[i] for i in ids.tolist()]).sgp4(np.array([j]), np.array([f]))
            r_teme = _nan_errors(err[:, 0], r[:, 0])
            theta = geometry.gmst_angle(t)
            c, s = np.cos(theta), np.sin(theta)
            x, y = r_teme[:, 0], r_teme[:, 1]
            out = np.empty((len(ids), 3))
            out[:, 0] = c * x + s * y
            out[:, 1] = -s * x + c * y
            out[:, 2] = r_teme[:, 2]
            return out
        c, s = geometry.rotation_cos_sin(t)
        rows = []
        for i in ids.tolist():
            e, (x, y, z), _ = satrecs[i].sgp4(j, f)
            rows.append((c * x + s * y, -s * x + c * y, z) if e == 0 else _NAN3)
        return np.array(rows)

    def _array_of(self, ids: np.ndarray) -> SatrecArray:
        """A ``SatrecArray`` over satellites ``ids`` (the whole constellation's when it is all of them)."""
        if len(ids) == len(self) and (len(ids) == 1 or bool(np.all(np.diff(ids) == 1))) and ids[0] == 0:
            return self.array
        return SatrecArray([self.satrecs[i] for i in ids.tolist()])

    def subset(self, sat_ids: Sequence[int]) -> Constellation:
        """A constellation of some satellites (their ``sat_id`` becomes their new position)."""
        return Constellation([self.tles[i] for i in sat_ids], self.source)



def _nan_errors(err: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``r`` with ``nan`` where SGP4's error code ``err`` is not 0 (decayed, bad elements)."""
    if np.any(err):
        r = r.copy()
        r[np.asarray(err) != 0] = np.nan
    return r
