"""Issue #15 item 8: many pending pods with distinct ``leozone`` s must not starve the scheduler.

Real local control plane (session cluster), in-process krios scheduler. Not
timed: the tests count what the scheduler did, not how long it took.

- A plain pod created right after a backlog of leozone pods in distinct zones is
  bound before most of those zones were even evaluated (before: the workers
  predicted each new zone's passes in FIFO order, so it waited behind all of them).
- Every zone a pending pod names keeps its pass predictions across retries
  (before: an LRU of 64 zone trackers, rebuilt on every retry once more than 64
  zones were pending: ~0.9 core and 13.8 s for a plain pod's bind).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest
from scheduling_helpers import (
    clean_workers,
    create_pods,
    list_pods,
    orbits,
    pod_body,
    raw,
    running_scheduler,
    set_sat_labels,
    wait_for,
)

from krios.control.scheduler import Scheduler
from krios.kube.clock import Clock
from krios.orbits.passes import ZoneTracker
from krios.orbits.zones import Zone

pytestmark = pytest.mark.cluster

N_ZONES = 120
RADIUS_KM = 100.0


@pytest.fixture
def workers(control_plane, api_client) -> Iterator[list[str]]:
    yield from clean_workers(control_plane, api_client)


@pytest.fixture
def scheduler(api_client) -> Iterator[Scheduler]:
    yield from running_scheduler(api_client, leader_elect=False)


def _far_zones(sats: list[int], n: int) -> list[str]:
    """``n`` distinct zone labels none of ``sats`` enters within 20 emulated minutes of the start."""
    o = orbits()
    rng = np.random.default_rng(15)
    out: list[str] = []
    while len(out) < n:
        zone = Zone(round(float(rng.uniform(-60, 60)), 2), round(float(rng.uniform(-180, 180)), 2), RADIUS_KM)
        tracker = ZoneTracker(o.constellation, zone, horizon_s=1200.0, start=o.t0)
        entries = [tracker.next_entry(s, o.t0) for s in sats]
        if all(e != e for e in entries) and zone.label not in out:  # nan: no entry within the horizon
            out.append(zone.label)
    return out


def _create_concurrently(client, namespace: str, bodies: list[dict], threads: int = 8) -> None:
    chunks = [bodies[i::threads] for i in range(threads)]
    pool = [threading.Thread(target=create_pods, args=(client, namespace, c)) for c in chunks]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def test_plain_pods_pass_a_backlog_of_distinct_zones_and_zones_are_predicted_once(
        api_client, namespace, workers, scheduler) -> None:
    o = orbits()
    client = raw(api_client)
    away = o.away_for(o.t0, at_least_s=1200, n=len(workers))
    set_sat_labels(client, dict(zip(workers, away, strict=True)))
    zones = _far_zones(away, N_ZONES)
    backlog = [pod_body(f"zone-{i:03d}", {"leozone": z, "radius": f"{RADIUS_KM:g}"}) for i, z in enumerate(zones)]
    keys = [f"{namespace}/{b['metadata']['name']}" for b in backlog]

    _create_concurrently(client, namespace, backlog)
    create_pods(client, namespace, [pod_body("plain")])
    evaluated_at_bind: list[int] = []

    def plain_bound() -> bool:
        if scheduler.stats["scheduled"] < 1:
            return False
        evaluated_at_bind.append(sum(1 for k in keys if scheduler.queue.failures(k) >= 1))
        return True

    wait_for(plain_bound, 60, "the plain pod bound", interval_s=0.005)
    bound = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in list_pods(client, namespace)}
    assert bound["plain"] in workers
    # the plain pod did not wait for the leozone pods' zones to be predicted and evaluated
    assert evaluated_at_bind[0] < N_ZONES // 2, f"{evaluated_at_bind[0]} of {N_ZONES} zones evaluated first"

    # every zone evaluated at least once; then the trackers must survive two more rounds of retries
    wait_for(lambda: all(scheduler.queue.failures(k) >= 1 for k in keys), 120, "every leozone pod tried")
    zone_objs = [scheduler.zone_of({"metadata": {"labels": b["metadata"]["labels"]}}) for b in backlog]
    first = [scheduler.trackers.get(z)[0] for z in zone_objs]
    rounds = {k: scheduler.queue.failures(k) for k in keys}
    wait_for(lambda: all(scheduler.queue.failures(k) >= rounds[k] + 2 for k in keys), 120,
             "two more retries of every leozone pod")
    rebuilt = sum(1 for z, t in zip(zone_objs, first, strict=True) if scheduler.trackers.get(z)[0] is not t)
    assert rebuilt == 0, f"{rebuilt} of {N_ZONES} zones had their passes predicted again"
    assert scheduler.trackers.builds == N_ZONES  # one prediction per zone, none for the plain pod
    assert not any(bound[b["metadata"]["name"]] for b in backlog)  # none of them fits: still pending


def test_zone_visibility_reused_within_a_tick_is_the_orbital_engines_answer(
        api_client, workers, scheduler) -> None:
    """The per-tick visibility cache gives, at every instant, exactly the satellites the engine
    says are in the zone (its candidates), across many passes' entries and exits."""
    o = orbits()
    client = raw(api_client)
    sats = o.in_zone_for(o.t0, at_least_s=0)[:3]
    sats += [s for s in range(0, len(o.constellation), 97) if s not in sats][: len(workers) - len(sats)]
    set_sat_labels(client, dict(zip(workers, sats, strict=True)))
    wait_for(lambda: set(scheduler.snapshot().sats) == set(sats), 20, "the snapshot to see the labels")
    snap = scheduler.snapshot()
    reference = ZoneTracker(o.constellation, o.zone, horizon_s=3600.0, start=o.t0)
    seen: set[int] = set()
    t, calls = o.t0, 0
    while t < o.t0 + 3600.0:
        scheduler._clock = Clock(epoch_wall=0.0, epoch_sim=t, rate=0.0)  # emulated time stands at t
        got = {c.sat_id for c in scheduler._in_zone(o.zone, snap)}
        want = {c.sat_id for c in reference.candidates(t, sat_ids=snap.sats) if c.enters_in_s <= 0}
        assert got == want, f"at t0 + {t - o.t0:.2f} s: {sorted(got)} != {sorted(want)}"
        seen |= got
        t += 0.13
        calls += 1
    assert scheduler.stats["visibility"] < calls / 5  # reused within a tick (1 emulated s)
    assert len(seen) >= 3  # several passes began and ended on the way
