"""Which satellite each worker node emulates: the emulator's assignment rule, as a pure function.

Every tick the emulator calls :func:`assign` with the previous assignment,
which nodes hold the app, and the zone's upcoming passes
(:meth:`krios.orbits.passes.ZoneTracker.passes`). The rule:

1. **Keep** what is still useful, so nodes are relabelled as rarely as
   possible (once per pass, when their satellite has left):

   - a *serving* node (a Ready app pod is bound to it) keeps its satellite
     while that satellite is in the zone;
   - a *starting* node (an app pod bound but not Ready yet: a successor being
     brought up) and every other node keep their satellite while it is in the
     zone or enters it within the horizon.

2. **Assign** every other node (no satellite yet, or its satellite has left)
   by greedy interval covering, which keeps a successor ready for the serving
   satellite: let the *frontier* be how far into the future the kept
   satellites cover the zone without a gap, counting a satellite as
   continuing the cover only if it enters at least ``overlap_s`` before the
   frontier (time for a proactive handover). Each free node, in name order,
   takes the unassigned satellite that covers the frontier and leaves the
   latest; if none covers it, the one entering soonest (then leaving latest).
   Greedy choice of the farthest-reaching interval is the classic optimal
   rule for covering a line with intervals, so with ``k`` spare nodes the
   cover reaches as far as any choice of ``k`` satellites could.

Satellites are distinct across nodes. Ties (equal times, to 1 ms) are broken
by a :class:`random.Random` seeded by the caller, so an assignment is a
deterministic function of the seed and the emulated time.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

SERVING = "serving"
STARTING = "starting"


@dataclass(frozen=True)
class Window:
    """A satellite's current or next pass through the zone (unix s)."""

    sat_id: int
    enter: float
    exit: float

    def covers(self, t: float) -> bool:
        return self.enter <= t < self.exit


def windows(passes: Iterable[object], now: float) -> dict[int, Window]:
    """Earliest pass of each satellite not over by ``now`` (``passes``: objects with
    ``sat_id``, ``enter``, ``exit``, e.g. :class:`krios.orbits.passes.Pass`)."""
    out: dict[int, Window] = {}
    for p in passes:
        sat, enter, exit_ = int(p.sat_id), float(p.enter), float(p.exit)  # type: ignore[attr-defined]
        if exit_ <= now:
            continue
        if sat not in out or enter < out[sat].enter:
            out[sat] = Window(sat, enter, exit_)
    return out


def frontier(now: float, held: Iterable[Window], overlap_s: float) -> float:
    """How far past ``now`` the ``held`` windows cover the zone without a gap.

    A window extends the cover if it has begun by ``now`` or begins at least
    ``overlap_s`` before the current frontier. ``now`` itself if nothing is in the zone.
    """
    front = now
    pending = sorted(held, key=lambda w: w.enter)
    grew = True
    while grew:
        grew = False
        for w in pending:
            if w.exit > front and (w.enter <= now or w.enter <= front - overlap_s):
                front = w.exit
                grew = True
    return front


def assign(
    now: float,
    nodes: Sequence[str],
    previous: Mapping[str, int | None],
    pods: Mapping[str, str],
    passes: Iterable[object],
    *,
    rng: random.Random,
    horizon_s: float,
    overlap_s: float,
) -> dict[str, int | None]:
    """The node -> ``sat_id`` assignment at ``now`` (``None`` for a node nothing can be given).

    Parameters
    ----------
    now:
        Emulated unix seconds.
    nodes:
        The worker nodes emulating satellites.
    previous:
        The assignment of the previous tick (``None``/missing: no satellite).
    pods:
        node -> :data:`SERVING` or :data:`STARTING` for nodes holding the app.
    passes:
        The zone's passes over ``[now, now + horizon_s]`` (``krios.orbits.passes.Pass``).
    rng:
        Tie-breaker, seeded by the caller.
    horizon_s:
        Satellites entering later than ``now + horizon_s`` are not assigned.
    overlap_s:
        Lead a successor must have over the satellite it follows (s).
    """
    win = {s: w for s, w in windows(passes, now).items() if w.enter <= now + horizon_s}
    out: dict[str, int | None] = {}
    taken: set[int] = set()
    # 1. keep: serving nodes first (their satellite must never be given away), then starting, then others
    order = sorted(nodes, key=lambda n: ({SERVING: 0, STARTING: 1}.get(pods.get(n, ""), 2), n))
    for node in order:
        sat = previous.get(node)
        if sat is None or sat in taken:
            continue
        w = win.get(sat)
        if w is None:
            continue
        if pods.get(node) == SERVING and not w.covers(now):
            continue
        out[node] = sat
        taken.add(sat)
    # 2. assign the free nodes by greedy interval covering
    free_sats = sorted((w for s, w in win.items() if s not in taken), key=lambda w: w.sat_id)
    rng.shuffle(free_sats)  # ties go to the first in this seeded order (max/min keep the first)
    for node in sorted(n for n in nodes if n not in out):
        if not free_sats:
            out[node] = None
            continue
        front = frontier(now, (win[s] for s in out.values() if s is not None), overlap_s)
        extending = [w for w in free_sats if w.exit > front and (w.enter <= now or w.enter <= front - overlap_s)]
        if extending:
            best = max(extending, key=lambda w: round(w.exit, 3))
        else:
            best = min(free_sats, key=lambda w: (round(w.enter, 3), -round(w.exit, 3)))
        out[node] = best.sat_id
        free_sats.remove(best)
    return {n: out.get(n) for n in nodes}


def successor(
    now: float, serving_sat: int | None, others: Iterable[int | None], win: Mapping[int, Window], lead_s: float
) -> int | None:
    """A satellite among ``others`` that can take over from ``serving_sat``.

    It must be in the zone ``lead_s`` before the serving satellite leaves
    (or now, if that is sooner) and stay in it past that exit. Without a
    serving satellite in the zone, any of ``others`` in the zone now.
    ``None`` when there is none.
    """
    cands = [s for s in others if s is not None and s in win]
    current = win.get(serving_sat) if serving_sat is not None else None
    if current is None or not current.covers(now):
        inside = [s for s in cands if win[s].covers(now)]
        return min(inside, key=lambda s: (-win[s].exit, s)) if inside else None
    start = max(now, current.exit - lead_s)
    good = [s for s in cands if s != serving_sat and win[s].enter <= start and win[s].exit > current.exit]
    return min(good, key=lambda s: (-win[s].exit, s)) if good else None


def covered_for_s(now: float, sats: Iterable[int | None], win: Mapping[int, Window]) -> float:
    """Seconds from ``now`` the assigned satellites cover the zone without a gap (0: none in it now)."""
    ws = [win[s] for s in sats if s is not None and s in win]
    return frontier(now, ws, 0.0) - now
