"""Backup reservations and re-placement targets for delay-constrained pods (kubernetes-edge-scheduler parity).

A pod with ``delay_*`` labels (and no ``leozone``: those move by handover)
asks for a *backup reservation* with the label ``krios.io/backup: "true"``, or
gets one from a scheduler run with ``--backup-reservations`` (then
``krios.io/backup: "false"`` opts out). When the scheduler binds such a pod it
also picks a second node that satisfies the same constraints (taints, node
selector, every ``delay_`` label, resources) and writes it on the pod:

- annotation ``krios.io/backup-node: <node>``: the reserved node;
- annotation ``krios.io/backup-group: <group>``: the *constraint group*, a
  digest of the namespace and the pod's ``delay_`` labels (:func:`group_of`).

Pods of one group share one slot per node: a group's existing slot is reused
when it admits the pod, is not the pod's own node, and no other pod sharing it
runs on the pod's node (so one node failure never needs the slot twice). The
slot is as large as the largest requests of the pods sharing it and counts as
one pod; the scheduler counts every slot as used when it fits pods with
requests (:func:`krios.control.constraints.fit_and_prefer`), like the seed's
placeholder pods but without pods.

When a pod's node goes ``NotReady``, leaves the API or the latency matrix,
the controller (:mod:`krios.control.controller`) moves the pod to its
reservation if that node still admits it (:func:`replacement_target`), else to
the best valid node. All functions here are pure: the API's JSON objects in,
names out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from krios.control import constraints as C
from krios.control.placement import node_is_worker, pod_delays, selector_matches, tolerates
from krios.errors import ConfigError
from krios.kube.names import DELAY_PREFIX, LEOZONE_LABEL
from krios.kube.objects import annotations, labels, name_of, node_ready, pod_deleting

Obj = dict[str, Any]

BACKUP_LABEL = C.BACKUP_LABEL
BACKUP_NODE_ANNOTATION = C.BACKUP_NODE_ANNOTATION
BACKUP_GROUP_ANNOTATION = C.BACKUP_GROUP_ANNOTATION


def replaceable(pod: Obj) -> bool:
    """The pod has a ``delay_*`` label and no ``leozone`` (the controller re-places it; leozone pods hand over)."""
    lab = labels(pod)
    return LEOZONE_LABEL not in lab and any(k.startswith(DELAY_PREFIX) for k in lab)


def wants_backup(pod: Obj, default: bool = False) -> bool:
    """The pod should get a backup reservation: :func:`replaceable`, and its ``krios.io/backup`` label is
    ``"true"`` (``"false"``: never; absent: ``default``, the scheduler's ``--backup-reservations``)."""
    value = labels(pod).get(BACKUP_LABEL)
    if value is not None:
        value = value.strip().lower()
    if value == "false" or (value != "true" and not default):
        return False
    return replaceable(pod)


def group_of(pod: Obj) -> str:
    """The pod's constraint group: 12 hex digits of a digest of its namespace and ``delay_`` labels."""
    meta = pod.get("metadata") or {}
    items = sorted((k, v) for k, v in labels(pod).items() if k.startswith(DELAY_PREFIX))
    text = repr((meta.get("namespace") or "", items))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def valid_nodes(pod: Obj, nodes: Iterable[Obj], pods: Sequence[Obj], rtt: Mapping[str, Mapping[str, float]], *,
                exclude: Iterable[str] = (), free_group: str | None = None) -> list[str]:
    """Names of the nodes that may host ``pod`` now, best first.

    A node qualifies when it is ``Ready``, a schedulable worker, not in
    ``exclude``, tolerated and selected by the pod, within every ``delay_``
    label of the pod against ``rtt`` (ms; apps resolved from ``pods``, the pod
    itself not counted), and the pod's requests fit its allocatable minus the
    live pods bound to it and the backup slots reserved on it
    (:func:`krios.control.constraints.reserved_slots`) except ``free_group``'s,
    which is free for its own pods. Ranked by the worst ``rtt / limit``
    (most slack first), then the fewest pods bound, then the name. A pod
    whose labels or requests are malformed admits no node.
    """
    try:
        delays = pod_delays(pod)
        want = C.pod_requests(pod)
    except ConfigError:
        return []
    uid = (pod.get("metadata") or {}).get("uid")
    skip = set(exclude)
    live = [p for p in pods if not pod_deleting(p) and (uid is None or (p.get("metadata") or {}).get("uid") != uid)]
    bound = C.bound_by_node(live)
    slots = C.reserved_slots(live)
    cands = [n for n in nodes if name_of(n) not in skip and node_ready(n) and node_is_worker(n)
             and tolerates(pod, n) and selector_matches(pod, n)]
    targets = C.delay_targets(delays, C.pods_by_app(live), rtt, (name_of(n) for n in cands)) if delays else []
    ranked: list[tuple[float, int, str]] = []
    for node in cands:
        name = name_of(node)
        if targets and C.delay_violation(name, targets, rtt) is not None:
            continue
        used, count = C.usage(bound.get(name, ()))
        count += C.add_slots(used, slots.get(name, {}), skip_group=free_group)
        try:
            if C.shortfall(want, C.node_allocatable(node), used, count) is not None:
                continue
        except ConfigError:
            continue
        ranked.append((C.delay_ratio(name, targets, rtt), count, name))
    return [name for *_k, name in sorted(ranked)]


def choose_backup(pod: Obj, node: str, nodes: Iterable[Obj], pods: Sequence[Obj],
                  rtt: Mapping[str, Mapping[str, float]]) -> str | None:
    """The backup node for ``pod`` bound (or about to be bound) to ``node``, or ``None`` if no other node
    qualifies: its group's slot on a node that admits it (:func:`valid_nodes` with the slot free for it),
    is not ``node`` and shares no primary node with the slot's other pods; else a new slot on the best
    :func:`valid_nodes` other than ``node`` (every slot counted as used)."""
    nodes = list(nodes)
    group = group_of(pod)
    uid = (pod.get("metadata") or {}).get("uid")
    sharing: dict[str, set[str]] = {}  # backup node of the group -> the primaries of the pods sharing it
    for p in pods:
        if (p.get("metadata") or {}).get("uid") == uid or pod_deleting(p):
            continue
        notes = annotations(p)
        if notes.get(BACKUP_GROUP_ANNOTATION) == group and notes.get(BACKUP_NODE_ANNOTATION):
            primary = (p.get("spec") or {}).get("nodeName")
            if primary:
                sharing.setdefault(notes[BACKUP_NODE_ANNOTATION], set()).add(primary)
    shared = sorted(b for b, primaries in sharing.items() if b != node and node not in primaries)
    if shared:
        ok = set(valid_nodes(pod, nodes, pods, rtt, exclude={node}, free_group=group))
        for b in shared:
            if b in ok:
                return b
    found = valid_nodes(pod, nodes, pods, rtt, exclude={node} | set(sharing))
    return found[0] if found else None


def reservation(pod: Obj, node: str | None) -> dict[str, str]:
    """The annotations recording ``pod``'s reservation on ``node`` (empty for ``None``)."""
    if node is None:
        return {}
    return {BACKUP_NODE_ANNOTATION: node, BACKUP_GROUP_ANNOTATION: group_of(pod)}


def replacement_target(pod: Obj, nodes: Iterable[Obj], pods: Sequence[Obj], rtt: Mapping[str, Mapping[str, float]],
                       *, failure: bool, exclude: Iterable[str] = ()) -> tuple[str | None, bool]:
    """Where the controller moves ``pod``: ``(node, from_reservation)``.

    After a node failure (``failure``), the pod's reserved node
    (:data:`BACKUP_NODE_ANNOTATION`) if it still admits the pod, its group's
    slot there being free for it; otherwise (and for a broken ``delay_``
    label) the best of :func:`valid_nodes` outside ``exclude`` (the nodes
    already hosting a copy, failed attempts), every slot counted as used.
    ``(None, False)`` when no node qualifies.
    """
    nodes = list(nodes)
    skip = set(exclude)
    backup = annotations(pod).get(BACKUP_NODE_ANNOTATION)
    if failure and backup and backup not in skip:
        group = annotations(pod).get(BACKUP_GROUP_ANNOTATION) or group_of(pod)
        if backup in valid_nodes(pod, [n for n in nodes if name_of(n) == backup], pods, rtt, free_group=group):
            return backup, True
    found = valid_nodes(pod, nodes, pods, rtt, exclude=skip)
    return (found[0], False) if found else (None, False)
