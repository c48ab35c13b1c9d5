"""``events.k8s.io/v1`` Events, sent in the background.

Daemons call :meth:`EventRecorder.event` on their hot path; a worker thread
creates the Event objects (``eventTime`` with microseconds, ``reportingController``
and ``reportingInstance`` set, as ``kubectl get events`` and kube-scheduler
expect) through its own rate-limited client, so events never slow binding
down. Events about cluster-scoped objects (nodes) go through the core API
instead (see :func:`_core_event`). Events are best effort, like client-go's: while the API is down they are
retried for a while, then dropped with a log line.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from krios.kube.client import RawClient, resource_path, status_of
from krios.kube.objects import micro_time

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NOTE_MAX = 1024


def _core_event(body: Obj) -> Obj:
    """The same event as a core ``v1`` Event, for cluster-scoped objects (nodes).

    Kubernetes 1.20 rejects ``events.k8s.io/v1`` Events whose ``regarding`` has
    no namespace (it must equal the Event's, and an Event needs one); the core
    API accepts them in ``default``, as kubelet and node controllers do.
    """
    stamp = body["eventTime"][:19] + "Z"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": body["metadata"],
        "involvedObject": body["regarding"],
        "reason": body["reason"],
        "message": body["note"],
        "type": body["type"],
        "source": {"component": body["reportingController"]},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def object_ref(obj: Obj) -> Obj:
    """An ``ObjectReference`` to ``obj`` (a JSON object with kind/apiVersion/metadata)."""
    meta = obj.get("metadata") or {}
    ref = {
        "apiVersion": obj.get("apiVersion", "v1"),
        "kind": obj.get("kind", "Pod"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    return {k: v for k, v in ref.items() if v}


class EventRecorder:
    """Queue events and create them from a background thread.

    Parameters
    ----------
    client:
        JSON client used only for events (its own rate limit).
    controller:
        ``reportingController``, e.g. ``krios.io/krios-scheduler``.
    instance:
        ``reportingInstance``, e.g. the leader identity.
    retry_s:
        How long an event is retried while the API is unreachable.
    """

    def __init__(self, client: RawClient, controller: str, instance: str, *,
                 retry_s: float = 30.0, max_queued: int = 10000) -> None:
        self.client = client
        self.controller = controller
        self.instance = instance[:128]
        self.retry_s = retry_s
        self.sent = 0
        self.dropped = 0
        self._queue: queue.Queue[Obj | None] = queue.Queue(max_queued)
        self._thread = threading.Thread(target=self._run, name="event-recorder", daemon=True)
        self._thread.start()

    def event(self, regarding: Obj, type_: str, reason: str, action: str, note: str,
              related: Obj | None = None) -> None:
        """Queue one Event about ``regarding`` (type ``Normal`` or ``Warning``)."""
        now = time.time()
        ref = object_ref(regarding)
        namespace = ref.get("namespace", "default")
        body: Obj = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": f"{ref.get('name', 'object')}.{time.time_ns():x}", "namespace": namespace},
            "eventTime": micro_time(now),
            "reportingController": self.controller,
            "reportingInstance": self.instance,
            "action": action,
            "reason": reason,
            "type": type_,
            "note": note if len(note) <= NOTE_MAX else note[: NOTE_MAX - 3] + "...",
            "regarding": ref,
        }
        if related is not None:
            body["related"] = object_ref(related)
        log.log(logging.WARNING if type_ == "Warning" else logging.DEBUG,
                "event %s %s %s/%s: %s", type_, reason, namespace, ref.get("name"), note)
        if "namespace" not in ref:
            body = _core_event(body)
        try:
            self._queue.put_nowait(body)
        except queue.Full:
            self.dropped += 1

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event was sent (or dropped); ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            try:
                if body is None:
                    return
                self._send(body)
            finally:
                self._queue.task_done()

    def _send(self, body: Obj) -> None:
        group = "events.k8s.io/v1" if body["apiVersion"] == "events.k8s.io/v1" else ""
        path = resource_path("events", body["metadata"]["namespace"], group=group)
        deadline = time.monotonic() + self.retry_s
        delay = 0.2
        while True:
            try:
                self.client.post(path, body, timeout=(2, 10))
                self.sent += 1
                return
            except Exception as exc:
                status = status_of(exc)
                # 4xx other than throttling: the event itself is wrong (or its namespace is gone)
                if (status and 400 <= status < 500 and status != 429) or time.monotonic() > deadline:
                    self.dropped += 1
                    log.info("event %s about %s dropped: %s", body["reason"], body["metadata"]["name"],
                             status or exc)
                    return
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
