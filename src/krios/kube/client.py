"""The one way krios talks to the Kubernetes API: JSON over the python client's transport.

Every runtime component (the daemons, the emulator, the client's cluster view,
the pod-latency watch, the virtual kubelet, the benchmarks) sends and receives
plain JSON ``dict`` objects through :class:`RawClient`; :mod:`krios.kube.config`
is the one place that reads kubeconfigs, :mod:`krios.kube.objects` reads the
objects, :mod:`krios.kube.names` holds the names.

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

import urllib3
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from krios.kube.names import PART_OF, PART_OF_LABEL

Obj = dict[str, Any]

#: What a request raises when the API answers an error or cannot be reached (down, restarting).
API_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError)


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


def as_client(api: RawClient | ApiClient | Any, *, qps: float = 0.0, burst: int = 1) -> RawClient:
    """A :class:`RawClient` for ``api``: itself, or one over an ``ApiClient`` (or a generated
    API object's ``api_client``, e.g. a ``CoreV1Api``), rate limited at ``qps``/``burst``
    (default: unlimited, as the generated client is)."""
    if isinstance(api, RawClient):
        return api
    inner = getattr(api, "api_client", api)
    if not isinstance(inner, ApiClient):
        raise TypeError(f"not a Kubernetes API client: {type(api).__name__}")
    return RawClient(inner, qps, burst)


# -- paths ----------------------------------------------------------------------------------
def resource_path(resource: str, namespace: str | None = None, name: str | None = None,
                  sub: str | None = None, *, group: str = "") -> str:
    """The API path of a collection or an object, names URL-quoted.

    ``resource`` is the plural (``pods``, ``leases``); ``group`` is ``""`` for the
    core API or ``<group>/<version>`` (``coordination.k8s.io/v1``).
    """
    path = f"/apis/{group}" if group else "/api/v1"
    if namespace is not None:
        path += f"/namespaces/{quote(namespace, safe='')}"
    path += f"/{resource}"
    if name is not None:
        path += f"/{quote(name, safe='')}"
        if sub:
            path += f"/{sub}"
    return path


def pod_path(namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
    """``/api/v1/namespaces/<ns>/pods[/<name>[/<sub>]]`` (``/api/v1/pods`` for no namespace)."""
    return resource_path("pods", namespace, name, sub)


def node_path(name: str | None = None, sub: str | None = None) -> str:
    """``/api/v1/nodes[/<name>[/<sub>]]``."""
    return resource_path("nodes", None, name, sub)


def configmap_path(namespace: str, name: str | None = None) -> str:
    """``/api/v1/namespaces/<ns>/configmaps[/<name>]``."""
    return resource_path("configmaps", namespace, name)


def lease_path(namespace: str, name: str | None = None) -> str:
    """``/apis/coordination.k8s.io/v1/namespaces/<ns>/leases[/<name>]``."""
    return resource_path("leases", namespace, name, group="coordination.k8s.io/v1")


# -- small operations repeated across components ----------------------------------------------
def get_or_none(client: RawClient, path: str, **kw: Any) -> Obj | None:
    """GET ``path``; ``None`` when the object does not exist (404), other errors raised."""
    try:
        return client.get(path, **kw)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def create_or_exists(client: RawClient, path: str, body: Obj, **kw: Any) -> bool:
    """POST ``body`` to the collection ``path``; ``False`` if it exists already (409)."""
    try:
        client.post(path, body, **kw)
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True


def ensure_namespace(client: RawClient, name: str, *, wait_terminating_s: float = 0.0,
                     timeout: Any = None) -> None:
    """Create namespace ``name`` unless it exists (read first: needs no create right then).

    With ``wait_terminating_s``, a namespace being deleted is waited for (up to
    that many seconds, then :class:`TimeoutError`) and created again.
    """
    deadline = time.monotonic() + wait_terminating_s
    while True:
        ns = get_or_none(client, resource_path("namespaces", name=name), timeout=timeout)
        if ns is None:
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            if create_or_exists(client, resource_path("namespaces"), body, timeout=timeout):
                return
            continue  # created meanwhile: look again
        if (ns.get("status") or {}).get("phase") != "Terminating" or wait_terminating_s <= 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"namespace {name} stays Terminating")
        time.sleep(0.5)


def configmap_body(namespace: str, name: str, data: dict[str, str]) -> Obj:
    """A ConfigMap labelled as part of krios."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {PART_OF_LABEL: PART_OF}},
        "data": data,
    }


def put_configmap(client: RawClient, namespace: str, name: str, data: dict[str, str], *,
                  timeout: Any = None) -> None:
    """Replace ConfigMap ``namespace/name`` with ``data`` (create it when missing; the namespace must exist)."""
    body = configmap_body(namespace, name, data)
    try:
        client.put(configmap_path(namespace, name), body, timeout=timeout)
    except ApiException as exc:
        if exc.status != 404:
            raise
        client.post(configmap_path(namespace), body, timeout=timeout)


def configmap_value(client: RawClient, namespace: str, name: str, key: str, *,
                    timeout: Any = None) -> str | None:
    """The text under ``key`` of ConfigMap ``namespace/name``; ``None`` if it or the key is missing."""
    cm = get_or_none(client, configmap_path(namespace, name), timeout=timeout)
    return None if cm is None else (cm.get("data") or {}).get(key)


def list_items(client: RawClient, path: str, *, label_selector: str | None = None,
               field_selector: str | None = None, timeout: Any = None) -> list[Obj]:
    """The objects of the collection ``path`` (one list, no paging)."""
    query = {"labelSelector": label_selector or None, "fieldSelector": field_selector or None}
    return client.get(path, query=query, timeout=timeout).get("items") or []
