"""Satellite positions sampled on the simulation grid, for every pass through a zone.

The grid is ``start + k * step_s`` for ``k = 0 .. K-1`` (unix s). For each
pass (``enter <= t < exit``) the satellite's Earth-fixed ITRS position is
computed at the grid instants inside it by
:meth:`krios.orbits.constellation.Constellation.positions` (the one path from SGP4
to ITRS). From these the engine finds
when another satellite becomes closer (policies that follow the best
satellite) and the RTT of whoever serves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from krios.orbits import geometry
from krios.orbits.constellation import Constellation
from krios.orbits.rtt import LatencyModel
from krios.orbits.zones import Zone


class ZoneSamples:
    """Passes of one zone and the in-pass samples on the grid.

    Parameters
    ----------
    constellation, zone:
        What is propagated and seen from where.
    passes:
        Objects with ``sat_id``, ``enter`` and ``exit`` (unix s), e.g.
        :class:`krios.orbits.passes.Pass`: every pass that overlaps the run, and
        those that begin soon after it (decisions near the end look ahead).
    start, end, step_s:
        The grid (unix s; seconds).
    gmst:
        :func:`krios.orbits.geometry.gmst_angle` at every grid instant (rad), if the
        caller already has it (it is the same for every zone).

    Attributes
    ----------
    pair_sat, pair_k:
        ``(P,)`` satellite and grid index of every in-zone sample.
    r_itrs:
        ``(P, 3)`` ITRS positions, km.
    range_km:
        ``(P,)`` slant range from the zone centre, km (what
        :class:`krios.control.policies.Candidate` calls ``range_km``).
    """

    def __init__(
        self,
        constellation: Constellation,
        zone: Zone,
        passes: Sequence,
        start: float,
        end: float,
        step_s: float,
        gmst: np.ndarray | None = None,
    ):
        if step_s <= 0:
            raise ValueError("step_s must be positive")
        self.zone, self.start, self.end, self.step_s = zone, float(start), float(end), float(step_s)
        self.n_steps = max(0, math.ceil((self.end - self.start) / self.step_s - 1e-9))
        self.times = self.start + self.step_s * np.arange(self.n_steps)
        self.gmst = geometry.gmst_angle(self.times) if gmst is None else np.asarray(gmst, dtype=float)
        self.pass_sat = np.array([p.sat_id for p in passes], dtype=np.intp)
        self.pass_enter = np.array([p.enter for p in passes], dtype=float)
        self.pass_exit = np.array([p.exit for p in passes], dtype=float)
        # Grid indices inside each pass: k0 <= k < k1.
        k0 = np.clip(np.ceil((self.pass_enter - self.start) / self.step_s), 0, self.n_steps).astype(np.intp)
        k1 = np.clip(np.ceil((self.pass_exit - self.start) / self.step_s), 0, self.n_steps).astype(np.intp)
        k1 = np.maximum(k0, k1)
        self.pass_k0, self.pass_k1 = k0, k1
        counts = k1 - k0
        self.pass_offset = np.concatenate([[0], np.cumsum(counts)]).astype(np.intp)
        total = int(self.pass_offset[-1])
        self.pair_sat = np.repeat(self.pass_sat, counts)
        self.pair_k = (np.arange(total) - np.repeat(self.pass_offset[:-1] - k0, counts)).astype(np.intp)
        self.r_itrs = self._propagate(constellation)
        _, _, self.range_km = zone.look(self.r_itrs) if total else (None, None, np.zeros(0))
        self._best_sat, self._best_range = self._closest_per_step()
        self._rtt: np.ndarray | None = None

    def _propagate(self, constellation: Constellation) -> np.ndarray:
        """ITRS positions (km) of every ``(pair_sat, pair_k)`` sample.

        :meth:`Constellation.positions` of the pairs (one ``sgp4_array`` per satellite),
        with the sidereal angle looked up per grid instant instead of recomputed per sample.
        """
        if not len(self.pair_sat):
            return np.empty((0, 3))
        return constellation.positions(self.pair_sat, self.times[self.pair_k], self.gmst[self.pair_k])

    def _closest_per_step(self) -> tuple[np.ndarray, np.ndarray]:
        """Per grid step: the in-zone satellite closest to the centre (lowest ``sat_id`` on ties)
        and its range; ``-1``/``inf`` where none is in the zone."""
        best_sat = np.full(self.n_steps, -1, dtype=np.intp)
        best_range = np.full(self.n_steps, np.inf)
        if len(self.pair_k):
            order = np.lexsort((self.pair_sat, self.range_km, self.pair_k))
            ks = self.pair_k[order]
            first = np.concatenate([[True], ks[1:] != ks[:-1]])
            best_sat[ks[first]] = self.pair_sat[order][first]
            best_range[ks[first]] = self.range_km[order][first]
        return best_sat, best_range

    # -- look-ups for the engine ---------------------------------------------------
    def k_at(self, t: float) -> int:
        """First grid index at or after ``t``."""
        return int(min(max(math.ceil((t - self.start) / self.step_s - 1e-9), 0), self.n_steps))

    def pair_slice(self, sat_id: int, k: int) -> slice | None:
        """The samples of ``sat_id``'s pass covering grid index ``k`` (``None`` if none)."""
        hit = np.nonzero((self.pass_sat == sat_id) & (self.pass_k0 <= k) & (self.pass_k1 > k))[0]
        if not len(hit):
            return None
        p = int(hit[0])
        return slice(int(self.pass_offset[p]), int(self.pass_offset[p + 1]))

    def sats_between(self, t0: float, t1: float) -> np.ndarray:
        """``sat_id`` s with a pass overlapping ``[t0, t1]`` (in the zone at some instant of it)."""
        return np.unique(self.pass_sat[(self.pass_enter <= t1) & (self.pass_exit > t0)])

    def next_entry(self, t: float) -> float:
        """The first instant at or after ``t`` at which some satellite is in the zone (``nan``: none)."""
        live = self.pass_exit > t
        if not live.any():
            return math.nan
        return float(max(t, np.min(self.pass_enter[live])))

    def first_closer(self, sat_id: int, t0: float, t1: float) -> float:
        """First grid instant in ``[t0, t1)`` at which another in-zone satellite is strictly
        closer to the zone centre than ``sat_id`` (``nan``: none, or ``sat_id`` not sampled)."""
        k0, k1 = self.k_at(t0), self.k_at(t1)
        if k1 <= k0:
            return math.nan
        sl = self.pair_slice(sat_id, k0)
        if sl is None:
            return math.nan
        ks = self.pair_k[sl]
        own = self.range_km[sl][(ks >= k0) & (ks < k1)]
        k_own = ks[(ks >= k0) & (ks < k1)]
        closer = (self._best_sat[k_own] != sat_id) & (self._best_range[k_own] < own)
        hit = np.nonzero(closer)[0]
        return float(self.times[k_own[hit[0]]]) if len(hit) else math.nan

    def served_pairs(self, service: Sequence[tuple[float, float, int]]) -> np.ndarray:
        """Sample indices (into ``pair_*``, ``r_itrs``) of the serving satellite at every served
        grid instant. ``service``: ``(t0, t1, sat_id)`` intervals; instants ``t0 <= t < t1``."""
        out = []
        for t0, t1, sat in service:
            k0, k1 = self.k_at(t0), self.k_at(t1)
            if k1 <= k0:
                continue
            sl = self.pair_slice(sat, k0)
            if sl is None:
                continue
            ks = self.pair_k[sl]
            out.append(np.arange(sl.start, sl.stop)[(ks >= k0) & (ks < k1)])
        return np.concatenate(out) if out else np.zeros(0, dtype=np.intp)

    def client_rtt_ms(self, model: LatencyModel, pairs: np.ndarray) -> np.ndarray:
        """Client RTT (ms, :meth:`krios.orbits.rtt.LatencyModel.client_rtt_ms`) of the samples
        ``pairs``; each sample is computed once per zone however many policies it serves."""
        if self._rtt is None:
            self._rtt = np.full(len(self.pair_k), np.nan)
        missing = pairs[np.isnan(self._rtt[pairs])]
        if len(missing):
            self._rtt[missing] = model.client_rtt_ms(self.r_itrs[missing])
        return self._rtt[pairs]
