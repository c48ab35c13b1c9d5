"""Handover decisions: when to move an app to another satellite, and onto which.

Shared by the live controller (:mod:`krios.control.controller`) and the policy
simulator (:mod:`krios.sim.run`), so both make the same choice for the same
state. Times are unix seconds (emulated time where the emulator accelerates).

Modes
-----
``proactive``
    Start the successor ``lookahead_s`` seconds before the serving satellite
    leaves the zone, wait until it is ready, then stop the old instance
    (make before break; the Krios design).
``reactive``
    Start the successor only once the serving satellite has left the zone.

Policies that *follow the best* satellite (:data:`FOLLOW_BEST`: ``closest``)
also move mid-pass, as soon as the policy ranks another satellite in the zone
above the serving one. :func:`decide` is the one decision -- keep, or move and
to which satellite -- that the live controller and the simulator both call.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING

from krios.control.policies import Candidate, rank
from krios.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from krios.orbits.passes import ZoneTracker

MODES = ("proactive", "reactive")

#: Policies that hand over whenever they rank another satellite in the zone first (not only at exits).
FOLLOW_BEST = frozenset({"closest"})
#: Policies whose ranking (:func:`krios.control.policies.rank`) needs range and elevation only to
#: break ties (``krios``: in the zone before entering, then longest remaining) or not at all
#: (``random``): :func:`pick_successor` propagates only the satellites that can come first
#: (:func:`_first_by_time`).
TIME_RANKED = frozenset({"krios", "random"})


def follows_best(policy: str) -> bool:
    """Whether ``policy`` moves mid-pass to the satellite it ranks first (``closest``)."""
    return policy in FOLLOW_BEST


@dataclasses.dataclass(frozen=True)
class Decision:
    """What to do with the app at one instant.

    ``move`` is the satellite (and node) to start a successor on, or ``None``
    to keep the serving one. ``reason``: ``keep``; ``place`` (nothing serves
    yet: first placement); ``exit`` (the handover away from a leaving
    satellite is due, :func:`due`); ``better`` (a :data:`FOLLOW_BEST` policy
    ranks another in-zone satellite first); ``none`` (a move is due but no
    satellite can take over). ``exit_time``: when the serving satellite
    leaves the zone (unix s; ``nan`` when it is not in the zone or none serves).
    """

    move: Candidate | None
    reason: str
    exit_time: float = math.nan


def decide(
    tracker: ZoneTracker,
    now: float,
    current_sat: int | None,
    eligible: Mapping[int, str | None],
    policy: str,
    mode: str,
    lookahead_s: float,
    rng: random.Random | None = None,
    exit_time: float | None = None,
) -> Decision:
    """Keep the serving satellite ``current_sat`` or move, and to which satellite, at ``now``.

    The one handover decision of the controller and the simulator:

    1. nothing serves (``current_sat is None``): place on :func:`pick_successor`'s choice;
    2. the handover away from ``current_sat`` is :func:`due` (``mode``,
       ``lookahead_s`` in the tracker's time unit, seconds): move to
       :func:`pick_successor`'s choice (satellites entering before the exit
       count; those outlasting the serving one first);
    3. a :data:`FOLLOW_BEST` policy: move to :func:`preferred`'s choice when it
       ranks another in-zone satellite above ``current_sat`` (compared among the
       eligible satellites *and* ``current_sat``, which the caller need not
       list: the controller leaves the serving node out of ``eligible``);
    4. else keep.

    ``eligible``: ``sat_id -> node`` of the satellites that may host a
    successor. ``exit_time``: when ``current_sat`` leaves (default: from the
    tracker; ``nan``: not in the zone, so a move is due at once).
    """
    if current_sat is None:
        best = pick_successor(tracker, now, None, eligible, policy, rng)
        return Decision(best, "place" if best is not None else "none")
    if exit_time is None:
        exit_time = tracker.exit_time(current_sat, now)
    if due(now, exit_time, mode, lookahead_s):
        best = pick_successor(tracker, now, current_sat, eligible, policy, rng, exit_time)
        return Decision(best, "exit" if best is not None else "none", exit_time)
    if follows_best(policy):
        pool: dict[int, str | None] = dict(eligible)
        pool.setdefault(current_sat, None)
        best = preferred(tracker, now, current_sat, pool, policy, rng)
        if best is not None and best.sat_id in eligible:
            return Decision(best, "better", exit_time)
    return Decision(None, "keep", exit_time)


def check_mode(mode: str, *, source: str = "handover mode") -> str:
    """Return ``mode`` if known, else raise a :class:`ConfigError` listing the known ones."""
    if mode not in MODES:
        raise ConfigError(f"unknown handover mode (known: {', '.join(MODES)})", source=source, field=mode)
    return mode


def start_time(exit_time: float, mode: str, lookahead_s: float) -> float:
    """Unix seconds at which the handover away from a satellite leaving at ``exit_time`` starts."""
    check_mode(mode)
    return exit_time - lookahead_s if mode == "proactive" else exit_time


def due(now: float, exit_time: float, mode: str, lookahead_s: float) -> bool:
    """Whether the handover must start at ``now``.

    ``exit_time`` is when the serving satellite leaves the zone; ``nan`` means
    it is not in the zone at all, which makes a handover due at once.
    """
    if math.isnan(exit_time):
        return True
    return now >= start_time(exit_time, mode, lookahead_s)


def pick_successor(
    tracker: ZoneTracker,
    now: float,
    current_sat: int | None,
    eligible: Mapping[int, str | None],
    policy: str,
    rng: random.Random | None = None,
    exit_time: float | None = None,
) -> Candidate | None:
    """The satellite (and its node) that should take over from ``current_sat``.

    Parameters
    ----------
    tracker:
        Pass predictions for the app's zone.
    now:
        Decision instant, unix seconds.
    current_sat:
        The serving satellite, or ``None`` for a first placement.
    eligible:
        ``sat_id -> node`` for the satellites that can host the app (the
        simulator passes ``node=None``).
    policy:
        A :mod:`krios.control.policies` name.
    exit_time:
        When ``current_sat`` leaves the zone (default: from the tracker).
        Satellites that enter before then are candidates too, ranked after the
        ones already in the zone.

    Returns ``None`` when no eligible satellite is or will be in the zone
    before ``current_sat`` leaves. A successor that would leave no later than
    the current one is only returned when nothing better exists.
    """
    sat_ids = [s for s in eligible if s != current_sat]
    if not sat_ids:
        return None
    if exit_time is None and current_sat is not None:
        exit_time = tracker.exit_time(current_sat, now)
    within = 0.0
    if exit_time is not None and not math.isnan(exit_time):
        within = max(0.0, exit_time - now)
    if policy in TIME_RANKED:
        sat_ids = _first_by_time(tracker, now, sat_ids, within, exit_time, policy, rng)
    candidates = tracker.candidates(now, sat_ids=sat_ids, within_s=within)
    if not candidates:
        return None
    if exit_time is not None and not math.isnan(exit_time):
        outlasting = [c for c in candidates if now + c.remaining_s > exit_time]
        candidates = outlasting or candidates
    best = rank(policy, candidates, rng)[0]
    return dataclasses.replace(best, node=eligible[best.sat_id])


def _first_by_time(tracker: ZoneTracker, now: float, sat_ids: list[int], within: float,
                   exit_time: float | None, policy: str, rng: random.Random | None) -> list[int]:
    """The satellites of ``sat_ids`` that a :data:`TIME_RANKED` ``policy`` can rank first in
    :func:`pick_successor`, from the pass times alone
    (:meth:`~krios.orbits.passes.ZoneTracker.candidate_times`, no propagation), among the
    candidates it ranks (those outlasting ``exit_time``, if any). ``random``: :func:`rank`
    over them with range and elevation unknown (it does not read them; it draws from ``rng``
    exactly as over the full candidates, and ranking the one it returns draws nothing).
    ``krios``: the ones in the zone (else all), and of those the ones leaving last -- its
    keys before range; :func:`rank` then orders these few exactly as it orders everyone."""
    sats, remaining, enters_in = tracker.candidate_times(now, sat_ids, within)
    if len(sats) == 0:
        return []
    if exit_time is not None and not math.isnan(exit_time):
        outlasting = now + remaining > exit_time
        if outlasting.any():
            sats, remaining, enters_in = sats[outlasting], remaining[outlasting], enters_in[outlasting]
    if policy == "random":
        timed = [Candidate(s, None, r, math.nan, math.nan, e)
                 for s, r, e in zip(sats.tolist(), remaining.tolist(), enters_in.tolist(), strict=True)]
        return [rank(policy, timed, rng)[0].sat_id]
    inside = enters_in <= 0
    if inside.any():
        sats, remaining = sats[inside], remaining[inside]
    return sats[remaining == remaining.max()].tolist()


def preferred(
    tracker: ZoneTracker,
    now: float,
    current_sat: int | None,
    eligible: Mapping[int, str | None],
    policy: str,
    rng: random.Random | None = None,
) -> Candidate | None:
    """The satellite in the zone now that ``policy`` ranks first, if that is not ``current_sat``.

    For policies that always serve from their first choice (``closest``
    follows the nearest satellite): ``None`` means ``current_sat`` is still the
    first choice (or nothing eligible is in the zone), so no handover is due.
    Only satellites in the zone at ``now`` count (``within_s=0``).
    """
    candidates = tracker.candidates(now, sat_ids=list(eligible), within_s=0.0)
    if not candidates:
        return None
    best = rank(policy, candidates, rng)[0]
    if best.sat_id == current_sat:
        return None
    return dataclasses.replace(best, node=eligible[best.sat_id])
