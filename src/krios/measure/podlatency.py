"""Pod start-up and deletion latency, measured by a watch client beside the apiserver.

The method follows kube-burner's ``podLatency`` measurement and ClusterLoader2's
pod start-up SLI: a client that talks to the apiserver directly (not through the
injected delay) watches the benchmark's pods and records, per pod, the wall-clock
time (UTC unix s, this host's clock) at which it observed each stage:

``t_submit``
    the create request was sent (recorded by the caller: :meth:`PodWatcher.submitted`);
``t_seen``
    the first watch event for the pod;
``t_bound``
    ``spec.nodeName`` set / ``PodScheduled=True`` (the scheduler's binding landed);
``t_running``
    ``status.phase == Running``;
``t_ready``
    ``Ready=True``;
``t_delete``
    the delete request was sent (:meth:`PodWatcher.delete_requested`);
``t_deleted``
    the ``DELETED`` event (the object is gone from etcd).

From these, in milliseconds and with kube-burner's field names:
``schedulingLatency = t_bound - t_submit``, ``podReadyLatency = t_ready - t_submit``
and ``deletionLatency = t_deleted - t_delete``. The apiserver's own timestamps
(``creationTimestamp``, conditions' ``lastTransitionTime``) have 1 s resolution,
too coarse for these figures, so watch-observed times are used throughout.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

log = logging.getLogger(__name__)

#: Stages a pod goes through, in order; ``t_<stage>`` fields of :class:`PodTimes`.
STAGES = ("submit", "seen", "bound", "running", "ready", "delete", "deleted")


@dataclass
class PodTimes:
    """Observed times (unix s) of one pod's stages; ``None`` where not (yet) seen."""

    pod: str
    t_submit: float | None = None
    t_seen: float | None = None
    t_bound: float | None = None
    t_running: float | None = None
    t_ready: float | None = None
    t_delete: float | None = None
    t_deleted: float | None = None
    node: str | None = None
    error: str | None = None

    def latencies(self) -> dict[str, float | None]:
        """``schedulingLatency``, ``podReadyLatency``, ``deletionLatency`` in ms."""
        return {
            "schedulingLatency": _ms(self.t_submit, self.t_bound),
            "podReadyLatency": _ms(self.t_submit, self.t_ready),
            "deletionLatency": _ms(self.t_delete, self.t_deleted),
        }

    def row(self) -> dict[str, Any]:
        """A ``pod_latency`` row (timestamps, node, error and the three latencies)."""
        return {**asdict(self), **self.latencies()}


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start) * 1000.0


def _condition_true(pod: Any, kind: str) -> bool:
    for cond in (pod.status.conditions or []) if pod.status else []:
        if cond.type == kind and cond.status == "True":
            return True
    return False


class PodWatcher:
    """Watch the pods of ``namespace`` (matching ``label_selector``) and time their stages.

    Call :meth:`start` before creating pods; :meth:`submitted` right before the
    create request and :meth:`delete_requested` right before the delete
    request; :meth:`wait_for` blocks until a stage is observed. The watch
    reconnects (re-listing) when its connection drops or expires, so an
    apiserver restart loses no stage that is still observable afterwards.
    """

    def __init__(self, api_client: client.ApiClient, namespace: str, label_selector: str | None = None):
        self.core = client.CoreV1Api(api_client)
        self.namespace = namespace
        self.label_selector = label_selector
        self._times: dict[str, PodTimes] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self, timeout: float = 30.0) -> PodWatcher:
        """Start the watch thread and wait until its first list is done."""
        self._thread = threading.Thread(target=self._run, name="krios-podwatch", daemon=True)
        self._thread.start()
        if not self._synced.wait(timeout):
            raise TimeoutError(f"pod watch on {self.namespace} did not sync in {timeout:.0f} s")
        return self

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> PodWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- caller's marks ------------------------------------------------------

    def _entry(self, name: str) -> PodTimes:
        entry = self._times.get(name)
        if entry is None:
            entry = self._times[name] = PodTimes(pod=name)
        return entry

    def submitted(self, name: str, t: float | None = None) -> None:
        """Record that the create request for ``name`` is being sent now (or at ``t``)."""
        with self._cond:
            self._entry(name).t_submit = time.time() if t is None else t

    def delete_requested(self, name: str, t: float | None = None) -> None:
        """Record that the delete request for ``name`` is being sent now (or at ``t``)."""
        with self._cond:
            self._entry(name).t_delete = time.time() if t is None else t

    def failed(self, name: str, error: str) -> None:
        """Attach an error to ``name`` (e.g. a timeout)."""
        with self._cond:
            entry = self._entry(name)
            entry.error = error if not entry.error else f"{entry.error}; {error}"

    def times(self, name: str) -> PodTimes:
        """A copy of what was observed for ``name``."""
        with self._cond:
            return PodTimes(**asdict(self._entry(name)))

    def wait_for(self, name: str, stage: str, timeout: float) -> bool:
        """Block until ``stage`` (one of :data:`STAGES`) was observed for ``name``."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        attr = f"t_{stage}"
        with self._cond:
            return self._cond.wait_for(lambda: getattr(self._entry(name), attr) is not None, timeout)

    # -- watching ------------------------------------------------------------

    def _observe(self, etype: str, pod: Any, now: float) -> None:
        name = pod.metadata.name
        with self._cond:
            entry = self._entry(name)
            if entry.t_seen is None:
                entry.t_seen = now
            if etype == "DELETED":
                if entry.t_deleted is None:
                    entry.t_deleted = now
            else:
                node = pod.spec.node_name if pod.spec else None
                if entry.t_bound is None and (node or _condition_true(pod, "PodScheduled")):
                    entry.t_bound = now
                if node:
                    entry.node = node
                if entry.t_running is None and pod.status and pod.status.phase == "Running":
                    entry.t_running = now
                if entry.t_ready is None and _condition_true(pod, "Ready"):
                    entry.t_ready = now
            self._cond.notify_all()

    def _list(self) -> str:
        kwargs = {"label_selector": self.label_selector} if self.label_selector else {}
        pods = self.core.list_namespaced_pod(self.namespace, **kwargs)
        now = time.time()
        names = set()
        for pod in pods.items:
            names.add(pod.metadata.name)
            self._observe("ADDED", pod, now)
        # Pods we knew that vanished while we were not watching: deleted by now.
        with self._cond:
            for name, entry in self._times.items():
                if name not in names and entry.t_seen is not None and entry.t_deleted is None:
                    entry.t_deleted = now
            self._cond.notify_all()
        return pods.metadata.resource_version

    def _run(self) -> None:
        rv: str | None = None
        while not self._stop.is_set():
            try:
                if rv is None:
                    rv = self._list()
                    self._synced.set()
                self._watch = watch.Watch()
                kwargs: dict[str, Any] = {"resource_version": rv, "timeout_seconds": 60}
                if self.label_selector:
                    kwargs["label_selector"] = self.label_selector
                for event in self._watch.stream(self.core.list_namespaced_pod, self.namespace, **kwargs):
                    now = time.time()
                    if self._stop.is_set():
                        break
                    etype, obj = event["type"], event["object"]
                    if etype == "ERROR":
                        rv = None  # expired resourceVersion: list again
                        break
                    self._observe(etype, obj, now)
                    rv = obj.metadata.resource_version or rv
            except ApiException as exc:
                if exc.status == 410:
                    rv = None
                    continue
                log.warning("pod watch: %s; retrying", exc.reason)
                rv = None
                self._stop.wait(0.5)
            except Exception as exc:  # connection dropped, apiserver restarting
                if self._stop.is_set():
                    break
                log.warning("pod watch: %s; retrying", exc)
                rv = None
                self._stop.wait(0.5)
