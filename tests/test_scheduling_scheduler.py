"""The krios scheduler on the real control plane (session cluster: 6 virtual workers)."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from scheduling_helpers import (
    bound_pods,
    clean_workers,
    create_pods,
    events,
    orbits,
    pod_body,
    raw,
    running_scheduler,
    set_sat_labels,
    wait_for,
)

from krios.control.scheduler import Scheduler

pytestmark = pytest.mark.cluster

MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture
def workers(control_plane, api_client) -> Iterator[list[str]]:
    """The session cluster's workers, with every ``sat_id`` label removed afterwards."""
    yield from clean_workers(control_plane, api_client)


@pytest.fixture
def scheduler(api_client) -> Iterator[Scheduler]:
    """An in-process krios scheduler (leader-elected) on emulated time from the scenario's start."""
    yield from running_scheduler(api_client)



def test_leozone_pods_land_only_on_in_zone_satellites(api_client, namespace, workers, scheduler) -> None:
    o = orbits()
    client = raw(api_client)
    inside = o.in_zone_for(o.t0, at_least_s=120)[:3]
    outside = o.away_for(o.t0, at_least_s=600, n=len(workers) - len(inside))
    sat_of = dict(zip(workers, inside + outside, strict=True))
    set_sat_labels(client, sat_of)
    create_pods(client, namespace, [pod_body(f"app-{i}", o.labels) for i in range(6)])

    bound = wait_for(lambda: (b := bound_pods(client, namespace)) and len(b) == 6 and b, 20, "6 pods bound")
    in_zone_now = {int(s) for s in o.tracker.in_zone(scheduler.now())}  # the orbital engine's own answer
    for pod, node in bound.items():
        assert sat_of[node] in in_zone_now, f"{pod} on {node} whose satellite {sat_of[node]} is not in the zone"
    # the krios policy puts every pod on the satellite staying longest (ties spread over its nodes)
    assert {sat_of[n] for n in bound.values()} == {inside[0]}

    scheduled = wait_for(lambda: (e := events(client, namespace, "Scheduled")) and len(e) == 6 and e, 10,
                         "6 Scheduled events")
    for ev in scheduled:
        assert MICRO_TIME.match(ev["eventTime"]), ev["eventTime"]
        assert ev["reportingController"] == "krios.io/krios-scheduler"
        assert ev["reportingInstance"] == scheduler.identity
        assert ev["action"] == "Binding" and ev["type"] == "Normal"
        assert ev["note"].endswith(f"to {bound[ev['regarding']['name']]}")


def test_unschedulable_pod_gets_failed_scheduling_then_placed_after_relabel(
        api_client, namespace, workers, scheduler) -> None:
    o = orbits()
    client = raw(api_client)
    away = o.away_for(o.t0, at_least_s=600, n=len(workers))
    set_sat_labels(client, dict(zip(workers, away, strict=True)))
    create_pods(client, namespace, [pod_body("waiting", o.labels)])

    failed = wait_for(lambda: events(client, namespace, "FailedScheduling"), 15, "FailedScheduling")
    note = failed[0]["note"]
    assert note.startswith(f"0/{len(workers) + 1} nodes are available:"), note
    assert f"{len(workers)} node(s) whose satellite is not in zone {o.scenario.leozone}" in note
    assert failed[0]["type"] == "Warning"
    time.sleep(1.5)  # a few retries with backoff: still pending, not dropped
    assert not bound_pods(client, namespace)

    target = workers[2]
    set_sat_labels(client, {target: o.in_zone_for(o.t0, at_least_s=120)[0]})  # as the emulator would
    bound = wait_for(lambda: bound_pods(client, namespace), 10, "the pod bound after the relabel")
    assert bound == {"waiting": target}


def test_delay_labels_use_the_latency_matrix_and_plain_pods_spread(
        api_client, namespace, workers, scheduler) -> None:
    client = raw(api_client)
    rtt = {"client": {w: 50.0 for w in workers}}
    rtt["client"][workers[4]] = 8.0
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "krios-latency", "namespace": "krios-system"},
            "data": {"matrix.json": json.dumps({"updated": time.time(), "unit": "ms", "rtt": rtt})}}
    client.post("/api/v1/namespaces/krios-system/configmaps", body)
    try:
        wait_for(lambda: scheduler.latency.rtt, 10, "the scheduler to read the matrix")
        create_pods(client, namespace, [pod_body("near", {"delay_client": "10"}),
                                        pod_body("nowhere", {"delay_client": "5"})]
                    + [pod_body(f"plain-{i}") for i in range(len(workers))])
        bound = wait_for(lambda: (b := bound_pods(client, namespace)) and len(b) == len(workers) + 1 and b,
                         15, "the feasible pods bound")
        assert bound["near"] == workers[4]
        assert "nowhere" not in bound
        # pods with neither leozone nor delay labels go to the least loaded worker: 7 pods on 6 workers
        assert sorted(Counter(bound.values()).values()) == [1] * (len(workers) - 1) + [2]
        note = wait_for(lambda: [e["note"] for e in events(client, namespace, "FailedScheduling")
                                 if e["regarding"]["name"] == "nowhere"], 10, "FailedScheduling for 'nowhere'")
        assert f"{len(workers)} node(s) violate the pod's delay_ constraints" in note[0]
    finally:
        client.delete("/api/v1/namespaces/krios-system/configmaps/krios-latency")


def test_short_lived_plain_pods_one_at_a_time_take_the_workers_in_turn(
        api_client, namespace, workers, scheduler) -> None:
    """Each pod is deleted before the next arrives (a cold-start sweep), so every worker is equally
    loaded at every arrival: the tie rotates instead of going to the first name every time."""
    client = raw(api_client)
    placed = []
    for i in range(len(workers)):
        create_pods(client, namespace, [pod_body(f"brief-{i}")])
        node = wait_for(lambda i=i: bound_pods(client, namespace).get(f"brief-{i}"), 15, f"brief-{i} bound")
        placed.append(node)
        client.delete(f"/api/v1/namespaces/{namespace}/pods/brief-{i}", query={"gracePeriodSeconds": "0"})
        wait_for(lambda i=i: f"brief-{i}" not in bound_pods(client, namespace), 15, f"brief-{i} gone")
        wait_for(lambda: sum(scheduler._load.values()) == 0, 15, "the scheduler to see the delete")
    assert sorted(placed) == sorted(workers), placed


def test_invalid_labels_become_warnings_and_the_scheduler_carries_on(
        api_client, namespace, workers, scheduler) -> None:
    o = orbits()
    client = raw(api_client)
    inside = o.in_zone_for(o.t0, at_least_s=120)[0]
    set_sat_labels(client, {workers[0]: "not-a-number", workers[1]: 10**6, workers[2]: inside})
    create_pods(client, namespace, [pod_body("bad-zone", {"leozone": "somewhere"}),
                                    pod_body("bad-radius", {"leozone": o.scenario.leozone, "radius": "wide"}),
                                    pod_body("good", o.labels)])

    bound = wait_for(lambda: bound_pods(client, namespace), 15, "the valid pod bound")
    assert bound == {"good": workers[2]}
    warnings = wait_for(lambda: (w := events(client, namespace, "InvalidLabel")) and len(w) == 2 and w, 10,
                        "two InvalidLabel warnings")
    notes = {w["regarding"]["name"]: w["note"] for w in warnings}
    assert "label leozone: somewhere:" in notes["bad-zone"]
    assert "label radius: wide:" in notes["bad-radius"]
    assert all(w["type"] == "Warning" for w in warnings)
    node_warnings = wait_for(
        lambda: [e for e in events(client, "default", "InvalidSatId")
                 if e["regarding"]["name"] in (workers[0], workers[1])], 10, "InvalidSatId warnings on nodes")
    assert {e["regarding"]["kind"] for e in node_warnings} == {"Node"}

    # fixing the label reschedules the pod; the scheduler never stopped
    client.patch(f"/api/v1/namespaces/{namespace}/pods/bad-zone",
                 {"metadata": {"labels": {"leozone": o.scenario.leozone, "radius": "100"}}})
    wait_for(lambda: "bad-zone" in bound_pods(client, namespace), 10, "the fixed pod bound")
    assert all(t.is_alive() for t in scheduler._threads)
