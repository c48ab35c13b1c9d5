"""Injected control-plane latency without netem: a delaying TCP proxy on loopback.

Where the kernel has no ``sch_netem`` (containers, this development machine) the
latency between a component and the kube-apiserver is emulated by a TCP proxy
placed in front of the apiserver: every chunk of bytes that arrives from one
side is forwarded to the other side ``delay_ms`` later (one-way, per direction,
order preserved), so a request/response exchange pays ``2 * delay_ms`` of
round-trip time, like ``tc qdisc ... netem delay <delay_ms>ms`` on the
component's egress and the apiserver's egress. The proxy works at the TCP
level, so TLS passes through unchanged: a component reaches the apiserver
through the proxy simply by a kubeconfig whose ``server`` is the proxy's
address (:func:`proxied_kubeconfig`); the apiserver's certificate must be valid
for ``127.0.0.1`` (the local control plane's is).

Differences to netem: the delay applies per chunk read, not per packet (no
effect on bandwidth, no reordering, no loss); connection set-up (SYN/ACK) is
not delayed, only data. On real nodes use tc netem (``krios.emulation.netem``) instead.

The delay can be changed at any time (``proxy.delay_ms = 50``); bytes already
queued keep their due time and order is preserved.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from krios.errors import ConfigError

log = logging.getLogger(__name__)

_CHUNK = 65536


def _is_loopback(host: str) -> bool:
    """True for a loopback IP address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_loopback(host: str, what: str) -> None:
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = host == "localhost"
    if not ok:
        raise ConfigError("must be a loopback address (127.0.0.0/8)", source="delay proxy", field=f"{what} {host}")


def parse_hostport(text: str, *, source: str = "address") -> tuple[str, int]:
    """``("127.0.0.1", 6443)`` from ``127.0.0.1:6443`` or ``https://127.0.0.1:6443``."""
    if "//" not in text:
        text = "tcp://" + text
    parts = urlsplit(text)
    if not parts.hostname or parts.port is None:
        raise ConfigError("expected HOST:PORT", source=source, field=text)
    return parts.hostname, parts.port


class DelayProxy:
    """A loopback TCP proxy delaying each direction by ``delay_ms`` (one-way).

    Parameters
    ----------
    target:
        ``(host, port)`` of the server (the kube-apiserver), on loopback unless
        ``remote_target`` (an apiserver on another host, e.g. a real cluster's
        control node; the proxy itself still listens on loopback only).
    listen:
        ``(host, port)`` to listen on, on loopback; port 0 picks a free one.
    delay_ms:
        One-way delay added in both directions, ms (``up_ms``/``down_ms`` set
        the directions separately: up = client to server).

    Use as a context manager or call :meth:`start` / :meth:`stop`; the event
    loop runs in a daemon thread.
    """

    def __init__(
        self,
        target: tuple[str, int],
        listen: tuple[str, int] = ("127.0.0.1", 0),
        delay_ms: float = 0.0,
        *,
        remote_target: bool = False,
    ):
        if not remote_target:
            _check_loopback(target[0], "target")
        _check_loopback(listen[0], "listen")
        self.target = target
        self._listen = listen
        self.up_ms = float(delay_ms)
        self.down_ms = float(delay_ms)
        self.connections = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task] = set()
        self.address: tuple[str, int] | None = None

    @property
    def delay_ms(self) -> float:
        """One-way delay in ms (the larger of the two directions when they differ)."""
        return max(self.up_ms, self.down_ms)

    @delay_ms.setter
    def delay_ms(self, value: float) -> None:
        if value < 0:
            raise ConfigError("must not be negative", source="delay proxy", field=f"delay_ms {value}")
        self.up_ms = self.down_ms = float(value)

    @property
    def url(self) -> str:
        """``https://host:port`` of the listening side."""
        if self.address is None:
            raise RuntimeError("proxy not started")
        return f"https://{self.address[0]}:{self.address[1]}"

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> tuple[str, int]:
        """Start listening (in a background thread); returns the bound ``(host, port)``."""
        ready = threading.Event()
        error: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, self._listen[0], self._listen[1], reuse_address=True)
                )
                sock = self._server.sockets[0].getsockname()
                self.address = (sock[0], sock[1])
            except BaseException as exc:
                error.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            # Stopped: close the server and drop connections.
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            loop.run_until_complete(asyncio.gather(*self._tasks, return_exceptions=True))
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=run, name="krios-delayproxy", daemon=True)
        self._thread.start()
        ready.wait()
        if error:
            where = f"{self._listen[0]}:{self._listen[1]}"
            raise ConfigError(f"cannot listen: {error[0]}", source="delay proxy", field=where)
        log.info("delay proxy %s -> %s:%s (%.1f ms one-way)", self.url, *self.target, self.delay_ms)
        assert self.address is not None
        return self.address

    def stop(self) -> None:
        """Stop listening and close every proxied connection."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop = None
        self._thread = None

    def __enter__(self) -> DelayProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- forwarding ----------------------------------------------------------

    async def _handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            try:
                s_reader, s_writer = await asyncio.open_connection(*self.target)
            except OSError as exc:
                log.warning("delay proxy: cannot reach %s:%s: %s", *self.target, exc)
                c_writer.close()
                return
            await asyncio.gather(
                self._pump(c_reader, s_writer, up=True),
                self._pump(s_reader, c_writer, up=False),
                return_exceptions=True,
            )
        except asyncio.CancelledError:  # proxy stopping: drop the connection quietly
            c_writer.close()
        finally:
            self._tasks.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool) -> None:
        """Forward ``reader`` to ``writer``, each chunk ``delay`` after it arrived."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            try:
                while True:
                    due, data = await queue.get()
                    wait = due - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    if not data:
                        if writer.can_write_eof():
                            writer.write_eof()
                        return
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                return
            finally:
                if not up or writer.is_closing():
                    writer.close()

        sender = asyncio.create_task(send())
        last_due = 0.0
        try:
            while True:
                try:
                    data = await reader.read(_CHUNK)
                except (ConnectionError, OSError):
                    data = b""
                delay = (self.up_ms if up else self.down_ms) / 1000.0
                last_due = max(loop.time() + delay, last_due)  # never reorder
                queue.put_nowait((last_due, data))
                if not data:
                    break
                if up:
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)
            await sender
        finally:
            if not sender.done():
                sender.cancel()
            writer.close()


def proxied_kubeconfig(kubeconfig: str | os.PathLike[str], server: str, out: str | os.PathLike[str]) -> Path:
    """Copy ``kubeconfig`` to ``out`` with every cluster's ``server`` set to ``server``.

    TLS settings stay. A cluster whose server was not on loopback (a real
    cluster's apiserver, whose certificate names its own address, not
    ``127.0.0.1``) gets ``tls-server-name`` = that address, so the copy still
    verifies the apiserver's certificate through the proxy. Relative
    certificate paths are made absolute.
    """
    src = Path(kubeconfig)
    try:
        cfg: dict[str, Any] = yaml.safe_load(src.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read kubeconfig: {exc}", source=str(src), field="clusters") from exc
    if not isinstance(cfg, Mapping) or not cfg.get("clusters"):
        raise ConfigError("no clusters", source=str(src), field="clusters")
    for entry in cfg["clusters"]:
        cluster = entry.get("cluster", {})
        original = urlsplit(str(cluster.get("server", ""))).hostname
        if original and not cluster.get("tls-server-name") and not _is_loopback(original):
            cluster["tls-server-name"] = original
        cluster["server"] = server
        for key in ("certificate-authority",):
            if key in cluster and not os.path.isabs(cluster[key]):
                cluster[key] = str((src.parent / cluster[key]).resolve())
    for entry in cfg.get("users", []):
        user = entry.get("user", {})
        for key in ("client-certificate", "client-key", "tokenFile"):
            if key in user and not os.path.isabs(user[key]):
                user[key] = str((src.parent / user[key]).resolve())
    dest = Path(out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_secret(dest, yaml.safe_dump(cfg, sort_keys=False))
    return dest


def write_secret(dest: Path, text: str) -> None:
    """Write ``text`` (credentials: a token, a key) to ``dest``, readable by its owner only at every moment.

    The bytes go into a new file created with mode 0600 (``O_EXCL``, whatever the
    umask) beside ``dest``, which then replaces ``dest`` atomically: no file
    holding them is ever wider than 0600, not even for an instant, and an existing
    ``dest`` with a wider mode is replaced rather than rewritten in place.
    """
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def kubeconfig_server(kubeconfig: str | os.PathLike[str]) -> str:
    """The ``server`` URL of the current context's cluster in ``kubeconfig``."""
    src = Path(kubeconfig)
    try:
        cfg = yaml.safe_load(src.read_text())
        ctx_name = cfg.get("current-context")
        contexts = {c["name"]: c["context"] for c in cfg.get("contexts", [])}
        cluster_name = contexts[ctx_name]["cluster"] if ctx_name in contexts else cfg["clusters"][0]["name"]
        clusters = {c["name"]: c["cluster"] for c in cfg["clusters"]}
        return str(clusters[cluster_name]["server"])
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ConfigError(f"cannot find the server: {exc}", source=str(src), field="clusters") from exc


class ControlServer:
    """A loopback HTTP endpoint to read and change a running proxy's delay.

    ``GET /`` returns ``{"delay_ms", "up_ms", "down_ms", "target", "listen",
    "connections", "bytes_up", "bytes_down"}``; ``PUT /delay?ms=50`` (or
    ``?up_ms=&down_ms=``) sets the delay and returns the same document.
    Used by ``krios bench latency --proxy-control URL`` to sweep the delay of
    a proxy that long-running components already talk through.
    """

    def __init__(self, proxy: DelayProxy, listen: tuple[str, int] = ("127.0.0.1", 0)):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs

        _check_loopback(listen[0], "control")
        outer = proxy

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, code: int, doc: Mapping[str, Any]) -> None:
                body = (json.dumps(doc) + "\n").encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._reply(200, proxy_state(outer))

            def do_PUT(self) -> None:
                parts = urlsplit(self.path)
                if parts.path.rstrip("/") != "/delay":
                    self._reply(404, {"error": "PUT /delay?ms=N"})
                    return
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                try:
                    if "ms" in query:
                        outer.delay_ms = float(query["ms"])
                    if "up_ms" in query:
                        outer.up_ms = max(0.0, float(query["up_ms"]))
                    if "down_ms" in query:
                        outer.down_ms = max(0.0, float(query["down_ms"]))
                except (ValueError, ConfigError) as exc:
                    self._reply(400, {"error": str(exc)})
                    return
                log.info("delay proxy: now %.1f ms up, %.1f ms down", outer.up_ms, outer.down_ms)
                self._reply(200, proxy_state(outer))

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("control: " + format, *args)

        self._server = ThreadingHTTPServer(listen, Handler)
        self._server.daemon_threads = True
        self.address = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name="krios-delayproxy-control", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    def start(self) -> ControlServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def proxy_state(proxy: DelayProxy) -> dict[str, Any]:
    """What the control endpoint reports about ``proxy``."""
    return {
        "delay_ms": proxy.delay_ms,
        "up_ms": proxy.up_ms,
        "down_ms": proxy.down_ms,
        "target": f"{proxy.target[0]}:{proxy.target[1]}",
        "listen": f"{proxy.address[0]}:{proxy.address[1]}" if proxy.address else None,
        "connections": proxy.connections,
        "bytes_up": proxy.bytes_up,
        "bytes_down": proxy.bytes_down,
    }


class RemoteProxy:
    """Client of a :class:`ControlServer`: ``RemoteProxy(url).delay_ms = 50``."""

    def __init__(self, url: str, timeout_s: float = 5.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/")

    @property
    def delay_ms(self) -> float:
        return float(self.state()["delay_ms"])

    @delay_ms.setter
    def delay_ms(self, value: float) -> None:
        self._call("PUT", f"/delay?ms={float(value)}")

    def _call(self, method: str, path: str) -> dict[str, Any]:
        import urllib.error
        import urllib.request

        req = urllib.request.Request(self.url + path, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ConfigError(f"delay proxy control endpoint not reachable: {exc}", source="proxy_control",
                              field=self.url) from exc
