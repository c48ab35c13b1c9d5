"""Placement constraints at parity with kubernetes-edge-scheduler: resource fit, delay to another app, cloud nodes.

Pure functions over the API's JSON objects (``dict``) and plain RTT mappings,
so that the scheduler (and anything else that places pods) can call them
without API access:

- :func:`parse_quantity`: a Kubernetes quantity (``500m``, ``1.5Gi``, ``2e3``,
  ``1E``) as a float (cores for ``cpu``, bytes for ``memory``).
- :func:`pod_requests`, :func:`node_allocatable`, :func:`fits`: the pod's
  requests against the node's allocatable minus what the pods bound to it
  request (``Insufficient cpu`` like kube-scheduler).
- :func:`delay_targets`, :func:`delay_violation`: ``delay_<ref>: <ms>`` labels
  where ``<ref>`` is ``client``, a node, or an app (exact ``app`` label match)
  resolved to the nodes its pods run on; every label must hold.
- :func:`is_cloud`, :func:`prefer_cloud`: pods without delay/leozone labels go
  to ``kubernetes.io/role=cloud`` nodes when there are any.
- :func:`filter_nodes`: all of the above over a candidate list, with reasons.
- :func:`node_failure`, :func:`placement_violation`: why a *bound* pod should
  move (its node gone, not Ready, out of the matrix, or a delay label broken),
  for the controller's re-placement.
- :func:`reserved_slots`: the backup reservations (:mod:`krios.control.backup`)
  per node, which :func:`fit_and_prefer` counts as used.

RTTs are round-trip times in milliseconds, ``rtt[from][to]``, as in the
``krios-latency`` ConfigMap (:mod:`krios.control.placement`).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from krios.errors import ConfigError
from krios.kube.names import ANNOTATION_PREFIX, DELAY_PREFIX, LEOZONE_LABEL
from krios.kube.objects import labels, name_of, node_ready, pod_deleting

Obj = dict[str, Any]

#: Pod label naming the app a pod belongs to (``delay_<app>`` refers to it, exact match).
APP_KEY = "app"
#: Node label (and value) of the nodes of a cloud provider.
CLOUD_ROLE_LABEL, CLOUD_ROLE = "kubernetes.io/role", "cloud"
#: ``delay_<ref>`` naming the emulated ground client (a row of the matrix, not a node).
CLIENT_REF = "client"
#: kube-scheduler-style reason of a node that violates a delay label (the krios scheduler's wording).
DELAY_REASON = "node(s) violate the pod's delay_ constraints"
#: Origin standing for an app with no placed pod: in no matrix, so it admits no node.
UNPLACED_APP = "app:{}"
#: The resources :func:`fits` checks (others in requests are ignored, like extended resources).
CHECKED_RESOURCES = ("cpu", "memory", "ephemeral-storage")

#: Pod label asking for a backup reservation (``"true"``; ``"false"`` opts out of the scheduler's default).
BACKUP_LABEL = f"{ANNOTATION_PREFIX}backup"
#: Pod annotations of a backup reservation: the reserved node, and the constraint group sharing the slot.
BACKUP_NODE_ANNOTATION = f"{ANNOTATION_PREFIX}backup-node"
BACKUP_GROUP_ANNOTATION = f"{ANNOTATION_PREFIX}backup-group"
#: :func:`node_failure`'s reason for a node missing from the API.
NODE_GONE = "node gone"

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_QUANTITY = re.compile(
    r"^\s*([+-]?(?:\d+\.?\d*|\.\d+))"
    r"([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|)\s*$"
)


# -- quantities --------------------------------------------------------------------------------
def parse_quantity(value: Any, *, source: str = "quantity", field: str | None = None) -> float:
    """A Kubernetes resource quantity as a float in base units (cores, bytes, ...).

    Accepts numbers and the strings of the Kubernetes grammar: a decimal number
    with an optional binary suffix (``Ki Mi Gi Ti Pi Ei``), decimal suffix
    (``n u m k M G T P E``) or decimal exponent (``e3``, ``E-2``). ``1E`` is an
    exa, ``1E2`` is 100. Raises :class:`ConfigError` naming ``source`` and
    ``field`` (default: the value) for anything else, or a negative value.
    """
    if isinstance(value, bool):
        raise ConfigError("not a resource quantity", source=source, field=field or str(value))
    number = float(value) if isinstance(value, int | float) else _parse_text(str(value))
    if number is None:
        raise ConfigError("not a resource quantity (e.g. 500m, 1.5Gi, 2e3)", source=source, field=field or str(value))
    if not math.isfinite(number) or number < 0:
        raise ConfigError("must be a finite non-negative quantity", source=source, field=field or str(value))
    return number


@functools.lru_cache(maxsize=4096)
def _parse_text(text: str) -> float | None:
    """The value of a quantity string, ``None`` if it is not one (cached: clusters repeat a few values)."""
    m = _QUANTITY.match(text)
    if m is None:
        return None
    digits, suffix = m.groups()
    if suffix in _BINARY:
        scale = float(_BINARY[suffix])
    elif suffix in _DECIMAL:
        scale = _DECIMAL[suffix]
    else:
        try:
            scale = 10.0 ** int(suffix[1:])
        except OverflowError:
            return math.inf
    try:
        return float(digits) * scale
    except OverflowError:
        return math.inf


# -- resource fit ------------------------------------------------------------------------------
def _add(total: dict[str, float], items: Mapping[str, Any], source: str) -> None:
    for res, qty in items.items():
        total[res] = total.get(res, 0.0) + parse_quantity(qty, source=source, field=f"{res}={qty}")


def _container_requests(container: Obj, source: str) -> dict[str, float]:
    """A container's requests; a resource with only a limit requests its limit (the API server's default)."""
    resources = container.get("resources") or {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    out: dict[str, float] = {}
    _add(out, merged, f"{source} container {container.get('name', '?')} resources")
    return out


def pod_requests(pod: Obj) -> dict[str, float]:
    """What the pod requests, in base units (``cpu`` cores, ``memory`` bytes, ...).

    The sum over ``spec.containers``, raised to the largest init container's
    requests, plus ``spec.overhead`` (kube-scheduler's effective request).
    Raises :class:`ConfigError` naming the pod, container and quantity.
    """
    spec = pod.get("spec") or {}
    source = f"pod {name_of(pod)}"
    total: dict[str, float] = {}
    for c in spec.get("containers") or ():
        for res, q in _container_requests(c, source).items():
            total[res] = total.get(res, 0.0) + q
    for c in spec.get("initContainers") or ():
        for res, q in _container_requests(c, source).items():
            total[res] = max(total.get(res, 0.0), q)
    _add(total, spec.get("overhead") or {}, f"{source} spec.overhead")
    return total


def node_allocatable(node: Obj) -> dict[str, float]:
    """The node's ``status.allocatable`` (``capacity`` where missing) in base units.

    A resource the node does not report is unlimited (absent from the result).
    Raises :class:`ConfigError` naming the node for a malformed quantity.
    """
    status = node.get("status") or {}
    merged = {**(status.get("capacity") or {}), **(status.get("allocatable") or {})}
    out: dict[str, float] = {}
    _add(out, merged, f"node {name_of(node)} status.allocatable")
    return out


def fits(pod: Obj, node: Obj, bound_pods: Iterable[Obj]) -> str | None:
    """``None`` if the pod's requests fit the node, else kube-scheduler's reason (``Insufficient cpu``).

    ``bound_pods``: the pods bound to the node (``spec.nodeName``); finished
    ones (phase ``Succeeded``/``Failed``) are skipped. Checks ``cpu``,
    ``memory``, ``ephemeral-storage`` and the node's ``pods`` count.
    """
    used, count = usage(bound_pods)
    return shortfall(pod_requests(pod), node_allocatable(node), used, count)


def usage(bound_pods: Iterable[Obj]) -> tuple[dict[str, float], int]:
    """The requests summed over ``bound_pods`` that are not finished, and how many they are (a pod whose
    requests do not parse counts, with nothing requested)."""
    used: dict[str, float] = {}
    count = 0
    for other in bound_pods:
        if _finished(other):
            continue
        count += 1
        try:
            req = pod_requests(other)
        except ConfigError:
            continue
        for res, q in req.items():
            used[res] = used.get(res, 0.0) + q
    return used, count


def _finished(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def shortfall(want: Mapping[str, float], have: Mapping[str, float], used: Mapping[str, float],
              count: int) -> str | None:
    """kube-scheduler's reason if ``want`` does not fit ``have`` minus ``used`` (``count`` pods bound)."""
    if "pods" in have and count + 1 > have["pods"]:
        return "Too many pods"
    for res in CHECKED_RESOURCES:
        need = want.get(res, 0.0)
        if need > 0 and res in have and used.get(res, 0.0) + need > have[res] * (1 + 1e-12):
            return f"Insufficient {res}"
    return None


#: uid -> requests (a pod's resources are immutable in Kubernetes 1.20); cleared when it grows past the bound.
_REQUESTS: dict[str, dict[str, float]] = {}
_REQUESTS_MAX = 200_000


def _requests_cached(pod: Obj) -> dict[str, float]:
    uid = (pod.get("metadata") or {}).get("uid")
    if uid is None:
        return pod_requests(pod)
    got = _REQUESTS.get(uid)
    if got is None:
        got = pod_requests(pod)
        if len(_REQUESTS) >= _REQUESTS_MAX:
            _REQUESTS.clear()
        _REQUESTS[uid] = got
    return got


def bound_by_node(pods: Iterable[Obj]) -> dict[str, list[Obj]]:
    """The pods with a ``spec.nodeName``, per node."""
    out: dict[str, list[Obj]] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            out.setdefault(node, []).append(pod)
    return out


# -- delays to a node, the client or an app ------------------------------------------------------
@dataclass(frozen=True)
class DelayTarget:
    """One resolved ``delay_<ref>`` label: RTT to every node in ``origins`` must be <= ``limit_ms``."""

    ref: str
    limit_ms: float
    origins: tuple[str, ...]
    kind: str  # client | node | app


def pods_by_app(pods: Iterable[Obj]) -> dict[str, list[Obj]]:
    """Pods per value of their ``app`` label (exact values; pods without one are left out)."""
    out: dict[str, list[Obj]] = {}
    for pod in pods:
        app = labels(pod).get(APP_KEY)
        if app:
            out.setdefault(app, []).append(pod)
    return out


def delay_targets(delays: Mapping[str, float], apps: Mapping[str, Sequence[Obj]],
                  rtt: Mapping[str, Mapping[str, float]], node_names: Iterable[str] = (),
                  *, exclude_uid: str | None = None) -> list[DelayTarget]:
    """Resolve ``{ref: limit_ms}`` (:func:`krios.control.placement.pod_delays`) to origins.

    ``ref`` is, in this order: ``client`` (the matrix row); a node (a row of
    ``rtt`` or one of ``node_names``); an app, by exact ``app`` label value in
    ``apps`` (:func:`pods_by_app`), whose origins are the nodes its bound,
    not-deleted pods run on (the pod being placed, ``exclude_uid``, left out).
    An app with no pod placed yet (or an unknown ref) resolves to no origin:
    :func:`delay_violation` then rejects every node, so the pod waits.
    """
    nodes = set(node_names) | set(rtt)
    out: list[DelayTarget] = []
    for ref, limit in delays.items():
        if ref == CLIENT_REF:
            out.append(DelayTarget(ref, float(limit), (CLIENT_REF,), "client"))
        elif ref in nodes:
            out.append(DelayTarget(ref, float(limit), (ref,), "node"))
        else:
            origins = sorted({
                (p.get("spec") or {}).get("nodeName")
                for p in apps.get(ref, ())
                if (p.get("spec") or {}).get("nodeName")
                and not (p.get("metadata") or {}).get("deletionTimestamp")
                and (exclude_uid is None or (p.get("metadata") or {}).get("uid") != exclude_uid)
            })
            out.append(DelayTarget(ref, float(limit), tuple(origins), "app"))
    return out


def rtt_between(rtt: Mapping[str, Mapping[str, float]], origin: str, node: str) -> float | None:
    """RTT (ms) from ``origin`` to ``node``: ``rtt[origin][node]``, else ``rtt[node][origin]``, else ``None``;
    0 from a node to itself."""
    if origin == node:
        return 0.0
    row = rtt.get(origin)
    if row is not None and node in row:
        return float(row[node])
    row = rtt.get(node)
    if row is not None and origin in row:
        return float(row[origin])
    return None


def delay_violation(node: str, targets: Sequence[DelayTarget],
                    rtt: Mapping[str, Mapping[str, float]]) -> str | None:
    """``None`` if ``node`` meets every target, else the first violation in words."""
    for t in targets:
        if not t.origins:
            return f"no pod of app {t.ref} is placed yet" if t.kind == "app" else f"no RTT known from {t.ref}"
        for origin in t.origins:
            ms = rtt_between(rtt, origin, node)
            if ms is None:
                return f"no RTT known from {origin}"
            if ms > t.limit_ms:
                what = f"app {t.ref} on {origin}" if t.kind == "app" else origin
                return f"RTT from {what} {ms:.1f} ms > {t.limit_ms:g} ms"
    return None


def delay_ratio(node: str, targets: Sequence[DelayTarget], rtt: Mapping[str, Mapping[str, float]]) -> float:
    """max over targets and their origins of rtt / limit (for ranking admitted nodes; smaller is better)."""
    worst = 0.0
    for t in targets:
        for origin in t.origins:
            ms = rtt_between(rtt, origin, node)
            if ms is not None and t.limit_ms > 0:
                worst = max(worst, ms / t.limit_ms)
    return worst


# -- cloud nodes ---------------------------------------------------------------------------------
def is_cloud(node: Obj) -> bool:
    """The node is labelled ``kubernetes.io/role=cloud``."""
    return labels(node).get(CLOUD_ROLE_LABEL) == CLOUD_ROLE


def wants_cloud(pod: Obj) -> bool:
    """The pod has no ``delay_*`` and no ``leozone`` label (kubernetes-edge-scheduler sends it to the cloud)."""
    return not any(k.startswith(DELAY_PREFIX) or k == LEOZONE_LABEL for k in labels(pod))


def prefer_cloud(pod: Obj, candidates: Sequence[tuple[str, Obj]]) -> list[tuple[str, Obj]]:
    """The cloud candidates if the pod :func:`wants_cloud` and there are any, else all of them."""
    if wants_cloud(pod):
        cloud = [c for c in candidates if is_cloud(c[1])]
        if cloud:
            return cloud
    return list(candidates)


# -- everything at once ----------------------------------------------------------------------------
def filter_nodes(pod: Obj, candidates: Sequence[tuple[str, Obj]], *, pods: Iterable[Obj],
                 delays: Mapping[str, float], rtt: Mapping[str, Mapping[str, float]],
                 reasons: list[str] | None = None) -> list[tuple[str, Obj]]:
    """The ``(name, node)`` candidates that fit the pod's requests and every delay label, cloud-preferred.

    ``pods``: the cluster's pods (bound ones count against their node's
    allocatable; their ``app`` labels resolve ``delay_<app>``); ``delays``:
    :func:`krios.control.placement.pod_delays`; ``rtt``: the latency matrix
    (ms). With ``reasons``, one reason per rejected candidate is appended.
    """
    pods = list(pods)
    uid = (pod.get("metadata") or {}).get("uid")
    bound = bound_by_node(p for p in pods if (p.get("metadata") or {}).get("uid") != uid or uid is None)
    targets = delay_targets(delays, pods_by_app(pods), rtt, (n for n, _ in candidates), exclude_uid=uid) \
        if delays else []
    out: list[tuple[str, Obj]] = []
    for name, node in candidates:
        why = fits(pod, node, bound.get(name, ()))
        if why is None and targets:
            why = delay_violation(name, targets, rtt)
            if why is not None:
                why = DELAY_REASON
        if why is None:
            out.append((name, node))
        elif reasons is not None:
            reasons.append(why)
    return prefer_cloud(pod, out)


# -- re-placement (the controller) ------------------------------------------------------------------------
def in_matrix(name: str, rtt: Mapping[str, Mapping[str, float]]) -> bool:
    """``name`` is a row or a column of the latency matrix."""
    return name in rtt or any(name in row for row in rtt.values())


def node_failure(node: Obj | None, *, delays: Mapping[str, float] | None = None,
                 rtt: Mapping[str, Mapping[str, float]] | None = None) -> str | None:
    """Why ``node`` can no longer host a pod, or ``None``: it is gone from the API (:data:`NODE_GONE`), not
    ``Ready``, or -- for a pod with ``delays`` and a non-empty matrix -- gone from the latency matrix."""
    if node is None:
        return NODE_GONE
    if not node_ready(node):
        return f"node {name_of(node)} not Ready"
    name = name_of(node)
    if delays and rtt and not in_matrix(name, rtt):  # an empty (or no) matrix says nothing
        return f"node {name} not in the latency matrix"
    return None


def placement_violation(pod: Obj, node: Obj | None, *, pods: Iterable[Obj], delays: Mapping[str, float],
                        rtt: Mapping[str, Mapping[str, float]],
                        apps: Mapping[str, Sequence[Obj]] | None = None) -> str | None:
    """Why the bound ``pod`` should move, or ``None``: :func:`node_failure`, or (with ``delays``) the current
    matrix violates a delay label (:func:`delay_violation`, the pod itself not counted as its app).
    ``apps``: :func:`pods_by_app` of ``pods`` when the caller has it already."""
    why = node_failure(node, delays=delays, rtt=rtt)
    if why is not None or not delays:
        return why
    assert node is not None
    name = name_of(node)
    uid = (pod.get("metadata") or {}).get("uid")
    targets = delay_targets(delays, pods_by_app(pods) if apps is None else apps, rtt, (name,), exclude_uid=uid)
    return delay_violation(name, targets, rtt)


def reserved_slots(pods: Iterable[Obj]) -> dict[str, dict[str, dict[str, float]]]:
    """``node -> group -> requests`` of the backup reservations held by ``pods``: each bound, live pod with a
    :data:`BACKUP_NODE_ANNOTATION` reserves its requests there; pods of one group
    (:data:`BACKUP_GROUP_ANNOTATION`) share one slot per node, as large as the largest of them."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for p in pods:
        node, group = _reservation(p)
        if node is None:
            continue
        try:
            req = _requests_cached(p)
        except ConfigError:
            continue
        slot = out.setdefault(node, {}).setdefault(group, {})
        for res, q in req.items():
            slot[res] = max(slot.get(res, 0.0), q)
    return out


def _reservation(p: Obj) -> tuple[str | None, str]:
    """``(backup node, group)`` of a bound, live pod holding a reservation, else ``(None, "")``."""
    notes = (p.get("metadata") or {}).get("annotations")
    if not notes or BACKUP_NODE_ANNOTATION not in notes:
        return None, ""
    node = notes.get(BACKUP_NODE_ANNOTATION)
    own = (p.get("spec") or {}).get("nodeName")
    if not node or not own or node == own or pod_deleting(p) or _finished(p):
        return None, ""
    return node, notes.get(BACKUP_GROUP_ANNOTATION) or name_of(p)


def add_slots(used: dict[str, float], slots: Mapping[str, Mapping[str, float]], skip_group: str | None = None) -> int:
    """Add the reserved ``slots`` (group -> requests) of one node to ``used``; returns how many were added
    (each counts as one pod). ``skip_group``: the group whose slot is left out (it is free for its pods)."""
    n = 0
    for group, req in slots.items():
        if group == skip_group:
            continue
        n += 1
        for res, q in req.items():
            used[res] = used.get(res, 0.0) + q
    return n


# -- the scheduler's hooks (cheap when a pod uses none of this) -------------------------------------------------
def resolve_app_delays(delays: dict[str, float], pod: Obj, rtt: Mapping[str, Mapping[str, float]],
                       pods: Callable[[], Iterable[Obj]]) -> dict[str, float]:
    """``delays`` (:func:`krios.control.placement.pod_delays`) with every ``delay_<app>`` replaced by the nodes
    that app's pods run on (``{node: ms}``; the smallest limit where refs share a node), so the matrix's own
    ``rtt[from][node]`` check applies. ``client`` and node names (rows or columns of ``rtt``) stay; an app with
    no pod placed becomes ``app:<name>`` (no RTT known: no node qualifies, the pod waits). ``pods`` is called
    only when there is an app ref."""
    if not delays or all(ref == CLIENT_REF or ref in rtt for ref in delays):
        return delays
    columns = {n for row in rtt.values() for n in row}
    refs = {ref: lim for ref, lim in delays.items() if ref != CLIENT_REF and ref not in rtt and ref not in columns}
    if not refs:
        return delays
    out = {ref: lim for ref, lim in delays.items() if ref not in refs}
    uid = (pod.get("metadata") or {}).get("uid")
    for t in delay_targets(refs, pods_by_app(pods()), {}, exclude_uid=uid):
        for origin in t.origins or (UNPLACED_APP.format(t.ref),):
            out[origin] = min(out.get(origin, math.inf), t.limit_ms)
    return out


def requests_something(pod: Obj) -> bool:
    """The pod requests (or limits) some ``cpu``, ``memory`` or ``ephemeral-storage`` (a bad quantity: no)."""
    spec = pod.get("spec") or {}
    if not any(((c.get("resources") or {}).get("requests") or (c.get("resources") or {}).get("limits"))
               for c in [*(spec.get("containers") or ()), *(spec.get("initContainers") or ())]) \
            and not spec.get("overhead"):
        return False
    try:
        want = pod_requests(pod)
    except ConfigError:
        return False
    return any(want.get(r, 0.0) > 0 for r in CHECKED_RESOURCES)


_cloud_seen: tuple[Any, bool] = (None, False)


def any_cloud(candidates: Sequence[tuple[str, Obj]]) -> bool:
    """Some candidate is a cloud node (remembered for the last list object seen: a snapshot's workers)."""
    global _cloud_seen
    seen, found = _cloud_seen
    if seen is candidates:
        return found
    found = any(is_cloud(node) for _, node in candidates)
    _cloud_seen = (candidates, found)
    return found


def needs_filter(pod: Obj, workers: Sequence[tuple[str, Obj]]) -> bool:
    """:func:`fit_and_prefer` may drop some of ``workers`` for this pod (it requests resources, or it
    :func:`wants_cloud` and there are cloud nodes)."""
    return requests_something(pod) or (wants_cloud(pod) and any_cloud(workers))


def fit_and_prefer(pod: Obj, feasible: list[tuple[str, Obj]], pods: Callable[[], Iterable[Obj]],
                   reasons: list[str] | None = None, assigned: Mapping[str, str] | None = None,
                   ) -> list[tuple[str, Obj]]:
    """The ``(name, node)`` of ``feasible`` the pod's requests fit (:func:`fits`, only if it requests
    something; backup reservations, :func:`reserved_slots`, count as used, one pod each), cloud-preferred
    (:func:`prefer_cloud`). ``pods()``: the pods that count (called only for a pod with requests);
    ``assigned``: ``namespace/name -> node`` of pods decided but not yet seen bound.
    With ``reasons``, one reason per dropped node (``Insufficient cpu``)."""
    if feasible and requests_something(pod):
        uid = (pod.get("metadata") or {}).get("uid")
        names = {name for name, _ in feasible}
        used: dict[str, dict[str, float]] = {}
        count: dict[str, int] = {}
        slots: list[Obj] = []  # pods holding a backup reservation (krios.control.backup)
        for p in pods():
            meta = p.get("metadata") or {}
            if (uid is not None and meta.get("uid") == uid) or _finished(p):
                continue
            if BACKUP_NODE_ANNOTATION in (meta.get("annotations") or ()):
                slots.append(p)
            node = (p.get("spec") or {}).get("nodeName")
            if not node and assigned:
                node = assigned.get(f"{meta.get('namespace')}/{meta.get('name')}")
            if node not in names:
                continue
            count[node] = count.get(node, 0) + 1
            try:
                req = _requests_cached(p)
            except ConfigError:
                continue
            acc = used.setdefault(node, {})
            for res, q in req.items():
                acc[res] = acc.get(res, 0.0) + q
        for node, groups in reserved_slots(slots).items():
            if node in names:
                count[node] = count.get(node, 0) + add_slots(used.setdefault(node, {}), groups)
        want = pod_requests(pod)
        kept = []
        for name, node in feasible:
            try:
                why = shortfall(want, node_allocatable(node), used.get(name, {}), count.get(name, 0))
            except ConfigError as err:
                why = f"node(s) with bad resource quantities ({err.field})"
            if why is None:
                kept.append((name, node))
            elif reasons is not None:
                reasons.append(why)
        feasible = kept
    return prefer_cloud(pod, feasible) if feasible and wants_cloud(pod) else feasible
