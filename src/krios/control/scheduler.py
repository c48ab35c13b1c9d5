"""The krios scheduler: place pods on the worker node whose satellite serves their zone.

Pods handled: ``spec.schedulerName`` equal to the scheduler's name (default
``krios-scheduler``), not yet bound, not terminating. For each one:

1. **Filter** the cached nodes: ``Ready``, schedulable workers (not cordoned,
   no control-plane role), taints tolerated, ``nodeSelector`` matched, and the
   edge scheduler's ``delay_<from>: "<ms>"`` labels met against the latency
   matrix (ConfigMap ``krios-system/krios-latency``).
2. A pod labelled ``leozone: <lat>_<lon>`` (optional ``radius`` in km) keeps
   only the nodes whose ``sat_id`` satellite is in that zone *now* (emulated
   time) and lets the placement policy (:mod:`krios.control.policies`: ``krios``,
   ``closest``, ``random``) rank them. A pod with only delay labels goes to the
   admitted node with the most slack; a pod with neither to the worker with the
   fewest krios pods (ties by name).
3. **Bind** with a ``Binding`` (``pods/binding``) and emit an
   ``events.k8s.io/v1`` ``Scheduled`` Event; or emit ``FailedScheduling`` with
   the reasons (kube-scheduler's ``0/N nodes are available: ...``) and retry
   with per-pod exponential backoff, sooner when a satellite is predicted to
   enter the zone, and at once when nodes, their labels, the clock or the
   latency matrix change. A pod is never dropped.

Invalid labels (``leozone``, ``radius``, ``delay_*`` on pods; ``sat_id`` on
nodes) become ``Warning`` Events; the pod is retried when its labels change.
Binds run on a small thread pool through a client with kube-scheduler's
client-side QPS/burst limits.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from kubernetes.client import ApiClient

from krios.config import defaults as D
from krios.config import resolve
from krios.control import policies
from krios.control.daemon import Daemon, DaemonConfig
from krios.control.placement import (
    node_is_worker,
    pod_delays,
    selector_matches,
    summarize,
    tolerates,
)
from krios.errors import ConfigError
from krios.kube.client import pod_path, status_of
from krios.kube.informer import Informer, Obj
from krios.kube.names import LEOZONE_LABEL
from krios.kube.objects import (
    labels,
    name_of,
    node_ready,
    object_key,
    pod_node,
    pod_scheduler,
    pod_terminating,
)
from krios.kube.workqueue import WorkQueue

log = logging.getLogger(__name__)

DEFAULT_NAME = D.SCHEDULER_NAME
#: Re-emit an unchanged FailedScheduling event at most this often (s).
FAILED_EVENT_EVERY_S = 30.0


class Decision:
    """Outcome of one scheduling attempt: a node, or why not and when to retry."""

    __slots__ = ("node", "reason", "retry_in_s")

    def __init__(self, node: str | None, reason: str = "", retry_in_s: float | None = None) -> None:
        self.node = node
        self.reason = reason
        self.retry_in_s = retry_in_s


@dataclass(frozen=True)
class SchedulerConfig(DaemonConfig):
    """:class:`~krios.control.daemon.DaemonConfig` plus the scheduler's worker threads."""

    parallelism: int = D.PARALLELISM

    def check(self) -> None:
        super().check()
        if self.parallelism < 1:
            raise resolve.field_error("parallelism", self.parallelism, "must be at least 1")


class Scheduler(Daemon):
    """The krios scheduler daemon (see the module docstring).

    Parameters (beyond :class:`~krios.control.daemon.Daemon`'s)
    ---------------------------------------------------
    scheduler_name:
        ``spec.schedulerName`` of the pods to place.
    policy:
        ``krios`` | ``closest`` | ``random``.
    seed:
        Seed of the ``random`` policy.
    parallelism:
        Worker threads (concurrent scheduling attempts and binds).
    backoff_base_s, backoff_max_s:
        Retry delays of an unschedulable pod (doubling per failure).
    """

    component = DEFAULT_NAME

    def __init__(
        self,
        api: ApiClient,
        constellation: Any,
        *,
        scheduler_name: str = DEFAULT_NAME,
        policy: str = D.POLICY,
        seed: int = D.SEED,
        parallelism: int = D.PARALLELISM,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 10.0,
        **kw: Any,
    ) -> None:
        kw.setdefault("component", scheduler_name)
        super().__init__(api, constellation, **kw)
        self.scheduler_name = scheduler_name
        self.policy = policies.check_policy(policy)
        self.parallelism = max(1, int(parallelism))
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self.queue = WorkQueue(backoff_base_s, backoff_max_s)
        self.pods = Informer(
            self.watch_client, "/api/v1/pods", name="pods",
            field_selector=f"spec.schedulerName={scheduler_name}",
        )
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(self._on_node)
        self._lock = threading.Lock()
        self._node_of: dict[str, str] = {}  # pod key -> node, bound (seen or assumed)
        self._load: Counter[str] = Counter()
        self._assumed: dict[str, str] = {}  # pod key -> uid bound by us, not yet seen bound
        self._last_failure: dict[str, tuple[str, float]] = {}
        self._node_facts: dict[str, tuple[str | None, tuple[bool, bool]]] = {}
        self._threads: list[threading.Thread] = []
        #: Counters: binds done, failed attempts, bind errors, invalid pods.
        self.stats = Counter()

    def informers(self) -> list[Informer]:
        return [*super().informers(), self.pods]

    def run_threads(self) -> None:
        for i in range(self.parallelism):
            t = threading.Thread(target=self._worker, name=f"schedule-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self.queue.shutdown()
        for t in self._threads:  # binds under way finish before the lease is given up
            t.join(10)
        super().stop()

    def on_started_leading(self) -> None:
        super().on_started_leading()
        for pod in self.pods.list():  # what the previous leader left pending
            if self._wants(pod):
                self.queue.add(object_key(pod))

    def on_world_changed(self) -> None:
        self.queue.wake_all()

    # -- cache handlers ----------------------------------------------------------------------
    def _wants(self, pod: Obj) -> bool:
        return (pod_scheduler(pod) == self.scheduler_name and not pod_node(pod)
                and not pod_terminating(pod))

    def _on_pod(self, etype: str, pod: Obj, old: Obj | None) -> None:
        key = object_key(pod)
        node = pod_node(pod)
        if etype == "DELETED" or (node and pod_terminating(pod)):
            self._set_node(key, None)
            if etype == "DELETED":
                self.queue.forget(key)
                self._last_failure.pop(key, None)
            return
        if node:
            self._set_node(key, node)
            return
        if self._wants(pod):
            self.queue.add(key)

    def _set_node(self, key: str, node: str | None) -> None:
        with self._lock:
            self._assumed.pop(key, None)
            prev = self._node_of.pop(key, None)
            if prev is not None:
                self._load[prev] -= 1
            if node is not None:
                self._node_of[key] = node
                self._load[node] += 1

    def _on_node(self, etype: str, node: Obj, old: Obj | None) -> None:
        if etype == "MODIFIED" and old is not None and _node_view(old) == _node_view(node):
            return  # a heartbeat: nothing the scheduler looks at changed
        woken = self.queue.wake_all()
        if woken:
            log.debug("node %s %s: retrying %d pods", name_of(node), etype.lower(), woken)

    # -- the loop ---------------------------------------------------------------------------
    def _worker(self) -> None:
        # Open this worker's connection now: a TLS handshake costs ~50 ms of CPU, and eight
        # of them on the first burst of pods would delay its first binds by most of a second.
        with contextlib.suppress(Exception):
            self.client.get("/version", limit=False, timeout=(5, 5))
        while not self._stop.is_set():
            if not self.wait_leading(1.0):
                continue
            key = self.queue.get(timeout=1.0)
            if key is None:
                continue
            try:
                self.schedule_one(key)
            except Exception:
                log.exception("scheduling %s failed unexpectedly; retrying", key)
                self.queue.retry(key)
            finally:
                self.queue.done(key)

    def schedule_one(self, key: str) -> None:
        """One attempt for the pod ``key`` (``namespace/name``)."""
        pod = self.pods.get(key)
        with self._lock:
            assumed = pod is not None and self._assumed.get(key) == pod["metadata"].get("uid")
        if pod is None or assumed or not self._wants(pod):
            self.queue.forget(key)
            return
        try:
            zone = self.zone_of(pod)
            delays = pod_delays(pod)
        except ConfigError as err:
            self.stats["invalid"] += 1
            self.warn_once(pod, "InvalidLabel", f"cannot schedule: {err}", value=repr(sorted(labels(pod).items())))
            self.queue.forget(key)  # retried when the pod (its labels) changes
            return
        decision = self.decide(pod, zone, delays, key)
        if decision.node is None:
            self._failed(key, pod, decision)
            return
        self._bind(key, pod, decision.node)

    def decide(self, pod: Obj, zone: Any, delays: dict[str, float], key: str | None = None) -> Decision:
        """Filter and rank the cached nodes for ``pod`` (no API calls).

        With ``key``, the chosen node is reserved for the pod in the load count
        (released again by :meth:`_set_node` if the bind fails).
        """
        nodes = self.nodes.list()
        reasons: list[str] = []
        feasible: list[Obj] = []
        latency = self.latency
        for node in nodes:
            ready, worker = self._facts(node)
            if not ready:
                reasons.append("node(s) not ready")
            elif not worker:
                reasons.append("node(s) unschedulable or control-plane")
            elif not tolerates(pod, node):
                reasons.append("node(s) had taints the pod does not tolerate")
            elif not selector_matches(pod, node):
                reasons.append("node(s) didn't match the pod's node selector")
            elif delays and latency.admits(name_of(node), delays) is not None:
                reasons.append("node(s) violate the pod's delay_ constraints")
            else:
                feasible.append(node)
        if zone is not None:
            return self._decide_zone(pod, zone, feasible, reasons, len(nodes), key)
        if not feasible:
            return Decision(None, summarize(reasons, len(nodes)))
        names = [name_of(n) for n in feasible]
        if delays:
            slack = {n: latency.worst_ratio(n, delays) for n in names}
            return Decision(self._least_loaded(names, key, lambda n: slack[n]))
        return Decision(self._least_loaded(names, key))

    def _facts(self, node: Obj) -> tuple[bool, bool]:
        """``(ready, schedulable worker)`` of a node, computed once per node version."""
        meta = node["metadata"]
        cached = self._node_facts.get(meta["name"])
        if cached is not None and cached[0] == meta.get("resourceVersion"):
            return cached[1]
        facts = (node_ready(node), node_is_worker(node))
        self._node_facts[meta["name"]] = (meta.get("resourceVersion"), facts)
        return facts

    def _least_loaded(self, names: list[str], key: str | None, first: Any = None) -> str:
        """The node with the fewest krios pods (after ``first(name)``, then by name).

        With ``key``, the choice is reserved for that pod at once (under the
        lock), so concurrent attempts spread instead of piling onto one node.
        """
        with self._lock:
            best = min(names, key=lambda n: (first(n) if first else 0, self._load.get(n, 0), n))
            if key is not None:
                prev = self._node_of.pop(key, None)
                if prev is not None:
                    self._load[prev] -= 1
                self._node_of[key] = best
                self._load[best] += 1
        return best

    def _decide_zone(self, pod: Obj, zone: Any, feasible: list[Obj], reasons: list[str], total: int,
                     key: str | None) -> Decision:
        by_sat: dict[int, list[str]] = {}
        for node in feasible:
            sat = self.sat_of(node)
            if sat is None:
                reasons.append("node(s) without a valid sat_id label")
            else:
                by_sat.setdefault(sat, []).append(name_of(node))
        now = self.now()
        label = labels(pod).get(LEOZONE_LABEL, "")
        if by_sat:
            sats = sorted(by_sat)
            cands = self.trackers.call(zone, lambda t: t.candidates(now, sat_ids=sats, within_s=0.0))
            cands = [c for c in cands if c.enters_in_s <= 0 and c.sat_id in by_sat]
        else:
            cands = []
        if cands:
            with self._rng_lock:
                ranked = policies.rank(self.policy, cands, self._rng)
            return Decision(self._least_loaded(by_sat[ranked[0].sat_id], key))
        in_zone = {c.sat_id for c in cands}
        for sat, names in by_sat.items():
            if sat not in in_zone:
                reasons.extend([f"node(s) whose satellite is not in zone {label}"] * len(names))
        retry = None
        if by_sat:
            entries = self.trackers.call(
                zone, lambda t: [t.next_entry(s, now) for s in sorted(by_sat)])
            future = [e - now for e in entries if not math.isnan(e) and e > now]
            if future:
                # emulated seconds until the first entry -> wall seconds, plus a little margin
                retry = min(future) / max(self.clock.rate, 1e-9) + 0.05
        return Decision(None, summarize(reasons, total), retry)

    def _failed(self, key: str, pod: Obj, decision: Decision) -> None:
        self.stats["failed"] += 1
        delay = self.queue.retry(key, max_delay_s=decision.retry_in_s)
        now = time.monotonic()
        last = self._last_failure.get(key)
        if last is None or last[0] != decision.reason or now - last[1] >= FAILED_EVENT_EVERY_S:
            self._last_failure[key] = (decision.reason, now)
            self.events.event(pod, "Warning", "FailedScheduling", "Scheduling", decision.reason)
        log.debug("%s: %s (retry in %.2fs)", key, decision.reason, delay)

    def _bind(self, key: str, pod: Obj, node: str) -> None:
        meta = pod["metadata"]
        ns, name = meta["namespace"], meta["name"]
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": ns, "uid": meta.get("uid")},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            self.client.post(pod_path(ns, name, "binding"), body)
        except Exception as exc:
            status = status_of(exc)
            if status in (404, 409):  # deleted, or already bound (by an earlier attempt)
                log.info("%s: not bound (%s); leaving it", key, status)
                self.queue.forget(key)
                return
            self._set_node(key, None)  # release the reservation
            self.stats["bind_errors"] += 1
            log.warning("%s: bind to %s failed (%s); retrying", key, node, status or exc)
            self.queue.retry(key)
            return
        with self._lock:
            cached = self.pods.get(key)
            if cached is not None and not pod_node(cached):  # the cache has not seen the binding yet
                self._assumed[key] = meta.get("uid")
        self.queue.forget(key)
        self._last_failure.pop(key, None)
        self.stats["scheduled"] += 1
        self.events.event(pod, "Normal", "Scheduled", "Binding", f"Successfully assigned {ns}/{name} to {node}")
        log.info("bound %s to %s", key, node)


def _node_view(node: Obj) -> tuple:
    """What the scheduler's decisions depend on (heartbeats change none of it)."""
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    return (node_ready(node), tuple(sorted((meta.get("labels") or {}).items())),
            bool(spec.get("unschedulable")), repr(spec.get("taints")))
