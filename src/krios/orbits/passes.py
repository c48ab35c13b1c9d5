"""The in-zone engine: passes of satellites through a zone, and who is in it at any instant.

This is the one engine the runtime uses: the emulator, the scheduler and
controller daemons and the simulator ask a :class:`ZoneTracker` per zone; ``krios
bench orbits`` times it. (A per-tick engine over all zones, ``ZoneSet`` and its
incremental ``ZoneSequence``, was measured beside it on the runtime's pattern,
10,000 satellites x 100 zones at 1 s ticks, and removed: it decided membership
alone in about 0.4x one raw ``SatrecArray.sgp4`` call per tick, but cannot say
when a satellite leaves or enters, which the runtime asks every tick; that needs
the passes, and with them the trackers answer membership *and* exits in about
0.45x, of which the membership look-ups are under 0.2x.)

How passes are found (:func:`find_passes`)
------------------------------------------
1. **Coarse scan.** Every satellite is propagated at once
   (:meth:`~krios.orbits.constellation.Constellation.positions`, ITRS) on a grid of
   step :func:`scan_step`, reaching :data:`EDGE_STEPS` beyond the window, and
   tested against a *scan cone* about the zone centre: the zone's outer cone
   (:meth:`krios.orbits.zones.Zone.outer_angle`) widened by :data:`SCAN_MARGIN_DEG`.
   A satellite in the zone is inside the outer cone, and to get there from
   outside the scan cone it must cross the margin, which takes at least
   ``margin / w`` (``w``: the fastest a sub-satellite point can move, orbital rate
   plus Earth rotation). So every pass keeps its satellite inside the scan cone
   for at least ``2 margin / w``, longer than the step: no pass, however short,
   is missed. For a 550 km shell (``w`` = 0.068 deg/s) and a 2 deg margin that
   bound is 57 s; the step used is 90 % of it, at most :data:`MAX_STEP_S`. The
   grid's positions are kept per constellation, so the trackers of many zones
   over the same window propagate it once.
2. **Cull.** A run of scan instants inside the cone that cannot reach the outer
   cone between two instants, by a rigorous bound on how fast the direction to
   a satellite bends (:func:`_could_enter`), is dropped.
3. **Refinement.** Each run brackets at most one pass (the elevation rises,
   then falls, during one crossing). Where the grid has two instants either
   side, the worst-point elevation is followed on positions interpolated in the
   scan and entry and exit found on it, then *checked* with the exact rule a
   few milliseconds either side (:func:`_refine_interpolated`: four SGP4
   evaluations per pass). The rest -- runs at the window's far edges, passes
   shorter than a step, checks that fail -- go to the exact search
   (:func:`_refine`): the exact elevation at every instant of the run, golden
   section for the peak, regula falsi for the crossings. Either way the true
   crossing lies within :data:`ROOT_TOL_S` before the ``enter`` or ``exit``
   returned (the first instant found in, resp. out of, the zone).

A pass already under way at the start of the window, or still under way at
its end, is followed outside the window so that ``enter`` and ``exit`` are
the true crossing times.

:class:`ZoneTracker` caches passes over a horizon and extends it lazily, so
the scheduler, the controller, the emulator and the simulator ask "who is in
the zone, until when" without propagating or parsing anything per call; its
:meth:`~ZoneTracker.in_zone` is exactly the in-zone rule at any instant.
"""

from __future__ import annotations

import bisect
import math
import mmap
import os
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from krios.orbits import geometry
from krios.orbits.constellation import Constellation
from krios.orbits.zones import Zone


@dataclass(frozen=True)
class Candidate:
    """A satellite that could serve a zone, seen at one instant.

    Attributes
    ----------
    sat_id:
        0-based index of the satellite in its constellation.
    node:
        The worker node emulating it, or ``None`` where no node is involved
        (the simulator, or before the mapping is known).
    remaining_s:
        Seconds from the instant of the decision until the satellite leaves the
        zone (``inf`` if it does not leave within the prediction horizon).
    range_km:
        Slant range from the zone centre, km.
    elevation_deg:
        Elevation seen from the zone centre, degrees.
    enters_in_s:
        0 if the satellite is in the zone now, else seconds until it enters.
    """

    sat_id: int
    node: str | None
    remaining_s: float
    range_km: float
    elevation_deg: float
    enters_in_s: float = 0.0


#: Widening (deg) of the scan cone beyond the zone's outer cone.
SCAN_MARGIN_DEG = 2.0
#: Scan steps the grid reaches beyond each end of a window (:func:`_find`).
EDGE_STEPS = 10
#: Largest coarse step (s), whatever the geometric bound allows.
MAX_STEP_S = 60.0
#: Entry and exit times are bisected to this tolerance (s).
ROOT_TOL_S = 0.01
#: Culmination is located by golden-section search to this tolerance (s).
PEAK_TOL_S = 1.0
#: A scan bracket whose highest worst-point elevation is found this close (deg) below the
#: mask gets a graze window (:func:`_find`): the golden-section search places the peak
#: within 0.5 s, which in LEO misses its height by < 0.002 deg (elevation curvature
#: < 0.011 deg/s^2 at 550 km; 0.04 at 300 km gives < 0.005 deg).
GRAZE_DEG = 0.01
#: Span (s) of the passes :meth:`ZoneTracker.in_zone_until` looks through, from the
#: instant it last had to widen it (a few hundred passes instead of the horizon's).
QUERY_WINDOW_S = 300.0
#: Half-width (s) of the stencil the culmination's parabola is fitted on.
CULMINATION_H_S = 3.0
#: A scan run goes to the exact search unless its interpolated worst-point elevation
#: clears the mask by this much (deg; the interpolation errs by < 0.001 deg in LEO).
INTERP_MARGIN_DEG = 0.05
#: Grid step (s) on which a graze window is narrowed down (:func:`_graze_windows`).
GRAZE_STEP_S = 5.0
#: :meth:`ZoneTracker.candidates` of at most this many satellites looks through their own
#: passes rather than through every live one.
FEW_CANDIDATES = 4
#: Longest a pass may be followed outside the window (s) before it is cut.
MAX_FOLLOW_S = 86400.0
#: Satellite-times propagated per scan chunk (bounds memory).
_CHUNK = 2_000_000
#: Largest scan (satellite-times) kept for reuse: 16e6 x 12 bytes = 192 MB (a day and an hour
#: of all five Starlink Gen1 shells, 4,408 satellites at a 51 s step, is 7.8e6; a scan too large
#: to keep is propagated again by every zone's tracker, three times per search).
_CACHE_MAX = 16_000_000
_SCAN_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
_STENCIL = np.arange(-1, 3)


@dataclass(frozen=True)
class Pass:
    """One satellite's stay in a zone: ``enter`` and ``exit`` in unix seconds (UTC).

    ``max_elevation_deg`` is the elevation seen from the zone centre at
    culmination (the satellite's closest approach to the centre), to ~0.05 deg.
    """

    sat_id: int
    name: str
    enter: float
    exit: float
    max_elevation_deg: float

    @property
    def duration_s(self) -> float:
        return self.exit - self.enter


def scan_step(constellation: Constellation, margin_deg: float = SCAN_MARGIN_DEG) -> float:
    """Coarse scan step (s) that cannot miss a pass: 90% of ``2 (margin - 0.05 deg) / w``,
    capped at :data:`MAX_STEP_S` (see the module docstring)."""
    bound = 2.0 * math.radians(margin_deg - 0.05) / constellation.max_angular_rate
    return min(MAX_STEP_S, 0.9 * bound)


class _Evaluator:
    """Exact worst-point and centre elevations (deg) for (satellite, time) pairs of one zone,
    from :meth:`Constellation.positions`."""

    def __init__(self, constellation: Constellation, zone: Zone):
        self.c = constellation
        self.zone = zone

    def _worst_of(self, r: np.ndarray) -> np.ndarray:
        return self.zone.worst_elevation(r)

    def worst(self, sat_ids: np.ndarray, times: ArrayLike) -> np.ndarray:
        """Worst-point elevation over the zone disk of ``sat_ids[i]`` at ``times[i]`` (or at
        one instant ``times``)."""
        if len(sat_ids) == 0:
            return np.empty(0)
        return self._worst_of(self.c.positions(sat_ids, times))

    def both(self, sat_ids: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Worst-point elevation and elevation from the centre, from one propagation."""
        if len(sat_ids) == 0:
            return np.empty(0), np.empty(0)
        r = self.c.positions(sat_ids, times)
        return self._worst_of(r), self.zone.look(r)[0]

    def centre(self, sat_ids: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Elevation (deg) from the zone centre."""
        if len(sat_ids) == 0:
            return np.empty(0)
        return self.zone.look(self.c.positions(sat_ids, times))[0]


def _scan_threshold(constellation: Constellation, zone: Zone) -> float:
    """``r . u`` (km, ``u`` the centre's unit vector) at or above which a position is inside
    the scan cone; ``inf`` if the zone is never served."""
    r_min, r_max = constellation.radius_range_km
    angle = float(zone.outer_angle(r_max, margin_deg=SCAN_MARGIN_DEG))
    if angle < 0:
        return math.inf
    return r_min * math.cos(min(angle, math.pi / 2))


def _scan_positions(constellation: Constellation, grid: np.ndarray) -> np.ndarray:
    """ITRS positions (km, float32) of every satellite on the scan ``grid``, ``(N, T, 3)``.

    The last grid's positions are kept per constellation (up to :data:`_CACHE_MAX`
    satellite-times), so trackers for several zones over the same window (the
    simulator's and the daemons' case) propagate the constellation once.
    """
    return _scan_and_cpu(constellation, grid, 1)[0]


def _scan_and_cpu(constellation: Constellation, grid: np.ndarray, jobs: int) -> tuple[np.ndarray, float]:
    """:func:`_scan_positions`, propagated in ``jobs`` processes at once where ``os.fork``
    exists (:func:`_fill_forked`; the same positions), and the CPU seconds of the helper
    processes."""
    key = (float(grid[0]), float(grid[1] - grid[0]) if len(grid) > 1 else 0.0, len(grid))
    cached = _SCAN_CACHE.get(constellation)
    if cached is not None and cached[0] == key:
        return cached[1], 0.0
    shape = (len(constellation), len(grid), 3)
    per_chunk = max(1, _CHUNK // len(constellation))
    chunks = [(c0, min(c0 + per_chunk, len(grid))) for c0 in range(0, len(grid), per_chunk)]
    cpu = 0.0
    if jobs > 1 and len(chunks) > 1 and hasattr(os, "fork"):
        out, cpu = _fill_forked(constellation, grid, shape, chunks, jobs)
    else:
        out = np.empty(shape, dtype=np.float32)
        _fill(constellation, grid, out, chunks)
    if out.size <= 3 * _CACHE_MAX:
        _SCAN_CACHE[constellation] = (key, out)
    return out, cpu


def _fill(constellation: Constellation, grid: np.ndarray, out: np.ndarray, chunks: list[tuple[int, int]]) -> None:
    """Fill ``out[:, c0:c1]`` with the positions at ``grid[c0:c1]``, chunk by chunk."""
    for c0, c1 in chunks:
        out[:, c0:c1] = constellation.positions(None, grid[c0:c1])


def _fill_forked(constellation: Constellation, grid: np.ndarray, shape: tuple[int, int, int],
                 chunks: list[tuple[int, int]], jobs: int) -> tuple[np.ndarray, float]:
    """The scan in ``jobs`` processes; returns it and the CPU seconds of the helpers.

    The array lives in shared anonymous memory (processes forked later inherit it too);
    this process fills every ``jobs``-th chunk and ``jobs - 1`` forked children the
    others, each leaving with ``os._exit``. A child that fails makes this raise
    ``RuntimeError``.
    """
    size = int(np.prod(shape))
    out = np.frombuffer(mmap.mmap(-1, max(1, size * 4)), dtype=np.float32, count=size).reshape(shape)
    shares = [chunks[w::jobs] for w in range(jobs)]
    pids = []
    for share in shares[1:]:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - a child's coverage is not collected
            code = 1
            try:
                _fill(constellation, grid, out, share)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    cpu, failed = 0.0, False
    try:
        _fill(constellation, grid, out, shares[0])
    finally:
        for pid in pids:
            _, status, usage = os.wait4(pid, 0)
            cpu += usage.ru_utime + usage.ru_stime
            failed |= os.waitstatus_to_exitcode(status) != 0
    if failed:
        raise RuntimeError("a process propagating the scan failed")
    return out, cpu


def _scan_grid(start: float, duration_s: float, step: float) -> np.ndarray:
    """The scan instants (unix s) of :func:`find_passes` over ``[start, start + duration_s]``: they
    reach :data:`EDGE_STEPS` beyond the window, so that passes under way at its edges are
    usually seen whole (runs that lie wholly outside the window are dropped)."""
    end = start + duration_s
    return start - EDGE_STEPS * step + step * np.arange(math.ceil((end - start) / step) + 2 * EDGE_STEPS + 1)


def prepare_scan(constellation: Constellation, start: float, duration_s: float, step_s: float | None = None,
                 jobs: int = 1) -> float:
    """Propagate the scan :func:`find_passes` (and so every :class:`ZoneTracker`) uses over
    ``[start, start + duration_s]`` and keep it (up to :data:`_CACHE_MAX` satellite-times),
    without looking for any zone's passes: trackers built later, or in worker processes
    forked later, reuse it. ``jobs > 1``: in that many processes at once (forked, where the
    platform can; the same positions). Returns the CPU seconds of those helper processes
    (``0.0`` without any)."""
    grid = _scan_grid(start, duration_s, step_s or scan_step(constellation))
    return _scan_and_cpu(constellation, grid, jobs)[1]


def _in_scan_cone(zone: Zone, threshold: float, r_itrs: np.ndarray) -> np.ndarray:
    """Bool ``(..., )``: ITRS positions ``r_itrs`` (..., 3) km inside the zone's scan cone."""
    with np.errstate(invalid="ignore"):
        return (r_itrs @ zone.unit.astype(r_itrs.dtype)) >= threshold


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(row, first, last)`` column indices of every run of True in a 2-D bool array, row by
    row (by ``first`` within a row)."""
    n_cols = mask.shape[1]
    on = np.flatnonzero(mask)  # row-major; a scan cone holds a few percent of the instants
    if len(on) == 0:
        empty = np.empty(0, dtype=np.intp)
        return empty, empty.copy(), empty.copy()
    rows, cols = np.divmod(on, n_cols)
    # a run ends where the next True is not the next column of the same row
    ends = np.flatnonzero((np.diff(on) != 1) | (np.diff(rows) != 0))
    starts = np.concatenate([[0], ends + 1])
    ends = np.concatenate([ends, [len(on) - 1]])
    return rows[starts], cols[starts], cols[ends]


def _follow(constellation: Constellation, zone: Zone, threshold: float, sats: np.ndarray, t: float,
            step: float, direction: int) -> np.ndarray:
    """From ``t`` (each of ``sats`` inside the scan cone there), step outward on the grid
    until each is outside; return those times (at most :data:`MAX_FOLLOW_S` away)."""
    limit = t + direction * MAX_FOLLOW_S
    out = np.full(len(sats), limit)
    todo = np.arange(len(sats))
    chunk = 8  # a LEO pass leaves a scan cone within a few steps
    while len(todo) and (limit - t) * direction > 0:
        times = t + direction * step * np.arange(1, chunk + 1)
        inside = _in_scan_cone(zone, threshold, constellation.positions(sats[todo, None], times[None, :]))
        done = ~inside.all(axis=1)
        out[todo[done]] = times[np.argmin(inside[done], axis=1)]
        todo = todo[~done]
        t = float(times[-1])
        chunk = 64
    return out


def find_passes(
    constellation: Constellation,
    zone: Zone,
    start: float,
    duration_s: float,
    *,
    step_s: float | None = None,
) -> list[Pass]:
    """Every pass of every satellite through ``zone`` that overlaps ``[start, start + duration_s]``.

    Times are unix seconds (UTC); entry and exit are accurate to :data:`ROOT_TOL_S`
    (the true crossing, even outside the window). Sorted by entry, then ``sat_id``.
    """
    return _find(constellation, zone, start, duration_s, step_s)[0]


def _find(constellation: Constellation, zone: Zone, start: float, duration_s: float,
          step_s: float | None = None) -> tuple[list[Pass], np.ndarray]:
    """:func:`find_passes` plus the *graze windows*: ``(K, 3)`` rows ``(sat_id, t0, t1)``
    of scan brackets whose highest worst-point elevation was found within
    :data:`GRAZE_DEG` below the mask. Such a satellite may clear the mask for a
    moment the search cannot resolve; :class:`ZoneTracker` decides it by the exact
    rule at any instant inside ``(t0, t1)`` (outside, it is certainly out of the zone)."""
    no_graze = np.empty((0, 3))
    threshold = _scan_threshold(constellation, zone)
    if threshold == math.inf:
        return [], no_graze
    step = step_s or scan_step(constellation)
    end = start + duration_s
    grid = _scan_grid(start, duration_s, step)
    n_grid = len(grid)
    mask = _in_scan_cone(zone, threshold, _scan_positions(constellation, grid))
    rows, firsts, lasts = _runs(mask)
    near = (grid[np.minimum(lasts + 1, n_grid - 1)] > start) & (grid[np.maximum(firsts - 1, 0)] < end)
    rows, firsts, lasts = rows[near], firsts[near], lasts[near]
    if len(rows) == 0:
        return [], no_graze
    lo = grid[np.maximum(firsts - 1, 0)]
    hi = grid[np.minimum(lasts + 1, n_grid - 1)]
    at_start, at_end = firsts == 0, lasts + 1 == n_grid
    if at_start.any():
        lo[at_start] = _follow(constellation, zone, threshold, rows[at_start], grid[0], step, -1)
    if at_end.any():
        hi[at_end] = _follow(constellation, zone, threshold, rows[at_end], grid[-1], step, +1)
    keep = _could_enter(constellation, zone, grid, rows, firsts, lasts, at_start | at_end)
    if not keep.all():
        rows, firsts, lasts, lo, hi = rows[keep], firsts[keep], lasts[keep], lo[keep], hi[keep]
        at_start, at_end = at_start[keep], at_end[keep]
        if len(rows) == 0:
            return [], no_graze
    # Brackets with two scan instants either side: interpolated first, checked exactly.
    inner = ~at_start & ~at_end & (firsts >= 2) & (lasts <= n_grid - 3)
    fast: list[Pass] = []
    if inner.any():
        which = np.flatnonzero(inner)
        fast, done = _refine_interpolated(constellation, zone, grid, rows[which], firsts[which],
                                          lasts[which])
        rest = np.ones(len(rows), dtype=bool)
        rest[which[done]] = False
        rows, firsts, lasts, lo, hi = rows[rest], firsts[rest], lasts[rest], lo[rest], hi[rest]
        at_start, at_end = at_start[rest], at_end[rest]
    if len(rows) == 0:
        passes, graze = [], no_graze
    else:
        passes, graze = _refine_exact(constellation, zone, grid, step, rows, firsts, lasts, lo, hi,
                                      at_start, at_end)
    passes = [p for p in fast + passes if p.exit > start and p.enter < end]
    passes.sort(key=lambda p: (p.enter, p.sat_id))
    graze = graze[(graze[:, 2] > start) & (graze[:, 1] < end)] if len(graze) else no_graze
    return passes, graze


def _refine_exact(constellation: Constellation, zone: Zone, grid: np.ndarray, step: float,
                  rows: np.ndarray, firsts: np.ndarray, lasts: np.ndarray, lo: np.ndarray,
                  hi: np.ndarray, at_start: np.ndarray,
                  at_end: np.ndarray) -> tuple[list[Pass], np.ndarray]:
    """:func:`_refine` on brackets given as scan runs (``lo``/``hi``: the instants outside
    the scan cone either side)."""
    # The samples of every bracket, flattened: the grid inside the run, and for runs at
    # the window's edges the followed steps outside it.
    first_t = np.where(at_start, lo + step, grid[firsts])
    last_t = np.where(at_end, hi - step, grid[lasts])
    counts = np.rint((last_t - first_t) / step).astype(np.intp) + 1
    offsets = np.concatenate([[0], np.cumsum(counts)])
    k = np.arange(offsets[-1]) - np.repeat(offsets[:-1], counts)
    flat_t = np.repeat(first_t, counts) + step * k
    return _refine(constellation, zone, rows, lo, hi, flat_t, offsets, step)


def _lagrange(scan: np.ndarray, rows: np.ndarray, j: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Positions (P, 3) km interpolated in the scan (cubic Lagrange through grid instants
    ``j - 1 .. j + 2``) at fraction ``u`` in [0, 1] of the step from ``j`` to ``j + 1``."""
    w = np.stack([-u * (u - 1.0) * (u - 2.0) / 6.0, (u + 1.0) * (u - 1.0) * (u - 2.0) / 2.0,
                  -(u + 1.0) * u * (u - 2.0) / 2.0, (u + 1.0) * u * (u - 1.0) / 6.0], axis=1)
    # (P, 4, 3): one take over the flattened (satellite, instant) rows, ~4x faster than
    # indexing by two arrays (the same values)
    nodes = np.take(scan.reshape(-1, 3), (rows * scan.shape[1] + j)[:, None] + _STENCIL, axis=0)
    return np.einsum("pk,pkj->pj", w, nodes)


def _refine_interpolated(constellation: Constellation, zone: Zone, grid: np.ndarray, rows: np.ndarray,
                         firsts: np.ndarray, lasts: np.ndarray) -> tuple[list[Pass], np.ndarray]:
    """Passes of scan runs with two grid instants either side, at a few exact evaluations each.

    The worst-point elevation is followed on positions interpolated in the scan
    (cubic Lagrange through four grid instants: ~1 m off SGP4 in LEO at a 50 s
    step, 1e-4 s in a crossing). A run whose interpolated elevation clears the mask
    by :data:`INTERP_MARGIN_DEG` -- at a grid instant, or at the peak found between
    them by parabolic steps -- gets entry and exit by regula falsi on the
    interpolation; each is then *checked exactly*: the rule
    (:meth:`Constellation.positions`) must hold ``ROOT_TOL_S``/2.5 inside it and fail
    as far outside, so the true crossing lies within :data:`ROOT_TOL_S` of the value
    returned, as :func:`_crossings` guarantees. A run whose interpolated peak stays
    that margin below the mask holds no pass. The maximum elevation from the centre
    comes from the interpolation (to ~0.05 deg). Returns the passes and which runs
    (indices) are settled; the others -- peaks within the margin, failed checks --
    go to the exact search."""
    scan = _scan_positions(constellation, grid)
    step = float(grid[1] - grid[0])
    e_min = zone.min_elevation_deg
    ev = _Evaluator(constellation, zone)
    counts = lasts - firsts + 3  # the run and an instant either side
    offsets = np.concatenate([[0], np.cumsum(counts)])
    seg = np.repeat(np.arange(len(rows)), counts)
    cols = np.arange(offsets[-1]) - np.repeat(offsets[:-1], counts) + np.repeat(firsts - 1, counts)
    flat_t = grid[cols]
    flat_f = ev._worst_of(np.take(scan.reshape(-1, 3), np.repeat(rows, counts) * scan.shape[1] + cols,
                                  axis=0).astype(float))
    top = _segment_argmax(flat_f, offsets)
    split_t, split_f = flat_t[top], flat_f[top]
    # Runs not clearing the mask at a grid instant: their peak between instants.
    low = np.flatnonzero(~(split_f >= e_min + INTERP_MARGIN_DEG))
    if len(low):
        t = split_t[low]
        lo_t, hi_t = grid[firsts[low] - 1], grid[lasts[low] + 1]
        best_t, best = t.copy(), np.where(np.isnan(split_f[low]), -90.0, split_f[low])
        for h in (step / 2.0, step / 8.0, 1.0):
            x = [np.clip(t + k * h, lo_t, hi_t) for k in (-1, 0, 1)]
            f = [_interp_worst(scan, ev, rows[low], grid, xk) for xk in x]
            for xk, fk in zip(x, f, strict=True):
                up = fk > best
                best_t, best = np.where(up, xk, best_t), np.where(up, fk, best)
            t = np.clip(t + _vertex(f[0], f[1], f[2], h), lo_t, hi_t)
        split_t[low], split_f[low] = best_t, best
    clear = split_f >= e_min + INTERP_MARGIN_DEG
    dropped = np.flatnonzero(split_f < e_min - INTERP_MARGIN_DEG)
    # The crossings: between the last instant below the mask before the split and the
    # split (or the next instant), and likewise after it.
    idx = np.arange(len(flat_f))
    below = ~(flat_f >= e_min)
    before = np.maximum.reduceat(np.where(below & (flat_t < split_t[seg]), idx, -1), offsets[:-1])
    after = np.minimum.reduceat(np.where(below & (flat_t > split_t[seg]), idx, len(idx)), offsets[:-1])
    sel = np.flatnonzero(clear & (before >= 0) & (after < len(idx)))
    if not len(sel):
        return [], dropped
    r_sel = rows[sel]
    t_split = split_t[sel]
    t_before, t_after = flat_t[before[sel]], flat_t[after[sel]]
    roots = []
    for a, b in ((t_before, np.minimum(t_before + step, t_split)),
                 (np.maximum(t_after - step, t_split), t_after)):
        # regula falsi (Illinois) in time on the interpolation, to 1e-4 s; a root it
        # misses shows in the exact check below
        ga = _interp_worst(scan, ev, r_sel, grid, a) - e_min
        gb = _interp_worst(scan, ev, r_sel, grid, b) - e_min
        side = np.zeros(len(sel))
        x = np.full(len(sel), np.nan)
        act = np.arange(len(sel))  # not converged yet
        for _ in range(40):
            aa, bb, gaa, gbb = a[act], b[act], ga[act], gb[act]
            with np.errstate(invalid="ignore", divide="ignore"):
                x_new = aa - gaa * (bb - aa) / (gbb - gaa)
            x_new = np.where(np.isfinite(x_new), np.clip(x_new, aa, bb), (aa + bb) / 2.0)
            moved = np.abs(x_new - x[act])
            x[act] = x_new
            act, x_new, aa, bb, gaa, gbb = (v[~(moved < 1e-4)] for v in (act, x_new, aa, bb, gaa, gbb))
            if not len(act):
                break
            gx = _interp_worst(scan, ev, r_sel[act], grid, x_new) - e_min
            left = np.sign(gx) == np.sign(gaa)  # the root lies in [x, b]
            s_act = side[act]
            # Anderson-Bjorck: scale the end kept twice by 1 - g(x) / g(end replaced)
            with np.errstate(invalid="ignore", divide="ignore"):
                m = np.where(left, 1.0 - gx / gaa, 1.0 - gx / gbb)
            m = np.where((m > 0) & np.isfinite(m), m, 0.5)
            gbb = np.where(left & (s_act > 0), gbb * m, gbb)
            gaa = np.where(~left & (s_act < 0), gaa * m, gaa)
            a[act], ga[act] = np.where(left, x_new, aa), np.where(left, gx, gaa)
            b[act], gb[act] = np.where(left, bb, x_new), np.where(left, gbb, gx)
            side[act] = np.where(left, 1.0, -1.0)
        roots.append(x)
    t_in, t_out = roots
    d = ROOT_TOL_S / 2.5
    checks = ev.worst(np.tile(r_sel, 4), np.concatenate([t_in - d, t_in + d, t_out - d, t_out + d]))
    f_in_lo, f_in_hi, f_out_lo, f_out_hi = checks.reshape(4, -1)
    good = (f_in_lo < e_min) & (f_in_hi >= e_min) & (f_out_lo >= e_min) & (f_out_hi < e_min)
    sel, r_sel, t_in, t_out, t = sel[good], r_sel[good], t_in[good], t_out[good], t_split[good]
    # The culmination from the centre on the interpolation: parabolic steps on sin(elevation).
    best = _interp_centre_sin(scan, zone, r_sel, grid, t)
    quarter = np.maximum((t_out - t_in) / 4.0, 0.1)  # a stencil within a short pass
    for h in (np.minimum(step / 2.0, quarter), np.minimum(4.0, quarter), np.minimum(0.5, quarter)):
        f0, f1, f2 = (_interp_centre_sin(scan, zone, r_sel, grid, t + k * h) for k in (-1, 0, 1))
        best = np.fmax(best, np.fmax(f1, np.fmax(f0, f2)))
        shift = _vertex(f0, f1, f2, h)
        t = np.clip(t + shift, t_in, t_out)
    # the last parabola's top, where its vertex lies inside the stencil
    denom = f0 - 2.0 * f1 + f2
    with np.errstate(invalid="ignore", divide="ignore"):
        top_value = np.where((denom < 0) & (np.abs(shift) < h), f1 - (f0 - f2) ** 2 / (8.0 * denom), -1.0)
    best = np.fmax(np.fmax(best, top_value), _interp_centre_sin(scan, zone, r_sel, grid, t))
    max_elev = np.degrees(np.arcsin(np.minimum(best, 1.0)))
    names = constellation.names
    passes = [Pass(s, names[s], a, b, m) for s, a, b, m in zip(
        r_sel.tolist(), (t_in + d).tolist(), (t_out + d).tolist(), max_elev.tolist(), strict=True)]
    return passes, np.concatenate([sel, dropped])


def _interp_worst(scan: np.ndarray, ev: _Evaluator, rows: np.ndarray, grid: np.ndarray,
                  t: np.ndarray) -> np.ndarray:
    """Worst-point elevation (deg) of positions interpolated in the scan at ``t``."""
    step = float(grid[1] - grid[0])
    pos = (t - grid[0]) / step
    j = np.clip(np.floor(pos).astype(np.intp), 1, len(grid) - 3)
    return ev._worst_of(_lagrange(scan, rows, j, pos - j))


def _interp_centre_sin(scan: np.ndarray, zone: Zone, rows: np.ndarray, grid: np.ndarray,
                       t: np.ndarray) -> np.ndarray:
    """sin(elevation from the zone centre) of positions interpolated in the scan at ``t``."""
    step = float(grid[1] - grid[0])
    pos = (t - grid[0]) / step
    j = np.clip(np.floor(pos).astype(np.intp), 1, len(grid) - 3)
    r = _lagrange(scan, rows, j, pos - j)
    elev = zone.look(r)[0]
    return np.sin(np.radians(elev))


def _could_enter(constellation: Constellation, zone: Zone, grid: np.ndarray, rows: np.ndarray,
                 firsts: np.ndarray, lasts: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """Which scan runs may hold an instant in the zone (bool per run; runs at the window's
    edge are kept).

    In the zone means ``cos psi >= cos A`` (``psi``: angle between the satellite's
    direction and the centre's, ``A``: the outer cone at the largest radius,
    :meth:`Zone.outer_angle`). Between two scan instants ``a``, ``b`` a step ``h``
    apart, ``cos psi`` is at most ``max(f_a, f_b) + B h^2 / 8`` (linear interpolation's
    error bound, ``B``: :attr:`Constellation.direction_accel_bound`). A run none of whose
    intervals -- from the instant before it to the one after -- reaches ``cos A`` by
    that bound is dropped without an exact evaluation."""
    outer = float(zone.outer_angle(constellation.radius_range_km[1]))
    keep = edge.copy()
    if outer >= math.pi or len(grid) < 2:
        return np.ones(len(rows), dtype=bool)
    step = float(grid[1] - grid[0])
    # The scan keeps float32 positions: 1e-6 of slack in cosine covers their rounding.
    reach = math.cos(outer) - constellation.direction_accel_bound * step * step / 8.0 - 1e-6
    inner = np.flatnonzero(~edge)
    if not len(inner):
        return keep
    counts = lasts[inner] - firsts[inner] + 3  # the run and the instants either side
    offsets = np.concatenate([[0], np.cumsum(counts)])
    cols = np.arange(offsets[-1]) - np.repeat(offsets[:-1], counts) + np.repeat(firsts[inner] - 1, counts)
    r = _scan_positions(constellation, grid)[np.repeat(rows[inner], counts), cols].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = (r @ zone.unit) / np.sqrt(np.einsum("ij,ij->i", r, r))
    f = np.where(np.isnan(f), 1.0, f)  # no position: keep
    pair_max = np.maximum(f[:-1], f[1:])
    pair_max[offsets[1:-1] - 1] = -np.inf  # pairs spanning two runs
    best = np.maximum.reduceat(pair_max, offsets[:-1])
    keep[inner] = best >= reach
    return keep


def _segment_argmax(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Flat index of the largest value of each segment ``offsets[k]:offsets[k+1]`` (first on ties;
    ``nan`` counts as lowest; segments are not empty)."""
    v = np.where(np.isnan(values), -np.inf, values)
    counts = np.diff(offsets)
    top = np.maximum.reduceat(v, offsets[:-1])
    idx = np.arange(len(v))
    hit = np.where(v == np.repeat(top, counts), idx, len(v))
    return np.minimum.reduceat(hit, offsets[:-1])


def _refine(constellation: Constellation, zone: Zone, sats: np.ndarray, lo: np.ndarray,
            hi: np.ndarray, flat_t: np.ndarray, offsets: np.ndarray,
            step: float) -> tuple[list[Pass], np.ndarray]:
    """Scan brackets -> passes (and graze windows, :func:`_find`).

    The exact worst-point elevation at every sample of a bracket; where one clears
    the mask the pass is certain and is split there, else the culmination is searched
    by golden section. Entry and exit are bracketed by the samples (or the bracket's
    ends, outside the scan cone, certainly out of the zone) and found by
    :func:`_crossings`; the maximum elevation from the centre by parabolic steps."""
    ev = _Evaluator(constellation, zone)
    e_min = zone.min_elevation_deg
    counts = np.diff(offsets)
    flat_s = np.repeat(sats, counts)
    flat_f, flat_c = ev.both(flat_s, flat_t)
    best = _segment_argmax(flat_f, offsets)
    best_t, best_f = flat_t[best], flat_f[best]
    split_t, split_f = best_t.copy(), np.where(np.isnan(best_f), -90.0, best_f)
    graze = np.empty((0, 3))
    low = np.flatnonzero(~(split_f >= e_min))
    if len(low):
        peak_t, peak_f = _golden(ev, sats[low], np.maximum(best_t[low] - step, lo[low]),
                                 np.minimum(best_t[low] + step, hi[low]))
        better = peak_f > split_f[low]
        split_t[low[better]], split_f[low[better]] = peak_t[better], peak_f[better]
        near = low[(split_f[low] < e_min) & (split_f[low] >= e_min - GRAZE_DEG)]
        graze = _graze_windows(constellation, zone, sats[near], lo[near], hi[near])
    keep = np.flatnonzero(split_f >= e_min)
    if len(keep) == 0:
        return [], graze
    # Entry lies between the last sample below the mask before the split and the first at or
    # above it (the bracket's start if none is below); exit likewise after the split.
    seg = np.repeat(np.arange(len(sats)), counts)
    below = ~(flat_f >= e_min)
    before = below & (flat_t < split_t[seg])
    after = below & (flat_t > split_t[seg])
    idx = np.arange(len(flat_t))
    last_before = np.maximum.reduceat(np.where(before, idx, -1), offsets[:-1]) if len(idx) else idx
    first_after = np.minimum.reduceat(np.where(after, idx, len(idx)), offsets[:-1]) if len(idx) else idx
    has_b, has_a = last_before >= 0, first_after < len(idx)
    enter_lo = np.where(has_b, flat_t[np.maximum(last_before, 0)], lo)
    enter_flo = np.where(has_b, flat_f[np.maximum(last_before, 0)], np.nan)
    exit_hi = np.where(has_a, flat_t[np.minimum(first_after, len(idx) - 1)], hi)
    exit_fhi = np.where(has_a, flat_f[np.minimum(first_after, len(idx) - 1)], np.nan)
    # The in-zone ends: the sample after the last one below (before the split), the
    # sample before the first one below (after it); the split itself if none between.
    nxt = np.minimum(last_before + 1, len(idx) - 1)
    use = has_b & (flat_t[nxt] < split_t)
    enter_hi, enter_fhi = np.where(use, flat_t[nxt], split_t), np.where(use, flat_f[nxt], split_f)
    prv = np.maximum(first_after - 1, 0)
    use = has_a & (flat_t[prv] > split_t)
    exit_lo, exit_flo = np.where(use, flat_t[prv], split_t), np.where(use, flat_f[prv], split_f)
    sats = sats[keep]
    n = len(keep)
    both_sats = np.concatenate([sats, sats])
    a = np.concatenate([enter_lo[keep], exit_lo[keep]])
    b = np.concatenate([enter_hi[keep], exit_hi[keep]])
    fa = np.concatenate([enter_flo[keep], exit_flo[keep]])
    fb = np.concatenate([enter_fhi[keep], exit_fhi[keep]])
    split_t = split_t[keep]
    rising = np.arange(2 * n) < n
    cross = _crossings(ev, both_sats, a, b, fa, fb, rising, e_min)
    enter, exit_ = cross[:n], cross[n:]
    # The culmination from the centre: a parabola through the highest centre sample of
    # each kept bracket and its neighbours (or the split, for a pass between samples).
    top = _segment_argmax(flat_c, offsets)[keep]
    seg_lo, seg_hi = offsets[:-1][keep], offsets[1:][keep] - 1
    sin_c = np.sin(np.radians(flat_c))
    c0 = sin_c[np.maximum(top - 1, seg_lo)]
    c2 = sin_c[np.minimum(top + 1, seg_hi)]
    inner = (top > seg_lo) & (top < seg_hi)
    guess = np.where(inner, flat_t[top] + _vertex(c0, sin_c[top], c2, step), split_t)
    max_elev = _culmination(ev, sats, np.clip(guess, enter, exit_), enter, exit_)
    names = constellation.names
    return [Pass(s, names[s], t0, t1, m)
            for s, t0, t1, m in zip(sats.tolist(), enter.tolist(), exit_.tolist(), max_elev.tolist(),
                                    strict=True)], graze


def _graze_windows(constellation: Constellation, zone: Zone, sats: np.ndarray, lo: np.ndarray,
                   hi: np.ndarray) -> np.ndarray:
    """Graze windows ``(K, 3)`` rows ``(sat_id, t0, t1)``: for each satellite, the part of
    its bracket ``(lo, hi)`` where it could be in the zone at all, by the bound of
    :func:`_could_enter` on a :data:`GRAZE_STEP_S` grid of exact positions (a few tens
    of seconds around its closest approach, instead of the whole bracket)."""
    out = []
    outer = float(zone.outer_angle(constellation.radius_range_km[1]))
    slack = constellation.direction_accel_bound * GRAZE_STEP_S ** 2 / 8.0
    for sat, a, b in zip(sats.tolist(), lo.tolist(), hi.tolist(), strict=True):
        t = np.append(np.arange(a, b, GRAZE_STEP_S), b)
        if outer >= math.pi or len(t) < 2:
            out.append((sat, a, b))
            continue
        r = constellation.positions(np.full(len(t), sat), t)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = (r @ zone.unit) / np.linalg.norm(r, axis=1)
        f = np.where(np.isnan(f), 1.0, f)
        could = np.flatnonzero(np.maximum(f[:-1], f[1:]) + slack >= math.cos(outer))
        if len(could):
            out.append((sat, float(t[could[0]]), float(t[could[-1] + 1])))
    return np.array(out, dtype=float).reshape(-1, 3)


def _golden(ev: _Evaluator, sats: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Golden-section search for each satellite's highest worst-point elevation in ``[a, b]``
    to :data:`PEAK_TOL_S`; returns the best instant evaluated and its elevation."""
    x1 = b - _GOLDEN * (b - a)
    x2 = a + _GOLDEN * (b - a)
    f1, f2 = ev.worst(sats, x1), ev.worst(sats, x2)
    best_t, best_f = np.where(f1 >= f2, x1, x2), np.fmax(f1, f2)
    while np.max(b - a) > PEAK_TOL_S:
        left = f1 >= f2  # the maximum lies in [a, x2]
        b = np.where(left, x2, b)
        a = np.where(left, a, x1)
        new_x = np.where(left, b - _GOLDEN * (b - a), a + _GOLDEN * (b - a))
        f_new = ev.worst(sats, new_x)
        up = f_new > best_f
        best_t, best_f = np.where(up, new_x, best_t), np.where(up, f_new, best_f)
        x2, f2, x1, f1 = (np.where(left, x1, new_x), np.where(left, f1, f_new),
                          np.where(left, new_x, x2), np.where(left, f_new, f2))
    return best_t, np.where(np.isnan(best_f), -90.0, best_f)


def _vertex(f0: np.ndarray, f1: np.ndarray, f2: np.ndarray, h: ArrayLike) -> np.ndarray:
    """Offset (s, within ``[-h, h]``) of the vertex of the parabola through values at
    ``-h, 0, h``; 0 where it does not open downwards."""
    denom = f0 - 2.0 * f1 + f2
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(denom < 0, 0.5 * h * (f0 - f2) / denom, 0.0)
    return np.clip(np.nan_to_num(shift), -h, h)


def _culmination(ev: _Evaluator, sats: np.ndarray, t: np.ndarray, a: np.ndarray,
                 b: np.ndarray) -> np.ndarray:
    """Highest elevation (deg) from the zone centre near ``t`` (a parabolic estimate from the
    scan samples) within ``[a, b]``: the parabola through three values
    :data:`CULMINATION_H_S` apart about ``t``, its vertex value once the vertex lies
    within the stencil (the stencil moves to it up to four times), else the best value
    evaluated."""
    h = CULMINATION_H_S
    out = np.full(len(sats), -1.0)
    todo = np.arange(len(sats))
    t = t.copy()
    for _ in range(5):
        n = len(todo)
        tt = t[todo]
        # sin(elevation), not elevation: smooth at the top of a pass near the zenith
        f = np.sin(np.radians(ev.centre(np.tile(sats[todo], 3),
                                        np.concatenate([tt - h, tt, tt + h])).reshape(3, n)))
        f = np.where(np.isnan(f), -1.0, f)
        out[todo] = np.fmax(out[todo], f.max(axis=0))
        denom = f[0] - 2.0 * f[1] + f[2]
        with np.errstate(invalid="ignore", divide="ignore"):
            peak = np.where(denom < 0, f[1] - (f[0] - f[2]) ** 2 / (8.0 * denom), -1.0)
            shift = np.where(denom < 0, 0.5 * h * (f[0] - f[2]) / denom, 0.0)
        shift = np.nan_to_num(shift)
        ok = np.abs(shift) <= h
        out[todo[ok]] = np.fmax(out[todo[ok]], peak[ok])
        t[todo] = np.clip(tt + np.clip(shift, -4 * h, 4 * h), a[todo], b[todo])
        todo = todo[~ok]
        if not len(todo):
            break
    return np.degrees(np.arcsin(np.minimum(out, 1.0)))


def _crossings(ev: _Evaluator, sats: np.ndarray, lo: np.ndarray, hi: np.ndarray, f_lo: np.ndarray,
               f_hi: np.ndarray, rising: np.ndarray, e_min: float) -> np.ndarray:
    """The crossing of ``e_min`` in each ``[lo, hi]``: below at ``lo`` and at or above at
    ``hi`` where ``rising`` (the reverse otherwise); ``f_lo``/``f_hi`` are the
    elevations there if known (``nan``: evaluate). Returns the first instant found in
    the zone (rising) or the first found out of it (setting), at most
    :data:`ROOT_TOL_S` after the last instant found on the other side: the true
    crossing lies in ``[result - ROOT_TOL_S, result]``.

    Regula falsi with the Illinois modification (the elevation is smooth, so it
    converges in a few steps), falling back to bisection whenever a step does not
    shrink a bracket by half; the bracket always holds the crossing.
    """
    lo, hi = lo.copy(), hi.copy()
    sign = np.where(rising, 1.0, -1.0)  # g = sign * (elev - e_min): negative at lo, positive at hi
    for f, t in ((f_lo, lo), (f_hi, hi)):
        missing = np.flatnonzero(np.isnan(f))
        if len(missing):
            f = f.copy()
            f[missing] = ev.worst(sats[missing], t[missing])
        if t is lo:
            f_lo = f
        else:
            f_hi = f
    g_lo = np.where(np.isfinite(f_lo), np.minimum(sign * (f_lo - e_min), -1e-9), -1.0)
    g_hi = np.where(np.isfinite(f_hi), np.maximum(sign * (f_hi - e_min), 1e-9), 1.0)
    if not rising.all():  # setting: "at or above" is in the zone, so the sides swap
        g_lo, g_hi = np.where(rising, g_lo, -g_hi), np.where(rising, g_hi, -g_lo)
        lo, hi = np.where(rising, lo, hi), np.where(rising, hi, lo)
    # Now g < 0 means out of the zone and g >= 0 in it, at both ends; lo is out, hi in,
    # and for setting passes lo > hi (the bracket runs backwards in time).
    side = np.zeros(len(lo))  # which end moved last: -1 lo, +1 hi
    for it in range(200):
        width = np.abs(hi - lo)
        active = width > ROOT_TOL_S
        if not active.any():
            break
        idx = np.flatnonzero(active)
        out, into, gl, gh = lo[idx], hi[idx], g_lo[idx], g_hi[idx]
        w = into - out
        x = out - gl * w / (gh - gl)
        # Nudge the estimate 0.4 tolerance towards the end that has not moved lately: once
        # the secant is that accurate, the point lands across the crossing and the
        # bracket closes, instead of creeping up on it from one side.
        x = x + 0.4 * ROOT_TOL_S * np.sign(w) * -np.sign(side[idx])
        guard = np.minimum(0.1 * np.abs(w), ROOT_TOL_S / 4) * np.sign(w)
        x = np.where(w > 0, np.clip(x, out + guard, into - guard), np.clip(x, into - guard, out + guard))
        x = np.where((np.abs(side[idx]) >= 3) | (it >= 60), (out + into) / 2.0, x)
        f = ev.worst(sats[idx], x)
        g = np.where(np.isfinite(f), f - e_min, -1.0)
        inside = g >= 0
        g = np.where(inside, np.maximum(g, 1e-12), np.minimum(g, -1e-12))
        s = side[idx]
        # Illinois: halve the stale end's value so the next secant step crosses over.
        g_hi[idx] = np.where(~inside & (s < 0), gh / 2.0, np.where(inside, g, gh))
        g_lo[idx] = np.where(inside & (s > 0), gl / 2.0, np.where(inside, gl, g))
        lo[idx] = np.where(inside, out, x)
        hi[idx] = np.where(inside, x, into)
        side[idx] = np.where(inside, np.maximum(s, 0) + 1, np.minimum(s, 0) - 1)
    # Rising: the first instant found in the zone; setting: the first found out of it.
    return np.where(rising, hi, lo)


class ZoneTracker:
    """The in-zone engine: pass predictions for one zone, cached over a horizon and
    extended lazily. The emulator, the scheduler and controller daemons and the
    simulator all ask it; ``krios bench orbits`` times it.

    Every question is answered from the cached passes (``in_zone``,
    ``exit_time``, ``next_entry``, ``candidates``). :meth:`in_zone` is exact: it
    is the instant rule (:meth:`Zone.contains` of the satellite's position at
    ``now``, :meth:`Constellation.positions`) for every satellite, because the
    only instants the passes leave undecided -- the :data:`ROOT_TOL_S` before
    each computed entry and exit, and graze windows (:func:`_find`) -- are
    settled by evaluating the rule for those few satellites at ``now``. Its
    answer is cached until the next such instant, so consecutive ticks cost a
    comparison. Only :meth:`look`, :meth:`candidates` and those settlements
    propagate, and only the satellites concerned. Times are unix seconds; a
    tracker answers for any time, recomputing when asked about the past.
    """

    def __init__(self, constellation: Constellation, zone: Zone, horizon_s: float = 3600.0,
                 start: float | None = None):
        self.constellation = constellation
        self.zone = zone
        self.horizon_s = float(horizon_s)
        self._ev = _Evaluator(constellation, zone)
        self._t0 = math.nan
        self._t1 = math.nan
        self._passes: list[Pass] = []
        self._by_sat: dict[int, list[Pass]] = {}
        self._enter = np.empty(0)
        self._exit = np.empty(0)
        self._sat = np.empty(0, dtype=int)
        self._graze = np.empty((0, 3))
        self._max_dur = 0.0
        self._events = np.empty(0)
        self._unsettled = np.zeros(0, dtype=bool)
        self._q_sat, self._q_enter, self._q_exit = self._sat, self._enter, self._exit
        self._event_list: list[float] = []
        self._unsettled_list: list[bool] = []
        self._window: tuple[float, float, tuple[np.ndarray, np.ndarray, np.ndarray]] = (
            math.inf, -math.inf, (self._enter, self._exit, self._sat))
        self._answer: tuple[float, float, np.ndarray, np.ndarray] | None = None
        if start is not None:
            self._reset(float(start))

    # -- cache -----------------------------------------------------------------------
    def _reset(self, t: float) -> None:
        self._t0 = t
        self._t1 = t
        self._passes = []
        self._by_sat = {}
        self._graze = np.empty((0, 3))
        self._extend(t + self.horizon_s)

    def _extend(self, until: float) -> None:
        while self._t1 < until:
            span = max(self.horizon_s, until - self._t1)
            new, graze = _find(self.constellation, self.zone, self._t1, span)
            self._graze = np.concatenate([self._graze, graze])
            old_end = self._t1
            for p in new:
                # A pass under way at the old end of the cache is found again.
                if p.enter < old_end + 1.0 and any(abs(q.enter - p.enter) < 1.0
                                                   for q in self._by_sat.get(p.sat_id, ())):
                    continue
                self._passes.append(p)
                self._by_sat.setdefault(p.sat_id, []).append(p)
            self._t1 += span
        # Forget passes long gone, so a 24-hour run does not grow without bound.
        self._passes = [p for p in self._passes if p.exit >= self._t0]
        self._passes.sort(key=lambda p: (p.enter, p.sat_id))
        self._enter = np.array([p.enter for p in self._passes])
        self._exit = np.array([p.exit for p in self._passes])
        self._sat = np.array([p.sat_id for p in self._passes], dtype=int)
        # The longest pass bounds how long before ``now`` a live pass can have entered (_live).
        self._max_dur = float(np.max(self._exit - self._enter)) if len(self._passes) else 0.0
        self._by_sat = {}
        for p in self._passes:
            self._by_sat.setdefault(p.sat_id, []).append(p)
        self._graze = self._graze[self._graze[:, 2] >= self._t0]
        # The instants at which the in-zone set may change, or stops being decided by the
        # passes alone (the settle windows: ROOT_TOL_S before each entry and exit, closed,
        # and the graze windows), and whether each interval between two of them lies in a
        # settle window (``_unsettled[k]``: between ``_events[k]`` and ``_events[k + 1]``).
        starts = np.concatenate([self._enter - ROOT_TOL_S, self._exit - ROOT_TOL_S, self._graze[:, 1]])
        ends = np.concatenate([self._enter, self._exit, self._graze[:, 2]])
        self._events = np.unique(np.concatenate([starts, ends]))
        n = len(self._events) + 1
        opened = (np.bincount(np.searchsorted(self._events, starts), minlength=n)
                  - np.bincount(np.searchsorted(self._events, ends), minlength=n))
        self._unsettled = np.cumsum(opened)[:len(self._events)] > 0
        self._event_list, self._unsettled_list = self._events.tolist(), self._unsettled.tolist()
        # The passes by satellite, for in_zone's answers sorted by sat_id.
        by_sat = np.lexsort((self._enter, self._sat))
        self._q_sat, self._q_enter, self._q_exit = self._sat[by_sat], self._enter[by_sat], self._exit[by_sat]
        self._answer = None
        self._window = (math.inf, -math.inf, (self._q_enter, self._q_exit, self._q_sat))

    def _ensure(self, now: float, ahead: float) -> None:
        if math.isnan(self._t0) or now < self._t0:
            self._reset(now)
        if self._t1 < now + ahead:
            if now - self._t1 > self.horizon_s:  # jumped far ahead: start afresh
                self._reset(now)
            else:
                self._t0 = max(self._t0, now - self.horizon_s)
                self._extend(now + ahead)

    def _live(self, now: float, within_s: float = 0.0) -> np.ndarray:
        """Rows (ascending) of the cached passes with ``enter <= now + within_s`` and
        ``exit > now``. The passes are sorted by entry, and a live one entered less than the
        longest pass's duration before ``now``: only the rows between those two entry times
        are compared (a few dozen instead of a day's thousands)."""
        enter = self._enter
        hi = int(enter.searchsorted(now + within_s, "right"))
        lo = int(enter.searchsorted(now - self._max_dur - 1.0, "left"))
        return lo + (self._exit[lo:hi] > now).nonzero()[0]

    def passes(self, now: float, until: float | None = None) -> list[Pass]:
        """Cached passes overlapping ``[now, until]`` (default: the horizon), by entry."""
        until = now + self.horizon_s if until is None else until
        self._ensure(now, until - now)
        return [p for p in self._passes if p.exit > now and p.enter <= until]

    # -- questions -------------------------------------------------------------------
    def in_zone(self, now: float) -> np.ndarray:
        """``sat_id`` s (sorted) in the zone at ``now``: exactly the instant rule (class
        docstring). The array is shared with later calls: do not modify it."""
        return self.in_zone_until(now)[0]

    def in_zone_until(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """``(sat_ids, exits)``: the satellites in the zone at ``now`` (sorted, as
        :meth:`in_zone`) and when each leaves it (unix s, the pass's computed exit; for
        the rare satellite caught in a graze window, that window's end). Shared arrays:
        do not modify them."""
        now = float(now)
        answer = self._answer
        if answer is not None and answer[0] < now < answer[1]:
            return answer[2], answer[3]
        self._ensure(now, 0.0)
        events = self._event_list
        k = bisect.bisect_right(events, now) - 1
        if k >= 0 and (events[k] == now or self._unsettled_list[k]):
            return self._settle(now)
        # Decided by the passes alone until the next event: cache for the open interval.
        if not self._window[0] <= now < self._window[1]:
            self._set_window(now)
        q_enter, q_exit, q_sat = self._window[2]
        live = (q_enter <= now) & (now < q_exit)
        sats, exits = q_sat[live], q_exit[live]
        sats.flags.writeable = exits.flags.writeable = False  # shared with later calls
        lo = events[k] if k >= 0 else self._t0
        hi = events[k + 1] if k + 1 < len(events) else self._t1
        self._answer = (lo, min(hi, self._t1), sats, exits)
        return sats, exits

    def _set_window(self, now: float) -> None:
        """The passes (by satellite) overlapping ``[now, now + QUERY_WINDOW_S)``, which
        :meth:`in_zone_until` looks through instead of every cached pass."""
        end = min(now + QUERY_WINDOW_S, self._t1)
        rows = (self._q_exit > now) & (self._q_enter < end)
        self._window = (now, end, (self._q_enter[rows], self._q_exit[rows], self._q_sat[rows]))

    def _settle(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`in_zone_until` at an instant some pass does not decide: the passes for the
        others, the instant rule for the satellites within a settle window."""
        tol = ROOT_TOL_S
        enter, exit_ = self._enter, self._exit
        live = (enter <= now) & (exit_ > now)
        unsure = ((enter - tol <= now) & (now <= enter)) | ((exit_ - tol <= now) & (now <= exit_))
        graze = self._graze
        grazing = graze[(graze[:, 1] <= now) & (now <= graze[:, 2])]
        rows = np.flatnonzero(live & ~unsure)
        sats, exits = self._sat[rows], exit_[rows]
        check = np.flatnonzero(unsure)
        ids = np.concatenate([self._sat[check], grazing[:, 0].astype(int)])
        ends = np.concatenate([exit_[check], grazing[:, 2]])
        inside = self._ev.worst(ids, now) >= self.zone.min_elevation_deg
        sats, exits = np.concatenate([sats, ids[inside]]), np.concatenate([exits, ends[inside]])
        order = np.argsort(sats, kind="stable")
        sats, exits = sats[order], exits[order]
        if len(sats) > 1 and (sats[1:] == sats[:-1]).any():  # a pass and its settlement
            first = np.concatenate([[True], sats[1:] != sats[:-1]])
            sats, exits = sats[first], exits[first]
        return sats, exits

    def exit_time(self, sat_id: int, now: float) -> float:
        """When ``sat_id`` leaves the zone (the pass it is in at ``now``); ``nan`` if not in it."""
        self._ensure(now, 0.0)
        for p in self._by_sat.get(int(sat_id), ()):
            if p.enter <= now < p.exit:
                return p.exit
        return math.nan

    def next_entry(self, sat_id: int, now: float) -> float:
        """When ``sat_id`` next enters the zone (``now`` if it is in it); ``nan`` if not
        within the horizon."""
        self._ensure(now, self.horizon_s)
        best = math.nan
        for p in self._by_sat.get(int(sat_id), ()):
            if p.enter <= now < p.exit:
                return now
            if now < p.enter <= now + self.horizon_s and not p.enter >= best:
                best = p.enter
        return best

    def look(self, sat_ids: Iterable[int], now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Elevation (deg), azimuth (deg) and range (km) from the zone centre at ``now``."""
        ids = (sat_ids.astype(np.intp, copy=False).ravel() if isinstance(sat_ids, np.ndarray)
               else np.fromiter(sat_ids, dtype=np.intp))
        if len(ids) == 0:
            empty = np.empty(0)
            return empty, empty.copy(), empty.copy()
        return self.zone.look(self.constellation.positions(ids, float(now)))

    def _elevation_range(self, ids: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Elevation (deg) and range (km) of :meth:`look` (the same bits), without the azimuth."""
        r = self.constellation.positions(ids, float(now))
        return geometry.enu_elevation_range(r - self.zone.centre_itrs, self.zone.basis)

    def candidates(
        self,
        now: float,
        sat_ids: Iterable[int] | Mapping[int, str | None] | None = None,
        within_s: float = 0.0,
    ) -> list[Candidate]:
        """Satellites in the zone at ``now`` or entering within ``within_s``, as
        :class:`Candidate` (``remaining_s`` = exit - now; range and
        elevation from the centre at ``now``). ``sat_ids`` restricts the satellites; a
        mapping ``sat_id -> node`` also fills in ``node``."""

        self._ensure(now, max(within_s, 0.0))
        if sat_ids is not None and not isinstance(sat_ids, Mapping):
            sat_ids = dict.fromkeys(sat_ids)
        if sat_ids is not None and len(sat_ids) <= FEW_CANDIDATES:
            return self._few_candidates(now, sat_ids, within_s)
        sats, rows = self._candidate_rows(now, sat_ids, within_s)
        if len(sats) == 0:
            return []
        elev, rng = self._elevation_range(sats, now)
        remaining = self._exit[rows] - now
        enters_in = np.maximum(0.0, self._enter[rows] - now)
        return [Candidate(sid, None if sat_ids is None else sat_ids.get(sid), rem, r, e, ent)
                for sid, rem, r, e, ent in zip(sats.tolist(), remaining.tolist(), rng.tolist(),
                                               elev.tolist(), enters_in.tolist(), strict=True)]

    def candidate_times(self, now: float, sat_ids: Iterable[int] | Mapping[int, str | None] | None = None,
                        within_s: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(sat_ids, remaining_s, enters_in_s)`` arrays of :meth:`candidates` (the same
        satellites in the same order, the same numbers), without looking at the satellites
        (no propagation): for rankings that need range and elevation only to break ties."""
        self._ensure(now, max(within_s, 0.0))
        if sat_ids is not None and not isinstance(sat_ids, Mapping):
            sat_ids = dict.fromkeys(sat_ids)
        sats, rows = self._candidate_rows(now, sat_ids, within_s)
        return sats, self._exit[rows] - now, np.maximum(0.0, self._enter[rows] - now)

    def _candidate_rows(self, now: float, wanted: Mapping[int, str | None] | None,
                        within_s: float) -> tuple[np.ndarray, np.ndarray]:
        """``(sat_ids, rows)``: each wanted satellite's earliest pass with ``enter <= now +
        within_s`` and ``exit > now`` (rows of the cached passes), by ``sat_id``."""
        rows = self._live(now, within_s)
        if len(rows) == 0:
            return self._sat[:0], rows
        # By sat_id; a stable sort keeps each satellite's earliest pass (rows are by entry)
        # first, and only that one is kept.
        sats = self._sat[rows]
        order = np.argsort(sats, kind="stable")
        sats, rows = sats[order], rows[order]
        if len(sats) > 1:
            repeat = (sats[1:] == sats[:-1]).nonzero()[0] + 1
            if len(repeat):
                sats, rows = np.delete(sats, repeat), np.delete(rows, repeat)
        if wanted is not None:
            keep = [k for k, sid in enumerate(sats.tolist()) if sid in wanted]
            if len(keep) < len(sats):
                sats, rows = sats[keep], rows[keep]
        return sats, rows

    def _few_candidates(self, now: float, wanted: Mapping[int, str | None], within_s: float) -> list[Candidate]:
        """:meth:`candidates` of a few ``wanted`` satellites, found through each one's passes
        instead of every live pass: the same passes (its earliest with ``enter <= now +
        within_s`` and ``exit > now``; :meth:`_live` keeps exactly those), the same numbers."""
        until = now + within_s
        found: list[tuple[int, Pass]] = []
        for sid in sorted(wanted):
            for p in self._by_sat.get(int(sid), ()):  # by entry
                if p.enter <= until and p.exit > now:
                    found.append((int(sid), p))
                    break
        if not found:
            return []
        elev, rng = self._elevation_range(np.array([sid for sid, _ in found], dtype=np.intp), now)
        return [Candidate(sid, wanted.get(sid), float(p.exit) - now, r, e, max(0.0, float(p.enter) - now))
                for (sid, p), r, e in zip(found, rng.tolist(), elev.tolist(), strict=True)]


