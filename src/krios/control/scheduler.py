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

Speed (``krios bench scheduler``): what does not depend on the pod is worked
out once per *node snapshot* (the node cache's version, bumped only when a
node's readiness, labels, taints or cordon change, not on heartbeats): the
schedulable workers, the ``sat_id`` of each and the nodes per satellite. A
zone's visibility (the in-zone satellites among the snapshot's, with their
exit time and range) is computed once per zone and *tick* and reused while no
pass of those satellites begins or ends (:data:`VISIBILITY_TICK_S`), so the
in-zone set is the one the orbital engine would answer at that instant.
``parallelism`` workers decide; binds (one ``POST .../binding`` each, no
other request) run on :data:`BIND_THREADS` threads, each with a connection
opened at start, as kube-scheduler binds asynchronously (a worker binds
itself when no bind is under way: one thread hand-over less for a lone pod),
through a client with kube-scheduler's client-side QPS/burst limits
(:class:`krios.kube.client.RawClient`, its own HTTP/1.1 path: ~0.15 ms of CPU
per request).

A zone seen for the first time has its passes predicted by one background
thread (:class:`PendingZoneTrackers`), never by a worker, so plain pods never
wait behind leozone pods; every zone with a pending pod keeps its predictions
(no LRU thrash when many pods name distinct zones).
"""

from __future__ import annotations

import logging
import math
import queue as queue_mod
import random
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from kubernetes.client import ApiClient

from krios.config import defaults as D
from krios.config import resolve
from krios.control import backup, constraints, policies
from krios.control.daemon import Daemon, DaemonConfig, ZoneTrackers
from krios.control.placement import (
    node_is_worker,
    pod_delays,
    pod_zone_label,
    selector_matches,
    summarize,
    tolerates,
)
from krios.errors import ConfigError
from krios.kube.client import RawClient, pod_path, status_of
from krios.kube.config import client_with_pool
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
#: Emulated seconds a zone's visibility is reused for (and never across a pass's entry or exit
#: among the snapshot's satellites, so the in-zone set is exact). The ``closest`` policy ranks by
#: the range now, so it reuses a visibility only at the very same emulated instant (paused clock).
VISIBILITY_TICK_S = 1.0
#: Threads that send binds (I/O bound: each waits for the API's answer), each on its own connection:
#: a burst keeps this many binds in flight, as kube-scheduler's bind goroutines do over HTTP/2.
BIND_THREADS = 128
#: Threads that open the bind connections at start.
WARM_THREADS = 8
#: Zones whose predictions are kept when no pending pod names them (LRU beyond that).
IDLE_ZONES = 64
_NO_SAT = "node(s) without a valid sat_id label"
_NOT_READY = "node(s) not ready"
_NOT_WORKER = "node(s) unschedulable or control-plane"
_TAINTED = "node(s) had taints the pod does not tolerate"
_SELECTOR = "node(s) didn't match the pod's node selector"
_DELAYS = "node(s) violate the pod's delay_ constraints"


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
    #: Give every delay-constrained pod a backup reservation unless it says ``krios.io/backup: "false"``.
    backup_reservations: bool = False

    def check(self) -> None:
        super().check()
        if self.parallelism < 1:
            raise resolve.field_error("parallelism", self.parallelism, "must be at least 1")


class PendingZoneTrackers(ZoneTrackers):
    """The scheduler's :class:`krios.orbits.passes.ZoneTracker` per zone
    (:class:`krios.control.daemon.ZoneTrackers`), sized to the pending pods.

    A zone named by a pending pod is *pinned*: its predictions are kept however many
    zones there are (:meth:`pin`/:meth:`unpin`, per pod key); the others are dropped
    least recently used beyond ``idle_zones``. :meth:`ready` says whether a zone's
    passes are predicted; :meth:`build_later` has the one builder thread predict them
    and then calls ``on_built(zone_key)``, so no scheduling worker spends the tens of
    ms a new zone costs. ``builds`` counts the trackers ever made.
    """

    def __init__(self, constellation: Any, horizon_s: float = D.TRACKER_HORIZON_S,
                 idle_zones: int = IDLE_ZONES, now: Callable[[], float] = time.time) -> None:
        super().__init__(constellation, horizon_s, max_zones=idle_zones)
        self.idle_zones = idle_zones
        self._now = now
        self._pins: dict[str, tuple] = {}  # pod key -> zone key
        self._pinned: Counter[tuple] = Counter()
        self._todo: OrderedDict[tuple, Any] = OrderedDict()  # zone key -> zone, to build
        self._todo_cond = threading.Condition(self._lock)
        self._on_built: Callable[[tuple], None] = lambda _k: None
        self._builder: threading.Thread | None = None
        self._stopped = False

    @property
    def max_zones(self) -> int:
        """How many trackers are kept now: every pinned zone plus ``idle_zones``."""
        return len(self._pinned) + self.idle_zones

    # -- pinning ------------------------------------------------------------------------
    def pin(self, pod_key: str, zone: Any) -> None:
        """Keep ``zone``'s predictions while ``pod_key`` is pending."""
        zkey = self.zone_key(zone)
        with self._lock:
            old = self._pins.get(pod_key)
            if old == zkey:
                return
            if old is not None:
                self._unpin_locked(old)
            self._pins[pod_key] = zkey
            self._pinned[zkey] += 1

    def unpin(self, pod_key: str) -> None:
        with self._lock:
            old = self._pins.pop(pod_key, None)
            if old is not None:
                self._unpin_locked(old)

    def _unpin_locked(self, zkey: tuple) -> None:
        self._pinned[zkey] -= 1
        if self._pinned[zkey] <= 0:
            del self._pinned[zkey]

    def _evict_locked(self) -> None:
        excess = len(self._trackers) - self.max_zones
        if excess <= 0:
            return
        for zkey in [k for k in self._trackers if k not in self._pinned][:excess]:
            del self._trackers[zkey]

    # -- trackers -----------------------------------------------------------------------
    def ready(self, zone: Any) -> bool:
        """``zone`` has a tracker (its passes are predicted, or being predicted by a caller)."""
        key = self.zone_key(zone)
        with self._lock:
            return key in self._trackers and key not in self._todo

    # -- the builder thread ---------------------------------------------------------------
    def build_later(self, zone: Any) -> None:
        """Predict ``zone``'s passes on the builder thread, then call ``on_built(zone_key)``."""
        key = self.zone_key(zone)
        with self._lock:
            if key not in self._todo:
                self._todo[key] = zone
                self._todo_cond.notify()

    def start(self, on_built: Callable[[tuple], None]) -> None:
        self._on_built = on_built
        self._builder = threading.Thread(target=self._build_loop, name="zone-builder", daemon=True)
        self._builder.start()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._todo_cond.notify_all()
        if self._builder is not None:
            self._builder.join(5)

    def _build_loop(self) -> None:
        while True:
            with self._lock:
                while not self._todo and not self._stopped:
                    self._todo_cond.wait()
                if self._stopped:
                    return
                key, zone = next(iter(self._todo.items()))
            try:
                now = self._now()
                self.call(zone, lambda t, now=now: t.in_zone(now))
            except Exception:
                log.exception("predicting the passes of zone %s failed", key)
            with self._lock:
                self._todo.pop(key, None)
            self._on_built(key)


class _Snapshot:
    """What the scheduler needs of the nodes, worked out once per node-cache version.

    ``workers``: ``(name, node)`` of the Ready, schedulable workers; ``unfit``: the
    reasons of the other nodes; ``tainted``: some worker has a ``NoSchedule``/``NoExecute``
    taint; ``by_sat``: worker names per ``sat_id``; ``sats``: its keys, sorted;
    ``no_sat``: workers without a valid ``sat_id``.
    """

    __slots__ = ("by_sat", "names", "no_sat", "sats", "tainted", "total", "unfit", "version", "workers")

    def __init__(self, version: int, nodes: list[Obj], sat_of: Callable[[Obj], int | None]) -> None:
        self.version = version
        self.total = len(nodes)
        self.workers: list[tuple[str, Obj]] = []
        self.unfit: list[str] = []
        self.tainted = False
        self.by_sat: dict[int, list[str]] = {}
        self.no_sat = 0
        for node in nodes:
            if not node_ready(node):
                self.unfit.append(_NOT_READY)
            elif not node_is_worker(node):
                self.unfit.append(_NOT_WORKER)
            else:
                name = name_of(node)
                self.workers.append((name, node))
                if any(t.get("effect") in ("NoSchedule", "NoExecute")
                       for t in (node.get("spec") or {}).get("taints") or ()):
                    self.tainted = True
                sat = sat_of(node)
                if sat is None:
                    self.no_sat += 1
                else:
                    self.by_sat.setdefault(sat, []).append(name)
        self.names = [name for name, _ in self.workers]
        self.sats = tuple(sorted(self.by_sat))


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
        Worker threads (concurrent scheduling attempts); binds have their own
        :data:`BIND_THREADS`.
    backoff_base_s, backoff_max_s:
        Retry delays of an unschedulable pod (doubling per failure).
    backup_reservations:
        Reserve a backup node for every delay-constrained pod (:mod:`krios.control.backup`), not only for
        those labelled ``krios.io/backup: "true"``.
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
        backup_reservations: bool = False,
        **kw: Any,
    ) -> None:
        kw.setdefault("component", scheduler_name)
        self.backup_reservations = bool(backup_reservations)
        super().__init__(api, constellation, **kw)
        # binds: one connection per bind thread, so none waits for or throws away a connection
        self.client = RawClient(client_with_pool(api, BIND_THREADS), kw.get("qps", D.KUBE_API_QPS),
                                kw.get("burst", D.KUBE_API_BURST))
        self.scheduler_name = scheduler_name
        self.policy = policies.check_policy(policy)
        self.parallelism = max(1, int(parallelism))
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self.queue = WorkQueue(backoff_base_s, backoff_max_s)
        #: Zone trackers kept for every zone a pending pod names (replaces the daemon's LRU).
        self.trackers = PendingZoneTrackers(constellation, kw.get("horizon_s", D.TRACKER_HORIZON_S),
                                            now=self.now)
        self.pods = Informer(
            self.watch_client, "/api/v1/pods", name="pods",
            field_selector=f"spec.schedulerName={scheduler_name}",
        )
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(self._on_node)
        self._lock = threading.Lock()
        self._node_of: dict[str, str] = {}  # pod key -> node, bound (seen or assumed)
        self._load: Counter[str] = Counter()
        self._turn = 0  # rotates ties between equally loaded nodes (_least_loaded)
        self._assumed: dict[str, str] = {}  # pod key -> uid bound by us, not yet seen bound
        self._last_failure: dict[str, tuple[str, float]] = {}
        self._node_version = 0
        self._snap: _Snapshot | None = None
        self._snap_lock = threading.Lock()
        # zone key -> (snapshot version, t0, valid until, in-zone candidates at t0)
        self._vis: dict[tuple, tuple[int, float, float, list[policies.Candidate]]] = {}
        self._zones: dict[tuple[str, str | None], Any] = {}  # (leozone, radius) labels -> zone
        self._waiting_zone: dict[tuple, set[str]] = {}  # zone key -> pods waiting for its tracker
        self._binds: queue_mod.SimpleQueue[tuple[str, Obj, str] | None] = queue_mod.SimpleQueue()
        self._inflight = 0  # binds under way (a worker binds itself when there is none)
        self._inflight_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        #: Counters: binds done, failed attempts, bind errors, invalid pods, visibility computed.
        self.stats = Counter()

    def informers(self) -> list[Informer]:
        return [*super().informers(), self.pods]

    def run_threads(self) -> None:
        self.trackers.start(self._zone_built)
        for i in range(self.parallelism):
            t = threading.Thread(target=self._worker, name=f"schedule-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        for i in range(BIND_THREADS):
            t = threading.Thread(target=self._binder, name=f"bind-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        # one connection per bind thread opened now (WARM_THREADS handshakes at a time): a TLS
        # handshake costs milliseconds of CPU, and dozens of them on the first burst of pods
        # would delay its binds by a second
        for i in range(WARM_THREADS):
            threading.Thread(target=self._warm_binds, name=f"bind-warm-{i}", daemon=True).start()

    def _warm_binds(self) -> None:
        for _ in range(60):  # the API may still be starting; after a minute, connections open on first use
            try:
                self.client.warm(BIND_THREADS)
                return
            except Exception:
                if self._stop.wait(1.0):
                    return

    def stop(self) -> None:
        self._stop.set()
        self.queue.shutdown()
        for t in self._threads:  # workers first: they may still hand binds over
            if t.name.startswith("schedule-"):
                t.join(10)
        for _ in range(BIND_THREADS):
            self._binds.put(None)
        for t in self._threads:  # binds under way finish before the lease is given up
            t.join(10)
        self.trackers.stop()
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
                self.trackers.unpin(key)
                self._last_failure.pop(key, None)
            return
        if node:
            self._set_node(key, node)
            self.trackers.unpin(key)
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
        self._node_version += 1  # the next decision rebuilds the snapshot
        woken = self.queue.wake_all()
        if woken:
            log.debug("node %s %s: retrying %d pods", name_of(node), etype.lower(), woken)

    def _zone_built(self, zkey: tuple) -> None:
        """The builder predicted zone ``zkey``: its waiting pods go back to the queue."""
        with self._lock:
            keys = self._waiting_zone.pop(zkey, set())
        for key in keys:
            self.queue.add(key)

    # -- the loop ---------------------------------------------------------------------------
    def _worker(self) -> None:
        while not self._stop.is_set():
            if not self.wait_leading(1.0):
                continue
            key = self.queue.get(timeout=1.0)
            if key is None:
                continue
            handed_over = False
            try:
                job = self._attempt(key)
                if job is not None:
                    with self._inflight_lock:
                        inline = self._inflight == 0
                        self._inflight += 1
                    if inline:  # no bind under way: this worker binds (one thread hand-over less)
                        self._bind_job(job)
                    else:  # a burst: the bind threads keep many in flight, the worker decides on
                        self._binds.put(job)  # the binder calls queue.done(key)
                        handed_over = True
            except Exception:
                log.exception("scheduling %s failed unexpectedly; retrying", key)
                self.queue.retry(key)
            finally:
                if not handed_over:
                    self.queue.done(key)

    def _binder(self) -> None:
        while True:
            job = self._binds.get()
            if job is None:
                return
            try:
                self._bind_job(job)
            finally:
                self.queue.done(job[0])

    def _bind_job(self, job: tuple[str, Obj, str]) -> None:
        """:meth:`_bind` counted in flight; an unexpected error releases the node and retries."""
        key, pod, node = job
        try:
            self._bind(key, pod, node)
        except Exception:
            log.exception("binding %s failed unexpectedly; retrying", key)
            self._set_node(key, None)
            self.queue.retry(key)
        finally:
            with self._inflight_lock:
                self._inflight -= 1

    def schedule_one(self, key: str) -> None:
        """One attempt for the pod ``key`` (``namespace/name``), its bind included."""
        job = self._attempt(key)
        if job is not None:
            self._bind(*job)

    def _attempt(self, key: str) -> tuple[str, Obj, str] | None:
        """Decide for the pod ``key``: ``(key, pod, node)`` to bind, or ``None`` (handled)."""
        pod = self.pods.get(key)
        with self._lock:
            assumed = pod is not None and self._assumed.get(key) == pod["metadata"].get("uid")
        if pod is None or assumed or not self._wants(pod):
            self.queue.forget(key)
            self.trackers.unpin(key)
            return None
        try:
            zone = self._zone(pod)
            delays = constraints.resolve_app_delays(pod_delays(pod), pod, self.latency.rtt, self.pods.list)
        except ConfigError as err:
            self.stats["invalid"] += 1
            self.warn_once(pod, "InvalidLabel", f"cannot schedule: {err}", value=repr(sorted(labels(pod).items())))
            self.queue.forget(key)  # retried when the pod (its labels) changes
            self.trackers.unpin(key)
            return None
        if zone is None:
            self.trackers.unpin(key)
        else:
            self.trackers.pin(key, zone)
            if not self.trackers.ready(zone):  # a zone new to us: predicted off the workers
                with self._lock:
                    self._waiting_zone.setdefault(self.trackers.zone_key(zone), set()).add(key)
                self.trackers.build_later(zone)
                return None
        decision = self.decide(pod, zone, delays, key)
        if decision.node is None:
            self._failed(key, pod, decision)
            return None
        return key, pod, decision.node

    def _zone(self, pod: Obj) -> Any:
        """:meth:`zone_of`, parsed once per distinct ``leozone``/``radius`` label pair."""
        found = pod_zone_label(pod)
        if found is None:
            return None
        zone = self._zones.get(found)
        if zone is None:
            zone = self.zone_of(pod)  # ConfigError for a malformed label: not cached
            if len(self._zones) >= 10_000:
                self._zones.clear()
            self._zones[found] = zone
        return zone

    # -- decisions ----------------------------------------------------------------------------
    def snapshot(self) -> _Snapshot:
        """The node snapshot of the current node-cache version (rebuilt after a change)."""
        snap = self._snap
        version = self._node_version
        if snap is not None and snap.version == version:
            return snap
        with self._snap_lock:
            snap = self._snap
            if snap is None or snap.version != self._node_version:
                version = self._node_version  # read before listing: a later change rebuilds again
                snap = self._snap = _Snapshot(version, self.nodes.list(), self.sat_of)
            return snap

    def decide(self, pod: Obj, zone: Any, delays: dict[str, float], key: str | None = None) -> Decision:
        """Filter and rank the cached nodes for ``pod`` (no API calls).

        With ``key``, the chosen node is reserved for the pod in the load count
        (released again by :meth:`_set_node` if the bind fails).
        """
        snap = self.snapshot()
        spec = pod.get("spec") or {}
        if (not delays and not spec.get("nodeSelector") and not snap.tainted
                and not constraints.needs_filter(pod, snap.workers)):
            # every schedulable worker fits: the snapshot's lists as they are
            if zone is not None:
                cands = self._in_zone(zone, snap)
                if cands:
                    return self._place_in_zone(cands, snap.by_sat, key)
            elif snap.names:
                return Decision(self._least_loaded(snap.names, key))
            return self._explain(pod, zone, delays, snap)
        feasible = self._filter(pod, delays, snap, None)
        if zone is not None:
            by_sat: dict[int, list[str]] = {}
            for name, node in feasible:
                sat = self.sat_of(node)
                if sat is not None:
                    by_sat.setdefault(sat, []).append(name)
            cands = [c for c in self._in_zone(zone, snap) if c.sat_id in by_sat]
            if cands:
                return self._place_in_zone(cands, by_sat, key)
            return self._explain(pod, zone, delays, snap)
        if not feasible:
            return self._explain(pod, zone, delays, snap)
        names = [name for name, _ in feasible]
        if delays:
            latency = self.latency
            slack = {n: latency.worst_ratio(n, delays) for n in names}
            return Decision(self._least_loaded(names, key, lambda n: slack[n]))
        return Decision(self._least_loaded(names, key))

    def _filter(self, pod: Obj, delays: dict[str, float], snap: _Snapshot,
                reasons: list[str] | None) -> list[tuple[str, Obj]]:
        """The snapshot's workers that fit the pod's tolerations, selector and delays (with
        ``reasons``, the reason of each that does not)."""
        latency = self.latency
        feasible = []
        for name, node in snap.workers:
            if snap.tainted and not tolerates(pod, node):
                why = _TAINTED
            elif not selector_matches(pod, node):
                why = _SELECTOR
            elif delays and latency.admits(name, delays) is not None:
                why = _DELAYS
            else:
                feasible.append((name, node))
                continue
            if reasons is not None:
                reasons.append(why)
        return constraints.fit_and_prefer(pod, feasible, self.pods.list, reasons, self._node_of)

    def _in_zone(self, zone: Any, snap: _Snapshot) -> list[policies.Candidate]:
        """The snapshot's satellites in ``zone`` now, as candidates (reused within a tick)."""
        if not snap.sats:
            return []
        now = self.now()
        zkey = self.trackers.zone_key(zone)
        hit = self._vis.get(zkey)
        if hit is not None and hit[0] == snap.version and (now == hit[1] or hit[1] < now < hit[2]):
            if now == hit[1]:
                return hit[3]
            dt = now - hit[1]
            return [replace(c, remaining_s=c.remaining_s - dt) for c in hit[3]]
        tick = 0.0 if self.policy == "closest" else VISIBILITY_TICK_S
        sats = snap.sats

        def compute(t: Any) -> tuple[list[policies.Candidate], float]:
            cands = [c for c in t.candidates(now, sat_ids=sats, within_s=0.0) if c.enters_in_s <= 0]
            until = now + tick
            if tick > 0:
                wanted = set(sats)
                until = min([until, *(now + c.remaining_s for c in cands),
                             *(p.enter for p in t.passes(now, until) if p.enter > now and p.sat_id in wanted)])
            return cands, until

        cands, until = self.trackers.call(zone, compute)
        self.stats["visibility"] += 1
        if len(self._vis) > self.trackers.max_zones:
            self._vis.clear()
        self._vis[zkey] = (snap.version, now, until, cands)
        return cands

    def _place_in_zone(self, cands: list[policies.Candidate], by_sat: dict[int, list[str]],
                       key: str | None) -> Decision:
        with self._rng_lock:
            ranked = policies.rank(self.policy, cands, self._rng)
        return Decision(self._least_loaded(by_sat[ranked[0].sat_id], key))

    def _explain(self, pod: Obj, zone: Any, delays: dict[str, float], snap: _Snapshot) -> Decision:
        """No node fits: kube-scheduler's reasons, and when a satellite enters the zone."""
        reasons = list(snap.unfit)
        feasible = self._filter(pod, delays, snap, reasons)
        if zone is None:
            return Decision(None, summarize(reasons, snap.total))
        by_sat: dict[int, list[str]] = {}
        for name, node in feasible:
            sat = self.sat_of(node)
            if sat is None:
                reasons.append(_NO_SAT)
            else:
                by_sat.setdefault(sat, []).append(name)
        label = labels(pod).get(LEOZONE_LABEL, "")
        in_zone = {c.sat_id for c in self._in_zone(zone, snap)}
        for sat, names in by_sat.items():
            if sat not in in_zone:
                reasons.extend([f"node(s) whose satellite is not in zone {label}"] * len(names))
        retry = None
        if by_sat:
            now = self.now()
            entries = self.trackers.call(zone, lambda t: [t.next_entry(s, now) for s in sorted(by_sat)])
            future = [e - now for e in entries if not math.isnan(e) and e > now]
            if future:
                # emulated seconds until the first entry -> wall seconds, plus a little margin
                retry = min(future) / max(self.clock.rate, 1e-9) + 0.05
        return Decision(None, summarize(reasons, snap.total), retry)

    def _least_loaded(self, names: list[str], key: str | None, first: Any = None) -> str:
        """The node with the fewest krios pods (after ``first(name)``); ties taken in turn.

        Ties rotate over the tied nodes (in ``names`` order) rather than going to the
        first name, which short-lived pods arriving one at a time (equal loads at every
        arrival) would all get; kube-scheduler picks among equal scores at random. The
        load counts krios pods only (the app's copies among them), so a node holding
        the app still gets fewer cold-start pods. With ``key``, the choice is
        reserved for that pod at once (under the lock), so concurrent attempts
        spread instead of piling onto one node.
        """
        with self._lock:
            load = self._load
            if first is None:
                low = min(load.get(n, 0) for n in names)
                tied = [n for n in names if load.get(n, 0) == low]
            else:
                rank = {n: (first(n), load.get(n, 0)) for n in names}
                low_rank = min(rank.values())
                tied = [n for n in names if rank[n] == low_rank]
            best = tied[self._turn % len(tied)]
            self._turn += 1
            if key is not None:
                prev = self._node_of.pop(key, None)
                if prev is not None:
                    load[prev] -= 1
                self._node_of[key] = best
                load[best] += 1
        return best

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
        """One ``POST pods/<name>/binding`` (no other request); the Scheduled event is queued."""
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
        self.trackers.unpin(key)
        self._last_failure.pop(key, None)
        self.stats["scheduled"] += 1
        self.events.event(pod, "Normal", "Scheduled", "Binding", f"Successfully assigned {ns}/{name} to {node}")
        log.info("bound %s to %s", key, node)
        if backup.wants_backup(pod, self.backup_reservations):  # a label look-up for every other pod
            self._reserve_backup(pod, node)

    def _reserve_backup(self, pod: Obj, node: str) -> None:
        """Hook: record a backup node for ``pod``, just bound to ``node`` (:mod:`krios.control.backup`)."""
        meta = pod["metadata"]
        found = backup.choose_backup({**pod, "spec": {**pod["spec"], "nodeName": node}}, node, self.nodes.list(),
                                     self.pods.list(), self.latency.rtt)
        if found is None:
            self.events.event(pod, "Warning", "NoBackupNode", "Binding",
                              f"no node other than {node} satisfies the pod's constraints: no backup reservation")
            return
        try:
            self.client.patch(pod_path(meta["namespace"], meta["name"]),
                              {"metadata": {"annotations": backup.reservation(pod, found)}})
        except Exception as exc:
            log.warning("%s: cannot record the backup reservation on %s: %s", object_key(pod), found,
                        status_of(exc) or exc)
            return
        self.events.event(pod, "Normal", "BackupReserved", "Binding",
                          f"backup slot on {found} (group {backup.group_of(pod)})")


def _node_view(node: Obj) -> tuple:
    """What the scheduler's decisions depend on (heartbeats change none of it)."""
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    return (node_ready(node), tuple(sorted((meta.get("labels") or {}).items())),
            bool(spec.get("unschedulable")), repr(spec.get("taints")))
