"""List-then-watch one collection as plain JSON, forever, across apiserver restarts.

The one list/watch engine of krios (the :class:`~krios.kube.informer.Informer`
and the virtual kubelet sit on it). The loop client-go's reflector runs:

- list the collection (in pages), remember its ``resourceVersion`` and hand
  the whole collection to ``on_sync``;
- watch from that version (bookmarks on), hand every ``ADDED``/``MODIFIED``/
  ``DELETED`` to ``on_event`` and keep the version of the last event seen;
- a watch that ends (server timeout, connection closed) is opened again *from
  that version*, so nothing is missed; each lasts a random 1-2x
  ``watch_timeout_s``, as in client-go;
- ``410 Gone`` (the version was compacted away, or the apiserver restarted
  with a newer watch cache) lists again;
- any other error (connection refused while the apiserver restarts, 5xx) is
  retried after a backoff: ``backoff_initial_s`` until the apiserver has
  answered once (it is still starting), then doubling (with jitter) to
  ``backoff_max_s``.

Objects stay JSON dicts: decoding 500 pods into the python client's models
costs more than everything else the virtual kubelet does.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from krios.kube.client import RawClient, loads
from krios.kube.objects import resource_version

log = logging.getLogger(__name__)

Obj = dict[str, Any]

BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 5.0
#: A watch that ends normally sooner than this (s) counts as a failure (no tight reconnect loop).
MIN_WATCH_S = 1.0


def backoff_s(attempt: int, ever_connected: bool, initial_s: float = BACKOFF_MIN_S,
              max_s: float = BACKOFF_MAX_S) -> float:
    """Seconds before retry ``attempt`` (0-based): ``initial_s`` doubling to ``max_s``.

    Until the apiserver has answered once (it is still starting) retries stay
    at ``initial_s``, so a component started beside it begins the moment it is ready.
    """
    if not ever_connected:
        return initial_s
    return min(initial_s * 2 ** max(attempt, 0), max_s)


class WatchExpired(Exception):
    """The apiserver no longer has the requested resourceVersion (410 Gone)."""


class Reflector:
    """Keep ``on_sync``/``on_event`` informed about one collection.

    Parameters
    ----------
    client:
        The JSON client (its rate limit applies to lists and watches).
    path:
        The collection's API path, e.g. ``/api/v1/pods``.
    name:
        Used in log lines.
    on_sync:
        ``on_sync(items)`` gets the whole collection after every (re)list; list
        items get the ``kind``/``apiVersion`` the API leaves out of them.
    on_event:
        ``on_event(type, obj)`` gets every ``ADDED``/``MODIFIED``/``DELETED``.
    on_health:
        Optional ``on_health(ok, detail)``: did the last call to the apiserver work.
    field_selector, label_selector:
        Passed to both the list and the watch.
    watch_timeout_s:
        Server-side watch timeout (s); each watch lasts a random 1-2x this.
    backoff_initial_s, backoff_max_s:
        Retry delays after errors (see the module docstring).
    page_size:
        List in pages of this many objects (``limit``/``continue``).
    """

    def __init__(
        self,
        client: RawClient,
        path: str,
        *,
        name: str,
        on_sync: Callable[[list[Obj]], None],
        on_event: Callable[[str, Obj], None],
        on_health: Callable[[bool, str], None] | None = None,
        field_selector: str | None = None,
        label_selector: str | None = None,
        watch_timeout_s: float = 240.0,
        backoff_initial_s: float = BACKOFF_MIN_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        page_size: int = 500,
    ) -> None:
        self.client = client
        self.path = path
        self.name = name
        self.on_sync = on_sync
        self.on_event = on_event
        self.on_health = on_health or (lambda ok, detail: None)
        self.selectors = {"fieldSelector": field_selector or None, "labelSelector": label_selector or None}
        self.watch_timeout_s = watch_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.page_size = page_size
        #: The version of the last list or event seen; ``None``: list next.
        self.resource_version: str | None = None
        self.connected_once = False
        #: Counters for logs and tests: lists done, watches opened, errors, 410s, events.
        self.stats = {"lists": 0, "watches": 0, "errors": 0, "expired": 0, "events": 0}
        self._resp: Any = None
        self._rng = random.Random()

    def run(self, stop: threading.Event) -> None:
        """List and watch until ``stop`` is set; never raises."""
        attempt = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                if self.resource_version is None:
                    self._list()
                    attempt = 0
                self._watch(stop)
            except WatchExpired:
                self._expired()
                continue
            except Exception as err:
                if stop.is_set():  # close() cut the watch short
                    break
                self.stats["errors"] += 1
                if isinstance(err, ApiException) and err.status == 410:
                    self._expired()
                    continue
                self._failed(err)
            else:
                if time.monotonic() - started >= MIN_WATCH_S:
                    attempt = 0
                    continue
            delay = backoff_s(attempt, self.connected_once, self.backoff_initial_s, self.backoff_max_s)
            if self.connected_once:
                delay *= 1.0 + self._rng.random()
                attempt += 1
            stop.wait(delay)

    def close(self) -> None:
        """Interrupt a watch blocked in a read (:meth:`run` then sees its ``stop``)."""
        resp = self._resp
        if resp is not None:
            with contextlib.suppress(Exception):  # already released or closed
                resp.shutdown()

    # -- internals ---------------------------------------------------------------------------
    def _expired(self) -> None:
        self.stats["expired"] += 1
        log.info("%s: resourceVersion %s expired, listing again", self.name, self.resource_version)
        self.resource_version = None

    def _failed(self, err: Exception) -> None:
        """Report a failed list or watch; quietly while the apiserver has never answered (it is starting)."""
        level = logging.WARNING if self.connected_once else logging.DEBUG
        if isinstance(err, ApiException):
            self.on_health(False, f"HTTP {err.status}")
            log.log(level, "%s: API error %s %s; retrying", self.name, err.status, err.reason)
        elif isinstance(err, urllib3.exceptions.HTTPError | OSError):  # apiserver down or restarting
            self.on_health(False, type(err).__name__)
            log.log(level, "%s: apiserver unreachable (%s: %s); retrying", self.name, type(err).__name__,
                    str(err)[:200])
        else:  # a bug in a handler must not end the loop
            log.error("%s: unexpected error; retrying", self.name, exc_info=err)

    def _connected(self) -> None:
        self.connected_once = True
        self.on_health(True, "")

    def _list(self) -> None:
        items: list[Obj] = []
        cont: str | None = None
        while True:
            query = {"limit": self.page_size, "continue": cont, **self.selectors}
            body = self.client.get(self.path, query=query, timeout=(5, 60))
            kind = body.get("kind", "").removesuffix("List")
            version = body.get("apiVersion")
            for obj in body.get("items") or []:
                # list items carry no kind/apiVersion; add them so objects look alike
                obj.setdefault("kind", kind)
                obj.setdefault("apiVersion", version)
                items.append(obj)
            meta = body.get("metadata") or {}
            cont = meta.get("continue")
            if not cont:
                break
        self.resource_version = meta.get("resourceVersion")
        self.stats["lists"] += 1
        self._connected()
        log.debug("%s: listed %d objects at rv %s", self.name, len(items), self.resource_version)
        self.on_sync(items)

    def _watch(self, stop: threading.Event) -> None:
        timeout = int(self.watch_timeout_s * (1.0 + self._rng.random()))
        query = {
            "watch": True,
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": True,
            "timeoutSeconds": timeout,
            **self.selectors,
        }
        resp = self.client.stream(self.path, query=query, timeout=(5, timeout + 30))
        self._resp = resp
        self.stats["watches"] += 1
        self._connected()
        try:
            if stop.is_set():
                return
            handle = self._handle
            for line in resp.lines():
                if stop.is_set():
                    return
                handle(loads(line))
        finally:
            self._resp = None
            # never hand a watch's connection back for reuse: after close() its socket is
            # half shut, and a request on it would wait for its read timeout
            resp.close()
            resp.release_conn()

    def _handle(self, event: Obj) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise WatchExpired(obj.get("message", ""))
            raise ApiException(status=obj.get("code"), reason=obj.get("message"))
        rv = resource_version(obj)
        if kind != "BOOKMARK":
            self.stats["events"] += 1
            self.on_event(kind, obj)
        if rv:
            self.resource_version = rv

