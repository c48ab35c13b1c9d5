"""Placement policies: which satellite (and so which node) should serve a zone.

One implementation serves the live scheduler, the handover controller and the
policy simulator, so the three always agree. A policy only *ranks*
:class:`Candidate` objects; working out the candidates (which satellites are in
the zone, for how long, how far away) is the orbital engine's job
(:meth:`krios.orbits.passes.ZoneTracker.candidates`).

Policies
--------
``krios``
    Longest remaining time in the zone first (the Krios paper's choice: it
    minimises handovers). Ties: closer first, then lower ``sat_id``.
``closest``
    Smallest slant range from the zone centre first (lowest propagation delay
    now, but hands over often). Ties: longer remaining time, then ``sat_id``.
``random``
    A uniformly random order drawn from ``rng`` (seeded for reproducibility).

Every ranking puts satellites that are already in the zone
(``enters_in_s == 0``) before those that are only about to enter.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from krios.errors import ConfigError
from krios.orbits.passes import Candidate

__all__ = ["POLICIES", "Candidate", "check_policy", "rank"]

POLICIES = ("krios", "closest", "random")




def check_policy(policy: str, *, source: str = "policy") -> str:
    """Return ``policy`` if it is known, else raise a :class:`ConfigError` listing the known ones."""
    if policy not in POLICIES:
        raise ConfigError(f"unknown policy (known: {', '.join(POLICIES)})", source=source, field=policy)
    return policy


def rank(
    policy: str, candidates: Sequence[Candidate], rng: random.Random | None = None
) -> list[Candidate]:
    """Candidates ordered best first under ``policy``; the input is not modified."""
    check_policy(policy)
    items = sorted(candidates, key=lambda c: c.sat_id)
    if policy == "krios":
        items.sort(key=lambda c: (c.enters_in_s > 0, -c.remaining_s, c.range_km))
    elif policy == "closest":
        items.sort(key=lambda c: (c.enters_in_s > 0, c.range_km, -c.remaining_s))
    else:
        (rng or random.Random(0)).shuffle(items)
        items.sort(key=lambda c: c.enters_in_s > 0)  # stable: keeps the random order within each group
    return items


def choose(
    policy: str, candidates: Sequence[Candidate], rng: random.Random | None = None
) -> Candidate | None:
    """The best candidate under ``policy``, or ``None`` when there is none."""
    ranked = rank(policy, candidates, rng)
    return ranked[0] if ranked else None
