"""Ticks in sequence: :class:`ZoneSequence` gives exactly :class:`krios.orbits.zones.ZoneSet`'s
answers while propagating only the satellites whose answer could have changed.

The emulator and the scheduler tick every second or so of emulated time. Between
two such ticks a satellite moves little, so most satellite/zone decisions
cannot change: a satellite deep inside a zone's inner cone stays in, one far
outside every outer cone stays out. This is the temporal coherence of
conjunction and visibility screening, with bounds that are rigorous rather
than tuned:

- **State.** When a satellite is propagated exactly at ``t0`` (SGP4, the same
  call and the same decision code as :meth:`ZoneSet.pairs`), each pair with a
  zone listed near its grid cell (:meth:`ZoneSet.cell_table` widened by
  :data:`NEAR_DEG`) has ``C0 = cos psi`` (``psi``: geocentric angle between the
  satellite and the zone centre), its rate ``C1`` (from SGP4's velocity and the
  Earth's rotation) and the satellite's distance ``d0`` and radial speed ``d0'``.
- **Bounds.** ``cos psi`` has second derivative at most ``B = (w_i + w_E)^2 +
  2 w_i v_r / r_min + J2`` (the direction's angular acceleration in the
  Earth-fixed frame: ``w_i`` the fastest inertial angular rate, from mean
  elements + 2 %, ``w_E`` the Earth's rotation, ``v_r`` the largest radial
  speed), so ``|cos psi(t0 + tau) - C0 - C1 tau| <= B tau^2 / 2``. The distance
  obeys ``|d(t0 + tau) - d0| <= |d0'| |tau| + q tau^2 / 2`` with ``q`` bounding
  ``d'' = d w_i^2 - g_r`` (gravity within 1 % of ``mu / d^2``), and a cone's
  ``cos(acos(c / d) - k)`` moves with ``d`` by at most the half-angle's slope at
  the smallest radius, ``L = c / (r_min sqrt(r_min^2 - c^2))``.
- **Window.** A pair in the zone by the inner cone stays so while
  ``(C0 - cos inner) + C1 tau - L (|d0'| |tau| + q tau^2 / 2) - B tau^2 / 2 > 0``;
  one outside the outer cone likewise with the signs turned. Solving these
  quadratics gives, per pair, how far back and ahead in time its decision is
  proven (a satellite heading into a zone gets a short window ahead and a long
  one back). Zones not listed near the cell are more than :data:`NEAR_DEG`
  away, good for ``NEAR_DEG / (w_i + w_E)`` either way. A satellite's window
  is the smallest over its pairs, capped at :data:`MAX_WINDOW_S`. Pairs that
  need the exact elevation (near a zone's edge), satellites SGP4 cannot
  propagate and satellites below :data:`LOW_ALTITUDE_KM` get none.
- **Tick.** At time ``t`` only satellites whose window does not cover ``t`` are
  propagated (a ``SatrecArray`` of just them: bit-identical to the full call)
  and re-decided; every other one keeps its pairs, which the bounds prove the
  full computation would also give. When :data:`FULL_FRACTION` of the
  satellites or more are due (the first tick, a jump in time), all are
  propagated at once.

So every answer is exactly :meth:`ZoneSet.pairs`'s (``tests/test_orbits_sequence.py``
compares them tick by tick), for times in any order; ticks close together are
cheap. The bounds rest on the same assumption as the full engine's cell table:
SGP4 keeps every satellite within :attr:`Constellation.radius_range_km`. Each
exact propagation checks the observed angular rates and radial speeds against
the bounds; one outside them widens the bounds and drops every window.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from numpy.typing import ArrayLike
from sgp4.api import SatrecArray

from krios.orbits import geometry
from krios.orbits.constellation import EARTH_ROTATION_RAD_S
from krios.orbits.walker import EARTH_RADIUS_KM, MU_KM3_S2
from krios.orbits.zones import Candidates, ZoneSet

#: Zones within this angle (deg) of a satellite's cell, beyond their outer cones, get
#: their own margins; farther ones are at least this far: ``NEAR_DEG / w`` seconds.
NEAR_DEG = 10.0
#: Longest window (s) a satellite's decisions are carried without propagating it.
MAX_WINDOW_S = 300.0
#: When at least this fraction of the satellites is due, propagate them all at once.
FULL_FRACTION = 0.5
#: Margin on the angular rates from mean elements (as :attr:`Constellation.max_angular_rate`).
RATE_MARGIN = 1.02
#: Gravity's radial pull, with J2 (< 0.3 %), lies within this factor of ``mu / r^2``.
GRAVITY_MARGIN = 1.01
#: Allowance (km/s) for SGP4's velocity not being exactly the derivative of its
#: position (measured: < 3e-5 km/s).
V_SLACK_KM_S = 1e-3
#: Bound (rad/s^2) on the change of a direction's angular rate from forces that are
#: not central (J2: |r x a| / r^2 < 6e-9 in LEO).
J2_TORQUE = 1e-8
#: Satellites lower than this (km above the equatorial radius) get no window: they
#: may be decaying, and SGP4 stops propagating a decayed satellite.
LOW_ALTITUDE_KM = 200.0
#: Cone slope (rad/km) standing for "unbounded" (a cone that closes at ``r_min``).
_STEEP = 1e12


class ZoneSequence:
    """Stateful :meth:`ZoneSet.pairs`/:meth:`ZoneSet.in_zones` for ticks in sequence.

    ``seq = zone_set.sequence(); seq.in_zones(t)`` for successive unix times
    ``t`` (any order; cheapest when close together). The answers are identical
    to ``zone_set.in_zones(t)``. Counters: :attr:`ticks`, :attr:`propagated`
    (satellite propagations in all), :attr:`full_ticks` (ticks that propagated
    every satellite), :attr:`last_propagated`.
    """

    def __init__(self, zone_set: ZoneSet):
        self.zone_set = zone_set
        c = zone_set.constellation
        self._satrecs = np.empty(len(c), dtype=object)
        self._satrecs[:] = c.satrecs
        self._n = len(c)
        self._r_min, self._r_max = c.radius_range_km
        n_rad = np.array([s.no_kozai for s in c.satrecs]) / 60.0  # rad/s
        e = np.array([s.ecco for s in c.satrecs])
        a = np.array([s.a for s in c.satrecs]) * EARTH_RADIUS_KM
        apogee_rate = n_rad * np.sqrt(1 - e) / (1 + e) ** 1.5
        self._set_bounds(
            rate_max=c.max_angular_rate - EARTH_ROTATION_RAD_S,
            rate_min=float(np.min(apogee_rate)) / RATE_MARGIN,
            rdot_max=float(np.max(np.sqrt(MU_KM3_S2 / (a * (1 - e * e))) * (e + 0.01))))
        # The cones per zone, outer (row 0) and inner (row 1), and their slopes with distance.
        cones = (zone_set._outer, zone_set._inner)
        self._units = zone_set._units
        self._cone_c = np.stack([cone.c for cone in cones])
        self._cone_k = np.stack([cone.k for cone in cones])
        self._cone_cos_k = np.stack([cone.cos_k for cone in cones])
        self._cone_sin_k = np.stack([cone.sin_k for cone in cones])
        self._cone_slope = np.stack([_cone_slope(cone.c, self._r_min) for cone in cones])
        self._near = zone_set.cell_table(NEAR_DEG)
        self._t_lo = np.full(self._n, math.nan)
        self._t_hi = np.full(self._n, math.nan)
        self._keys = np.empty(0, dtype=np.int64)
        self._due_mask = np.zeros(self._n, dtype=bool)
        self._jd = np.zeros(1)
        self._fr = np.zeros(1)
        self.ticks = 0
        self.propagated = 0
        self.full_ticks = 0
        self.last_propagated = 0

    def _set_bounds(self, rate_max: float, rate_min: float, rdot_max: float) -> None:
        """The motion bounds (module docstring) from the largest and smallest inertial
        angular rate (rad/s) of a satellite's direction and the largest radial speed (km/s)."""
        self._rate_max, self._rate_min, self._rdot_max = rate_max, rate_min, rdot_max
        self._w = rate_max + EARTH_ROTATION_RAD_S
        lo = self._r_min * rate_min ** 2 - GRAVITY_MARGIN * MU_KM3_S2 / self._r_min ** 2
        hi = self._r_max * rate_max ** 2 - MU_KM3_S2 / (GRAVITY_MARGIN * self._r_max ** 2)
        self._d_accel = max(abs(lo), abs(hi))
        self._cos_accel = self._w ** 2 + 2.0 * rate_max * rdot_max / self._r_min + J2_TORQUE
        self._far_window = min(math.radians(NEAR_DEG) / self._w, MAX_WINDOW_S)

    @property
    def rate_bound(self) -> float:
        """``w``: the bound (rad/s) on how fast a direction turns in the Earth-fixed frame."""
        return self._w

    def in_zones(self, t: float) -> list[np.ndarray]:
        """For each zone, the sorted ``sat_id`` s in it at unix time ``t`` (as
        :meth:`ZoneSet.in_zones`)."""
        zi, si = self.pairs(t)
        return self.zone_set.split(zi, si)

    def pairs(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """``(zone_index, sat_id)`` in the zone at unix time ``t``, sorted by zone then
        satellite (as :meth:`ZoneSet.pairs`)."""
        t = float(t)
        n = self._n
        with np.errstate(invalid="ignore"):
            due = np.flatnonzero(~((self._t_lo <= t) & (t <= self._t_hi)))
        full = len(due) >= FULL_FRACTION * n
        days, secs = divmod(t, geometry.DAY_S)
        self._jd[0] = geometry.UNIX0_JD + days
        self._fr[0] = secs / geometry.DAY_S
        if full:
            due = np.arange(n)
            _, r, v = self.zone_set.constellation.array.sgp4(self._jd, self._fr)
        elif len(due):
            sub = SatrecArray(self._satrecs[due].tolist())
            _, r, v = sub.sgp4(self._jd, self._fr)
        else:
            r = v = np.empty((0, 1, 3))
        r, v = r[:, 0, :], v[:, 0, :]
        zs = self.zone_set
        theta = float(geometry.gmst_angle(t))
        cand = zs.candidates(r, theta, self._near)
        inside = zs.settle(r, theta, cand)
        with np.errstate(invalid="ignore"):
            rdot = (r[:, 0] * v[:, 0] + r[:, 1] * v[:, 1] + r[:, 2] * v[:, 2]) / cand.radius
        if len(due) and not self._motion_ok(r, v, cand.radius, rdot):
            return self.pairs(t)  # the bounds were widened and every window dropped
        back, ahead = self._windows(r, v, rdot, theta, cand, inside)
        self._t_lo[due] = t - back
        self._t_hi[due] = t + ahead
        new = cand.zone[inside].astype(np.int64) * n + due[cand.sat[inside]]
        new.sort()
        if full:
            self._keys = new
        elif len(due):
            mark = self._due_mask
            mark[due] = True
            kept = self._keys[~mark[self._keys % n]]
            mark[due] = False
            self._keys = np.insert(kept, np.searchsorted(kept, new), new)
        self.ticks += 1
        self.full_ticks += int(full)
        self.propagated += len(due)
        self.last_propagated = len(due)
        zi = self._keys // n
        return zi.astype(np.intp), (self._keys - zi * n).astype(np.intp)

    def _motion_ok(self, r: np.ndarray, v: np.ndarray, radius: np.ndarray,
                   rdot: np.ndarray) -> bool:
        """Check the observed inertial angular rates ``|r x v| / d^2`` and radial speeds
        against the bounds; if one falls outside, widen the bounds and drop every window."""
        x, y, z, vx, vy, vz = r[:, 0], r[:, 1], r[:, 2], v[:, 0], v[:, 1], v[:, 2]
        with np.errstate(invalid="ignore"):
            h2 = (y * vz - z * vy) ** 2 + (z * vx - x * vz) ** 2 + (x * vy - y * vx) ** 2
            rate = np.sqrt(h2) / (radius * radius)
        ok = np.isfinite(rate)
        if not ok.any():
            return True
        fast, slow = float(rate[ok].max()), float(rate[ok].min())
        rd = float(np.abs(rdot[ok]).max())
        if fast <= self._rate_max and slow >= self._rate_min and rd <= self._rdot_max:
            return True
        self._set_bounds(max(self._rate_max, fast * RATE_MARGIN),
                         min(self._rate_min, slow / RATE_MARGIN),
                         max(self._rdot_max, rd * RATE_MARGIN))
        self._t_lo[:] = math.nan
        self._t_hi[:] = math.nan
        return False

    def _windows(self, r: np.ndarray, v: np.ndarray, rdot: np.ndarray, theta: float,
                 cand: Candidates, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per propagated satellite: for how long (s) back and ahead in time all its
        decisions provably stay as they are now (module docstring)."""
        back = np.full(len(r), self._far_window)
        ahead = back.copy()
        zi, si = cand.zone, cand.sat
        if len(zi):
            d = cand.dist
            # Cosine of psi now and its rate: the satellite's direction moves and the
            # zone centre turns with the Earth (d/dt u_teme = omega z x u_teme).
            cth, sth = math.cos(theta), math.sin(theta)
            u = self._units
            ux, uy = (cth * u[:, 0] - sth * u[:, 1])[zi], (sth * u[:, 0] + cth * u[:, 1])[zi]
            uz = u[:, 2][zi]
            rp, vp, dd = r[si], v[si], rdot[si]
            rx, ry, rz = rp[:, 0] / d, rp[:, 1] / d, rp[:, 2] / d
            c1 = (((vp[:, 0] - rx * dd) * ux + (vp[:, 1] - ry * dd) * uy + (vp[:, 2] - rz * dd) * uz)
                  / d + EARTH_ROTATION_RAD_S * (ry * ux - rx * uy))
            # Margin in cosine: inside the inner cone (in) or outside the outer one (out).
            # Row 0 of the cone tables is the outer cone, row 1 the inner one.
            which = inside.astype(np.intp)
            c = np.minimum(self._cone_c[which, zi] / d, 1.0)
            cos_k = self._cone_cos_k[which, zi]
            reach = c * cos_k + np.sqrt(1.0 - c * c) * self._cone_sin_k[which, zi]
            possible = (self._cone_k[which, zi] <= 0.0) | (c <= cos_k)
            margin = np.where(inside, np.where(possible, cand.cos_psi - reach, -1.0),
                              np.where(possible, reach, 1.0) - cand.cos_psi)
            slope = self._cone_slope[which, zi]
            drift = slope * (np.abs(dd) + V_SLACK_KM_S) + V_SLACK_KM_S / self._r_min + 1e-10
            accel = self._cos_accel + slope * self._d_accel
            c1 = np.where(inside, c1, -c1)  # in: cos psi falling is bad; out: rising
            starts = np.flatnonzero(np.diff(si, prepend=-1))
            rows = si[starts]
            ahead[rows] = np.minimum(ahead[rows],
                                     np.minimum.reduceat(_reach_time(margin, drift - c1, accel), starts))
            back[rows] = np.minimum(back[rows],
                                    np.minimum.reduceat(_reach_time(margin, drift + c1, accel), starts))
        bad = ~cand.valid | (cand.radius < EARTH_RADIUS_KM + LOW_ALTITUDE_KM)
        back[bad] = 0.0
        ahead[bad] = 0.0
        return back, ahead


def _reach_time(margin: np.ndarray, beta: np.ndarray, accel: np.ndarray | float) -> np.ndarray:
    """Largest ``tau >= 0`` with ``margin - beta tau - accel tau^2 / 2 >= 0`` (0 if the
    margin is not positive), written to avoid cancellation for either sign of ``beta``."""
    m = np.maximum(margin, 0.0)
    root = np.sqrt(beta * beta + 2.0 * accel * m)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(beta >= 0.0, 2.0 * m / (beta + root), (root - beta) / accel)
    return np.where((margin > 0.0) & np.isfinite(tau), tau * (1.0 - 1e-9), 0.0)


def _cone_slope(c: np.ndarray, r_min: float) -> np.ndarray:
    """Largest ``d/dr acos(c / r)`` (rad/km) for ``r >= r_min``: at ``r_min``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = c / (r_min * np.sqrt(r_min * r_min - c * c))
    return np.where(np.isfinite(slope) & (c < r_min), slope, _STEEP)


def tick_sequence(zone_set: ZoneSet, times: ArrayLike) -> Iterator[list[np.ndarray]]:
    """:meth:`ZoneSet.in_zones` for each of ``times`` (unix s), in order, through one
    :class:`ZoneSequence`: yields one list of sorted ``sat_id`` arrays per time."""
    seq = ZoneSequence(zone_set)
    for t in np.atleast_1d(np.asarray(times, dtype=float)):
        yield seq.in_zones(float(t))
