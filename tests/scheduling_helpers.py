"""Helpers shared by the ``test_scheduling_*`` modules (not a test module itself)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from krios.kube.client import RawClient


@dataclass
class Orbits:
    """The sf_4workers scenario's constellation, zone and pass predictions."""

    scenario: Any
    constellation: Any
    zone: Any
    tracker: Any
    t0: float  # the scenario's start, emulated unix s

    @property
    def labels(self) -> dict[str, str]:
        return {"leozone": self.scenario.leozone, "radius": f"{self.zone.radius_km:g}"}

    def in_zone_for(self, t: float, at_least_s: float) -> list[int]:
        """Satellites in the zone at ``t`` that stay at least ``at_least_s`` more, longest first."""
        sats = [int(s) for s in self.tracker.in_zone(t)]
        stay = {s: self.tracker.exit_time(s, t) - t for s in sats}
        return sorted((s for s in sats if stay[s] >= at_least_s), key=lambda s: -stay[s])

    def away_for(self, t: float, at_least_s: float, n: int) -> list[int]:
        """``n`` satellites out of the zone from ``t`` for at least ``at_least_s``."""
        out = []
        for sat in range(len(self.constellation)):
            entry = self.tracker.next_entry(sat, t)
            if entry != entry or entry - t >= at_least_s:  # nan: not within the horizon
                out.append(sat)
                if len(out) == n:
                    return out
        raise AssertionError("not enough satellites away from the zone")


_ORBITS: Orbits | None = None


def orbits() -> Orbits:
    """Built once per test session (TLE generation and pass prediction take a moment)."""
    global _ORBITS
    if _ORBITS is None:
        from krios.config import scenarios
        from krios.config.times import parse_time
        from krios.orbits.constellation import Constellation
        from krios.orbits.passes import ZoneTracker
        from krios.orbits.zones import Zone

        sc = scenarios.load("sf_4workers")
        con = Constellation.from_scenario(sc)
        zone = Zone.from_scenario(sc)
        t0 = parse_time(sc["start"])
        _ORBITS = Orbits(sc, con, zone, ZoneTracker(con, zone, horizon_s=3600.0, start=t0), t0)
    return _ORBITS


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def raw(api_client: Any) -> RawClient:
    return RawClient(api_client, qps=0, burst=1)


def set_sat_labels(client: RawClient, mapping: dict[str, int | str | None]) -> None:
    """Set (or, for ``None``, remove) the ``sat_id`` label of each node."""
    for node, sat in mapping.items():
        value = None if sat is None else str(sat)
        client.patch(f"/api/v1/nodes/{node}", {"metadata": {"labels": {"sat_id": value}}})


CLOCK_PATH = "/api/v1/namespaces/krios-system/configmaps/krios-clock"


def exists(client: RawClient, path: str) -> bool:
    try:
        client.get(path)
        return True
    except Exception:
        return False


def clean_workers(control_plane: Any, api_client: Any) -> Iterator[list[str]]:
    """Fixture body: the workers without ``sat_id`` labels, and afterwards no labels and no clock ConfigMap."""
    names = list(control_plane.worker_names)
    client = raw(api_client)
    set_sat_labels(client, dict.fromkeys(names))
    yield names
    set_sat_labels(client, dict.fromkeys(names))
    if exists(client, CLOCK_PATH):
        client.delete(CLOCK_PATH)


def pod_body(name: str, labels: dict[str, str] | None = None, scheduler: str = "krios-scheduler",
             node: str | None = None) -> dict:
    spec: dict[str, Any] = {
        "schedulerName": scheduler,
        "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.2"}],
        "terminationGracePeriodSeconds": 1,
    }
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def create_pods(client: RawClient, namespace: str, bodies: Iterable[dict]) -> None:
    for body in bodies:
        client.post(f"/api/v1/namespaces/{namespace}/pods", body)


def list_pods(client: RawClient, namespace: str, selector: str | None = None) -> list[dict]:
    query = {"labelSelector": selector} if selector else None
    return client.get(f"/api/v1/namespaces/{namespace}/pods", query=query)["items"]


def events(client: RawClient, namespace: str, reason: str | None = None) -> list[dict]:
    items = client.get(f"/apis/events.k8s.io/v1/namespaces/{namespace}/events")["items"]
    return [e for e in items if reason is None or e.get("reason") == reason]


def is_ready(pod: dict) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def running_scheduler(api_client: Any, **overrides: Any) -> Iterator[Any]:
    """Fixture body: an in-process krios scheduler on emulated time from the scenario's start, leading
    (unless ``leader_elect=False``), stopped afterwards. ``overrides`` go to :class:`Scheduler`."""
    from krios.control.scheduler import Scheduler
    from krios.kube.clock import Clock

    o = orbits()
    kwargs: dict[str, Any] = {"clock": Clock.starting(epoch_sim=o.t0, rate=1.0), "backoff_base_s": 0.2,
                              "backoff_max_s": 1.0, "parallelism": 4, **overrides}
    sched = Scheduler(api_client, o.constellation, **kwargs)
    sched.start(sync_timeout=30)
    if kwargs.get("leader_elect", True):
        assert sched.wait_leading(30), "the scheduler never took the lease"
    try:
        yield sched
    finally:
        sched.stop()


def bound_pods(client: Any, namespace: str) -> dict[str, str]:
    """Pod name -> node of the bound pods in ``namespace``."""
    return {p["metadata"]["name"]: p["spec"]["nodeName"] for p in list_pods(client, namespace)
            if p["spec"].get("nodeName")}

