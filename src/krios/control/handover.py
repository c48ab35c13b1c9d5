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
    candidates = tracker.candidates(now, sat_ids=sat_ids, within_s=within)
    if not candidates:
        return None
    if exit_time is not None and not math.isnan(exit_time):
        outlasting = [c for c in candidates if now + c.remaining_s > exit_time]
        candidates = outlasting or candidates
    best = rank(policy, candidates, rng)[0]
    return dataclasses.replace(best, node=eligible[best.sat_id])


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
