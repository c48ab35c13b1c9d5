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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from krios.kube.client import as_client, pod_path
from krios.kube.informer import Informer
from krios.kube.objects import condition_true, name_of, pod_node

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


class PodWatcher:
    """Watch the pods of ``namespace`` (matching ``label_selector``) and time their stages.

    Call :meth:`start` before creating pods; :meth:`submitted` right before the
    create request and :meth:`delete_requested` right before the delete
    request; :meth:`wait_for` blocks until a stage is observed. The watch is
    an :class:`~krios.kube.informer.Informer` (no rate limit): it resumes after
    a dropped connection and relists after an apiserver restart, where a pod
    that vanished meanwhile counts as deleted when the relist shows it gone.

    ``api``: a :class:`krios.kube.client.RawClient` or an ``ApiClient``.
    """

    def __init__(self, api: Any, namespace: str, label_selector: str | None = None):
        self.namespace = namespace
        self.label_selector = label_selector
        self._times: dict[str, PodTimes] = {}
        self._cond = threading.Condition()
        self._informer = Informer(as_client(api), pod_path(namespace), name="podwatch",
                                  label_selector=label_selector, watch_timeout_s=60.0)
        self._informer.add_handler(lambda etype, pod, _old: self._observe(etype, pod, time.time()))
        self._listeners: list[Callable[[str, PodTimes], None]] = []

    # -- lifecycle -----------------------------------------------------------

    def start(self, timeout: float = 30.0) -> PodWatcher:
        """Start the watch thread and wait until its first list is done."""
        self._informer.start()
        if not self._informer.wait_synced(timeout):
            raise TimeoutError(f"pod watch on {self.namespace} did not sync in {timeout:.0f} s")
        return self

    def stop(self) -> None:
        """Stop watching."""
        self._informer.stop()

    def __enter__(self) -> PodWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_listener(self, fn: Callable[[str, PodTimes], None]) -> None:
        """Call ``fn(name, times)`` after every watch event of a pod, with a copy of its times.

        Called in the watch thread (keep it quick); lets a caller with many pods in
        flight wake only the waiter of that pod instead of polling :meth:`wait_for`.
        """
        self._listeners.append(fn)

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

    def _observe(self, etype: str, pod: dict[str, Any], now: float) -> None:
        name = name_of(pod)
        with self._cond:
            entry = self._entry(name)
            if entry.t_seen is None:
                entry.t_seen = now
            if etype == "DELETED":
                if entry.t_deleted is None:
                    entry.t_deleted = now
            else:
                node = pod_node(pod)
                if entry.t_bound is None and (node or condition_true(pod, "PodScheduled")):
                    entry.t_bound = now
                if node:
                    entry.node = node
                if entry.t_running is None and (pod.get("status") or {}).get("phase") == "Running":
                    entry.t_running = now
                if entry.t_ready is None and condition_true(pod, "Ready"):
                    entry.t_ready = now
            self._cond.notify_all()
            copy = PodTimes(**asdict(entry)) if self._listeners else None
        for fn in self._listeners:
            fn(name, copy)  # type: ignore[arg-type]
