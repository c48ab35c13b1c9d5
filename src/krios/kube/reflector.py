"""List-then-watch one collection as plain JSON, forever, across apiserver restarts.

The loop a kubelet or an informer runs: list (remember the collection's
resourceVersion), watch from that version, keep the version of the last event
seen, and on a dropped connection watch again *from that version* so nothing
is missed. When the apiserver says the version is too old (410 Gone) it lists
again. Connection errors back off exponentially (0.2 s doubling to 5 s).

Objects stay JSON dicts: decoding 500 pods into the client's models costs more
than everything else the virtual kubelet does.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 5.0


def backoff_s(attempt: int, ever_connected: bool) -> float:
    """Seconds before retry ``attempt`` (0-based): 0.2 s doubling to 5 s.

    Until the apiserver has answered once (it is still starting) retries stay
    at 0.2 s, so a daemon started beside it begins the moment it is ready.
    """
    if not ever_connected:
        return BACKOFF_MIN_S
    return min(BACKOFF_MIN_S * 2**attempt, BACKOFF_MAX_S)

Obj = dict[str, Any]


class WatchExpired(Exception):
    """The apiserver no longer has the requested resourceVersion (410 Gone)."""


def read_json(resp: urllib3.BaseHTTPResponse) -> Any:
    """Body of a response fetched with ``_preload_content=False``, decoded; connection released."""
    try:
        return json.loads(resp.data or b"null")
    finally:
        resp.release_conn()


def _lines(resp: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    buf = b""
    for chunk in resp.stream(amt=None, decode_content=True):
        buf += chunk
        while (nl := buf.find(b"\n")) >= 0:
            line, buf = buf[:nl], buf[nl + 1 :]
            if line.strip():
                yield line
    if buf.strip():
        yield buf


class Reflector:
    """Keep ``on_sync``/``on_event`` informed about one collection.

    ``list_func`` is a generated list method (e.g. ``CoreV1Api.list_node``).
    ``on_sync(items)`` gets the full collection after every (re)list;
    ``on_event(type, obj)`` every ADDED/MODIFIED/DELETED event. ``on_health``
    (optional) learns whether the last call to the apiserver worked.
    """

    def __init__(
        self,
        name: str,
        list_func: Callable[..., Any],
        on_sync: Callable[[list[Obj]], None],
        on_event: Callable[[str, Obj], None],
        stop: threading.Event,
        *,
        field_selector: str | None = None,
        label_selector: str | None = None,
        watch_timeout_s: int = 120,
        on_health: Callable[[bool, str], None] | None = None,
    ):
        self.name = name
        self.list_func = list_func
        self.on_sync = on_sync
        self.on_event = on_event
        self.stop = stop
        self.selectors = {"field_selector": field_selector, "label_selector": label_selector}
        self.watch_timeout_s = watch_timeout_s
        self.on_health = on_health or (lambda ok, detail: None)
        self.resource_version: str | None = None
        self.relists = 0
        self.connected_once = False

    def run(self) -> None:
        """Loop until ``stop`` is set; never raises."""
        attempt = 0
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                if self.resource_version is None:
                    self._list()
                self._watch()
            except WatchExpired:
                log.info("%s: resourceVersion %s expired, listing again", self.name, self.resource_version)
                self.resource_version = None
                continue
            except ApiException as err:
                if err.status == 410:
                    self.resource_version = None
                    continue
                self.on_health(False, f"HTTP {err.status}")
                self._log("%s: API error %s %s; retrying", self.name, err.status, err.reason)
            except (urllib3.exceptions.HTTPError, OSError) as err:
                self.on_health(False, type(err).__name__)
                self._log("%s: apiserver unreachable (%s); retrying", self.name, type(err).__name__)
            except Exception:  # a bug in a handler must not end the loop
                log.exception("%s: unexpected error; retrying", self.name)
            else:
                if time.monotonic() - started > 1.0:
                    attempt = 0
                    continue
            self.stop.wait(backoff_s(attempt, self.connected_once))
            attempt = attempt + 1 if self.connected_once else 0

    def _log(self, msg: str, *args: object) -> None:
        """Warn about failures, except while the apiserver is still starting or we are stopping."""
        if self.stop.is_set():
            return
        log.log(logging.WARNING if self.connected_once else logging.DEBUG, msg, *args)

    def _list(self) -> None:
        data = read_json(self.list_func(**self.selectors, _preload_content=False, _request_timeout=30))
        self.resource_version = data["metadata"]["resourceVersion"]
        self.relists += 1
        self.connected_once = True
        self.on_health(True, "")
        self.on_sync(data.get("items") or [])

    def _watch(self) -> None:
        resp = self.list_func(
            **self.selectors,
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.watch_timeout_s,
            _preload_content=False,
            _request_timeout=(5, self.watch_timeout_s + 30),
        )
        self.on_health(True, "")
        try:
            for line in _lines(resp):
                if self.stop.is_set():
                    return
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchExpired(obj.get("message", ""))
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                self.resource_version = obj["metadata"]["resourceVersion"]
                if kind != "BOOKMARK":
                    self.on_event(kind, obj)
        finally:
            resp.close()  # a half-read stream must not go back into the pool
            resp.release_conn()
