"""The session control plane is real: kube-scheduler binds, the virtual kubelet runs pods."""

from __future__ import annotations

import time

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.cluster


def wait_for(check, timeout_s: float, what: str, interval_s: float = 0.1):
    """Poll ``check()`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


def _ready(conditions) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in conditions or [])


def test_nodes_are_ready_with_addresses_taints_and_leases(control_plane, core_v1, api_client):
    nodes = {n.metadata.name: n for n in core_v1.list_node().items}
    assert sorted(nodes) == ["krios-control-0"] + [f"krios-worker-{i}" for i in range(6)]
    assert control_plane.worker_names == [f"krios-worker-{i}" for i in range(6)]
    for i in range(6):
        node = nodes[f"krios-worker-{i}"]
        assert _ready(node.status.conditions)
        assert not node.spec.taints, "the not-ready taint must be gone"
        assert {a.type: a.address for a in node.status.addresses}["InternalIP"] == f"127.0.1.{i + 1}"
        assert node.status.allocatable["pods"] == "110"
    control = nodes["krios-control-0"]
    assert "node-role.kubernetes.io/control-plane" in control.metadata.labels
    assert [(t.key, t.effect) for t in control.spec.taints] == [
        ("node-role.kubernetes.io/control-plane", "NoSchedule")
    ]
    assert {a.type: a.address for a in control.status.addresses}["InternalIP"] == "127.0.0.1"

    coord = client.CoordinationV1Api(api_client)
    leases = wait_for(
        lambda: (ls := coord.list_namespaced_lease("kube-node-lease").items) and len(ls) == 7 and ls,
        15, "a lease per node",
    )
    for lease in leases:
        assert lease.spec.holder_identity == lease.metadata.name
        age = time.time() - lease.spec.renew_time.timestamp()
        assert age < 30, f"lease of {lease.metadata.name} renewed {age:.0f} s ago"


def test_kube_scheduler_binds_and_virtual_kubelet_runs_then_deletes(core_v1, api_client, namespace):
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="app", image="nginx:1.25")]),
    )
    core_v1.create_namespaced_pod(namespace, pod)
    bound_to = None
    w = watch.Watch()
    for event in w.stream(core_v1.list_namespaced_pod, namespace, field_selector="metadata.name=web",
                          timeout_seconds=30):
        obj = event["object"]
        bound_to = bound_to or obj.spec.node_name
        if obj.status.phase == "Running" and _ready(obj.status.conditions):
            w.stop()
            break
    else:
        pytest.fail("pod did not become Running and Ready within 30 s")
    assert bound_to and bound_to.startswith("krios-worker-")

    # kube-scheduler (not us, not the kubelet) bound it: it reports the Scheduled event.
    events_v1 = client.EventsV1Api(api_client)
    scheduled = wait_for(
        lambda: [e for e in events_v1.list_namespaced_event(namespace).items
                 if e.reason == "Scheduled" and e.regarding.name == "web"],
        10, "the Scheduled event",
    )
    assert scheduled[0].reporting_controller == "default-scheduler"

    running = core_v1.read_namespaced_pod("web", namespace)
    node = core_v1.read_node(bound_to)
    node_ip = {a.type: a.address for a in node.status.addresses}["InternalIP"]
    assert running.status.host_ip == running.status.pod_ip == node_ip
    conds = {c.type: c.status for c in running.status.conditions}
    assert conds == {"PodScheduled": "True", "Initialized": "True", "ContainersReady": "True", "Ready": "True"}
    (container,) = running.status.container_statuses
    assert container.ready and container.state.running is not None and running.status.start_time

    # A graceful delete (default 30 s grace) completes at once: the virtual kubelet finishes it.
    core_v1.delete_namespaced_pod("web", namespace)

    def gone() -> bool:
        try:
            core_v1.read_namespaced_pod("web", namespace)
        except ApiException as err:
            return err.status == 404
        return False

    wait_for(gone, 10, "the pod to be deleted")
