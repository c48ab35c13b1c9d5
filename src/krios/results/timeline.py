"""Handovers read off the emulator's ticks, for runs whose handovers were not recorded as rows.

The emulator logs, per tick and node, the node's satellite, whether it serves
the app and whether its satellite is in the zone (table ``ticks``). A change of
the serving node between two consecutive ticks is a handover; its lead is the
emulated time from the handover until the old satellite was last seen in the
zone; ``mode`` says ``before exit`` (``lead_s`` > 0) or ``at or after exit``
(the controller's own proactive/reactive setting is in the run's metadata).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def handovers_from_ticks(ticks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``handovers`` rows (t_sim, from/to node and satellite, lead_s, mode) derived from ticks."""
    by_t: dict[float, list[Mapping[str, Any]]] = {}
    for row in ticks:
        if row.get("t_sim") is not None:
            by_t.setdefault(float(row["t_sim"]), []).append(row)
    times = sorted(by_t)
    serving_at = {t: next((r for r in by_t[t] if r.get("serving")), None) for t in times}
    out: list[dict[str, Any]] = []
    prev = None
    for t in times:
        cur = serving_at[t]
        if cur is None:
            continue
        if prev is not None and cur.get("node") != prev.get("node"):
            from_sat = prev.get("sat_id")
            last_in = _last_in_zone(by_t, times, from_sat, t)
            lead = (last_in - t) if last_in is not None else None
            out.append({
                "t_sim": t,
                "from_node": prev.get("node"),
                "to_node": cur.get("node"),
                "from_sat": from_sat,
                "to_sat": cur.get("sat_id"),
                "lead_s": lead,
                "mode": None if lead is None else ("before exit" if lead > 0 else "at or after exit"),
            })
        prev = cur
    return out


def _last_in_zone(by_t: Mapping[float, list[Mapping[str, Any]]], times: Sequence[float], sat: Any,
                  since: float) -> float | None:
    """Last tick time >= ``since`` at which satellite ``sat`` was in the zone (consecutively)."""
    last = None
    for t in times:
        if t < since:
            continue
        rows = [r for r in by_t[t] if r.get("sat_id") == sat]
        if not rows or not any(r.get("in_zone") for r in rows):
            break
        last = t
    return last
