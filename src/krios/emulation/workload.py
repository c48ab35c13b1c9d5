"""The open-loop client workload: HTTP requests to the apps, on fixed, drawn or replayed schedules.

:class:`Workload` sends the requests of several clients (:class:`Sender`, one per
client of each workload group, :func:`group_senders`; schedules from
:mod:`krios.emulation.arrivals`); :class:`Client` is one client at a fixed rate
(request ``i`` at ``t0 + i / rate_hz``). Each request leaves at its due time
whatever happened to the earlier ones (open loop: a slow or dead server does
not slow the client down), in its own thread with its own connection, so every
request reaches the node serving *at its send time* and a handover shows up in
the records.

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
:func:`import_jsonl` merges into the controller's results run), ``client``
(which client: two on one host differ; default ``<host>-<pid>``) and ``app``
(the app aimed at, e.g. its pods' label selector), so several clients and apps
in one run can be told apart; and (schema v5, Galileo's trace fields)
``request_id`` (``<client>:<seq>``), ``client_group``, ``service`` (the group's
``service`` as written), ``created_at`` (scheduled send time, unix s),
``done_at`` (answer complete or failure, unix s) and ``bytes`` (body bytes received).
"""

from __future__ import annotations

import heapq
import http.client
import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TextIO
from urllib.parse import urlsplit

from krios.config import defaults as D
from krios.config import resolve
from krios.config.workload import Group
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
    """One GET; returns ``(status, node, latency_ms, error)`` (:func:`exchange` without bytes and end time)."""
    return exchange(target, timeout_s)[:4]


def exchange(target: Target,
             timeout_s: float) -> tuple[str, str | None, float | None, str | None, int | None, float]:
    """One GET; returns ``(status, node, latency_ms, error, bytes, done_at)``.

    ``bytes``: response body bytes received (``None`` when no answer came); ``done_at``: wall unix s
    when the answer was complete or the request failed.
    """
    start = time.perf_counter()
    conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout_s)
    try:
        conn.request("GET", target.path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read()
        latency = (time.perf_counter() - start) * 1000.0
        node = resp.getheader(NODE_HEADER) or target.node
        if resp.status == 200:
            return "ok", node, latency, None, len(body), time.time()
        error = body[:200].decode("utf-8", "replace") or resp.reason
        return str(resp.status), node, latency, error, len(body), time.time()
    except TimeoutError:
        return "timeout", target.node, None, f"no answer within {timeout_s:g} s", None, time.time()
    except (OSError, http.client.HTTPException) as exc:
        return "error", target.node, None, f"{type(exc).__name__}: {exc}", None, time.time()
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


@dataclass
class Sender:
    """One client of a workload: its schedule, where it sends and what its records say.

    ``offsets``: send times in wall s after the workload's start, increasing
    (:func:`krios.emulation.arrivals.offsets`); ``target(snapshot)`` gives each
    request's :class:`Target`; ``view`` supplies the snapshot (``None``: fixed target).
    ``client_id``, ``group``, ``service`` and ``app`` are recorded in every request
    (columns ``client``, ``client_group``, ``service``, ``app``).
    """

    client_id: str
    offsets: Iterable[float]
    target: Callable[[Snapshot | None], Target | None]
    view: ClusterView | None = None
    group: str | None = None
    service: str | None = None
    app: str | None = None


class Workload:
    """Open-loop requests of several clients (:class:`Sender`) for ``duration_s`` wall seconds.

    One dispatcher thread walks the merged schedules and starts each request in
    its own thread at its due time, so nothing the server does (slow answers,
    timeouts) delays a later send: ``created_at`` is the due time, ``sent_at``
    when the request thread started sending (normally within a millisecond),
    ``done_at`` when the answer was complete or the request failed.
    """

    def __init__(self, senders: Sequence[Sender], sink: RecordSink, *, duration_s: float,
                 timeout_s: float = D.CLIENT_TIMEOUT_S, client_host: str | None = None):
        for name, value in (("duration_s", duration_s), ("timeout_s", timeout_s)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise resolve.field_error(name, value, "must be positive")
        #: Recorded in every request (``client_host``); default this host's name.
        self.client_host = client_host or socket.gethostname()
        self.senders = list(senders)
        self.sink = sink
        self.duration_s = float(duration_s)
        self.timeout_s = float(timeout_s)
        self.result = Result(nodes={})
        #: Per group: ``{"sent", "ok", "errors"}``.
        self.groups: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._inflight = 0

    def stop(self) -> None:
        """Stop sending (requests in flight still complete and are recorded)."""
        self._stop.set()

    def _one(self, sender: Sender, seq: int, snap: Snapshot | None, created_at: float) -> None:
        try:
            target = sender.target(snap)
            sent_at = time.time()
            node = target.node if target else None
            if target is None:
                status, latency, error, nbytes, done_at = (
                    "no-target", None, "no Ready app pod (no serving node)", None, sent_at)
            else:
                status, node, latency, error, nbytes, done_at = exchange(target, self.timeout_s)
            sat_id = snap.sat_ids.get(node) if (snap and node) else None
            rtt = snap.client_rtt_ms.get(node) if (snap and node) else None
            record = {
                "seq": seq,
                "request_id": f"{sender.client_id}:{seq}",
                "created_at": created_at,
                "sent_at": sent_at,
                "done_at": done_at,
                "node": node,
                "sat_id": sat_id,
                "injected_rtt_ms": rtt,
                "latency_ms": None if latency is None else round(latency, 3),
                "status": status,
                "bytes": nbytes,
                "error": error,
                "client_host": self.client_host,
                "client": sender.client_id,
                "client_group": sender.group,
                "service": sender.service,
                "app": sender.app,
            }
            try:
                self.sink.write(record)
            except Exception:  # never lose the thread's count because a write failed
                log.exception("could not record request %d", seq)
            with self._lock:
                counts = self.groups.setdefault(sender.group or "", {"sent": 0, "ok": 0, "errors": 0})
                if status == "ok":
                    self.result.ok += 1
                    counts["ok"] += 1
                    assert self.result.nodes is not None
                    self.result.nodes[node or "?"] = self.result.nodes.get(node or "?", 0) + 1
                else:
                    self.result.errors += 1
                    counts["errors"] += 1
        finally:
            with self._lock:
                self._inflight -= 1
                self._idle.notify_all()

    def run(self) -> Result:
        """Send until ``duration_s`` has passed (or :meth:`stop`); wait for requests in flight."""
        t0 = time.time()
        streams = [iter(s.offsets) for s in self.senders]
        due: list[tuple[float, int, int]] = []  # (offset, sender index, seq)
        for i, it in enumerate(streams):
            first = next(it, None)
            if first is not None and first < self.duration_s:
                heapq.heappush(due, (first, i, 0))
        while due and not self._stop.is_set():
            offset, i, seq = heapq.heappop(due)
            delay = t0 + offset - time.time()
            if delay > 0 and self._stop.wait(delay):
                break
            sender = self.senders[i]
            snap = sender.view.snapshot if sender.view is not None else None
            with self._lock:
                self._inflight += 1
                self.result.sent += 1
                self.groups.setdefault(sender.group or "", {"sent": 0, "ok": 0, "errors": 0})["sent"] += 1
            thread = threading.Thread(target=self._one, args=(sender, seq, snap, t0 + offset),
                                      name=f"krios-req-{i}-{seq}", daemon=True)
            try:
                thread.start()
            except BaseException:
                with self._lock:
                    self._inflight -= 1
                raise
            nxt = next(streams[i], None)
            if nxt is not None and nxt < self.duration_s:
                heapq.heappush(due, (nxt, i, seq + 1))
        with self._lock:  # every request ends within its timeout (plus the record's write)
            self._idle.wait_for(lambda: self._inflight == 0, timeout=self.timeout_s + 30.0)
        return self.result


class Client(Workload):
    """One open-loop client at ``rate_hz`` for ``duration_s`` (wall seconds): a :class:`Workload` of one sender.

    ``target(snapshot)`` gives each request's :class:`Target` (``None``: no
    serving node, recorded as ``no-target``); ``view`` supplies the snapshot
    (serving node, sat_id, injected RTT), or is ``None`` for a fixed target.
    ``offsets`` (wall s after the start) replaces the even ``rate_hz`` spacing
    (``--ia``, ``--trace``); ``group`` and ``service`` are recorded in every request.
    """

    def __init__(
        self,
        target: Callable[[Snapshot | None], Target | None],
        sink: RecordSink,
        *,
        rate_hz: float | None = D.CLIENT_RATE_HZ,
        duration_s: float,
        timeout_s: float = D.CLIENT_TIMEOUT_S,
        view: ClusterView | None = None,
        client_host: str | None = None,
        client_id: str | None = None,
        app: str | None = None,
        offsets: Iterable[float] | None = None,
        group: str | None = None,
        service: str | None = None,
    ):
        if offsets is None:
            check_options(rate_hz, duration_s, timeout_s)  # type: ignore[arg-type]
            assert rate_hz is not None
            offsets = (k / float(rate_hz) for k in range(math.floor(duration_s * rate_hz)))
        host = client_host or socket.gethostname()
        #: Recorded in every request (``client``); default ``<host>-<pid>``.
        self.client_id = client_id or f"{host}-{os.getpid()}"
        #: Recorded in every request (``app``): the app aimed at; ``None`` if not known.
        self.app = app
        self.rate_hz = None if rate_hz is None else float(rate_hz)
        self.view = view
        sender = Sender(self.client_id, offsets, target, view=view, group=group, service=service, app=app)
        super().__init__([sender], sink, duration_s=duration_s, timeout_s=timeout_s, client_host=host)


@dataclass(frozen=True)
class AppRef:
    """Where a group's requests go, resolved against the cluster: the app pods' ``selector`` (in
    ``namespace``; ``None``: all) and the ``port`` (NodePort) on the serving node."""

    selector: str
    namespace: str | None
    port: int | None


def resolve_app(api: Any, group: Group, index: int, *, source: str, port: int | None = None,
                namespace: str | None = None) -> AppRef:
    """The :class:`AppRef` of workload group ``index``: a Service's selector and nodePort (read from the
    API server), or a zone's ``leozone`` selector and the group's ``port`` (else ``port``).

    A Service that does not exist (or has no selector) is a :class:`ConfigError` naming
    ``source`` and ``workload[index].service``.
    """
    from krios.kube.client import as_client, get_or_none, resource_path

    field = f"workload[{index}].service"
    svc = group.service
    if svc.selector is not None:
        return AppRef(svc.selector, namespace, group.port if group.port is not None else port)
    assert svc.name is not None and svc.namespace is not None
    obj = get_or_none(as_client(api), resource_path("services", svc.namespace, svc.name))
    if obj is None:
        raise ConfigError(f"unknown service: no Service {svc.namespace}/{svc.name} in the cluster", source=source,
                          field=field)
    spec = obj.get("spec") or {}
    labels = spec.get("selector") or {}
    if not labels:
        raise ConfigError(f"Service {svc.namespace}/{svc.name} has no selector (no app pods to follow)",
                          source=source, field=field)
    node_port = next((int(q["nodePort"]) for q in spec.get("ports") or [] if q.get("nodePort")), None)
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return AppRef(selector, svc.namespace, group.port if group.port is not None else node_port)


def group_senders(groups: Sequence[Group], *, duration_s: float, acceleration: float = 1.0,
                  client_prefix: str | None = None,
                  targets: Callable[[Group, int], tuple[Callable[[Snapshot | None], Target | None],
                                                        ClusterView | None, str | None]]) -> list[Sender]:
    """One :class:`Sender` per client of every group, each on its own schedule (:mod:`krios.emulation.arrivals`;
    stream ``<group>/<client index>``, so a group's schedules depend only on its seed).

    ``targets(group, index)`` gives ``(target, view, app)`` for the group; ``client_prefix``
    (default ``<host>-<pid>``) begins every client id: ``<prefix>/<group>/<client index>``.
    """
    from krios.emulation.arrivals import offsets

    prefix = client_prefix or f"{socket.gethostname()}-{os.getpid()}"
    senders = []
    for i, g in enumerate(groups):
        target, view, app = targets(g, i)
        for c in range(g.clients):
            sched = offsets(g.arrivals, duration_s, stream=f"{g.name}/{c}", acceleration=acceleration)
            senders.append(Sender(f"{prefix}/{g.name}/{c}", sched, target, view=view, group=g.name,
                                  service=g.service.text, app=app))
    return senders


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
