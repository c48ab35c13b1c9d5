"""A thin JSON client over the python client's transport, with a QPS limit.

The daemons' hot paths (list/watch, bind, events, leases, pod create/delete)
send and receive plain JSON through the configured
:class:`kubernetes.client.ApiClient` (its TLS, certificates and token), but
skip the generated API methods: their per-call argument validation and model
(de)serialisation cost more than the request itself, and the ``Binding``
response is a ``Status`` the generated code cannot deserialise.

:class:`TokenBucket` is client-go's client-side rate limit (``--kube-api-qps``
/ ``--kube-api-burst``), so krios daemons can be compared with kube-scheduler
at the same limits.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import quote

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

Obj = dict[str, Any]


class TokenBucket:
    """Client-side rate limit: ``qps`` tokens per second, bursts up to ``burst``.

    ``qps <= 0`` disables the limit. Thread-safe; :meth:`acquire` blocks.
    """

    def __init__(self, qps: float, burst: int) -> None:
        self.qps = float(qps)
        self.burst = max(1, int(burst))
        self._tokens = float(self.burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until one is available; returns the time waited (s)."""
        if self.qps <= 0:
            return 0.0
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.qps
        if wait > 0:
            time.sleep(wait)
        return wait


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an :class:`ApiException`, ``None`` for transport errors."""
    return exc.status if isinstance(exc, ApiException) else None


class RawClient:
    """JSON requests through an :class:`ApiClient`, rate limited.

    Parameters
    ----------
    api:
        A configured client (``krios.kube.config.load_client()``).
    qps, burst:
        Client-side rate limit shared by every request of this client.
    timeout:
        Default ``(connect, read)`` timeout in seconds.
    """

    def __init__(self, api: ApiClient, qps: float = 50.0, burst: int = 100,
                 timeout: tuple[float, float] = (5.0, 30.0)) -> None:
        self.api = api
        self.limiter = TokenBucket(qps, burst)
        self.timeout = timeout

    def _send(self, method: str, path: str, query: dict[str, Any] | None, body: Any,
              content_type: str | None, timeout: Any, limit: bool) -> Any:
        if limit:
            self.limiter.acquire()
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        params = [(k, str(v).lower() if isinstance(v, bool) else v) for k, v in params]
        req = self.api.param_serialize(
            method=method, resource_path=path, query_params=params, header_params=headers,
            body=body, auth_settings=["BearerToken"],
        )
        return self.api.call_api(*req, _request_timeout=timeout or self.timeout)

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None,
                body: Any = None, content_type: str | None = None, timeout: Any = None,
                limit: bool = True) -> Obj:
        """Send one request; the decoded JSON answer, or :class:`ApiException` on non-2xx."""
        resp = self._send(method, path, query, body, content_type, timeout, limit)
        data = resp.read()
        if not 200 <= resp.status <= 299:
            raise ApiException(status=resp.status, reason=resp.reason,
                               body=data.decode("utf-8", "replace") if data else None)
        return json.loads(data) if data else {}

    def stream(self, path: str, *, query: dict[str, Any] | None = None, timeout: Any = None) -> Any:
        """Open a streaming GET (a watch); the urllib3 response, not yet read."""
        resp = self._send("GET", path, query, None, None, timeout, True)
        if not 200 <= resp.status <= 299:
            data = resp.read()
            raise ApiException(status=resp.status, reason=resp.reason,
                               body=data.decode("utf-8", "replace") if data else None)
        return resp.response

    def get(self, path: str, **kw: Any) -> Obj:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> Obj:
        return self.request("POST", path, body=body, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> Obj:
        return self.request("PUT", path, body=body, **kw)

    def patch(self, path: str, body: Any, *, merge: bool = True, **kw: Any) -> Obj:
        """JSON merge patch (``merge=True``) or strategic merge patch."""
        ctype = "application/merge-patch+json" if merge else "application/strategic-merge-patch+json"
        return self.request("PATCH", path, body=body, content_type=ctype, **kw)

    def delete(self, path: str, body: Any = None, **kw: Any) -> Obj:
        return self.request("DELETE", path, body=body, **kw)


def pod_path(namespace: str, name: str | None = None, sub: str | None = None) -> str:
    """``/api/v1/namespaces/<ns>/pods[/<name>[/<sub>]]`` with names URL-quoted."""
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods"
    if name is not None:
        path += f"/{quote(name, safe='')}"
        if sub:
            path += f"/{sub}"
    return path
