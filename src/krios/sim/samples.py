"""Satellite ranges sampled on the simulation grid, for every pass through a zone.

The grid is ``start + k * step_s`` for ``k = 0 .. K-1`` (unix s). Every pass
(``enter <= t < exit``) contributes one *sample* per grid instant inside it
(``pair_sat``, ``pair_k``). From them the engine finds when another satellite
becomes closer to the zone centre (policies that follow the best satellite) and
the client RTT of whoever serves.

Cost model (issue #16: all of Starlink Gen1, 100 zones, a day): a zone sees
~2.4 million samples a day, and one SGP4 evaluation costs ~0.3 us, so the
samples are not all propagated:

- **Ranges** (who is closest at each instant) come from cubic Lagrange
  interpolation of *exact* ITRS positions (:meth:`Constellation.positions`, the
  one path from SGP4 to ITRS) at nodes every :data:`NODE_SPACING_S` seconds of
  the grid along each pass. The interpolation errs by less than
  :attr:`ZoneSamples.range_tol_km` (a bound from the constellation's fastest
  angular rate, :func:`interp_error_km`); at an instant where the two closest
  satellites' interpolated ranges lie within twice that of each other, every
  satellite in the zone is propagated exactly there and ranked exactly. So the
  closest satellite at every grid instant, and therefore every answer of
  :meth:`~ZoneSamples.first_closer`, is the one exact ranges give.
- **Positions for RTT** are exact (SGP4 at the instant), computed only for the
  samples a serving satellite is sampled at (:meth:`~ZoneSamples.client_rtt_ms`),
  once per zone however many policies share them.
- :attr:`~ZoneSamples.r_itrs` and :attr:`~ZoneSamples.range_km` (exact, every
  sample) are computed only if asked for (tests, inspection).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import numpy as np

from krios.orbits import geometry
from krios.orbits.constellation import Constellation
from krios.orbits.rtt import LatencyModel
from krios.orbits.zones import Zone

#: Seconds between the exact interpolation nodes along a pass (rounded to whole grid steps).
NODE_SPACING_S = 32.0
#: Safety factor on the interpolation error bound (SGP4's perturbations on top of the
#: two-body bound, and float rounding).
ERROR_SAFETY = 10.0
#: The interpolation runs in float32 (half the memory traffic): node offsets from the zone
#: centre are under ~2,000 km (24 significant bits: rounded by < 0.06 m per coordinate), so
#: four weighted nodes and a square root err by < 0.5 m, a quarter of this (km).
FLOAT32_TOL_KM = 0.002
#: Samples per chunk of the interpolation (bounds scratch memory, ~100 bytes per sample).
_CHUNK = 1 << 20


def interp_error_km(constellation: Constellation, node_spacing_s: float) -> float:
    """Bound (km) on the error of cubic Lagrange interpolation of an ITRS position between
    nodes ``node_spacing_s`` apart, times :data:`ERROR_SAFETY`.

    The error of the cubic through nodes at ``-h, 0, h, 2h`` is at most
    ``max |r''''| h^4 max|(u+1) u (u-1) (u-2)| / 4! = 0.0234 h^4 max |r''''|``
    for ``u`` in ``[0, 1]``; on a (near-)circular orbit seen from the rotating Earth
    ``|r''''| <= r_max w^4`` with ``w`` the fastest angular rate
    (:attr:`Constellation.max_angular_rate`, orbital rate plus the Earth's).
    At 550 km and 32 s that is 35 cm before the safety factor.
    """
    w = constellation.max_angular_rate
    r_max = constellation.radius_range_km[1]
    return ERROR_SAFETY * 0.0235 * node_spacing_s ** 4 * r_max * w ** 4 + 1e-6


def _lagrange_weights(m: int) -> np.ndarray:
    """``(m, 4)`` cubic Lagrange weights through nodes ``-1, 0, 1, 2`` at ``u = i / m``."""
    u = np.arange(m) / m
    return np.stack([-u * (u - 1.0) * (u - 2.0) / 6.0, (u + 1.0) * (u - 1.0) * (u - 2.0) / 2.0,
                     -(u + 1.0) * u * (u - 2.0) / 2.0, (u + 1.0) * u * (u - 1.0) / 6.0], axis=1)


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
    range_tol_km:
        Bound on the error of the interpolated ranges (km, module docstring).
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
        self.constellation = constellation
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
        self._by_enter = np.argsort(self.pass_enter, kind="stable")
        self._enter_sorted = self.pass_enter[self._by_enter]
        self._max_dur = float(np.max(self.pass_exit - self.pass_enter)) if len(self.pass_sat) else 0.0
        self._by_sat: dict[int, list[int]] = {}
        for p, sat in enumerate(self.pass_sat.tolist()):
            self._by_sat.setdefault(sat, []).append(p)
        self._k0_list, self._k1_list = k0.tolist(), k1.tolist()
        self._offset_list = self.pass_offset.tolist()
        self._exact_r: np.ndarray | None = None  # every sample's exact position, if asked for
        self._exact_range: np.ndarray | None = None
        self._rtt: np.ndarray | None = None
        m = max(1, round(NODE_SPACING_S / self.step_s))
        self.range_tol_km = interp_error_km(constellation, m * self.step_s) + FLOAT32_TOL_KM
        self._best_sat = np.full(self.n_steps, -1, dtype=np.intp)
        # Exact ranges at the instants where interpolation cannot tell the closest apart:
        # ``_exact_at[k]`` is the row of ``_exact_ranges`` (``-1``: not needed), whose
        # columns are the slots of :meth:`_slots`.
        self._exact_at = np.full(self.n_steps, -1, dtype=np.intp)
        self._exact_ranges = np.empty((0, 0))
        self._exact_cols = np.empty((0, 0), dtype=np.int32)
        self._exact_best = np.empty(0)
        if total:
            self._closest_per_step(m)

    # -- the closest satellite at every grid instant ---------------------------------
    def _closest_per_step(self, m: int) -> None:
        """Per grid step: the in-zone satellite closest to the centre by exact ranges (lowest
        ``sat_id`` on ties; ``-1`` where none is in the zone).

        Ranges are interpolated (cubic Lagrange through four exact nodes ``m`` grid steps
        apart, error below :attr:`range_tol_km`); where the two closest are more than
        twice that apart the closest is certain; at the other steps every satellite in
        the zone is propagated exactly and ranked exactly.
        """
        k0, k1 = self.pass_k0, self.pass_k1
        live = k1 > k0
        j0 = k0 // m  # each pass's first node interval (interval j: grid steps j m .. j m + m - 1)
        n_int = np.where(live, (k1 - 1) // m - j0 + 1, 0)
        n_nodes = np.where(live, n_int + 3, 0)  # nodes j0 - 1 .. j0 + n_int + 1
        node_off = np.concatenate([[0], np.cumsum(n_nodes)])
        node_j = np.arange(node_off[-1]) - np.repeat(node_off[:-1] - (j0 - 1), n_nodes)
        node_t = self.start + self.step_s * (node_j * m).astype(float)
        d = self.constellation.positions(np.repeat(self.pass_sat, n_nodes), node_t) - self.zone.centre_itrs
        # Every interval (pass, j) at its m steps, into a table (pass slot, grid step).
        int_off = np.concatenate([[0], np.cumsum(n_int)])
        int_p = np.repeat(np.arange(len(k0)), n_int)
        rel = np.arange(int_off[-1]) - int_off[:-1][int_p]
        int_j = j0[int_p] + rel
        first = node_off[:-1][int_p] + rel  # node j - 1 of the interval
        col, width = self._slots(m)
        int_c = col[int_p]
        n_rows = -(-self.n_steps // m) * m
        # The table is (pass slot, grid step): a slot's passes never share a node interval
        # (:meth:`_slots`), so every interval's m steps are written whole, as one contiguous
        # block; the steps of a pass's first and last interval outside the pass are
        # emptied again afterwards.
        table = np.full((width, n_rows), np.inf, dtype=np.float32)
        blocks = table.reshape(width, n_rows // m, m)  # a view
        weights = _lagrange_weights(m).astype(np.float32)
        d = d.astype(np.float32)
        per = max(1, _CHUNK // m)
        for c0 in range(0, len(int_p), per):
            sel = slice(c0, c0 + per)
            base = first[sel]
            # one matrix product: (m, 4) weights by (4, Q * 3) node coordinates
            nodes = np.stack([d[base], d[base + 1], d[base + 2], d[base + 3]]).reshape(4, -1)
            pos = (weights @ nodes).reshape(m, len(base), 3)
            approx = np.sqrt(pos[..., 0] ** 2 + pos[..., 1] ** 2 + pos[..., 2] ** 2)  # (m, Q)
            blocks[int_c[sel], int_j[sel]] = approx.T
        before = np.where(live, k0 - j0 * m, 0)  # steps of the first interval before the pass
        after = np.where(live, ((k1 - 1) // m + 1) * m - k1, 0)  # of the last one after it
        for lo, count in ((j0 * m, before), (k1, after)):
            off = np.concatenate([[0], np.cumsum(count)])
            step = np.arange(off[-1]) - np.repeat(off[:-1] - lo, count)
            table[np.repeat(col, count), step] = np.inf
        table = table[:, :self.n_steps]
        r = np.arange(self.n_steps)
        top = np.argmin(table, axis=0)
        b1 = table[top, r].copy()
        table[top, r] = np.inf
        b2 = table.min(axis=0)
        best_sat = self._sat_in_slot(col, live, top, r)
        self._best_sat = np.where(np.isfinite(b1) | np.isnan(b1), best_sat, -1)
        with np.errstate(invalid="ignore"):
            unsure = np.flatnonzero((~(b2 - b1 > 2.0 * self.range_tol_km) & np.isfinite(b2))
                                    | np.isnan(b1) | np.isnan(b2))
        if not len(unsure):
            return
        s_u = self._sat_in_slot(col, live, np.broadcast_to(np.arange(width), (len(unsure), width)),
                                np.broadcast_to(unsure[:, None], (len(unsure), width)))
        # Exact ranges of everyone in the zone at those steps, ranked by the rule: lowest
        # range, then lowest sat_id (nan last).
        r_idx, c_idx = np.nonzero(s_u >= 0)
        kk = unsure[r_idx]
        exact = np.full(s_u.shape, np.inf)
        exact[r_idx, c_idx] = self.zone.look(
            self.constellation.positions(s_u[r_idx, c_idx], self.times[kk], self.gmst[kk]))[2]
        order = np.lexsort((s_u[r_idx, c_idx], exact[r_idx, c_idx], r_idx))
        head = np.concatenate([[True], r_idx[order][1:] != r_idx[order][:-1]])
        won = order[head]
        self._best_sat[unsure[r_idx[won]]] = s_u[r_idx[won], c_idx[won]]
        best_range = np.full(len(unsure), np.inf)
        best_range[r_idx[won]] = exact[r_idx[won], c_idx[won]]
        self._exact_at[unsure] = np.arange(len(unsure))
        self._exact_ranges = exact
        self._exact_best = best_range
        self._exact_cols = s_u

    def _sat_in_slot(self, col: np.ndarray, live: np.ndarray, slot: np.ndarray, k: np.ndarray) -> np.ndarray:
        """``sat_id`` of the pass in table slot ``slot`` at grid step ``k`` (arrays of one shape;
        ``-1`` where that slot holds no pass then). ``col``: each pass's slot (:meth:`_slots`)."""
        passes = np.flatnonzero(live)
        n = self.n_steps + 1
        key = col[passes] * n + self.pass_k0[passes]
        order = np.argsort(key, kind="stable")
        key, passes = key[order], passes[order]
        want = slot.astype(np.intp) * n + k
        i = np.searchsorted(key, want, side="right") - 1
        p = passes[np.maximum(i, 0)]
        hit = (i >= 0) & (col[p] == slot) & (self.pass_k0[p] <= k) & (k < self.pass_k1[p])
        return np.where(hit, self.pass_sat[p], -1).astype(np.int32)

    def _slots(self, m: int) -> tuple[np.ndarray, int]:
        """A column per pass such that passes sharing a node interval (``m`` grid steps) have
        different columns (greedy interval colouring by entry); and the number of columns."""
        col = np.zeros(len(self.pass_sat), dtype=np.intp)
        free: list[int] = []
        busy: list[tuple[int, int]] = []  # (first interval after the pass, column)
        width = 0
        for p in np.argsort(self.pass_k0, kind="stable").tolist():
            k0, k1 = self._k0_list[p], self._k1_list[p]
            if k1 <= k0:
                continue
            a, b = k0 // m, (k1 - 1) // m + 1
            while busy and busy[0][0] <= a:
                heapq.heappush(free, heapq.heappop(busy)[1])
            c = heapq.heappop(free) if free else width
            width = max(width, c + 1)
            col[p] = c
            heapq.heappush(busy, (b, c))
        return col, width

    # -- look-ups for the engine ---------------------------------------------------
    def k_at(self, t: float) -> int:
        """First grid index at or after ``t``."""
        return int(min(max(math.ceil((t - self.start) / self.step_s - 1e-9), 0), self.n_steps))

    def _pass_at(self, sat_id: int, k: int) -> int | None:
        """Index of ``sat_id``'s pass covering grid index ``k`` (``None`` if none)."""
        for p in self._by_sat.get(int(sat_id), ()):
            if self._k0_list[p] <= k < self._k1_list[p]:
                return p
        return None

    def pair_slice(self, sat_id: int, k: int) -> slice | None:
        """The samples of ``sat_id``'s pass covering grid index ``k`` (``None`` if none)."""
        p = self._pass_at(sat_id, k)
        if p is None:
            return None
        return slice(self._offset_list[p], self._offset_list[p + 1])

    def sats_between(self, t0: float, t1: float) -> np.ndarray:
        """``sat_id`` s (sorted) with a pass overlapping ``[t0, t1]`` (in the zone at some instant
        of it). Only the passes that entered within the longest pass's duration before ``t0``
        are compared."""
        hi = int(self._enter_sorted.searchsorted(t1, "right"))
        lo = int(self._enter_sorted.searchsorted(t0 - self._max_dur - 1.0, "left"))
        rows = self._by_enter[lo:hi]
        return np.unique(self.pass_sat[rows[self.pass_exit[rows] > t0]])

    def next_entry(self, t: float) -> float:
        """The first instant at or after ``t`` at which some satellite is in the zone (``nan``: none)."""
        live = self.pass_exit > t
        if not live.any():
            return math.nan
        return float(max(t, np.min(self.pass_enter[live])))

    def closest_at(self, t: float) -> int:
        """The in-zone satellite closest to the zone centre at grid instant ``t`` by exact ranges
        (lowest ``sat_id`` on ties; ``-1``: none, or ``t`` not on the grid)."""
        k = self.k_at(t)
        if k >= self.n_steps or self.times[k] != t:
            return -1
        return int(self._best_sat[k])

    def first_closer(self, sat_id: int, t0: float, t1: float) -> float:
        """First grid instant in ``[t0, t1)`` at which another in-zone satellite is strictly
        closer to the zone centre than ``sat_id`` (``nan``: none, or ``sat_id`` not sampled)."""
        k0, k1 = self.k_at(t0), self.k_at(t1)
        if k1 <= k0:
            return math.nan
        p = self._pass_at(sat_id, k0)
        if p is None:
            return math.nan
        ks = slice(k0, min(k1, self._k1_list[p]))
        closer = self._best_sat[ks] != sat_id
        rows = self._exact_at[ks]
        check = np.flatnonzero(rows >= 0)
        if len(check):  # instants ranked exactly: strictly closer, as the exact ranges say
            r = rows[check]
            own = np.where(self._exact_cols[r] == sat_id, self._exact_ranges[r], np.inf).min(axis=1)
            closer[check] &= self._exact_best[r] < own
        hit = np.flatnonzero(closer)
        return float(self.times[k0 + int(hit[0])]) if len(hit) else math.nan

    def served_pairs(self, service: Sequence[tuple[float, float, int]]) -> np.ndarray:
        """Sample indices (into ``pair_*``) of the serving satellite at every served grid
        instant. ``service``: ``(t0, t1, sat_id)`` intervals; instants ``t0 <= t < t1``."""
        out = []
        for t0, t1, sat in service:
            k0, k1 = self.k_at(t0), self.k_at(t1)
            if k1 <= k0:
                continue
            p = self._pass_at(sat, k0)
            if p is None:
                continue
            first = self._offset_list[p] + k0 - self._k0_list[p]
            out.append(np.arange(first, first + min(k1, self._k1_list[p]) - k0))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.intp)

    def positions_of(self, pairs: np.ndarray) -> np.ndarray:
        """Exact ITRS positions (km, ``(n, 3)``) of the samples ``pairs``
        (:meth:`Constellation.positions` at their grid instants)."""
        pairs = np.asarray(pairs, dtype=np.intp)
        k = self.pair_k[pairs]
        return self.constellation.positions(self.pair_sat[pairs], self.times[k], self.gmst[k])

    def client_rtt_ms(self, model: LatencyModel, pairs: np.ndarray) -> np.ndarray:
        """Client RTT (ms, :meth:`krios.orbits.rtt.LatencyModel.client_rtt_ms`) of the samples
        ``pairs``, from their exact positions; each sample is computed once per zone however
        many policies it serves."""
        if self._rtt is None:
            self._rtt = np.full(len(self.pair_k), np.nan)
        pairs = np.asarray(pairs, dtype=np.intp)
        todo = np.zeros(len(self._rtt), dtype=bool)  # the distinct samples without an RTT, in order
        todo[pairs] = True
        missing = np.flatnonzero(todo & np.isnan(self._rtt))
        if len(missing):
            self._rtt[missing] = model.client_rtt_ms(self.positions_of(missing))
        return self._rtt[pairs]

    @property
    def r_itrs(self) -> np.ndarray:
        """``(P, 3)`` exact ITRS positions (km) of every sample (computed on first use; the
        simulator itself only propagates the samples it needs)."""
        if self._exact_r is None:
            self._exact_r = self.positions_of(np.arange(len(self.pair_k)))
        return self._exact_r

    @property
    def range_km(self) -> np.ndarray:
        """``(P,)`` exact slant range (km) of every sample from the zone centre (what
        :class:`krios.control.policies.Candidate` calls ``range_km``; computed on first use)."""
        if self._exact_range is None:
            self._exact_range = self.zone.look(self.r_itrs)[2] if len(self.pair_k) else np.zeros(0)
        return self._exact_range
