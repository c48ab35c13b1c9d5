"""What the scheduler and the controller share: caches, clock, orbits, leadership.

A :class:`Daemon` keeps watch-fed caches of the nodes and of the ConfigMaps in
``krios-system`` (the emulated clock ``krios-clock`` and the latency matrix
``krios-latency``), one :class:`ZoneTrackers` cache of pass predictions per
zone (built from the constellation once, never per pod), an
:class:`~krios.kube.recorder.EventRecorder`, and optionally a
:class:`~krios.kube.leader.LeaderElector`: subclasses only act while
:meth:`Daemon.leading`.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from kubernetes.client import ApiClient

from krios.config import defaults as D
from krios.config import resolve
from krios.control import policies
from krios.control.placement import LatencyMatrix, node_sat_id, pod_zone
from krios.errors import ConfigError
from krios.kube.client import RawClient, configmap_path, node_path
from krios.kube.clock import Clock
from krios.kube.config import client_with_pool
from krios.kube.informer import Informer, Obj
from krios.kube.leader import LeaderElector, default_identity, lease_timing
from krios.kube.names import (
    CLOCK_CONFIGMAP,
    CLOCK_KEY,
    EVENT_CONTROLLER_PREFIX,
    LATENCY_CONFIGMAP,
    SAT_LABEL,
    SYSTEM_NAMESPACE,
)
from krios.kube.objects import labels, name_of
from krios.kube.recorder import EventRecorder

log = logging.getLogger(__name__)

_MISSING = object()
#: Re-evaluate pending work after latency-matrix updates at most this often (s).
WORLD_CHANGE_EVERY_S = 1.0

#: Move the heap to the GC's permanent generation this often (s): see :func:`_freeze_heap`.
GC_FREEZE_EVERY_S = 30.0


def _freeze_heap() -> None:
    """Exclude every object alive now from future cyclic-GC scans (:func:`gc.freeze`).

    The caches hold thousands of JSON objects (acyclic: reference counting
    frees them), and a full collection scanning them all stalls every thread
    for tens of ms -- the scheduler's latency tail. Frozen objects are still
    freed when no longer referenced.
    """
    gc.collect(1)
    gc.freeze()


@dataclass(frozen=True)
class DaemonConfig:
    """What the scheduler and the controller share; defaults in :mod:`krios.config.defaults`.

    Build it with :meth:`from_scenario`; :meth:`kwargs` are the daemon
    constructor's keyword arguments. Times in s, ``qps`` in requests/s,
    ``min_elevation_deg`` in degrees, ``default_radius_km`` (the radius of a
    pod's zone when it has no ``radius`` label; the scenario's ``zone.radius_km``)
    in km.
    """

    scheduler_name: str = D.SCHEDULER_NAME
    policy: str = D.POLICY
    seed: int = D.SEED
    min_elevation_deg: float = D.MIN_ELEVATION_DEG
    default_radius_km: float = D.ZONE_RADIUS_KM
    horizon_s: float = D.TRACKER_HORIZON_S
    qps: float = D.KUBE_API_QPS
    burst: int = D.KUBE_API_BURST
    leader_elect: bool = True
    lease_namespace: str = D.LEASE_NAMESPACE
    #: Lease duration, renew deadline, retry period (wall s); ``None``: sized from the handover
    #: lookahead and the emulated clock's rate (:func:`krios.kube.leader.lease_timing`), followed live.
    lease_timing_s: tuple[float, float, float] | None = None
    #: Take the Lease at once from a leader whose process died on this host (else wait for the expiry).
    lease_take_over_dead: bool = True

    #: Config field -> scenario key (:func:`krios.config.resolve.from_scenario`).
    SCENARIO_KEYS: ClassVar[dict[str, str]] = {
        "policy": "policy", "seed": "seed", "min_elevation_deg": "zone.min_elevation_deg",
        "default_radius_km": "zone.radius_km",
    }

    @classmethod
    def from_scenario(cls, scenario: Any = None, **overrides: Any) -> Any:
        """Defaults, then ``scenario``'s keys (may be ``None``), then ``overrides`` that are not ``None``."""
        return resolve.from_scenario(cls, scenario, cls.SCENARIO_KEYS, overrides)

    def check(self) -> None:
        """Raise :class:`ConfigError` naming the field of a value the daemons cannot run with."""
        policies.check_policy(self.policy, source="policy")
        if not 0 <= self.min_elevation_deg < 90:
            raise resolve.field_error("min_elevation_deg", self.min_elevation_deg, "must be within [0, 90)")
        resolve.check_at_least(self, 0.0, "default_radius_km")
        if self.default_radius_km > 2000.0:  # krios.orbits.zones.Zone's limit
            raise resolve.field_error("default_radius_km", self.default_radius_km, "must be within [0, 2000] km")
        resolve.check_positive(self, "horizon_s")
        if self.lease_timing_s is not None:
            lease, renew, retry = self.lease_timing_s
            if not 0 < retry < renew < lease:
                raise resolve.field_error("lease_timing_s", self.lease_timing_s,
                                          "need 0 < retry period < renew deadline < lease duration")
        if self.qps < 0:
            raise resolve.field_error("qps", self.qps, "must be >= 0")
        if self.burst < 1:
            raise resolve.field_error("burst", self.burst, "must be at least 1")

    def kwargs(self) -> dict[str, Any]:
        """The daemon constructor's keyword arguments."""
        return asdict(self)


class ZoneTrackers:
    """One :class:`krios.orbits.passes.ZoneTracker` per zone, built on first use, LRU-bounded.

    Calls go through :meth:`call`, which holds the tracker's lock: the
    trackers cache pass predictions and the daemons use them from several threads.
    Subclasses change what is kept by overriding :attr:`max_zones` and
    :meth:`_evict_locked` (the scheduler keeps every zone a pending pod names).
    ``builds`` counts the trackers ever made.
    """

    def __init__(self, constellation: Any, horizon_s: float = D.TRACKER_HORIZON_S, max_zones: int = 64) -> None:
        self.constellation = constellation
        self.horizon_s = horizon_s
        self.builds = 0
        self._max_zones = max_zones
        self._lock = threading.Lock()
        self._trackers: OrderedDict[tuple, tuple[Any, threading.Lock]] = OrderedDict()

    @property
    def max_zones(self) -> int:
        """How many trackers are kept."""
        return self._max_zones

    @staticmethod
    def zone_key(zone: Any) -> tuple:
        return (zone.lat_deg, zone.lon_deg, zone.radius_km, zone.min_elevation_deg)

    def __len__(self) -> int:
        with self._lock:
            return len(self._trackers)

    def _evict_locked(self) -> None:
        """Drop the least recently used trackers beyond :attr:`max_zones` (``_lock`` held)."""
        while len(self._trackers) > self.max_zones:
            self._trackers.popitem(last=False)

    def get(self, zone: Any) -> tuple[Any, threading.Lock]:
        """``(tracker, its lock)`` for ``zone``, made now if there is none."""
        from krios.orbits.passes import ZoneTracker

        key = self.zone_key(zone)
        with self._lock:
            entry = self._trackers.get(key)
            if entry is not None:
                self._trackers.move_to_end(key)
                return entry
        tracker = ZoneTracker(self.constellation, zone, horizon_s=self.horizon_s)  # outside the lock: tens of ms
        with self._lock:
            entry = self._trackers.get(key)
            if entry is None:
                entry = self._trackers[key] = (tracker, threading.Lock())
                self.builds += 1
                self._evict_locked()
            return entry

    def call(self, zone: Any, fn: Callable[[Any], Any]) -> Any:
        """``fn(tracker)`` under the zone tracker's lock."""
        tracker, lock = self.get(zone)
        with lock:
            return fn(tracker)


class Daemon:
    """Base of the krios scheduler and controller.

    Parameters
    ----------
    api:
        Configured API client.
    constellation:
        :class:`krios.orbits.constellation.Constellation` (built once by the caller).
    component:
        ``krios-scheduler`` or ``krios-controller``: the Lease name and the
        events' ``reportingController`` (``krios.io/<component>``).
    qps, burst:
        Client-side rate limit of the daemon's main client (binds, pod
        writes); events and leader election get their own, as in client-go.
    min_elevation_deg:
        Elevation mask for zones read from pod labels.
    default_radius_km:
        Radius (km) of a pod's zone when the pod has no ``radius`` label: the
        scenario's ``zone.radius_km``, so that the daemons decide for the zone
        the emulator, the simulator and the report use.
    leader_elect:
        Campaign for the Lease ``<lease_namespace>/<component>``; without it the
        daemon acts at once (single replica).
    lease_timing_s:
        Lease duration, renew deadline and retry period (wall s). ``None`` (the
        default): :func:`krios.kube.leader.lease_timing` of :attr:`lookahead_s`
        and the emulated clock's rate, resized whenever the ``krios-clock``
        ConfigMap changes the rate (a leader killed mid-handover is replaced
        well within the lookahead at any clock rate).
    lease_take_over_dead:
        Take the Lease at once from a leader whose process is gone from this
        host (:func:`krios.kube.leader.holder_is_dead`); ``False``: wait for
        the expiry, as replicas on other machines do.
    clock:
        A fixed emulated clock; default: follow the ``krios-clock`` ConfigMap
        (real time while there is none).
    """

    component = "krios-daemon"
    #: Handover lookahead (emulated s) the automatic lease sizing uses; the controller sets its own.
    lookahead_s: float = D.LOOKAHEAD_S

    def __init__(
        self,
        api: ApiClient,
        constellation: Any,
        *,
        component: str | None = None,
        qps: float = D.KUBE_API_QPS,
        burst: int = D.KUBE_API_BURST,
        min_elevation_deg: float = D.MIN_ELEVATION_DEG,
        default_radius_km: float = D.ZONE_RADIUS_KM,
        horizon_s: float = D.TRACKER_HORIZON_S,
        leader_elect: bool = True,
        lease_namespace: str = SYSTEM_NAMESPACE,
        lease_timing_s: tuple[float, float, float] | None = None,
        lease_take_over_dead: bool = True,
        identity: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.component = component or self.component
        self.api = api
        self.constellation = constellation
        self.n_sats = len(constellation)
        self.min_elevation_deg = float(min_elevation_deg)
        self.default_radius_km = float(default_radius_km)
        self.identity = identity or default_identity(self.component)
        # Separate connection pools: each watch holds a connection for minutes,
        # and requests from the worker threads must never queue behind them or
        # open throw-away TLS connections because the pool is full.
        self.client = RawClient(client_with_pool(api, 32), qps, burst)
        self.watch_client = RawClient(client_with_pool(api, 8), qps, burst)
        self.events = EventRecorder(RawClient(client_with_pool(api, 4), qps, burst),
                                    f"{EVENT_CONTROLLER_PREFIX}{self.component}", self.identity)
        self.trackers = ZoneTrackers(constellation, horizon_s=horizon_s)
        self.nodes = Informer(self.watch_client, node_path(), name="nodes")
        self.configmaps = Informer(
            self.watch_client, configmap_path(SYSTEM_NAMESPACE), name="configmaps"
        )
        self._fixed_clock = clock
        self._clock = clock or Clock.real()
        self.latency = LatencyMatrix.empty()
        self._warned: dict[str, str] = {}  # object key -> last invalid value warned about
        self._warn_lock = threading.Lock()
        self._sat_cache: dict[str | None, int | None] = {}  # valid sat_id label value -> int
        self._pending_wake: threading.Timer | None = None
        self._last_wake = -float("inf")
        self._stop = threading.Event()
        self.configmaps.add_handler(self._on_configmap)
        self.elector: LeaderElector | None = None
        self.auto_lease = lease_timing_s is None
        if leader_elect:
            timing = lease_timing_s or lease_timing(self.lookahead_s, self._clock.rate)
            self.elector = LeaderElector(
                RawClient(client_with_pool(api, 2), 0, 1), lease_namespace, self.component, self.identity,
                lease_duration_s=timing[0], renew_deadline_s=timing[1], retry_period_s=timing[2],
                on_started=self.on_started_leading, on_stopped=self.on_stopped_leading,
                take_over_dead=lease_take_over_dead,
            )

    def prewarm(self, zone: Any) -> None:
        """Predict ``zone``'s passes now, so the first pod of that zone does not wait for it."""
        now = self.now()
        self.trackers.call(zone, lambda t: t.in_zone(now))

    # -- lifecycle --------------------------------------------------------------------
    def informers(self) -> list[Informer]:
        return [self.nodes, self.configmaps]

    def start(self, sync_timeout: float | None = None) -> Daemon:
        """Start the caches (waiting for their first list), then campaign / act."""
        for inf in self.informers():
            inf.start()
        for inf in self.informers():
            inf.wait_synced(sync_timeout)
        _freeze_heap()
        threading.Thread(target=self._housekeeping, name="housekeeping", daemon=True).start()
        if self.elector is not None:
            self.elector.start()
        self.run_threads()
        return self

    def _housekeeping(self) -> None:
        while not self._stop.wait(GC_FREEZE_EVERY_S):
            _freeze_heap()

    def run_threads(self) -> None:
        """Start the subclass's worker threads (after the caches are synced)."""

    def stop(self) -> None:
        self._stop.set()
        with self._warn_lock:
            if self._pending_wake is not None:
                self._pending_wake.cancel()
        if self.elector is not None:
            self.elector.stop()
        for inf in self.informers():
            inf.stop()
        self.events.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` (``True``) or ``timeout``."""
        return self._stop.wait(timeout)

    def leading(self) -> bool:
        return self.elector is None or self.elector.is_leader()

    def wait_leading(self, timeout: float) -> bool:
        return self.elector is None or self.elector.wait_leading(timeout)

    def on_started_leading(self) -> None:
        log.info("%s %s is leading", self.component, self.identity)

    def on_stopped_leading(self) -> None:
        log.warning("%s %s lost the lead; standing by", self.component, self.identity)

    # -- clock and latency ---------------------------------------------------------------
    @property
    def clock(self) -> Clock:
        return self._clock

    def now(self) -> float:
        """Emulated unix seconds now."""
        return self._clock.now()

    def on_world_changed(self) -> None:
        """The clock or the latency matrix changed (subclasses re-evaluate)."""

    def _on_configmap(self, etype: str, cm: Obj, old: Obj | None) -> None:
        name = name_of(cm)
        if name == CLOCK_CONFIGMAP and self._fixed_clock is None:
            clock = Clock.real()
            text = None if etype == "DELETED" else (cm.get("data") or {}).get(CLOCK_KEY)
            if text:
                try:
                    clock = Clock.from_json(text)
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("ConfigMap %s/%s: %s: invalid (%s); using real time",
                                SYSTEM_NAMESPACE, CLOCK_CONFIGMAP, CLOCK_KEY, exc)
            if clock != self._clock:
                self._clock = clock
                log.info("clock: %s", clock)
                self._size_lease()
                self.on_world_changed()
        elif name == LATENCY_CONFIGMAP:
            try:
                self.latency = LatencyMatrix.from_configmap(None if etype == "DELETED" else cm)
            except ConfigError as err:
                self.warn_once(cm, "InvalidLatencyMatrix", str(err), value=cm["metadata"].get("resourceVersion"))
                return
            # the emulator republishes the matrix every tick (several per second when
            # accelerated): re-evaluate at most once per second, but never miss the last one
            self._throttled_world_changed()

    def _size_lease(self) -> None:
        """With automatic lease timing, follow the clock's rate (:func:`krios.kube.leader.lease_timing`)."""
        if self.elector is None or not self.auto_lease:
            return
        timing = lease_timing(self.lookahead_s, self._clock.rate)
        if timing != self.elector.timing:
            self.elector.set_timing(*timing)
            log.info("lease %g s, renew deadline %.2g s, retry %.2g s (lookahead %g emulated s at %gx)",
                     *timing, self.lookahead_s, self._clock.rate)

    def _throttled_world_changed(self) -> None:
        with self._warn_lock:
            if self._pending_wake is not None:
                return  # a re-evaluation is already scheduled and will see this matrix
            wait = self._last_wake + WORLD_CHANGE_EVERY_S - time.monotonic()
            if wait > 0:
                self._pending_wake = threading.Timer(wait, self._fire_world_changed)
                self._pending_wake.daemon = True
                self._pending_wake.start()
                return
            self._last_wake = time.monotonic()
        self.on_world_changed()

    def _fire_world_changed(self) -> None:
        with self._warn_lock:
            self._pending_wake = None
            self._last_wake = time.monotonic()
        self.on_world_changed()

    # -- invalid input ----------------------------------------------------------------------
    def warn_once(self, obj: Obj, reason: str, note: str, value: str | None = None) -> None:
        """A ``Warning`` event about ``obj`` unless the same ``value`` was already reported."""
        meta = obj.get("metadata") or {}
        key = f"{obj.get('kind')}/{meta.get('namespace', '')}/{meta.get('name')}/{reason}"
        with self._warn_lock:
            if self._warned.get(key) == (value or note):
                return
            self._warned[key] = value or note
        self.events.event(obj, "Warning", reason, "Validating", note)

    def zone_of(self, pod: Obj) -> Any:
        """The pod's zone (:func:`krios.control.placement.pod_zone`) with this daemon's elevation mask and
        default radius (km, for a pod without a ``radius`` label); ``None`` without ``leozone``.

        Raises :class:`ConfigError` for malformed labels."""
        return pod_zone(pod, self.min_elevation_deg, self.default_radius_km)

    def sat_of(self, node: Obj) -> int | None:
        """The node's ``sat_id``; an invalid one is reported (once) and treated as absent."""
        raw = labels(node).get(SAT_LABEL)
        cached = self._sat_cache.get(raw, _MISSING)
        if cached is not _MISSING:  # a valid label value seen before
            return cached
        try:
            sat = node_sat_id(node, self.n_sats)
        except ConfigError as err:
            self.warn_once(node, "InvalidSatId", str(err), value=raw)
            return None
        if len(self._sat_cache) < 100_000:
            self._sat_cache[raw] = sat
        return sat
