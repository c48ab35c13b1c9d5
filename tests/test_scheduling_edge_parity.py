"""The krios scheduler at kubernetes-edge-scheduler parity, on the real control plane (session cluster).

A static matrix published by `krios latency publish`, then: ``delay_<app>``
lands within the limit of the app's node, resource requests against the
virtual kubelets' allocatable, and plain pods preferring ``kubernetes.io/role=cloud``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from scheduling_helpers import (
    bound_pods,
    clean_workers,
    create_pods,
    events,
    pod_body,
    raw,
    running_scheduler,
    wait_for,
)

from krios.cli import main
from krios.control.scheduler import Scheduler

pytestmark = pytest.mark.cluster

LATENCY = "/api/v1/namespaces/krios-system/configmaps/krios-latency"


@pytest.fixture
def workers(control_plane, api_client) -> Iterator[list[str]]:
    yield from clean_workers(control_plane, api_client)


@pytest.fixture
def scheduler(api_client) -> Iterator[Scheduler]:
    yield from running_scheduler(api_client)



def _with(body: dict, *, node: str | None = None, cpu: str | None = None) -> dict:
    if node:
        body["spec"]["nodeName"] = node
    if cpu:
        for c in body["spec"]["containers"]:
            c["resources"] = {"requests": {"cpu": cpu}}
    return body


def test_delay_to_an_app_from_a_published_matrix(control_plane, api_client, namespace, workers, scheduler,
                                                  tmp_path, capsys) -> None:
    client = raw(api_client)
    n = len(workers)
    m = [[0.0 if i == j else 50.0 for j in range(n)] for i in range(n)]
    m[0][1] = m[1][0] = 10.0  # workers[1] is 10 ms from workers[0], every other pair 50 ms
    (tmp_path / "m.json").write_text(json.dumps(m))
    (tmp_path / "nodes.json").write_text(json.dumps(workers))
    assert main(["latency", "publish", "--file", str(tmp_path / "m.json"), "--nodes", str(tmp_path / "nodes.json"),
                 "--kubeconfig", str(control_plane.kubeconfig), "--db", str(tmp_path / "r.sqlite")]) == 0
    try:
        wait_for(lambda: scheduler.latency.rtt.get(workers[0]), 10, "the scheduler to read the matrix")
        create_pods(client, namespace, [_with(pod_body("a", {"app": "appA"}), node=workers[0]),
                                        pod_body("near", {"delay_appA": "20"}),
                                        pod_body("same", {"delay_appA": "5"}),
                                        pod_body("lookalike", {"delay_appAB": "100"})])
        bound = wait_for(lambda: (b := bound_pods(client, namespace)) and len(b) == 3 and b, 15, "3 pods bound")
        assert bound["near"] in workers[:2] and bound["same"] == workers[0]
        assert "lookalike" not in bound  # no app named appAB: exact match, not a prefix
        note = wait_for(lambda: [e["note"] for e in events(client, namespace, "FailedScheduling")
                                 if e["regarding"]["name"] == "lookalike"], 10, "FailedScheduling for lookalike")
        assert "node(s) violate the pod's delay_ constraints" in note[0]
        create_pods(client, namespace, [pod_body("later", {"app": "appAB"})])
        wait_for(lambda: "lookalike" in bound_pods(client, namespace), 15, "lookalike bound once appAB runs")
    finally:
        client.delete(LATENCY)


def test_requests_fit_allocatable_and_plain_pods_prefer_cloud(api_client, namespace, workers, scheduler) -> None:
    client = raw(api_client)
    n = len(workers)  # virtual kubelets: 4 CPUs each
    create_pods(client, namespace, [_with(pod_body(f"big-{i}"), cpu="3") for i in range(n + 1)])
    bound = wait_for(lambda: (b := bound_pods(client, namespace)) and len(b) == n and b, 15, f"{n} big pods bound")
    assert sorted(bound.values()) == sorted(workers)
    note = wait_for(lambda: [e["note"] for e in events(client, namespace, "FailedScheduling")], 10,
                    "FailedScheduling for the big pod left over")
    assert f"{n} Insufficient cpu" in note[0]
    cloud = workers[-1]
    client.patch(f"/api/v1/nodes/{cloud}", {"metadata": {"labels": {"kubernetes.io/role": "cloud"}}})
    try:
        wait_for(lambda: any(name == cloud and node["metadata"]["labels"].get("kubernetes.io/role")
                             for name, node in scheduler.snapshot().workers), 10, "the cloud label seen")
        create_pods(client, namespace, [pod_body(f"plain-{i}") for i in range(3)])
        got = wait_for(lambda: (b := bound_pods(client, namespace)) and sum(k.startswith("plain") for k in b) == 3
                       and b, 15, "3 plain pods bound")
        assert {got[f"plain-{i}"] for i in range(3)} == {cloud}
    finally:
        client.patch(f"/api/v1/nodes/{cloud}", {"metadata": {"labels": {"kubernetes.io/role": None}}})
