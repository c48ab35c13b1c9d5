"""The open-loop client workload: HTTP requests to the app at a fixed rate.

Request ``i`` is sent at ``t0 + i / rate_hz`` whatever happened to the earlier
ones (open loop: a slow or dead server does not slow the client down), each
in a worker thread with its own connection, so every request reaches the node
serving *at its send time* and a handover shows up in the records.

Every request becomes one record as soon as it completes, written to the
JSON Lines file (flushed per line) and to the results store (table
``requests``, committed per row), so killing the client loses nothing already
finished. Failures (refused, reset, timeout, HTTP errors, no serving node)
are records with ``status`` ``error``/``timeout``/``no-target``/the HTTP code,
never dropped.

Record fields (see :mod:`krios.results.schema`): ``seq``, ``sent_at`` (wall
unix s), ``node`` (the node that answered, from the ``X-Krios-Node`` header,
else the node targeted), ``sat_id`` and ``injected_rtt_ms`` (from the
emulator's mapping and latency matrix at send time), ``latency_ms`` (measured,
connect to last byte), ``status``, ``error``, ``client_host`` (the host the
request was sent from: on real nodes the client node, whose JSON Lines file
:func:`import_jsonl` merges into the controller's results run).
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TextIO
from urllib.parse import urlsplit

from krios.config import defaults as D
from krios.config import resolve
from krios.emulation.appview import ClusterView, Snapshot
from krios.emulation.standin import NODE_HEADER
from krios.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """Where one request goes: ``host``:``port`` ``path``; ``node`` if known."""

    host: str
    port: int
    path: str = "/"
    node: str | None = None


def parse_url(url: str) -> Target:
    """A :class:`Target` from ``http://host:port/path`` (``ConfigError`` otherwise)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError("expected http://HOST:PORT/PATH", source="target", field=url)
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise ConfigError("bad port", source="target", field=url) from exc
    return Target(parts.hostname, port, parts.path or "/")


def static_target(url: str) -> Callable[[Snapshot | None], Target | None]:
    """Always the same URL."""
    target = parse_url(url)
    return lambda _snap: target


def serving_target(port: int, path: str = "/") -> Callable[[Snapshot | None], Target | None]:
    """The InternalIP of the node serving the app (from the :class:`ClusterView`), on ``port``."""

    def pick(snap: Snapshot | None) -> Target | None:
        if snap is None or snap.serving_node is None:
            return None
        ip = snap.node_ips.get(snap.serving_node)
        return Target(ip, port, path, snap.serving_node) if ip else None

    return pick


@dataclass
class Result:
    """Counts of a finished client run."""

    sent: int = 0
    ok: int = 0
    errors: int = 0
    nodes: dict[str, int] | None = None


class RecordSink:
    """Writes records to JSON Lines (flushed per line) and the results store (committed per row)."""

    def __init__(self, jsonl: Path | None, store: Any = None, run_id: str | None = None):
        self._lock = threading.Lock()
        self._fh: TextIO | None = None
        if jsonl is not None:
            jsonl.parent.mkdir(parents=True, exist_ok=True)
            self._fh = jsonl.open("a", encoding="utf-8")
        self.store = store
        self.run_id = run_id

    def write(self, record: dict[str, Any]) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.write(json.dumps(record, sort_keys=True) + "\n")
                self._fh.flush()
            if self.store is not None:
                self.store.add(self.run_id, "requests", record)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


def send_request(target: Target, timeout_s: float) -> tuple[str, str | None, float | None, str | None]:
    """One GET; returns ``(status, node, latency_ms, error)``."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout_s)
    try:
        conn.request("GET", target.path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read()
        latency = (time.perf_counter() - start) * 1000.0
        node = resp.getheader(NODE_HEADER) or target.node
        if resp.status == 200:
            return "ok", node, latency, None
        return str(resp.status), node, latency, body[:200].decode("utf-8", "replace") or resp.reason
    except TimeoutError:
        return "timeout", target.node, None, f"no answer within {timeout_s:g} s"
    except (OSError, http.client.HTTPException) as exc:
        return "error", target.node, None, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


@dataclass(frozen=True)
class ClientConfig:
    """The client's rate (requests per wall s), run time and per-request timeout (wall s).

    Defaults in :mod:`krios.config.defaults`; build it with :meth:`from_scenario`.
    """

    duration_s: float
    rate_hz: float = D.CLIENT_RATE_HZ
    timeout_s: float = D.CLIENT_TIMEOUT_S

    #: Config field -> scenario key.
    SCENARIO_KEYS: ClassVar[dict[str, str]] = {"rate_hz": "client.rate_hz", "timeout_s": "client.timeout_s"}

    @classmethod
    def from_scenario(cls, scenario: Any = None, **overrides: Any) -> ClientConfig:
        """Defaults, then ``scenario``'s ``client:`` keys (may be ``None``), then ``overrides`` not ``None``."""
        if overrides.get("duration_s") is None:
            raise resolve.field_error("duration_s", None, "is required")
        return resolve.from_scenario(cls, scenario, cls.SCENARIO_KEYS, overrides)

    def check(self) -> None:
        """Raise :class:`ConfigError` naming the field unless rate, duration and timeout are positive."""
        for name in ("rate_hz", "duration_s", "timeout_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise resolve.field_error(name, value, "must be positive")


def check_options(rate_hz: float, duration_s: float, timeout_s: float) -> None:
    """Raise :class:`ConfigError` (naming the field) unless rate, duration and timeout are positive numbers."""
    ClientConfig(duration_s=duration_s, rate_hz=rate_hz, timeout_s=timeout_s).check()


class Client:
    """Open-loop requests at ``rate_hz`` for ``duration_s`` (wall seconds).

    ``target(snapshot)`` gives each request's :class:`Target` (``None``: no
    serving node, recorded as ``no-target``); ``view`` supplies the snapshot
    (serving node, sat_id, injected RTT), or is ``None`` for a fixed target.
    """

    def __init__(
        self,
        target: Callable[[Snapshot | None], Target | None],
        sink: RecordSink,
        *,
        rate_hz: float,
        duration_s: float,
        timeout_s: float = D.CLIENT_TIMEOUT_S,
        view: ClusterView | None = None,
        client_host: str | None = None,
    ):
        check_options(rate_hz, duration_s, timeout_s)
        #: Recorded in every request (``client_host``); default this host's name.
        self.client_host = client_host or socket.gethostname()
        self.target = target
        self.sink = sink
        self.rate_hz = float(rate_hz)
        self.duration_s = float(duration_s)
        self.timeout_s = float(timeout_s)
        self.view = view
        self.result = Result(nodes={})
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def stop(self) -> None:
        """Stop sending (requests in flight still complete and are recorded)."""
        self._stop.set()

    def _one(self, seq: int, snap: Snapshot | None) -> None:
        target = self.target(snap)
        sent_at = time.time()
        node = target.node if target else None
        if target is None:
            status, latency, error = "no-target", None, "no Ready app pod (no serving node)"
        else:
            status, node, latency, error = send_request(target, self.timeout_s)
        sat_id = snap.sat_ids.get(node) if (snap and node) else None
        rtt = snap.client_rtt_ms.get(node) if (snap and node) else None
        record = {
            "seq": seq,
            "sent_at": sent_at,
            "node": node,
            "sat_id": sat_id,
            "injected_rtt_ms": rtt,
            "latency_ms": None if latency is None else round(latency, 3),
            "status": status,
            "error": error,
            "client_host": self.client_host,
        }
        try:
            self.sink.write(record)
        except Exception:  # never lose the thread's count because a write failed
            log.exception("could not record request %d", seq)
        with self._lock:
            if status == "ok":
                self.result.ok += 1
                assert self.result.nodes is not None
                self.result.nodes[node or "?"] = self.result.nodes.get(node or "?", 0) + 1
            else:
                self.result.errors += 1

    def run(self) -> Result:
        """Send until ``duration_s`` has passed (or :meth:`stop`); wait for requests in flight."""
        n = math.floor(self.duration_s * self.rate_hz)
        workers = max(4, math.ceil(self.rate_hz * (self.timeout_s + 0.5)) + 2)
        t0 = time.time()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="krios-req") as pool:
            for seq in range(n):
                delay = t0 + seq / self.rate_hz - time.time()
                if delay > 0 and self._stop.wait(delay):
                    break
                if self._stop.is_set():
                    break
                snap = self.view.snapshot if self.view is not None else None
                pool.submit(self._one, seq, snap)
                self.result.sent += 1
        return self.result


def import_jsonl(store: Any, run_id: str, path: Path, client_host: str | None = None) -> dict[str, int]:
    """Merge a client's JSON Lines file (fetched from the client node) into ``run_id`` of ``store``.

    Each line is one request record (:class:`Client`); records without a
    ``client_host`` get ``client_host``. A record already in the run (same
    ``client_host``, ``seq`` and ``sent_at``) is skipped, so importing the same
    file twice adds nothing. Returns ``{"read": n, "imported": n}``; a line
    that is not a JSON object is a :class:`ConfigError` naming the file and line.
    """
    from krios.results.schema import TABLES

    known = set(TABLES["requests"])
    rows: list[dict[str, Any]] = []
    with Path(path).open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"not JSON ({exc.msg})", source=str(path), field=f"line {n}") from exc
            if not isinstance(record, dict):
                raise ConfigError("not a JSON object", source=str(path), field=f"line {n}")
            record = {k: v for k, v in record.items() if k in known}
            if not record.get("client_host"):
                record["client_host"] = client_host
            rows.append(record)
    have = {(r.get("client_host"), r.get("seq"), r.get("sent_at")) for r in store.rows(run_id, "requests")}
    new = [r for r in rows if (r.get("client_host"), r.get("seq"), r.get("sent_at")) not in have]
    imported = store.add_many(run_id, "requests", new) if new else 0
    return {"read": len(rows), "imported": imported}
