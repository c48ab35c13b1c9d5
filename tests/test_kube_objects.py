"""krios.kube.objects, names and paths: what krios reads off the API's JSON objects."""

from __future__ import annotations

import pytest

from krios.kube import names
from krios.kube.client import configmap_path, lease_path, node_path, pod_path, resource_path
from krios.kube.objects import (
    condition,
    condition_true,
    micro_time,
    node_internal_ip,
    node_is_control_plane,
    node_ready,
    object_key,
    parse_time,
    pod_ready,
    pod_ready_since,
    pod_running_ready,
    pod_scheduler,
    pod_terminating,
    rfc3339,
)
from krios.kube.reflector import backoff_s


def _pod(phase: str = "Running", ready: str | None = "True", node: str | None = "w0", deleting: bool = False,
         since: str = "2026-01-01T00:00:10Z") -> dict:
    meta: dict = {"name": "web", "namespace": "ns"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    conds = [{"type": "PodScheduled", "status": "True"}]
    if ready is not None:
        conds.append({"type": "Ready", "status": ready, "lastTransitionTime": since})
    spec = {"nodeName": node} if node else {}
    return {"metadata": meta, "spec": spec, "status": {"phase": phase, "conditions": conds}}


def test_pod_readiness_is_one_definition_with_its_variants() -> None:
    assert pod_ready(_pod()) and pod_running_ready(_pod())
    assert not pod_ready(_pod(ready="False")) and not pod_ready(_pod(ready=None))
    # being deleted or finished: not Ready for the daemons, though the condition still says so
    assert not pod_ready(_pod(deleting=True)) and pod_terminating(_pod(deleting=True))
    assert not pod_ready(_pod(phase="Succeeded")) and pod_terminating(_pod(phase="Failed"))
    assert not pod_running_ready(_pod(phase="Pending"))
    # since when: the Ready condition's transition (unix s); None when not Ready, unbound or deleting
    assert pod_ready_since(_pod()) == 1767225610.0
    assert pod_ready_since(_pod(since="")) == 0.0
    assert pod_ready_since(_pod(ready="False")) is None
    assert pod_ready_since(_pod(node=None)) is None
    assert pod_ready_since(_pod(deleting=True)) is None
    assert pod_scheduler(_pod()) == names.DEFAULT_SCHEDULER_NAME
    assert object_key(_pod()) == "ns/web" and object_key({"metadata": {"name": "w0"}}) == "w0"


def test_conditions_nodes_and_addresses() -> None:
    node = {
        "metadata": {"name": "c0", "labels": {names.CONTROL_ROLE_LABEL: ""}},
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "Hostname", "address": "c0"}, {"type": "InternalIP", "address": "127.0.0.1"}],
        },
    }
    assert condition(node, "Ready") == {"type": "Ready", "status": "True"}
    assert condition(node, "DiskPressure") is None and not condition_true(node, "MemoryPressure")
    assert node_ready(node) and node_is_control_plane(node)
    assert node_internal_ip(node) == "127.0.0.1"
    assert node_internal_ip({"metadata": {"name": "x"}}) is None
    assert not node_ready({}) and not node_is_control_plane({"metadata": {"labels": {"sat_id": "3"}}})
    assert node_is_control_plane({"metadata": {"labels": {"node-role.kubernetes.io/master": ""}}})


def test_api_times_round_trip() -> None:
    assert rfc3339(1767225600.9) == "2026-01-01T00:00:00Z"
    assert micro_time(1767225600.123456) == "2026-01-01T00:00:00.123456Z"
    assert parse_time("2026-01-01T00:00:00.123456Z") == pytest.approx(1767225600.123456)
    assert parse_time(rfc3339(1767225600.0)) == 1767225600.0
    assert parse_time(None) is None and parse_time("yesterday") is None


def test_paths_quote_names_and_know_their_groups() -> None:
    assert pod_path("a b", "p/1", "binding") == "/api/v1/namespaces/a%20b/pods/p%2F1/binding"
    assert pod_path(None) == "/api/v1/pods"
    assert node_path() == "/api/v1/nodes" and node_path("w0", "status") == "/api/v1/nodes/w0/status"
    assert configmap_path(names.SYSTEM_NAMESPACE, names.CLOCK_CONFIGMAP) == \
        "/api/v1/namespaces/krios-system/configmaps/krios-clock"
    assert lease_path("kube-node-lease", "w0") == "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/w0"
    assert resource_path("events", "ns", group="events.k8s.io/v1") == "/apis/events.k8s.io/v1/namespaces/ns/events"
    assert resource_path("namespaces", name="x") == "/api/v1/namespaces/x"


def test_well_known_names_are_the_documented_ones() -> None:
    """The strings other tools (Ansible roles, docs, user manifests) rely on."""
    assert (names.SYSTEM_NAMESPACE, names.CLOCK_CONFIGMAP, names.CLOCK_KEY) == ("krios-system", "krios-clock",
                                                                                 "clock.json")
    assert (names.MAPPING_CONFIGMAP, names.MAPPING_KEY) == ("krios-emulator", "mapping.json")
    assert (names.LATENCY_CONFIGMAP, names.LATENCY_KEY) == ("krios-latency", "matrix.json")
    assert (names.SAT_LABEL, names.LEOZONE_LABEL, names.RADIUS_LABEL, names.DELAY_PREFIX) == \
        ("sat_id", "leozone", "radius", "delay_")
    assert (names.SCHEDULER_NAME, names.CONTROLLER_NAME) == ("krios-scheduler", "krios-controller")
    assert all(a.startswith(names.ANNOTATION_PREFIX) for a in (
        names.HANDOVER_FROM_ANNOTATION, names.HANDOVER_STARTED_ANNOTATION, names.HANDOVER_EXIT_ANNOTATION,
        names.HANDOVER_FAILED_ANNOTATION, names.APP_LABEL))


def test_backoff_waits_at_the_minimum_until_connected_then_doubles_to_the_cap() -> None:
    assert [backoff_s(a, False) for a in range(4)] == [0.2] * 4
    assert [backoff_s(a, True) for a in range(7)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert backoff_s(2, True, initial_s=0.1, max_s=0.3) == 0.3
