"""What virtual nodes and their pods look like to the API (plain JSON dicts).

Names and addresses (``docs/design/interfaces.md``): workers are
``krios-worker-<i>`` with InternalIP ``127.0.1.<i+1>`` (past 254 the count
carries on into ``127.0.2.x``; everything stays in loopback 127.0.0.0/8),
control-plane nodes ``krios-control-<i>`` with ``127.0.0.<i+1>``. A node may
carry its address in the annotation ``krios.dev/internal-ip`` instead.

A virtual pod "runs" at its node's address, as a ``hostNetwork`` pod would:
``podIP == hostIP``, so a stand-in app listening on the node's loopback
address answers for the pods placed there.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from krios.kube.names import (
    CONTROL_ROLE_LABEL,
    INTERNAL_IP_ANNOTATION,
    VIRTUAL_KUBELET_LABEL,
    WORKER_ROLE_LABEL,
)
from krios.kube.objects import node_internal_ip, node_ready, rfc3339
from krios.kube.objects import pod_running_ready as pod_is_running_ready  # noqa: F401 (this module's API)

#: Label that marks a node the virtual kubelet serves.
VIRTUAL_LABEL = VIRTUAL_KUBELET_LABEL
#: Optional annotation with a node's InternalIP.
IP_ANNOTATION = INTERNAL_IP_ANNOTATION
CONTROL_ROLE = CONTROL_ROLE_LABEL
WORKER_ROLE = WORKER_ROLE_LABEL
#: Taints the admission chain or the node lifecycle controller put on nodes that are not Ready.
NOT_READY_TAINTS = frozenset({"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"})
KUBELET_VERSION = "v1.20.2"
DEFAULT_CAPACITY = {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}

_WORKER = re.compile(r"^krios-worker-(\d+)$")
_CONTROL = re.compile(r"^krios-control-(\d+)$")


def worker_name(i: int) -> str:
    return f"krios-worker-{i}"


def control_name(i: int) -> str:
    return f"krios-control-{i}"


def worker_ip(i: int) -> str:
    """InternalIP of worker ``i``: ``127.0.1.<i+1>``."""
    return str(ipaddress.IPv4Address("127.0.1.0") + i + 1)


def control_ip(i: int) -> str:
    """InternalIP of control-plane node ``i``: ``127.0.0.<i+1>``."""
    return str(ipaddress.IPv4Address("127.0.0.0") + i + 1)


def ip_for_name(name: str) -> str | None:
    """The address a node of this name gets by convention, or ``None`` for other names."""
    if m := _WORKER.match(name):
        return worker_ip(int(m.group(1)))
    if m := _CONTROL.match(name):
        return control_ip(int(m.group(1)))
    return None


def node_manifest(
    name: str, ip: str, labels: dict[str, str] | None = None, *, control: bool = False
) -> dict[str, Any]:
    """A Node served by the virtual kubelet (its status comes later, see :func:`node_status`)."""
    all_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        VIRTUAL_LABEL: "true",
        (CONTROL_ROLE if control else WORKER_ROLE): "",
        **(labels or {}),
    }
    spec: dict[str, Any] = {}
    if control:
        spec["taints"] = [{"key": CONTROL_ROLE, "effect": "NoSchedule"}]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": all_labels, "annotations": {IP_ANNOTATION: ip}},
        "spec": spec,
    }


def node_ip(node: dict[str, Any]) -> str:
    """A node's InternalIP: annotation, else the naming convention, else its status."""
    meta = node.get("metadata", {})
    ip = (meta.get("annotations") or {}).get(IP_ANNOTATION) or ip_for_name(meta.get("name", ""))
    return ip or node_internal_ip(node) or "127.0.0.1"


def node_status(name: str, ip: str, now: float, capacity: dict[str, str] | None = None) -> dict[str, Any]:
    """Status patch that makes a node Ready with the given capacity."""
    ts = rfc3339(now)
    cap = dict(capacity or DEFAULT_CAPACITY)

    def cond(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": ts,
            "lastTransitionTime": ts,
        }

    return {
        "status": {
            "capacity": cap,
            "allocatable": cap,
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "virtual"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "virtual"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "virtual"),
                cond("Ready", "True", "KubeletReady", "krios virtual kubelet is posting ready status"),
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": name,
                "systemUUID": name,
                "bootID": name,
                "kernelVersion": "virtual",
                "osImage": "krios virtual node",
                "containerRuntimeVersion": "krios://virtual",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }
    }


def node_is_ready(node: dict[str, Any]) -> bool:
    """Ready=True and none of the not-ready taints."""
    taints = (node.get("spec") or {}).get("taints") or []
    return node_ready(node) and not any(t.get("key") in NOT_READY_TAINTS for t in taints)


def pod_running_status(pod: dict[str, Any], host_ip: str, now: float) -> dict[str, Any]:
    """Status patch that makes a bound pod Running and Ready on a node at ``host_ip``.

    Keeps a ``PodScheduled`` condition the scheduler already wrote (its time is
    what scheduling-latency measurements read).
    """
    ts = rfc3339(now)
    meta, spec = pod["metadata"], pod.get("spec") or {}
    uid = meta["uid"]
    have = {c.get("type") for c in (pod.get("status") or {}).get("conditions") or []}
    kinds = ["Initialized", "ContainersReady", "Ready"]
    if "PodScheduled" not in have:
        kinds.append("PodScheduled")
    conditions = [
        {"type": k, "status": "True", "lastTransitionTime": ts, "lastProbeTime": None} for k in kinds
    ]

    def container(c: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        image, running = c.get("image", ""), "running" in state
        return {
            "name": c["name"],
            "image": image,
            "imageID": f"krios://{image}",
            "containerID": f"krios://{uid}/{c['name']}",
            "ready": True,  # a completed init container counts as ready, as with a kubelet
            "started": running,
            "restartCount": 0,
            "state": state,
        }

    status: dict[str, Any] = {
        "phase": "Running",
        "conditions": conditions,
        "hostIP": host_ip,
        "podIP": host_ip,
        "podIPs": [{"ip": host_ip}],
        "startTime": ts,
        "containerStatuses": [container(c, {"running": {"startedAt": ts}}) for c in spec.get("containers", [])],
    }
    done = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": ts, "finishedAt": ts}}
    if spec.get("initContainers"):
        status["initContainerStatuses"] = [container(c, done) for c in spec["initContainers"]]
    return {"metadata": {"uid": uid}, "status": status}
