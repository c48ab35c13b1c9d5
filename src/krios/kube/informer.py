"""Watch-fed caches of Kubernetes objects (a small client-go style informer).

An :class:`Informer` lists a resource once, then watches it from the list's
``resourceVersion`` and keeps a thread-safe :class:`Store` of the objects,
calling handlers for every add, update and delete. It survives the API going
away:

- a watch that ends (server timeout, connection closed) resumes from the last
  ``resourceVersion`` seen (bookmarks included), so no event is missed;
- ``410 Gone`` (the version was compacted away) triggers a relist; the store is
  *replaced* and handlers see the difference (adds, updates, and deletes for
  objects that vanished while the watch was down);
- any other error (connection refused while the apiserver restarts, 5xx)
  is retried with exponential backoff and jitter.

Objects are the API's JSON as plain ``dict`` (through
:class:`krios.kube.client.RawClient`): much faster than the python client's models
and free of its deserialisation quirks. Handlers and readers must treat them
as read-only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes.client.exceptions import ApiException

from krios.kube.client import RawClient

log = logging.getLogger(__name__)

Obj = dict[str, Any]
#: ``handler(event_type, obj, old)``: ``event_type`` is ``"ADDED"``, ``"MODIFIED"``
#: or ``"DELETED"``; ``old`` is the previous object (``None`` for additions).
Handler = Callable[[str, Obj, Obj | None], None]


def object_key(obj: Obj) -> str:
    """``namespace/name`` for namespaced objects, ``name`` for cluster-scoped ones."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


class Store:
    """A thread-safe map of key -> object (the informer's cache)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, Obj] = {}

    def get(self, key: str) -> Obj | None:
        with self._lock:
            return self._items.get(key)

    def list(self) -> list[Obj]:
        """A snapshot of every object (the list is new; the objects are shared)."""
        with self._lock:
            return list(self._items.values())

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _put(self, key: str, obj: Obj) -> Obj | None:
        with self._lock:
            old = self._items.get(key)
            self._items[key] = obj
            return old

    def _pop(self, key: str) -> Obj | None:
        with self._lock:
            return self._items.pop(key, None)

    def _replace(self, items: dict[str, Obj]) -> dict[str, Obj]:
        with self._lock:
            old, self._items = self._items, dict(items)
            return old


class _Expired(Exception):
    """The watched resourceVersion is too old (410 Gone): relist."""


class Informer:
    """List + watch one resource into a :class:`Store` and notify handlers.

    Parameters
    ----------
    client:
        The JSON client (its rate limit applies to lists and watches).
    path:
        The collection's API path, e.g. ``/api/v1/pods`` or
        ``/api/v1/namespaces/krios-system/configmaps``.
    name:
        Used in log lines and thread names.
    field_selector, label_selector:
        Passed to both the list and the watch.
    watch_timeout_s:
        Server-side watch timeout; each watch lasts a random 1-2x this (as
        client-go does) before it is resumed from the last resourceVersion.
    backoff_initial_s, backoff_max_s:
        Exponential backoff (with jitter) after API errors.
    page_size:
        List in pages of this many objects (``limit``/``continue``).
    """

    def __init__(
        self,
        client: RawClient,
        path: str,
        *,
        name: str,
        field_selector: str | None = None,
        label_selector: str | None = None,
        watch_timeout_s: float = 240.0,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
        page_size: int = 500,
    ) -> None:
        self.client = client
        self.path = path
        self.name = name
        self.field_selector = field_selector
        self.label_selector = label_selector
        self.watch_timeout_s = watch_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.page_size = page_size
        self.store = Store()
        self.resource_version: str | None = None
        #: Counters for logs and tests: lists done, watches opened, errors seen.
        self.stats = {"lists": 0, "watches": 0, "errors": 0, "expired": 0, "events": 0}
        self._handlers: list[Handler] = []
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._resp: Any = None
        self._rng = random.Random()

    # -- public -----------------------------------------------------------------
    def add_handler(self, handler: Handler) -> None:
        """Call ``handler(event_type, obj, old)`` for every change (in the informer thread).

        Add handlers before :meth:`start`; the initial list arrives as ``ADDED``.
        Handlers should be quick (enqueue work); exceptions are logged, not raised.
        """
        self._handlers.append(handler)

    def start(self) -> Informer:
        """Start the list/watch thread (daemon); returns ``self``.

        After :meth:`stop`, starting again resumes watching from the last
        ``resourceVersion`` (relisting only if the API answers 410 Gone).
        """
        if self._thread is not None and not self._thread.is_alive():
            self._thread = None
            self._stop.clear()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"informer-{self.name}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching and join the thread (interrupts a blocked read)."""
        self._stop.set()
        self._close_response()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Block until the first list has filled the store; ``False`` on timeout."""
        return self._synced.wait(timeout)

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def get(self, key: str) -> Obj | None:
        return self.store.get(key)

    def list(self) -> list[Obj]:
        return self.store.list()

    # -- internals ----------------------------------------------------------------
    def _selectors(self) -> dict[str, str]:
        kw = {}
        if self.field_selector:
            kw["fieldSelector"] = self.field_selector
        if self.label_selector:
            kw["labelSelector"] = self.label_selector
        return kw

    def _run(self) -> None:
        backoff = self.backoff_initial_s
        need_list = not self._synced.is_set() or self.resource_version is None
        while not self._stop.is_set():
            try:
                if need_list:
                    self._relist()
                    need_list = False
                    backoff = self.backoff_initial_s
                self._watch_once()
                backoff = self.backoff_initial_s
            except _Expired:
                self.stats["expired"] += 1
                log.info("%s: resourceVersion %s expired, relisting", self.name, self.resource_version)
                need_list = True
            except Exception as exc:  # API down, connection reset, 5xx ...
                if self._stop.is_set():
                    break
                self.stats["errors"] += 1
                if isinstance(exc, ApiException) and exc.status == 410:
                    self.stats["expired"] += 1
                    need_list = True
                    continue
                delay = backoff * (1.0 + self._rng.random())
                log.warning("%s: %s; retrying in %.2fs", self.name, _describe(exc), delay)
                self._stop.wait(delay)
                backoff = min(backoff * 2.0, self.backoff_max_s)

    def _relist(self) -> None:
        items: dict[str, Obj] = {}
        cont: str | None = None
        while True:
            query = {"limit": self.page_size, "continue": cont, **self._selectors()}
            body = self.client.get(self.path, query=query, timeout=(5, 60))
            kind = body.get("kind", "").removesuffix("List")
            version = body.get("apiVersion")
            for obj in body.get("items") or []:
                # list items carry no kind/apiVersion; add them so objects look alike
                obj.setdefault("kind", kind)
                obj.setdefault("apiVersion", version)
                items[object_key(obj)] = obj
            meta = body.get("metadata") or {}
            cont = meta.get("continue")
            if not cont:
                self.resource_version = meta.get("resourceVersion")
                break
        old = self.store._replace(items)
        self.stats["lists"] += 1
        log.debug("%s: listed %d objects at rv %s", self.name, len(items), self.resource_version)
        for key, obj in items.items():
            prev = old.get(key)
            if prev is None:
                self._dispatch("ADDED", obj, None)
            elif _rv(prev) != _rv(obj):
                self._dispatch("MODIFIED", obj, prev)
        for key, prev in old.items():
            if key not in items:
                self._dispatch("DELETED", prev, prev)
        self._synced.set()

    def _watch_once(self) -> None:
        timeout = int(self.watch_timeout_s * (1.0 + self._rng.random()))
        query = {
            "watch": True,
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": True,
            "timeoutSeconds": timeout,
            **self._selectors(),
        }
        resp = self.client.stream(self.path, query=query, timeout=(5, timeout + 30))
        self._resp = resp
        self.stats["watches"] += 1
        try:
            if self._stop.is_set():
                return
            for line in _lines(resp):
                if self._stop.is_set():
                    return
                self._handle(json.loads(line))
        finally:
            self._resp = None
            # never hand a watch's connection back for reuse: after stop() its socket is
            # half shut, and a request on it would wait for its read timeout
            resp.close()
            resp.release_conn()

    def _handle(self, event: Obj) -> None:
        etype = event.get("type")
        obj = event.get("object") or {}
        if etype == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise _Expired()
            raise RuntimeError(f"watch error {code}: {obj.get('message')}")
        rv = _rv(obj)
        if etype == "BOOKMARK":
            if rv:
                self.resource_version = rv
            return
        key = object_key(obj)
        self.stats["events"] += 1
        if etype in ("ADDED", "MODIFIED"):
            old = self.store._put(key, obj)
            self._dispatch("ADDED" if old is None else "MODIFIED", obj, old)
        elif etype == "DELETED":
            old = self.store._pop(key)
            self._dispatch("DELETED", obj, old)
        if rv:
            self.resource_version = rv

    def _dispatch(self, etype: str, obj: Obj, old: Obj | None) -> None:
        for handler in self._handlers:
            try:
                handler(etype, obj, old)
            except Exception:
                log.exception("%s: handler failed on %s %s", self.name, etype, object_key(obj))

    def _close_response(self) -> None:
        resp = self._resp
        if resp is None:
            return
        with contextlib.suppress(Exception):  # already released or closed
            resp.shutdown()


def _rv(obj: Obj) -> str | None:
    return (obj.get("metadata") or {}).get("resourceVersion")


def _lines(resp: Any) -> Iterator[bytes]:
    """Newline-delimited JSON lines of a streaming (chunked) watch response."""
    buf = b""
    for chunk in resp.stream(amt=None, decode_content=False):
        buf += chunk
        if b"\n" not in chunk:
            continue
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
    if buf.strip():
        yield buf


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"API error {exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"[:300]
