"""What the scheduler and the controller read off pods, nodes and ConfigMaps.

Plain functions over the API's JSON objects (``dict``): node readiness and
schedulability, the ``sat_id`` node label, the ``leozone``/``radius`` and
``delay_<from>`` pod labels, and the latency matrix the emulator publishes.
Bad labels raise :class:`krios.errors.ConfigError` naming the label, so the
daemons can report them as Events instead of crashing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from krios.errors import ConfigError
from krios.kube.names import DELAY_PREFIX, LATENCY_CONFIGMAP, LATENCY_KEY, LEOZONE_LABEL, RADIUS_LABEL, SAT_LABEL
from krios.kube.objects import labels, name_of, node_is_control_plane
from krios.kube.objects import node_ready as node_ready  # re-exported: the daemons' node filter

Obj = dict[str, Any]


# -- nodes ----------------------------------------------------------------------------
def node_is_worker(node: Obj) -> bool:
    """Schedulable (not cordoned) and not a control-plane node."""
    return not (node.get("spec") or {}).get("unschedulable") and not node_is_control_plane(node)


def tolerates(pod: Obj, node: Obj) -> bool:
    """The pod tolerates every ``NoSchedule``/``NoExecute`` taint of the node."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(_tolerates(t, taint) for t in tolerations):
            return False
    return True


def _tolerates(tol: Obj, taint: Obj) -> bool:
    if tol.get("effect") and tol.get("effect") != taint.get("effect"):
        return False
    if tol.get("operator") == "Exists":
        return not tol.get("key") or tol.get("key") == taint.get("key")
    return tol.get("key") == taint.get("key") and (tol.get("value") or "") == (taint.get("value") or "")


def selector_matches(pod: Obj, node: Obj) -> bool:
    """The pod's ``spec.nodeSelector`` (exact label matches) holds for the node."""
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    lab = labels(node)
    return all(lab.get(k) == v for k, v in selector.items())


def node_sat_id(node: Obj, n_sats: int | None = None) -> int | None:
    """The node's ``sat_id`` label as an int; ``None`` if it has none.

    Raises :class:`ConfigError` (source ``node <name> label sat_id``) for a
    value that is not a non-negative integer or not below ``n_sats``.
    """
    raw = labels(node).get(SAT_LABEL)
    if raw is None:
        return None
    source = f"node {name_of(node)} label {SAT_LABEL}"
    try:
        sat = int(raw)
    except ValueError:
        raise ConfigError("not an integer satellite index", source=source, field=raw) from None
    if sat < 0 or (n_sats is not None and sat >= n_sats):
        known = f" (the constellation has {n_sats})" if n_sats is not None else ""
        raise ConfigError(f"no such satellite{known}", source=source, field=raw)
    return sat


# -- pods -----------------------------------------------------------------------------
def pod_zone_label(pod: Obj) -> tuple[str, str | None] | None:
    """``(leozone, radius)`` label values, or ``None`` when the pod has no ``leozone``."""
    lab = labels(pod)
    if LEOZONE_LABEL not in lab:
        return None
    return lab[LEOZONE_LABEL], lab.get(RADIUS_LABEL)


def pod_zone(pod: Obj, min_elevation_deg: float, default_radius_km: float = 0.0) -> Any:
    """The pod's :class:`krios.orbits.zones.Zone`, or ``None`` without a ``leozone`` label.

    The zone's radius is the pod's ``radius`` label (km) or, without one,
    ``default_radius_km`` (the daemons pass their scenario's ``zone.radius_km``,
    so an app labelled only ``leozone`` is placed for the zone the emulator and
    the simulator use). Raises :class:`ConfigError` for a malformed ``leozone``
    or ``radius``.
    """
    found = pod_zone_label(pod)
    if found is None:
        return None
    from krios.orbits.zones import parse_leozone

    value, radius = found
    if radius is None or not radius.strip():
        radius = default_radius_km
    return parse_leozone(value, radius, min_elevation_deg)


def pod_delays(pod: Obj) -> dict[str, float]:
    """The edge scheduler's constraints: ``{from: max_rtt_ms}`` from ``delay_<from>`` labels.

    Raises :class:`ConfigError` (source ``label delay_<from>``) for a value that
    is not a non-negative number of milliseconds.
    """
    out: dict[str, float] = {}
    for key, value in labels(pod).items():
        if not key.startswith(DELAY_PREFIX):
            continue
        origin = key[len(DELAY_PREFIX):]
        if not origin:
            raise ConfigError("names no origin (use delay_<node or client>)", source=f"label {key}", field=value)
        try:
            ms = float(value)
        except ValueError:
            ms = math.nan
        if not math.isfinite(ms) or ms < 0:
            raise ConfigError("not a non-negative number of milliseconds", source=f"label {key}", field=value)
        out[origin] = ms
    return out


# -- latency matrix ---------------------------------------------------------------------
@dataclass(frozen=True)
class LatencyMatrix:
    """Round-trip times in ms: ``rtt[from][node]`` (``from`` is ``client`` or a node name)."""

    rtt: Mapping[str, Mapping[str, float]]
    updated: float = math.nan

    @classmethod
    def empty(cls) -> LatencyMatrix:
        return cls({})

    @classmethod
    def from_json(cls, text: str, *, source: str = f"configmap {LATENCY_CONFIGMAP}") -> LatencyMatrix:
        """Parse ``matrix.json``; :class:`ConfigError` naming the bad field (``rtt.<from>.<node>`` for a
        value that is not a finite, non-negative number of ms)."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"invalid JSON: {exc}", source=source, field=LATENCY_KEY) from exc
        if not isinstance(data, dict) or not isinstance(data.get("rtt"), dict):
            raise ConfigError("must be an object with an 'rtt' object", source=source, field=LATENCY_KEY)
        rtt: dict[str, dict[str, float]] = {}
        for origin, row in data["rtt"].items():
            if not isinstance(row, dict):
                raise ConfigError("must map node names to ms", source=source, field=f"rtt.{origin}")
            try:
                rtt[origin] = {node: float(ms) for node, ms in row.items()}
            except (TypeError, ValueError) as exc:
                raise ConfigError("values must be numbers (ms)", source=source, field=f"rtt.{origin}") from exc
            for node, ms in rtt[origin].items():  # NaN would admit every node (every comparison is false)
                if not math.isfinite(ms) or ms < 0:
                    raise ConfigError(f"must be a finite, non-negative RTT (ms), got {ms:g}", source=source,
                                      field=f"rtt.{origin}.{node}")
        updated = data.get("updated")
        return cls(rtt, float(updated) if isinstance(updated, int | float) else math.nan)

    @classmethod
    def from_configmap(cls, cm: Obj | None) -> LatencyMatrix:
        if not cm:
            return cls.empty()
        text = (cm.get("data") or {}).get(LATENCY_KEY)
        return cls.empty() if text is None else cls.from_json(text)

    def admits(self, node: str, delays: Mapping[str, float]) -> str | None:
        """``None`` if ``node`` meets every constraint, else the first violation in words."""
        for origin, limit in delays.items():
            row = self.rtt.get(origin)
            if row is None or node not in row:
                return f"no RTT known from {origin}"
            if row[node] > limit:
                return f"RTT from {origin} {row[node]:.1f} ms > {limit:g} ms"
        return None

    def worst_ratio(self, node: str, delays: Mapping[str, float]) -> float:
        """max over constraints of rtt / limit (smaller is better; for ranking admitted nodes)."""
        ratios = [self.rtt[o][node] / limit if limit > 0 else 0.0 for o, limit in delays.items()]
        return max(ratios, default=0.0)


def summarize(reasons: Iterable[str], total: int) -> str:
    """kube-scheduler style: ``0/6 nodes are available: 2 node(s) not ready, 4 ...``."""
    counts: dict[str, int] = {}
    for reason in reasons:
        counts[reason] = counts.get(reason, 0) + 1
    parts = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"0/{total} nodes are available" + (f": {parts}." if parts else ".")
