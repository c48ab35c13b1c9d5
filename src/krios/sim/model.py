"""What a simulated run records: policies, instances, handovers, service intervals.

Every time is UTC unix seconds (simulated time). A *zone* is served at an
instant when a ready instance of the app runs on a satellite that is in the
zone then; the engine (:mod:`krios.sim.engine`) writes a :class:`Timeline`
and :mod:`krios.sim.metrics` reduces it to figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from krios.errors import ConfigError


@dataclass(frozen=True)
class PolicySpec:
    """A simulated policy: who is chosen (a :mod:`krios.control.policies` name) and when.

    Attributes
    ----------
    name:
        The name users pass to ``--policy``.
    chooser:
        The :mod:`krios.control.policies` ranking used for every choice.
    mode:
        The :mod:`krios.control.handover` mode that times handovers away from a
        satellite that is leaving the zone (``proactive`` or ``reactive``).
    follow_best:
        Also hand over whenever ``chooser`` ranks another satellite in the zone
        above the serving one (checked every ``step_s``), as ``closest`` does.
    summary:
        One line for ``--help`` and the docs.
    """

    name: str
    chooser: str
    mode: str
    follow_best: bool
    summary: str


#: The policies ``krios simulate --policy`` knows, in their display order.
POLICY_SPECS: dict[str, PolicySpec] = {
    spec.name: spec
    for spec in (
        PolicySpec(
            "krios", "krios", "proactive", False,
            "longest remaining time in the zone; successor started lookahead_s before the exit",
        ),
        PolicySpec(
            "reactive", "krios", "reactive", False,
            "same choice as krios, but the successor is only started once the serving satellite left",
        ),
        PolicySpec(
            "closest", "closest", "proactive", True,
            "always the closest satellite in the zone: hands over whenever another becomes closer",
        ),
        PolicySpec(
            "random", "random", "proactive", False,
            "a random satellite in the zone at every handover (proactive timing)",
        ),
    )
}


def parse_policies(text: str | list[str], *, source: str = "--policy") -> list[PolicySpec]:
    """Policy specs from ``"krios,closest"`` (or a list of names), in the given order.

    Raises :class:`~krios.errors.ConfigError` naming the unknown policy.
    """
    names = text if isinstance(text, list) else str(text).split(",")
    specs: list[PolicySpec] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name not in POLICY_SPECS:
            known = ", ".join(POLICY_SPECS)
            raise ConfigError(f"unknown policy (known: {known})", source=source, field=name)
        if POLICY_SPECS[name] not in specs:
            specs.append(POLICY_SPECS[name])
    if not specs:
        raise ConfigError("name at least one policy", source=source, field=str(text))
    return specs


@dataclass(frozen=True)
class Instance:
    """One deployment of the app on one satellite.

    ``start``: created; ``ready``: able to serve (``start + startup_s``);
    ``stop``: deleted (traffic moved away, or its satellite left the zone).
    """

    sat_id: int
    start: float
    ready: float
    stop: float


@dataclass(frozen=True)
class Handover:
    """A successor started on ``to_sat`` at ``time`` to take over from ``from_sat``.

    ``old_exit`` is when ``from_sat`` leaves the zone (``nan`` for a first
    placement after a gap); ``lead_s = old_exit - time`` is the handover's
    lead time (0 for reactive handovers, negative if started after the exit).
    ``reason``: ``exit`` (the serving satellite is leaving), ``better``
    (the policy prefers another satellite now), ``gap`` (nothing was serving),
    ``retry`` (the previous successor left before it was ready).
    """

    time: float
    from_sat: int | None
    to_sat: int
    old_exit: float
    reason: str

    @property
    def lead_s(self) -> float:
        return self.old_exit - self.time


@dataclass
class Timeline:
    """Everything one policy did in one zone between ``start`` and ``end``.

    ``service`` holds ``(t0, t1, sat_id)`` intervals during which ``sat_id``
    served the zone (sorted, not overlapping); the time outside them is
    unavailability.
    """

    policy: str
    zone: str
    start: float
    end: float
    instances: list[Instance] = field(default_factory=list)
    handovers: list[Handover] = field(default_factory=list)
    service: list[tuple[float, float, int]] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.end - self.start

    def serve(self, t0: float, t1: float, sat_id: int) -> None:
        """Record that ``sat_id`` served during ``[t0, t1)`` (clipped to the run)."""
        t0, t1 = max(t0, self.start), min(t1, self.end)
        if t1 > t0:
            self.service.append((t0, t1, sat_id))
