"""The one way krios talks to the Kubernetes API: JSON over the python client's transport.

Every runtime component (the daemons, the emulator, the client's cluster view,
the pod-latency watch, the virtual kubelet, the benchmarks) sends and receives
plain JSON ``dict`` objects through :class:`RawClient`; :mod:`krios.kube.config`
is the one place that reads kubeconfigs, :mod:`krios.kube.objects` reads the
objects, :mod:`krios.kube.names` holds the names.

The daemons' hot paths (list/watch, bind, events, leases, pod create/delete)
send and receive plain JSON with the configured
:class:`kubernetes.client.ApiClient`'s settings (its TLS, certificates and
token), but skip the generated API methods: their per-call argument
validation and model (de)serialisation cost more than the request itself, and
the ``Binding`` response is a ``Status`` the generated code cannot
deserialise. They skip the python client's request path too
(:class:`_Transport`): HTTP/1.1 over the client's own persistent connections,
each request written in one piece and the answer parsed here, ~0.15 ms of CPU
per request instead of ~0.5 (``krios bench scheduler``: a bind and an Event per
pod). Behind an HTTP proxy the python client's path is used as before.

:class:`TokenBucket` is client-go's client-side rate limit (``--kube-api-qps``
/ ``--kube-api-burst``), so krios daemons can be compared with kube-scheduler
at the same limits.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import urllib3
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import ProtocolError
from urllib3.util.wait import wait_for_read

from krios.kube.names import PART_OF, PART_OF_LABEL

Obj = dict[str, Any]

#: What a request raises when the API answers an error or cannot be reached (down, restarting).
API_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError)

#: How answers and watch events are decoded (the stdlib's C decoder: orjson would save ~5 us per
#: pod event, ~5 % of krios-scheduler's CPU per pod, not worth a dependency).
loads: Callable[[bytes | str], Any] = json.loads


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


# -- the transport ----------------------------------------------------------------------------
#: A pooled connection idle longer than this (s) is checked for a close by the server before reuse.
IDLE_CHECK_S = 1.0
_MAX_LINE = 65536
_NO_BODY = frozenset((204, 304))


class _Closed(Exception):
    """The server closed a connection before answering (a reused one: the request is sent again)."""


#: Errors on a reused connection that mean the server had closed it: the request is sent again.
_RESEND = (_Closed, ConnectionError, ssl.SSLEOFError, ssl.SSLZeroReturnError)


class _Conn:
    """One persistent connection: its socket, a buffered reader on it, when it was last used."""

    __slots__ = ("last", "rfile", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rfile = sock.makefile("rb")
        self.last = time.monotonic()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.rfile.close()
        with contextlib.suppress(OSError):
            self.sock.close()


def _head(rfile: Any) -> tuple[int, str, int | None, bool, bool]:
    """Read a response's status line and headers: ``(status, reason, content length, chunked, close)``.

    Raises :class:`_Closed` if the connection ends before the first byte."""
    while True:
        line = rfile.readline(_MAX_LINE + 1)
        if not line:
            raise _Closed
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise ProtocolError(f"malformed status line from the API server: {line[:80]!r}")
        status = int(parts[1])
        reason = parts[2].strip().decode("latin-1") if len(parts) > 2 else ""
        length, chunked, close = None, False, parts[0] == b"HTTP/1.0"
        while True:
            h = rfile.readline(_MAX_LINE + 1)
            if h in (b"\r\n", b"\n"):
                break
            if not h or len(h) > _MAX_LINE:
                raise ProtocolError("the API server's response ended in its headers")
            name, _, value = h.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        if 100 <= status < 200 and status != 101:
            continue  # 100 Continue and friends: the answer follows
        return status, reason, length, chunked, close


def _chunks(rfile: Any) -> Iterator[bytes]:
    """The chunks of a chunked body, until the last (``ProtocolError`` if the connection ends first)."""
    while True:
        line = rfile.readline(_MAX_LINE + 1)
        if not line:
            raise ProtocolError("the API server's response ended prematurely")
        try:
            size = int(line.split(b";", 1)[0], 16)
        except ValueError:
            raise ProtocolError(f"malformed chunk size from the API server: {line[:40]!r}") from None
        if size == 0:
            while rfile.readline(_MAX_LINE + 1) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return
        data = rfile.read(size + 2)
        if len(data) < size + 2:
            raise ProtocolError("the API server's response ended prematurely")
        yield data[:size]


def _alive(sock: socket.socket) -> bool:
    """An idle connection is still open: nothing to read, or only TLS records that carry no data
    (a TLS 1.3 server's session tickets arrive after the handshake and make the socket readable)."""
    if not wait_for_read(sock, timeout=0.0):
        return True
    try:
        sock.setblocking(False)
        sock.recv(1)  # end of file, or bytes nobody asked for: not reusable either way
        return False
    except (ssl.SSLWantReadError, BlockingIOError):
        return True
    except OSError:
        return False


def _lines_of(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The non-empty lines of a body arriving in ``pieces`` (a watch: one JSON event per line), as
    they complete; a line may keep its newline (JSON ignores it)."""
    buf = b""
    for data in pieces:
        if buf:
            data, buf = buf + data, b""
        if data.endswith(b"\n") and data.count(b"\n") == 1:  # one whole event per chunk (the usual)
            if data.strip():
                yield data
            continue
        *done, buf = data.split(b"\n")
        for line in done:
            if line.strip():
                yield line
    if buf.strip():
        yield buf


class _Stream:
    """A streaming answer (a watch) on its own connection, never reused.

    :meth:`lines` yields its newline-delimited lines; :meth:`shutdown` interrupts a read blocked
    in another thread; :meth:`close` ends it."""

    def __init__(self, conn: _Conn, chunked: bool, length: int | None) -> None:
        self.status = 200
        self._conn = conn
        self._chunked = chunked
        self._length = length

    def _pieces(self) -> Iterator[bytes]:
        rfile = self._conn.rfile
        if self._chunked:
            yield from _chunks(rfile)
            return
        left = self._length
        while left is None or left > 0:
            data = rfile.read1(65536 if left is None else min(left, 65536))
            if not data:
                return
            if left is not None:
                left -= len(data)
            yield data

    def lines(self) -> Iterator[bytes]:
        """The body's non-empty lines as they arrive (:func:`_lines_of`)."""
        return _lines_of(self._pieces())

    def shutdown(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._conn.close()

    def release_conn(self) -> None:
        """Nothing to hand back: a stream's connection is closed, never reused."""


class _Urllib3Stream:
    """:class:`_Stream`'s interface over a urllib3 response (the python client's path, behind a proxy)."""

    def __init__(self, resp: Any) -> None:
        self.status = resp.status
        self._resp = resp

    def lines(self) -> Iterator[bytes]:
        return _lines_of(self._resp.stream(amt=None, decode_content=True))

    def shutdown(self) -> None:
        self._resp.shutdown()

    def close(self) -> None:
        self._resp.close()

    def release_conn(self) -> None:
        self._resp.release_conn()


class _Transport:
    """HTTP/1.1 to the API server over persistent connections: one pool per ``ApiClient``.

    A connection is opened by the client's own urllib3 pool (its TCP options, and TLS with the
    kubeconfig's CA, client certificate, server name and hostname check), then used here: each
    request is written with one ``sendall`` and the answer's status line, headers and body are
    read directly, with none of the python client's argument sanitising, urllib3's per-request
    bookkeeping or ``http.client``'s header parsing (~0.35 ms of CPU per request saved). Up to
    the configuration's ``connection_pool_maxsize`` idle connections are kept; a request on a
    reused connection the server had closed is sent once more on a new one.
    """

    def __init__(self, api: ApiClient) -> None:
        cfg = api.configuration
        url = urlsplit(cfg.host)
        self.pool = api.rest_client.pool_manager.connection_from_url(cfg.host)
        self.prefix = url.path.rstrip("/")
        self.host = url.netloc.rsplit("@", 1)[-1]
        self.maxsize = max(1, int(cfg.connection_pool_maxsize or 1))
        self._idle: list[_Conn] = []
        self._lock = threading.Lock()
        self._ssl_context = _shared_context(self.pool)
        weakref.finalize(api, self.close_idle)

    def close_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _get(self, connect_s: float | None) -> tuple[_Conn, bool]:
        now = time.monotonic()
        stale = []
        conn = None
        with self._lock:
            while self._idle:
                c = self._idle.pop()
                if now - c.last < IDLE_CHECK_S or _alive(c.sock):
                    conn = c
                    break
                stale.append(c)  # closed by the server while idle
        for c in stale:
            c.close()
        if conn is not None:
            return conn, True
        return self._connect(connect_s), False

    def _connect(self, connect_s: float | None) -> _Conn:
        new = self.pool._new_conn()  # the pool's own settings; the socket is ours once connected
        if self._ssl_context is not None:  # its certificates are loaded already
            new.ssl_context = self._ssl_context
            new.ca_certs = new.ca_cert_dir = new.ca_cert_data = new.cert_file = new.key_file = None
        new.timeout = connect_s
        new.connect()
        sock, new.sock = new.sock, None
        return _Conn(sock)

    def warm(self, n: int, connect_s: float | None) -> int:
        """Open connections until ``n`` (at most ``maxsize``) are idle in the pool; -> how many were opened."""
        opened = 0
        while True:
            with self._lock:
                if len(self._idle) >= min(n, self.maxsize):
                    return opened
            self._put(self._connect(connect_s))
            opened += 1

    def _put(self, conn: _Conn) -> None:
        conn.last = time.monotonic()
        with self._lock:
            if len(self._idle) < self.maxsize:
                self._idle.append(conn)
                return
        conn.close()

    def send(self, method: str, target: str, headers: dict[str, str], body: bytes | None,
             timeout: tuple[float | None, float | None], stream: bool = False) -> Any:
        """One request: ``(status, reason, body bytes)``, or a :class:`_Stream` for a 2xx ``stream``."""
        head = [f"{method} {self.prefix}{target} HTTP/1.1", f"Host: {self.host}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(body or b'')}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if body:
            data += body
        connect_s, read_s = timeout
        for attempt in (0, 1):
            # the second attempt on a new connection: the other pooled ones may be closed too
            conn, reused = self._get(connect_s) if attempt == 0 else (self._connect(connect_s), False)
            try:
                conn.sock.settimeout(read_s)
                conn.sock.sendall(data)
                status, reason, length, chunked, close = _head(conn.rfile)
                if stream and 200 <= status <= 299:
                    return _Stream(conn, chunked, length)
                if method == "HEAD" or status in _NO_BODY:
                    out = b""
                elif chunked:
                    out = b"".join(_chunks(conn.rfile))
                elif length is not None:
                    out = conn.rfile.read(length)
                    if len(out) < length:
                        raise ProtocolError("the API server's response ended prematurely")
                else:
                    out, close = conn.rfile.read(), True
            except _RESEND as exc:
                conn.close()
                if reused and attempt == 0:  # the server had closed this idle connection (and the
                    self.close_idle()  # others, if it restarted): again on a new one
                    continue
                if isinstance(exc, _Closed):
                    raise ProtocolError("the API server closed the connection without answering") from None
                raise
            except BaseException:
                conn.close()
                raise
            if close:
                conn.close()
            else:
                self._put(conn)
            return status, reason, out
        raise AssertionError("unreachable")


def _shared_context(pool: Any) -> ssl.SSLContext | None:
    """One TLS context for all of a pool's connections, set up as urllib3 sets up each one's
    (same versions, verification mode, CA and client certificate). urllib3 makes a context per
    connection and, without a CA file, loads the system's whole CA store into it: ~10 ms of CPU
    per connection. ``None`` (urllib3's way per connection) for plain HTTP or if it cannot be made."""
    if not isinstance(pool, urllib3.HTTPSConnectionPool) or pool.conn_kw.get("ssl_context") is not None:
        return None
    from urllib3.util.ssl_ import create_urllib3_context, resolve_cert_reqs, resolve_ssl_version

    try:
        reqs = resolve_cert_reqs(pool.cert_reqs)
        ctx = create_urllib3_context(ssl_version=resolve_ssl_version(pool.ssl_version),
                                     ssl_minimum_version=pool.ssl_minimum_version,
                                     ssl_maximum_version=pool.ssl_maximum_version, cert_reqs=reqs)
        ca_data = pool.conn_kw.get("ca_cert_data")
        if pool.ca_certs or pool.ca_cert_dir or ca_data:
            ctx.load_verify_locations(pool.ca_certs, pool.ca_cert_dir, ca_data)
        elif reqs != ssl.CERT_NONE:
            ctx.load_default_certs()
        if pool.cert_file:
            ctx.load_cert_chain(pool.cert_file, pool.key_file, pool.key_password)
    except (OSError, ValueError, AttributeError, TypeError):
        return None
    return ctx


_TRANSPORTS: weakref.WeakKeyDictionary[ApiClient, _Transport | None] = weakref.WeakKeyDictionary()
_TRANSPORTS_LOCK = threading.Lock()


def _transport(api: ApiClient) -> _Transport | None:
    """``api``'s transport, made on first use; ``None`` behind a proxy (the python client's path then)."""
    with _TRANSPORTS_LOCK:
        try:
            return _TRANSPORTS[api]
        except KeyError:
            pass
        manager = getattr(getattr(api, "rest_client", None), "pool_manager", None)
        t = None
        if type(manager) is urllib3.PoolManager and urlsplit(api.configuration.host).scheme in ("http", "https"):
            try:
                t = _Transport(api)
            except (ValueError, AttributeError, TypeError, urllib3.exceptions.HTTPError):
                t = None  # a configuration this path does not know: the python client's
        _TRANSPORTS[api] = t
        return t


def _timeouts(timeout: Any) -> tuple[float | None, float | None]:
    """``(connect, read)`` seconds from a pair, one number (both) or a urllib3 ``Timeout``."""
    if isinstance(timeout, tuple):
        return timeout[0], timeout[1]
    if isinstance(timeout, int | float):
        return float(timeout), float(timeout)
    if isinstance(timeout, urllib3.Timeout):
        return timeout.connect_timeout, timeout.read_timeout  # type: ignore[return-value]
    return None, None


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
        self._transport = _transport(api)

    def _send(self, method: str, path: str, query: dict[str, Any] | None, body: Any,
              content_type: str | None, timeout: Any, limit: bool, stream: bool = False) -> Any:
        """One request: ``(status, reason, body bytes)``, or for a 2xx ``stream`` the open stream."""
        if limit:
            self.limiter.acquire()
        params = [(k, str(v).lower() if isinstance(v, bool) else v)
                  for k, v in (query or {}).items() if v is not None]
        transport = self._transport
        if transport is None:
            return self._send_generic(method, path, params, body, content_type, timeout, stream)
        api = self.api
        headers = {**api.default_headers, "Accept": "application/json"}
        if api.cookie:
            headers["Cookie"] = api.cookie
        auth = api.configuration.auth_settings().get("BearerToken")
        if auth and auth.get("value"):
            if auth.get("in") == "query":
                params.append((auth["key"], auth["value"]))
            else:
                headers[auth.get("key") or "authorization"] = auth["value"]
        data = None
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
            try:
                text = json.dumps(body, separators=(",", ":"))
            except TypeError:  # a python-client model or a datetime somewhere: its own serialiser
                text = json.dumps(api.sanitize_for_serialization(body), separators=(",", ":"))
            data = text.encode()
        target = path
        if params:
            target += "?" + "&".join(f"{quote(str(k))}={quote(str(v))}" for k, v in params)
        return transport.send(method, target, headers, data, _timeouts(timeout or self.timeout), stream)

    def _send_generic(self, method: str, path: str, params: list[tuple[str, Any]], body: Any,
                      content_type: str | None, timeout: Any, stream: bool) -> Any:
        """:meth:`_send` through the python client's request path (used behind a proxy)."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        req = self.api.param_serialize(
            method=method, resource_path=path, query_params=params, header_params=headers,
            body=body, auth_settings=["BearerToken"],
        )
        resp = self.api.call_api(*req, _request_timeout=timeout or self.timeout)
        if stream and 200 <= resp.status <= 299:
            return _Urllib3Stream(resp.response)
        return resp.status, resp.reason, resp.read()

    def warm(self, connections: int) -> int:
        """Open up to ``connections`` persistent connections now (their TLS handshakes, ~ms of CPU each,
        then not on a burst's critical path); -> how many were opened (0 behind a proxy)."""
        if self._transport is None:
            return 0
        return self._transport.warm(connections, _timeouts(self.timeout)[0])

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None,
                body: Any = None, content_type: str | None = None, timeout: Any = None,
                limit: bool = True) -> Obj:
        """Send one request; the decoded JSON answer, or :class:`ApiException` on non-2xx."""
        status, reason, data = self._send(method, path, query, body, content_type, timeout, limit)
        if not 200 <= status <= 299:
            raise ApiException(status=status, reason=reason,
                               body=data.decode("utf-8", "replace") if data else None)
        return loads(data) if data else {}

    def stream(self, path: str, *, query: dict[str, Any] | None = None, timeout: Any = None) -> Any:
        """Open a streaming GET (a watch), not yet read: iterate its ``lines()`` (newline-delimited
        JSON); ``shutdown()`` interrupts a read blocked in another thread, ``close()`` ends it."""
        resp = self._send("GET", path, query, None, None, timeout, True, stream=True)
        if isinstance(resp, tuple):
            status, reason, data = resp
            raise ApiException(status=status, reason=reason,
                               body=data.decode("utf-8", "replace") if data else None)
        return resp

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
