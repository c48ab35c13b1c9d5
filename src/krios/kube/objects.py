"""Reading the API's JSON objects (plain ``dict``): metadata, conditions, readiness, addresses.

One definition of what krios means by "the pod is Ready", "the node is
Ready", "the node's InternalIP", shared by the daemons, the emulator, the
client's cluster view, the pod-latency watch and the virtual kubelet. Pure
functions: no API calls (those are in :mod:`krios.kube.client`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from krios.kube.names import CONTROL_PLANE_LABELS, DEFAULT_SCHEDULER_NAME

Obj = dict[str, Any]


# -- metadata -------------------------------------------------------------------------------
def labels(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def annotations(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def name_of(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def object_key(obj: Obj) -> str:
    """``namespace/name`` for namespaced objects, ``name`` for cluster-scoped ones."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


def resource_version(obj: Obj) -> str | None:
    return (obj.get("metadata") or {}).get("resourceVersion")


# -- conditions -------------------------------------------------------------------------------
def condition(obj: Obj, kind: str) -> Obj | None:
    """The ``status.conditions`` entry of type ``kind`` (``Ready``, ``PodScheduled`` ...), or ``None``."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def condition_true(obj: Obj, kind: str) -> bool:
    """The condition ``kind`` is present with status ``True``."""
    cond = condition(obj, kind)
    return cond is not None and cond.get("status") == "True"


# -- nodes ----------------------------------------------------------------------------------
def node_ready(node: Obj) -> bool:
    """The node's ``Ready`` condition is ``True``."""
    return condition_true(node, "Ready")


def node_internal_ip(node: Obj) -> str | None:
    """The node's first ``InternalIP`` in ``status.addresses``, or ``None``."""
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "InternalIP":
            return addr.get("address")
    return None


def node_is_control_plane(node: Obj) -> bool:
    """The node carries a control-plane role label (``master`` or ``control-plane``)."""
    lab = labels(node)
    return any(key in lab for key in CONTROL_PLANE_LABELS)


# -- pods -----------------------------------------------------------------------------------
def pod_deleting(pod: Obj) -> bool:
    """The pod has a ``deletionTimestamp`` (a graceful delete is under way)."""
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def pod_terminating(pod: Obj) -> bool:
    """Being deleted, or finished (phase ``Succeeded``/``Failed``)."""
    return pod_deleting(pod) or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_ready(pod: Obj) -> bool:
    """Not terminating, and its ``Ready`` condition is ``True``."""
    return not pod_terminating(pod) and condition_true(pod, "Ready")


def pod_running_ready(pod: Obj) -> bool:
    """Phase ``Running`` with ``Ready=True`` (what a kubelet reports of a started pod)."""
    return (pod.get("status") or {}).get("phase") == "Running" and condition_true(pod, "Ready")


def pod_ready_since(pod: Obj) -> float | None:
    """Unix s since when a bound, not deleting pod has been Ready (its condition's
    ``lastTransitionTime``; 0 if unknown), or ``None`` if it is not Ready."""
    if pod_deleting(pod) or not pod_node(pod):
        return None
    cond = condition(pod, "Ready")
    if cond is None or cond.get("status") != "True":
        return None
    return parse_time(cond.get("lastTransitionTime")) or 0.0


def pod_node(pod: Obj) -> str | None:
    return (pod.get("spec") or {}).get("nodeName") or None


def pod_scheduler(pod: Obj) -> str:
    return (pod.get("spec") or {}).get("schedulerName") or DEFAULT_SCHEDULER_NAME


# -- API times --------------------------------------------------------------------------------
def rfc3339(t: float) -> str:
    """A Kubernetes ``Time`` string (whole seconds, UTC) for unix seconds ``t``."""
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(t: float | None = None) -> str:
    """A Kubernetes ``MicroTime`` string (RFC 3339, microseconds, UTC) for unix seconds ``t`` (default now)."""
    return datetime.fromtimestamp(time.time() if t is None else t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> float | None:
    """Unix seconds of an API ``Time``/``MicroTime`` string; ``None`` if absent or unreadable."""
    if not text:
        return None
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()
