"""Watch-fed caches of Kubernetes objects (a small client-go style informer).

An :class:`Informer` runs one :class:`~krios.kube.reflector.Reflector` (list,
then watch from the list's ``resourceVersion``, across apiserver restarts) in
a thread and keeps a thread-safe :class:`Store` of the objects, calling
handlers for every add, update and delete:

- a watch that ends resumes from the last ``resourceVersion`` seen, so no
  event is missed;
- after a relist (``410 Gone``) the store is *replaced* and handlers see the
  difference (adds, updates, and deletes for objects that vanished while the
  watch was down).

Objects are the API's JSON as plain ``dict`` (through
:class:`krios.kube.client.RawClient`): much faster than the python client's models
and free of its deserialisation quirks. Handlers and readers must treat them
as read-only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from krios.kube.client import RawClient
from krios.kube.objects import object_key, resource_version
from krios.kube.reflector import Reflector

log = logging.getLogger(__name__)

Obj = dict[str, Any]
#: ``handler(event_type, obj, old)``: ``event_type`` is ``"ADDED"``, ``"MODIFIED"``
#: or ``"DELETED"``; ``old`` is the previous object (``None`` for additions).
Handler = Callable[[str, Obj, Obj | None], None]


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
    field_selector, label_selector, watch_timeout_s, backoff_initial_s, backoff_max_s, page_size:
        The :class:`~krios.kube.reflector.Reflector`'s.
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
        self.store = Store()
        self.reflector = Reflector(
            client, path, name=name, on_sync=self._replace, on_event=self._event,
            field_selector=field_selector, label_selector=label_selector, watch_timeout_s=watch_timeout_s,
            backoff_initial_s=backoff_initial_s, backoff_max_s=backoff_max_s, page_size=page_size,
        )
        self._handlers: list[Handler] = []
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- public -----------------------------------------------------------------
    @property
    def stats(self) -> dict[str, int]:
        """The reflector's counters: ``lists``, ``watches``, ``errors``, ``expired``, ``events``."""
        return self.reflector.stats

    @property
    def resource_version(self) -> str | None:
        return self.reflector.resource_version

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
            self._thread = threading.Thread(target=self.reflector.run, args=(self._stop,),
                                            name=f"informer-{self.name}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching and join the thread (interrupts a blocked read)."""
        self._stop.set()
        self.reflector.close()
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

    # -- internals (in the reflector's thread) -------------------------------------------
    def _replace(self, listed: list[Obj]) -> None:
        items = {object_key(obj): obj for obj in listed}
        old = self.store._replace(items)
        for key, obj in items.items():
            prev = old.get(key)
            if prev is None:
                self._dispatch("ADDED", obj, None)
            elif resource_version(prev) != resource_version(obj):
                self._dispatch("MODIFIED", obj, prev)
        for key, prev in old.items():
            if key not in items:
                self._dispatch("DELETED", prev, prev)
        self._synced.set()

    def _event(self, etype: str, obj: Obj) -> None:
        key = object_key(obj)
        if etype in ("ADDED", "MODIFIED"):
            old = self.store._put(key, obj)
            self._dispatch("ADDED" if old is None else "MODIFIED", obj, old)
        elif etype == "DELETED":
            old = self.store._pop(key)
            self._dispatch("DELETED", obj, old)

    def _dispatch(self, etype: str, obj: Obj, old: Obj | None) -> None:
        for handler in self._handlers:
            try:
                handler(etype, obj, old)
            except Exception:
                log.exception("%s: handler failed on %s %s", self.name, etype, object_key(obj))
