"""The krios handover controller: move an app before its satellite leaves the zone.

Managed pods: bound to a node, not terminating, ``spec.schedulerName`` equal to
the krios scheduler's name, labelled ``leozone`` (optional ``radius``), and not
owned by a workload controller. Every copy of one app shares the *app key*: its
``krios.io/app-instance`` label, or, for the first copy, its own name.

For each Ready copy ``P`` the controller reads the ``sat_id`` of ``P``'s node
(following relabels), predicts when that satellite leaves the zone
(:meth:`krios.orbits.passes.ZoneTracker.exit_time`, emulated time) and asks
:func:`krios.control.handover.decide` -- the decision the policy simulator makes
too -- whether to keep ``P``'s satellite or move, and to which one: a move is due
``lookahead_s`` before the exit (``proactive``) or after it (``reactive``), and,
for a policy that follows the best satellite (``closest``), as soon as it ranks
another in-zone satellite above ``P``'s. To move, it makes before it breaks:

1. takes the successor node of the decision (at an exit:
   :func:`krios.control.handover.pick_successor`, in the zone now or entering
   before ``P``'s satellite leaves, ranked by the policy, preferring
   satellites that stay past ``P``'s exit; mid-pass:
   :func:`krios.control.handover.preferred`);
2. creates ``S``: ``P``'s spec with ``nodeName`` set to that node (the
   controller binds directly, since only it knows the "must outlast ``P``"
   constraint; ``schedulerName`` is kept), labels copied plus
   ``krios.io/app-instance``, annotations ``krios.io/handover-from: P``,
   ``krios.io/handover-started: <wall unix s>`` and ``P``'s node and satellite
   (``krios.io/handover-from-node``, ``krios.io/handover-from-sat``). Its name is derived from
   ``P``'s uid and the attempt number, so a create repeated after a crash or a
   lost answer is idempotent (409);
3. once ``S`` is Ready (and its satellite is in the zone, or ``P``'s has left),
   deletes ``P``, then marks ``S`` done (``krios.io/handover-completed: <emulated
   unix s>``) and records the handover (``on_handover``). A successor whose
   ``P`` is gone but that is not marked done -- its controller was killed
   between the delete and the mark -- is marked and recorded by whichever
   controller leads next, so a crash loses no handover row.

**Re-placement** (kubernetes-edge-scheduler parity): a pod with ``delay_*``
labels and no ``leozone`` is moved by the same machinery -- successor ``S``
bound directly, ``P`` deleted once ``S`` is Ready -- when
:func:`krios.control.constraints.placement_violation` says why: its node is
gone from the API, not ``Ready`` or gone from the (non-empty) latency matrix
(the successor goes to the pod's backup reservation if it still admits it,
:func:`krios.control.backup.replacement_target`, else to the best valid
node; ``P`` is deleted with grace 0 when its node is gone or not Ready, since
no kubelet would finish a graceful delete), or a new ``krios-latency`` matrix
breaks a ``delay_`` label of a Ready ``P``. The reason is on ``S``
(``krios.io/move-reason``), in the ``KriosReplaced`` Event on ``P`` and the
``KriosReplaceCompleted`` one on ``S``, and in the ``handovers`` row (``mode``
``replace``, column ``reason``).

If ``S`` is not Ready within ``ready_timeout_s`` (wall seconds) the failure is
recorded on ``P`` (annotation ``krios.io/handover-failed: node=sat,...``; those
nodes are skipped while they carry the same satellite), ``S`` is deleted,
``P`` is kept, a ``Warning`` Event says why, and the next attempt picks another
node. All state lives in these labels and annotations, so a restarted (or
newly elected) controller resumes a handover where it stopped: it never
leaves the app without a Ready copy, nor two copies once it is done.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from kubernetes.client import ApiClient

from krios.config import defaults as D
from krios.config import resolve
from krios.control import backup, constraints, handover, policies
from krios.control.daemon import Daemon, DaemonConfig
from krios.control.placement import node_is_worker, pod_delays
from krios.control.scheduler import DEFAULT_NAME as SCHEDULER_NAME
from krios.errors import ConfigError
from krios.kube.client import pod_path, status_of
from krios.kube.informer import Informer, Obj
from krios.kube.names import (
    ANNOTATION_PREFIX,
    APP_LABEL,
    CONTROLLER_NAME,
    HANDOVER_EXIT_ANNOTATION,
    HANDOVER_FAILED_ANNOTATION,
    HANDOVER_FROM_ANNOTATION,
    HANDOVER_STARTED_ANNOTATION,
    LEOZONE_LABEL,
)
from krios.kube.objects import (
    annotations,
    labels,
    name_of,
    node_ready,
    object_key,
    pod_node,
    pod_ready,
    pod_terminating,
)

log = logging.getLogger(__name__)

FROM_ANNOTATION = HANDOVER_FROM_ANNOTATION
STARTED_ANNOTATION = HANDOVER_STARTED_ANNOTATION
EXIT_ANNOTATION = HANDOVER_EXIT_ANNOTATION
FAILED_ANNOTATION = HANDOVER_FAILED_ANNOTATION
#: On a successor: the node and satellite of the copy it replaces (recorded even if the controller crashes).
FROM_NODE_ANNOTATION = f"{ANNOTATION_PREFIX}handover-from-node"
FROM_SAT_ANNOTATION = f"{ANNOTATION_PREFIX}handover-from-sat"
#: On a successor: the emulated unix s its handover completed (old copy deleted, row recorded).
COMPLETED_ANNOTATION = f"{ANNOTATION_PREFIX}handover-completed"
#: On a successor: why the copy moved (handovers: the satellite's exit or rank; re-placements: the violation).
REASON_ANNOTATION = f"{ANNOTATION_PREFIX}move-reason"
#: On a successor: ``replace`` (a delay-constrained pod re-placed); absent on a leozone pod's handover.
KIND_ANNOTATION = f"{ANNOTATION_PREFIX}move-kind"
#: The ``mode`` of a re-placement's ``handovers`` row.
REPLACE_MODE = "replace"
_TOKEN_VOLUME = re.compile(r"^(kube-api-access-[a-z0-9]+|.+-token-[a-z0-9]{5})$")


def app_key(pod: Obj) -> str:
    """The app a pod is a copy of: its ``krios.io/app-instance`` label, else its name."""
    return labels(pod).get(APP_LABEL) or name_of(pod)


def failed_nodes(pod: Obj) -> dict[str, int]:
    """``node -> sat_id`` of the failed successor attempts recorded on ``pod``."""
    out: dict[str, int] = {}
    for item in (annotations(pod).get(FAILED_ANNOTATION) or "").split(","):
        node, _, sat = item.partition("=")
        if node and sat.lstrip("-").isdigit():
            out[node] = int(sat)
    return out


def successor_name(app: str, pod: Obj, attempt: int) -> str:
    """Deterministic name of the ``attempt``-th successor of ``pod`` (idempotent creates)."""
    digest = hashlib.sha1(f"{pod['metadata'].get('uid')}/{attempt}".encode()).hexdigest()[:8]
    return f"{app[:52].rstrip('-.')}-{digest}"


def successor_body(pod: Obj, app: str, node: str, name: str, exit_time: float, wall: float,
                   from_sat: int | None = None, *, reason: str = "", kind: str = "handover",
                   extra: dict[str, str] | None = None) -> Obj:
    """The successor of ``pod``: same spec bound to ``node``, labels plus the handover state
    (``from_sat``: the satellite of ``pod``'s node, recorded with its node for the handover row; ``reason``
    and ``kind``: why and how it moves, ``handover`` or ``replace``; ``extra``: more annotations, e.g. the
    successor's own backup reservation). ``pod``'s ``krios.io/`` annotations are not copied."""
    meta = pod["metadata"]
    spec = copy.deepcopy(pod.get("spec") or {})
    spec["nodeName"] = node
    # the service-account admission adds a token volume per pod; let it add its own
    drop = {v["name"] for v in spec.get("volumes") or [] if _TOKEN_VOLUME.match(v.get("name", ""))}
    if drop:
        spec["volumes"] = [v for v in spec["volumes"] if v["name"] not in drop]
        for key in ("containers", "initContainers"):
            for c in spec.get(key) or []:
                c["volumeMounts"] = [m for m in c.get("volumeMounts") or [] if m.get("name") not in drop]
    notes = {k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith(ANNOTATION_PREFIX)}
    notes.update({
        FROM_ANNOTATION: meta["name"],
        STARTED_ANNOTATION: f"{wall:.6f}",
        EXIT_ANNOTATION: "nan" if math.isnan(exit_time) else f"{exit_time:.3f}",
        FROM_NODE_ANNOTATION: pod_node(pod) or "",
        FROM_SAT_ANNOTATION: "" if from_sat is None else str(from_sat),
        **({REASON_ANNOTATION: reason} if reason else {}),
        **({KIND_ANNOTATION: kind} if kind != "handover" else {}),  # absent on handovers (older controllers')
        **(extra or {}),
    })
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": {**(meta.get("labels") or {}), APP_LABEL: app},
            "annotations": notes,
        },
        "spec": spec,
    }


@dataclass(frozen=True)
class ControllerConfig(DaemonConfig):
    """:class:`~krios.control.daemon.DaemonConfig` plus the handover: mode, lead (emulated s),
    successor Ready timeout (wall s)."""

    mode: str = D.HANDOVER_MODE
    lookahead_s: float = D.LOOKAHEAD_S
    ready_timeout_s: float = D.READY_TIMEOUT_S

    SCENARIO_KEYS: ClassVar[dict[str, str]] = {
        **DaemonConfig.SCENARIO_KEYS,
        "mode": "handover.mode",
        "lookahead_s": "handover.lookahead_s",
        "ready_timeout_s": "handover.ready_timeout_s",
    }

    def check(self) -> None:
        super().check()
        handover.check_mode(self.mode, source="mode")
        resolve.check_at_least(self, 0.0, "lookahead_s")
        resolve.check_positive(self, "ready_timeout_s")


class Controller(Daemon):
    """The handover controller daemon (see the module docstring).

    Parameters (beyond :class:`~krios.control.daemon.Daemon`'s)
    ---------------------------------------------------
    scheduler_name:
        Manage pods with this ``spec.schedulerName``.
    policy, seed:
        Successor ranking (:mod:`krios.control.policies`) and the ``random`` policy's seed.
    mode:
        ``proactive`` or ``reactive``.
    lookahead_s:
        Proactive lead time, *emulated* seconds before the exit.
    ready_timeout_s:
        Wall seconds a successor may take to become Ready.
    resync_s:
        Longest sleep between two passes over the managed pods (wall seconds).
    on_handover:
        Called with a ``handovers`` row (:mod:`krios.results.schema`: ``t_sim``,
        ``from_node``, ``to_node``, ``from_sat``, ``to_sat``, ``lead_s``, ``mode``,
        ``app`` = ``<namespace>/<app key>``, ``reason``: why it moved; ``mode`` ``replace`` for a
        re-placement) after each completed handover or re-placement, e.g. to
        record it in the results store; exactly once per handover, also across a
        controller crash (see the module docstring).
    """

    component = CONTROLLER_NAME

    def __init__(
        self,
        api: ApiClient,
        constellation: Any,
        *,
        scheduler_name: str = SCHEDULER_NAME,
        policy: str = D.POLICY,
        seed: int = D.SEED,
        mode: str = D.HANDOVER_MODE,
        lookahead_s: float = D.LOOKAHEAD_S,
        ready_timeout_s: float = D.READY_TIMEOUT_S,
        resync_s: float = 1.0,
        on_handover: Callable[[dict[str, Any]], None] | None = None,
        **kw: Any,
    ) -> None:
        self.lookahead_s = float(lookahead_s)  # before the daemon sizes its lease from it
        super().__init__(api, constellation, **kw)
        self.on_handover = on_handover
        self.scheduler_name = scheduler_name
        self.policy = policies.check_policy(policy)
        self.mode = handover.check_mode(mode)
        self.ready_timeout_s = float(ready_timeout_s)
        self.resync_s = float(resync_s)
        self._rng = random.Random(seed)
        self.pods = Informer(
            self.watch_client, "/api/v1/pods", name="pods",
            field_selector=f"spec.schedulerName={scheduler_name}",  # leozone and delay_ pods (no prefix selector)
        )
        self._wake = threading.Event()
        for inf in (self.pods, self.nodes):
            inf.add_handler(lambda *_: self._wake.set())
        self._thread: threading.Thread | None = None
        self._noted: dict[str, str] = {}  # pod key -> last "waiting" note (log/event dedupe)
        self._completed: set[str] = set()  # uids of successors this process marked done (the cache may lag)
        self._pass_pods: tuple[list[Obj], dict[str, list[Obj]]] | None = None
        #: Counters: handovers started/completed/failed, API errors.
        self.stats = Counter()

    def informers(self) -> list[Informer]:
        return [*super().informers(), self.pods]

    def run_threads(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="handover", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:  # finish the pass under way before giving the lease up
            self._thread.join(10)
        super().stop()

    def on_world_changed(self) -> None:
        self._wake.set()

    # -- loop -------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self.wait_leading(1.0):
                continue
            self._wake.clear()
            try:
                next_wall = self.reconcile()
            except Exception:
                log.exception("reconcile failed")
                next_wall = time.time() + self.resync_s
            delay = min(self.resync_s, max(0.0, next_wall - time.time()))
            self._wake.wait(delay)
            self._stop.wait(0.02)  # coalesce bursts of cache events

    def reconcile(self) -> float:
        """One pass over every managed app; returns the wall time of the next deadline."""
        wall = time.time()
        now = self.now()
        nxt = wall + self.resync_s
        nodes = {name_of(n): n for n in self.nodes.list()}
        apps: dict[tuple[str, str], list[Obj]] = {}
        self._pass_pods = None  # the pods and apps of this pass, listed when a re-placement check needs them
        for pod in self.pods.list():
            if self._managed(pod):
                apps.setdefault((pod["metadata"]["namespace"], app_key(pod)), []).append(pod)
        for (_ns, app), pods in sorted(apps.items()):
            if not self.leading() or self._stop.is_set():
                break
            try:
                nxt = min(nxt, self._reconcile_app(app, pods, nodes, now, wall))
            except Exception:
                log.exception("app %s/%s: reconcile failed", _ns, app)
        return nxt

    def _managed(self, pod: Obj) -> bool:
        meta = pod.get("metadata") or {}
        owned = any(ref.get("controller") for ref in meta.get("ownerReferences") or [])
        return (not owned and bool(pod_node(pod)) and not pod_terminating(pod)
                and (pod.get("spec") or {}).get("schedulerName") == self.scheduler_name
                and (LEOZONE_LABEL in labels(pod) or backup.replaceable(pod)))

    def _reconcile_app(self, app: str, pods: list[Obj], nodes: dict[str, Obj], now: float, wall: float) -> float:
        by_name = {name_of(p): p for p in pods}
        successors: dict[str, list[Obj]] = {}
        for p in pods:
            src = annotations(p).get(FROM_ANNOTATION)
            if src in by_name and src != name_of(p):
                successors.setdefault(src, []).append(p)
        nxt = math.inf
        for pod in sorted(pods, key=name_of):
            src = annotations(pod).get(FROM_ANNOTATION)
            if src in by_name and src != name_of(pod):
                continue  # a successor still in flight: handled with its predecessor
            if src and src != name_of(pod) and COMPLETED_ANNOTATION not in annotations(pod):
                self._recover(app, pod, src, nodes, now)
            if name_of(pod) in successors:
                nxt = min(nxt, self._progress(app, pod, successors[name_of(pod)], nodes, now, wall))
            elif LEOZONE_LABEL not in labels(pod):  # delay_ labels only: re-placed, never handed over
                nxt = min(nxt, self._watch_placement(app, pod, nodes, wall))
            elif pod_ready(pod):
                nxt = min(nxt, self._watch_exit(app, pod, nodes, now, wall))
        return nxt

    # -- steady state: is a handover due? ------------------------------------------------------
    def _zone(self, pod: Obj) -> Any:
        try:
            return self.zone_of(pod)
        except ConfigError as err:
            self.warn_once(pod, "InvalidLabel", f"cannot hand over: {err}",
                           value=labels(pod).get(LEOZONE_LABEL))
            return None

    def _watch_exit(self, app: str, pod: Obj, nodes: dict[str, Obj], now: float, wall: float) -> float:
        zone = self._zone(pod)
        if zone is None:
            return math.inf
        node = nodes.get(pod_node(pod) or "")
        sat = self.sat_of(node) if node is not None else None
        # a node without a satellite (any more) makes the handover due at once (nan)
        exit_time = math.nan if sat is None else self.trackers.call(zone, lambda t: t.exit_time(sat, now))
        due = handover.due(now, exit_time, self.mode, self.lookahead_s)
        follow = handover.follows_best(self.policy)  # closest: may move mid-pass, look every pass
        if not due and not follow:
            return self._wall_of(handover.start_time(exit_time, self.mode, self.lookahead_s))
        eligible = self._eligible(app, pod, nodes)
        decision = self.trackers.call(zone, lambda t: handover.decide(
            t, now, sat, eligible, self.policy, self.mode, self.lookahead_s, self._rng,
            exit_time=None if sat is None else exit_time))
        if decision.reason == "keep":
            start = self._wall_of(handover.start_time(exit_time, self.mode, self.lookahead_s))
            return min(start, wall + self.resync_s)
        self._start(app, pod, sat, exit_time, decision, now, wall)
        return wall + self.resync_s

    def _wall_of(self, t_sim: float) -> float:
        """Wall time at which the emulated clock reads ``t_sim`` (``inf`` for a paused clock)."""
        clock = self.clock
        return clock.wall_at(t_sim) if clock.rate > 0 else math.inf

    def _eligible(self, app: str, pod: Obj, nodes: dict[str, Obj]) -> dict[int, str]:
        failed = failed_nodes(pod)
        busy = {pod_node(p) for p in self.pods.list()
                if app_key(p) == app and p["metadata"]["namespace"] == pod["metadata"]["namespace"]}
        out: dict[int, str] = {}
        for name in sorted(nodes):
            node = nodes[name]
            if name in busy or not node_ready(node) or not node_is_worker(node):
                continue
            sat = self.sat_of(node)
            if sat is None or failed.get(name) == sat:
                continue
            out.setdefault(sat, name)
        return out

    def _start(self, app: str, pod: Obj, sat: int | None, exit_time: float, decision: handover.Decision,
               now: float, wall: float) -> None:
        key = object_key(pod)
        best = decision.move
        if best is None or best.node is None:
            note = f"no eligible node has a satellite in zone {labels(pod).get(LEOZONE_LABEL)} before sat {sat} leaves"
            if self._noted.get(key) != note:
                self._noted[key] = note
                self.events.event(pod, "Warning", "NoSuccessor", "Handover", note)
            return
        self._noted.pop(key, None)
        attempt = len(failed_nodes(pod))
        name = successor_name(app, pod, attempt)
        left = "now" if math.isnan(exit_time) else f"in {exit_time - now:.0f} s"
        why = (f"{self.policy} ranks sat {best.sat_id} above sat {sat} in zone {labels(pod).get(LEOZONE_LABEL)}"
               if decision.reason == "better" else f"sat {sat} leaves zone {labels(pod).get(LEOZONE_LABEL)} {left}")
        body = successor_body(pod, app, best.node, name, exit_time, wall, from_sat=sat, reason=why)
        if not self._post_successor(pod, body):
            return
        self.events.event(pod, "Normal", "HandoverStarted", "Handover",
                          f"{why}; starting {name} on "
                          f"{best.node} (sat {best.sat_id}, {best.remaining_s:.0f} s in zone)")
        log.info("%s: handover started to %s on %s (sat %s -> %s)", key, name, best.node, sat, best.sat_id)

    def _post_successor(self, pod: Obj, body: Obj) -> bool:
        """Create the successor ``body`` of ``pod``; ``False`` if it exists already (409) or the API refused."""
        key, name = object_key(pod), body["metadata"]["name"]
        try:
            self.client.post(pod_path(pod["metadata"]["namespace"]), body)
        except Exception as exc:
            if status_of(exc) == 409:  # created before a crash or a lost answer
                log.info("%s: successor %s exists already", key, name)
                return False
            self.stats["errors"] += 1
            log.warning("%s: cannot create successor %s: %s", key, name, status_of(exc) or exc)
            return False
        self.stats["started"] += 1
        return True

    # -- re-placement of delay-constrained pods ------------------------------------------------
    def _pods_now(self) -> tuple[list[Obj], dict[str, list[Obj]]]:
        """The cached pods and :func:`~krios.control.constraints.pods_by_app` of this pass (listed once)."""
        if self._pass_pods is None:
            pods = self.pods.list()
            self._pass_pods = (pods, constraints.pods_by_app(pods))
        return self._pass_pods

    def _watch_placement(self, app: str, pod: Obj, nodes: dict[str, Obj], wall: float) -> float:
        """Move ``pod`` (``delay_`` labels, no ``leozone``) when its node failed or its constraint broke."""
        key = object_key(pod)
        try:
            delays = pod_delays(pod)
        except ConfigError as err:
            self.warn_once(pod, "InvalidLabel", f"cannot re-place: {err}", value=repr(sorted(labels(pod).items())))
            return math.inf
        rtt = self.latency.rtt
        node = nodes.get(pod_node(pod) or "")
        failure = constraints.node_failure(node, delays=delays, rtt=rtt)
        why = failure
        if why is None:
            if not rtt or not pod_ready(pod):
                return math.inf  # no matrix (yet) says nothing; a pod not serving yet is not moved for a delay
            pods, apps = self._pods_now()
            why = constraints.placement_violation(pod, node, pods=pods, delays=delays, rtt=rtt, apps=apps)
            if why is None:
                self._noted.pop(key, None)
                return math.inf
        pods = self._pods_now()[0]
        busy = {pod_node(p) for p in pods if app_key(p) == app
                and p["metadata"]["namespace"] == pod["metadata"]["namespace"]}
        target, reserved = backup.replacement_target(
            pod, nodes.values(), pods, rtt, failure=failure is not None,
            exclude={n for n in busy if n} | set(failed_nodes(pod)))
        if target is None:
            note = f"{why}; no node satisfies its constraints"
            if self._noted.get(key) != note:
                self._noted[key] = note
                self.events.event(pod, "Warning", "NoReplacementNode", "Replace", note)
            return wall + self.resync_s
        self._noted.pop(key, None)
        name = successor_name(app, pod, len(failed_nodes(pod)))
        extra: dict[str, str] = {}
        if backup.BACKUP_NODE_ANNOTATION in annotations(pod) or backup.wants_backup(pod):
            succ = {**pod, "spec": {**(pod.get("spec") or {}), "nodeName": target},
                    "metadata": {**pod["metadata"], "uid": None}}
            extra = backup.reservation(pod, backup.choose_backup(succ, target, nodes.values(), pods, rtt))
        body = successor_body(pod, app, target, name, math.nan, wall,
                              from_sat=self.sat_of(node) if node is not None else None,
                              reason=why, kind="replace", extra=extra)
        if not self._post_successor(pod, body):
            return wall + self.resync_s
        where = f"{target} (its backup reservation)" if reserved else target
        self.events.event(pod, "Normal", "KriosReplaced", "Replace", f"{why}; starting {name} on {where}")
        log.info("%s: re-placing (%s): %s on %s", key, why, name, where)
        return wall + self.resync_s

    # -- in flight: wait for the successor, then delete the old copy ----------------------------
    def _progress(self, app: str, pod: Obj, succs: list[Obj], nodes: dict[str, Obj], now: float, wall: float) -> float:
        ready = [s for s in succs if pod_ready(s)]
        if ready:
            keep = min(ready, key=lambda s: float(annotations(s).get(STARTED_ANNOTATION) or 0))
            for extra in succs:  # never more than one successor survives
                if extra is not keep:
                    self._delete(extra, "duplicate successor")
            if not self._cutover_ok(pod, keep, nodes, now):
                return wall + self.resync_s
            # no kubelet finishes a graceful delete on a node that is gone or not Ready
            node = nodes.get(pod_node(pod) or "")
            grace = 0 if node is None or not node_ready(node) else None
            if self._delete(pod, f"replaced by {name_of(keep)}", grace_s=grace):
                self.stats["completed"] += 1
                self._complete(app, keep, nodes, now, old=pod)
                notes = annotations(keep)
                replaced = notes.get(KIND_ANNOTATION) == REPLACE_MODE
                self.events.event(keep, "Normal", "KriosReplaceCompleted" if replaced else "HandoverCompleted",
                                  "Replace" if replaced else "Handover",
                                  f"replaced {name_of(pod)} on {pod_node(pod)} by {name_of(keep)} on {pod_node(keep)}"
                                  + (f" ({notes.get(REASON_ANNOTATION)})" if replaced else ""),
                                  related=pod)
                log.info("%s: handover completed: %s -> %s", object_key(pod), name_of(pod), name_of(keep))
            return wall + self.resync_s
        nxt = math.inf
        for succ in succs:
            try:
                started = float(annotations(succ).get(STARTED_ANNOTATION) or "nan")
            except ValueError:
                started = math.nan
            if math.isnan(started):
                started = wall  # not ours to judge; give it the full timeout from now
            deadline = started + self.ready_timeout_s
            if wall < deadline:
                nxt = min(nxt, deadline)
                continue
            self._fail(pod, succ, nodes)
            nxt = min(nxt, wall + self.resync_s)
        return nxt

    def _recover(self, app: str, succ: Obj, src: str, nodes: dict[str, Obj], now: float) -> None:
        """Finish the record of a handover whose controller died after deleting the old copy."""
        notes = annotations(succ)
        if FROM_NODE_ANNOTATION not in notes or not pod_ready(succ) or succ["metadata"].get("uid") in self._completed:
            return  # made before this annotation existed, not serving yet, or just completed here
        if self.pods.get(f"{succ['metadata']['namespace']}/{src}") is not None:
            return  # the old copy still exists (terminating): its delete is under way
        log.info("%s: completing the record of a handover from %s (its controller stopped after the delete)",
                 object_key(succ), src)
        self._complete(app, succ, nodes, now)

    def _complete(self, app: str, new: Obj, nodes: dict[str, Obj], now: float, old: Obj | None = None) -> None:
        """Mark ``new`` done (so no later controller records it again), then record the row."""
        meta = new["metadata"]
        if len(self._completed) > 10_000:
            self._completed.clear()
        self._completed.add(meta.get("uid"))
        try:
            self.client.patch(pod_path(meta["namespace"], meta["name"]),
                              {"metadata": {"annotations": {COMPLETED_ANNOTATION: f"{now:.3f}"}}})
        except Exception as exc:
            if status_of(exc) == 404:
                return
            log.warning("%s: cannot mark the handover completed: %s", object_key(new), status_of(exc) or exc)
        self._record(app, new, nodes, now, old)

    def _record(self, app: str, new: Obj, nodes: dict[str, Obj], now: float, old: Obj | None = None) -> None:
        """The ``handovers`` row; the old copy's node and satellite from ``new``'s annotations, else (a
        successor made by an older controller) from ``old`` as it is now."""
        if self.on_handover is None:
            return
        notes = annotations(new)
        node = nodes.get(pod_node(new) or "")
        from_sat = notes.get(FROM_SAT_ANNOTATION) or ""
        from_node = notes.get(FROM_NODE_ANNOTATION) or (pod_node(old) if old is not None else None)
        if not from_sat and FROM_NODE_ANNOTATION not in notes and from_node in nodes:
            sat = self.sat_of(nodes[from_node])
            from_sat = "" if sat is None else str(sat)
        try:
            exit_time = float(notes.get(EXIT_ANNOTATION) or "nan")
        except ValueError:
            exit_time = math.nan
        row = {"t_sim": now, "from_node": from_node or None, "to_node": pod_node(new),
               "from_sat": int(from_sat) if from_sat.lstrip("-").isdigit() else None,
               "to_sat": self.sat_of(node) if node is not None else None,
               "lead_s": None if math.isnan(exit_time) else exit_time - now,
               "mode": REPLACE_MODE if notes.get(KIND_ANNOTATION) == REPLACE_MODE else self.mode,
               "app": f"{new['metadata']['namespace']}/{app}", "reason": notes.get(REASON_ANNOTATION) or None}
        try:
            self.on_handover(row)
        except Exception:
            log.exception("recording the handover failed")

    def _cutover_ok(self, pod: Obj, succ: Obj, nodes: dict[str, Obj], now: float) -> bool:
        """Delete the old copy only once the successor's satellite serves the zone (or the old one's left)."""
        zone = self._zone(pod)
        if zone is None:
            return True
        new_node, old_node = nodes.get(pod_node(succ) or ""), nodes.get(pod_node(pod) or "")
        new_sat = self.sat_of(new_node) if new_node is not None else None
        old_sat = self.sat_of(old_node) if old_node is not None else None
        in_zone = set(self.trackers.call(zone, lambda t: [int(s) for s in t.in_zone(now)]))
        return new_sat in in_zone or old_sat not in in_zone

    def _fail(self, pod: Obj, succ: Obj, nodes: dict[str, Obj]) -> None:
        node = pod_node(succ) or ""
        node_obj = nodes.get(node)
        sat = self.sat_of(node_obj) if node_obj is not None else None
        failed = failed_nodes(pod)
        failed[node] = -1 if sat is None else sat
        value = ",".join(f"{n}={s}" for n, s in sorted(failed.items()))
        meta = pod["metadata"]
        try:  # record first: a crash after this still tries another node next time
            self.client.patch(pod_path(meta["namespace"], meta["name"]),
                              {"metadata": {"annotations": {FAILED_ANNOTATION: value}}})
        except Exception as exc:
            log.warning("%s: cannot record the failed handover: %s", object_key(pod), status_of(exc) or exc)
            return
        if self._delete(succ, "not Ready in time", grace_s=0):
            self.stats["failed"] += 1
            self.events.event(pod, "Warning", "HandoverFailed", "Handover",
                              f"successor {name_of(succ)} on {node} not Ready within {self.ready_timeout_s:g} s; "
                              f"deleted it, keeping {name_of(pod)}, will try another node", related=succ)

    def _delete(self, pod: Obj, why: str, grace_s: int | None = None) -> bool:
        meta = pod["metadata"]
        body: Obj = {"apiVersion": "v1", "kind": "DeleteOptions",
                     "preconditions": {"uid": meta.get("uid")}}
        if grace_s is not None:
            body["gracePeriodSeconds"] = grace_s
        try:
            self.client.delete(pod_path(meta["namespace"], meta["name"]), body)
        except Exception as exc:
            if status_of(exc) in (404, 409):  # gone already (or replaced by a namesake)
                return True
            self.stats["errors"] += 1
            log.warning("cannot delete %s (%s): %s", object_key(pod), why, status_of(exc) or exc)
            return False
        log.info("deleted %s: %s", object_key(pod), why)
        return True
