"""The event-driven handover engine: one policy in one zone over simulated time.

Every decision -- keep, or move and to which satellite -- is
:func:`krios.control.handover.decide`, the function the live controller calls
each time it looks at an app. The engine only decides *when* to ask: the
handover start time (:func:`krios.control.handover.start_time`) of the serving
satellite's exit is an exact event time; a better satellite can appear at any
moment, so for policies that follow the best one
(:func:`krios.control.handover.follows_best`: ``closest``) the sampled ranges
(:class:`~krios.sim.samples.ZoneSamples`) are scanned every ``step_s`` for the
first instant another satellite is closer, and that instant is put to
:func:`~krios.control.handover.decide`. The samples know which satellite is
closest there (by exact ranges), so that decision is offered that satellite
alone -- the same answer as offering everyone, since the tracker ranks the
same satellites by the same ranges -- and only if it then keeps (a tie, or a
pass boundary the grid rounds differently) is it asked again with everyone.

Timing model (documented in ``docs/guide/simulation.md``):

- At ``start`` the zone's first choice is already running and ready.
- A successor starts at the decision time ``d`` and is ready at
  ``d + startup_s``; it serves from ``max(ready, its zone entry)``.
- The old instance serves until the successor serves or until its satellite
  leaves the zone, whichever is first, and is then stopped (make before break:
  both run in between). A successor that leaves the zone before it could serve
  is stopped at its exit and another successor is chosen then.
- When nothing is in the zone, the next satellite to enter is chosen at its
  entry (``reason="gap"``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Protocol

import numpy as np

from krios.control import handover
from krios.control.policies import Candidate
from krios.sim.model import Handover, Instance, PolicySpec, Timeline


class Tracker(Protocol):
    """What the engine needs of :class:`krios.orbits.passes.ZoneTracker`."""

    def exit_time(self, sat_id: int, now: float) -> float: ...

    def candidates(
        self, now: float, sat_ids: list[int] | None = None, within_s: float = 0.0
    ) -> list[Candidate]: ...


class Scanner(Protocol):
    """Pass and range look-ups over the simulation grid (:class:`~krios.sim.samples.ZoneSamples`)."""

    step_s: float

    def next_entry(self, t: float) -> float: ...

    def first_closer(self, sat_id: int, t0: float, t1: float) -> float: ...

    def closest_at(self, t: float) -> int:
        """The in-zone satellite closest to the zone centre at grid instant ``t`` (``-1``: unknown)."""
        ...

    def sats_between(self, t0: float, t1: float) -> np.ndarray: ...


def run(
    spec: PolicySpec,
    zone_name: str,
    tracker: Tracker,
    scanner: Scanner,
    eligible: Mapping[int, str | None],
    start: float,
    end: float,
    *,
    lookahead_s: float,
    startup_s: float,
    rng: random.Random,
) -> Timeline:
    """Simulate ``spec`` in one zone from ``start`` to ``end`` (unix s); return its :class:`Timeline`."""
    tl = Timeline(policy=spec.name, zone=zone_name, start=start, end=end)
    def near(t0: float, t1: float, current: int | None) -> dict[int, str | None]:
        # Only satellites with a pass in [t0, t1] can be candidates: the same set the
        # tracker would keep from all of ``eligible``, without building it per call.
        ids = [s for s in scanner.sats_between(t0, t1).tolist() if s in eligible]
        if current is not None and current in eligible:
            ids.append(current)
        return {s: eligible[s] for s in ids}

    def decide(now: float, current: int | None, horizon: float, exit_time: float | None = None,
               best: int = -1) -> handover.Decision:
        if best >= 0 and best in eligible and exit_time is not None \
                and not handover.due(now, exit_time, spec.mode, lookahead_s):
            # A mid-pass move of a follow-best policy, at a grid instant whose closest satellite
            # the samples know by exact ranges: the tracker ranks the same satellites there, so
            # offering it alone gives the same answer without looking at everyone (if not --
            # a tie, or a pass boundary the grid rounds differently -- ask again with everyone).
            decision = handover.decide(tracker, now, current, {best: eligible[best]}, spec.chooser,
                                       spec.mode, lookahead_s, rng, exit_time)
            if decision.move is not None:
                return decision
        return handover.decide(tracker, now, current, near(now, horizon, current), spec.chooser, spec.mode,
                               lookahead_s, rng, exit_time)

    follow_best = handover.follows_best(spec.chooser)
    first = decide(start, None, start).move
    cur: int | None = None
    if first is not None and first.enters_in_s <= 0:
        cur = first.sat_id
    # The serving instance: (sat, created, ready, serving since).
    inst = (cur, start, start, start) if cur is not None else None
    t = start  # everything before t is settled
    earliest = start  # no decision before this instant
    retrying = False  # the last successor left before it could serve
    exit_t = math.inf
    guard = 0
    while t < end:
        guard += 1
        if guard > 10_000_000:  # pragma: no cover - a bug, not an input problem
            raise RuntimeError("simulation made no progress")
        if cur is None:
            te = scanner.next_entry(max(t, earliest))
            if math.isnan(te) or te >= end:
                break
            succ = decide(te, None, te).move
            if succ is None or succ.enters_in_s > 0:
                earliest = te + scanner.step_s
                continue
            tl.handovers.append(Handover(te, None, succ.sat_id, math.nan, "gap"))
            ready = te + startup_s
            s_exit = te + succ.remaining_s
            if s_exit <= ready:
                tl.instances.append(Instance(succ.sat_id, te, ready, s_exit))
                earliest = max(s_exit, te + min(scanner.step_s, 1.0))
                continue
            cur, inst, t, earliest = succ.sat_id, (succ.sat_id, te, ready, ready), ready, ready
            continue
        exit_t = tracker.exit_time(cur, t)
        if math.isnan(exit_t):  # not in the zone (should not happen): treat as gone now
            exit_t = t
        d = max(earliest, handover.start_time(exit_t, spec.mode, lookahead_s))
        best = -1
        if follow_best:
            tb = scanner.first_closer(cur, earliest, min(d, end, exit_t))
            if not math.isnan(tb):
                d = tb
                best = scanner.closest_at(tb)
        if d >= end:
            _stop(tl, inst, exit_t)
            inst = None
            break
        decision = decide(d, cur, max(d, exit_t), exit_t, best)
        reason, succ = decision.reason, decision.move
        if reason == "keep":  # the sampled ranges and the tracker disagree at a tie: look on
            earliest = d + scanner.step_s
            continue
        if succ is None:  # nobody to take over before the serving satellite leaves
            _stop(tl, inst, exit_t)
            cur, inst, t, earliest = None, None, exit_t, exit_t
            continue
        tl.handovers.append(Handover(d, cur, succ.sat_id, exit_t, "retry" if retrying else reason))
        retrying = False
        ready = d + startup_s
        serve_from = max(ready, d + succ.enters_in_s)
        s_exit = d + succ.remaining_s
        if s_exit <= serve_from:  # it would leave before serving: stop it, choose again then
            tl.instances.append(Instance(succ.sat_id, d, ready, s_exit))
            if s_exit >= exit_t:
                _stop(tl, inst, exit_t)
                cur, inst, t = None, None, exit_t
            earliest = max(s_exit, d + min(scanner.step_s, 1.0))
            retrying = True
            continue
        switch = min(exit_t, serve_from)
        _stop(tl, inst, switch)
        cur, inst, t, earliest = succ.sat_id, (succ.sat_id, d, ready, serve_from), serve_from, serve_from
    _stop(tl, inst, end)
    tl.service.sort()
    return tl


def _stop(tl: Timeline, inst: tuple[int, float, float, float] | None, when: float) -> None:
    """End the serving instance ``inst`` at ``when``: record its instance and service interval."""
    if inst is None:
        return
    sat, created, ready, since = inst
    stop = min(when, tl.end)
    tl.instances.append(Instance(sat, created, ready, max(stop, created)))
    tl.serve(since, stop, sat)
