"""RTT sources other than the emulator's model: a static matrix file, ping, and an HTTP prober.

Each source yields the ``matrix.json`` document of ConfigMap ``krios-latency``
(:func:`krios.orbits.rtt.matrix_document`: ``{"updated", "unit": "ms", "rtt":
{from: {to: ms}}}``) with two more keys the readers ignore: ``source``
(``static`` | ``measured``) and ``method`` (``file`` | ``ping`` | ``http``),
plus ``probe`` (what one sample is) and ``probes`` (samples per pair).

- :func:`static_document`: a square matrix from ``.json`` (a list of rows, or
  ``{"matrix": rows}``), ``.csv`` (rows of numbers; a first row of node names
  is allowed) or ``.npy`` (a 2-D array), with the node names of its rows and
  columns from a ``nodes.json`` (a list of names or of ``{"name", "ip"}``
  objects, or ``{"nodes": [...]}``). Not square, not matching the names,
  NaN/inf or negative entries raise one :class:`ConfigError` naming the file
  and the field.
- :func:`measure_ping`: pairwise, in parallel, the median of ``probes``
  samples per ordered pair, sent from each node's own address (the nodes'
  addresses must be local: the local cluster's loopback nodes). A sample is
  an ICMP echo by the ``ping`` binary when it is installed and allowed, else
  the time a TCP connect to the peer takes to be answered (SYN/ACK or RST:
  one RTT, no listener needed); the document's ``probe`` says which.
- :class:`ProbeServer` / :func:`measure_http`: Goldpinger-like. Every node
  runs ``krios latency serve`` (:class:`ProbeServer`); asked ``POST /check``,
  a server times ``GET /healthz`` on every peer over one kept-alive HTTP/1.1
  connection (one RTT plus the peer's answer time) and returns the medians;
  :func:`measure_http` asks every node and keeps the max of both directions.
- :func:`probe_row` / :func:`assemble_rows`: the same probes run ON each node
  (``krios latency probe --from NAME``: one row, that node to every other, in
  parallel over the targets) and the rows put together on the controller
  (``krios latency assemble``); what role ``krios_latency`` runs on a cluster.
  ``symmetric``: ``max`` (default) or ``mean`` of both directions, or ``none``.

All times are milliseconds of wall-clock (``time.perf_counter``) duration.
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import json
import re
import shutil
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from krios.errors import ConfigError
from krios.orbits.rtt import matrix_document

#: TCP port of ``krios latency serve`` (and the port a TCP-connect probe aims at).
DEFAULT_PORT = 9470
#: Samples per pair.
DEFAULT_PROBES = 5
#: Timeout of one sample, s.
DEFAULT_TIMEOUT_S = 2.0
#: Concurrent probes at most.
MAX_PARALLEL = 32
METHODS = ("ping", "http")
SOURCES = ("static", "measured")
MATRIX_SUFFIXES = (".json", ".csv", ".npy")


@dataclass(frozen=True)
class Endpoint:
    """A node to measure: its name, address (IPv4/IPv6 literal or host name) and probe port."""

    name: str
    ip: str | None = None
    port: int = DEFAULT_PORT

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "ip": self.ip, "port": self.port}


# -- documents ---------------------------------------------------------------------------------------
def document(rtt: Mapping[str, Mapping[str, float]], *, source: str, method: str,
             updated: float | None = None, **extra: Any) -> dict[str, Any]:
    """The ``krios-latency`` ``matrix.json`` document (ms) with ``source``/``method`` (and ``extra``) added."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}")
    doc = matrix_document(time.time() if updated is None else updated, rtt)
    doc.update(source=source, method=method, **extra)
    return doc


def rtt_of_array(matrix: np.ndarray, names: Sequence[str], decimals: int = 3) -> dict[str, dict[str, float]]:
    """``{from: {to: ms}}`` of a square array whose rows and columns are ``names``."""
    return {a: {b: round(float(matrix[i, j]), decimals) for j, b in enumerate(names)} for i, a in enumerate(names)}


# -- static files ----------------------------------------------------------------------------------------
def _read_json(path: Path, field: str) -> Any:
    """The JSON document in ``path``; an unreadable file or invalid JSON is one :class:`ConfigError`
    naming the file and ``field``."""
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", source=str(path), field=field) from None
    except ValueError as exc:
        raise ConfigError(f"invalid JSON: {exc}", source=str(path), field=field) from None


def load_nodes(path: str | Path, default_port: int = DEFAULT_PORT) -> list[Endpoint]:
    """The nodes of ``nodes.json``: a list of names or ``{"name", "ip"?, "port"?}`` objects (or ``{"nodes": ...}``;
    ``port`` defaults to ``default_port``).

    Raises :class:`ConfigError` naming the file and the entry.
    """
    path = Path(path)
    src = str(path)
    data = _read_json(path, "nodes")
    if isinstance(data, dict):
        data = data.get("nodes")
    if not isinstance(data, list) or not data:
        raise ConfigError("must be a non-empty list of node names or {name, ip} objects", source=src, field="nodes")
    out: list[Endpoint] = []
    for i, item in enumerate(data):
        where = f"nodes[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
            raise ConfigError("must be a node name or an object with a 'name'", source=src, field=where)
        ip = item.get("ip")
        if ip is not None and not isinstance(ip, str):
            raise ConfigError("'ip' must be a string", source=src, field=f"{where}.ip")
        port = item.get("port", default_port)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError("'port' must be an integer 1..65535", source=src, field=f"{where}.port")
        out.append(Endpoint(item["name"].strip(), ip, port))
    seen: set[str] = set()
    for i, ep in enumerate(out):
        if ep.name in seen:
            raise ConfigError(f"node {ep.name} listed twice", source=src, field=f"nodes[{i}]")
        seen.add(ep.name)
    return out


def _number(cell: Any, src: str, where: str) -> float:
    if isinstance(cell, bool) or cell is None:
        raise ConfigError("not a number (ms)", source=src, field=where)
    try:
        return float(cell)
    except (TypeError, ValueError):
        raise ConfigError(f"not a number (ms): {cell!r}", source=src, field=where) from None


def load_matrix(path: str | Path, names: Sequence[str] | None = None) -> np.ndarray:
    """A square matrix (ms) from ``.json``, ``.csv`` or ``.npy`` (see the module docstring).

    ``names``: the expected row/column names (a CSV header row must equal them).
    Raises :class:`ConfigError` naming the file and the field (``row 3``,
    ``[2][1]``, ``shape``) for anything that is not a finite, non-negative,
    square matrix of ``len(names)`` rows.
    """
    path = Path(path)
    src = str(path)
    suffix = path.suffix.lower()
    if suffix not in MATRIX_SUFFIXES:
        raise ConfigError(f"unknown matrix format (use {', '.join(MATRIX_SUFFIXES)})", source=src, field=path.suffix)
    rows: list[list[float]]
    try:
        if suffix == ".npy":
            try:
                arr = np.load(path, allow_pickle=False)
            except ValueError as exc:
                raise ConfigError(f"not a numeric .npy array: {exc}", source=src, field="array") from None
            if arr.ndim != 2:
                raise ConfigError(f"must be a 2-D array, got shape {arr.shape}", source=src, field="shape")
            if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
                raise ConfigError(f"must hold real numbers, got dtype {arr.dtype}", source=src, field="dtype")
            rows = arr.astype(float).tolist()
        elif suffix == ".json":
            try:
                data = json.loads(path.read_text())
            except ValueError as exc:
                raise ConfigError(f"invalid JSON: {exc}", source=src, field="matrix") from None
            if isinstance(data, dict):
                data = data.get("matrix")
            if not isinstance(data, list) or not all(isinstance(r, list) for r in data):
                raise ConfigError("must be a list of rows (lists of ms) or {\"matrix\": rows}", source=src,
                                  field="matrix")
            rows = [[_number(c, src, f"[{i}][{j}]") for j, c in enumerate(r)] for i, r in enumerate(data)]
        else:
            with path.open(newline="") as fh:
                raw = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
            if raw and names is not None and [c.strip() for c in raw[0]] == list(names):
                raw = raw[1:]  # a header row of node names
            elif raw and names is not None and not _numeric_row(raw[0]):
                raise ConfigError(f"header row {[c.strip() for c in raw[0]]} does not match the nodes "
                                  f"{list(names)}", source=src, field="row 1")
            rows = [[_number(c.strip(), src, f"row {i + 1} column {j + 1}") for j, c in enumerate(r)]
                    for i, r in enumerate(raw)]
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", source=src, field="matrix") from None
    n = len(rows)
    if n == 0:
        raise ConfigError("is empty", source=src, field="shape")
    for i, r in enumerate(rows):
        if len(r) != n:
            raise ConfigError(f"not square: row {i} has {len(r)} entries, the matrix {n} rows", source=src,
                              field="shape")
    if names is not None and n != len(names):
        raise ConfigError(f"{n}x{n} matrix but {len(names)} nodes", source=src, field="shape")
    m = np.array(rows, dtype=float)
    bad = np.argwhere(~np.isfinite(m))
    if len(bad):
        i, j = bad[0]
        raise ConfigError(f"not a finite number: {m[i, j]}", source=src, field=_cell(names, i, j))
    bad = np.argwhere(m < 0)
    if len(bad):
        i, j = bad[0]
        raise ConfigError(f"negative RTT {m[i, j]:g} ms", source=src, field=_cell(names, i, j))
    return m


def _numeric_row(row: Sequence[str]) -> bool:
    try:
        [float(c) for c in row]
    except ValueError:
        return False
    return True


def _cell(names: Sequence[str] | None, i: int, j: int) -> str:
    return f"[{i}][{j}]" + (f" ({names[i]} -> {names[j]})" if names is not None else "")


def check_known(names: Sequence[str], known_nodes: Iterable[str] | None, nodes_file: str | Path) -> None:
    """Every name is a node of the cluster (``known_nodes``; ``None``: no check; ``client`` is always
    allowed: the emulated ground client's row). Raises :class:`ConfigError` naming ``nodes[i]``."""
    if known_nodes is None:
        return
    known = set(known_nodes) | {"client"}
    for i, name in enumerate(names):
        if name not in known:
            raise ConfigError(f"unknown node {name} (the cluster has {len(known) - 1} nodes)",
                              source=str(nodes_file), field=f"nodes[{i}]")


def static_document(matrix_file: str | Path, nodes_file: str | Path,
                    known_nodes: Iterable[str] | None = None) -> dict[str, Any]:
    """The document of a static matrix file (``source: static``, ``method: file``).

    ``known_nodes``: the cluster's node names; a name in ``nodes_file`` not
    among them is an error naming ``nodes[i]`` (``client`` is always allowed:
    the emulated ground client's row).
    """
    nodes = load_nodes(nodes_file)
    names = [n.name for n in nodes]
    check_known(names, known_nodes, nodes_file)
    m = load_matrix(matrix_file, names)
    return document(rtt_of_array(m, names), source="static", method="file", file=str(matrix_file))


# -- ping ----------------------------------------------------------------------------------------------------
_PING_TIME = re.compile(r"time[=<]([0-9.]+)\s*ms")


def icmp_available(ping: str | None = None) -> bool:
    """The ``ping`` binary exists and may send ICMP echoes (tried once on 127.0.0.1)."""
    ping = ping or shutil.which("ping")
    if not ping:
        return False
    try:
        done = subprocess.run([ping, "-n", "-c", "1", "-W", "1", "127.0.0.1"], capture_output=True,
                              text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and bool(_PING_TIME.search(done.stdout))


def icmp_samples_ms(src: Endpoint, dst: Endpoint, probes: int, timeout_s: float) -> list[float]:
    """``probes`` ICMP echo RTTs (ms) from ``src``'s address to ``dst``'s by the ``ping`` binary."""
    cmd = ["ping", "-n", "-c", str(probes), "-i", "0.2", "-W", str(max(1, round(timeout_s))),
           *(["-I", src.ip] if src.ip else []), str(dst.ip)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=probes * (timeout_s + 0.5) + 5,
                              check=False)
    except subprocess.TimeoutExpired:
        return []
    return [float(x) for x in _PING_TIME.findall(done.stdout)]


def tcp_connect_ms(src: Endpoint, dst: Endpoint, timeout_s: float) -> float | None:
    """One TCP-connect RTT (ms) from ``src``'s address to ``dst``: SYN until SYN/ACK (or RST: a closed
    port answers too). ``None`` on timeout or an unreachable peer."""
    family = socket.AF_INET6 if ":" in str(dst.ip) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(timeout_s)
        if src.ip:
            try:
                s.bind((src.ip, 0))
            except OSError as exc:
                raise ConfigError(f"cannot send from {src.ip}: {exc.strerror} (ping probes from here need the "
                                  "nodes' addresses to be local; on remote nodes use --method http with "
                                  "`krios latency serve` on each)", source="--nodes", field=src.name) from None
        t0 = time.perf_counter()
        try:
            s.connect((dst.ip, dst.port))
        except ConnectionRefusedError:
            pass
        except OSError:
            return None
        return (time.perf_counter() - t0) * 1e3


def _median(samples: Sequence[float]) -> float:
    return float(statistics.median(samples)) if samples else float("nan")


def _pairs(n: int, symmetric: bool) -> list[tuple[int, int]]:
    return [(i, j) for i in range(n) for j in range(n) if i != j and (not symmetric or i < j)]


def _assemble(names: Sequence[str], samples: Mapping[tuple[int, int], float], symmetric: bool,
              combine: Callable[[float, float], float] = max) -> dict[str, dict[str, float]]:
    """``{from: {to: ms}}`` of per-pair medians; unanswered pairs are left out (a reader says "no RTT
    known"); ``symmetric`` mirrors a single direction or ``combine``s both."""
    n = len(names)
    m = np.full((n, n), np.nan)
    np.fill_diagonal(m, 0.0)
    for (i, j), v in samples.items():
        m[i, j] = v
    if symmetric:
        for i in range(n):
            for j in range(i + 1, n):
                a, b = m[i, j], m[j, i]
                v = b if np.isnan(a) else a if np.isnan(b) else combine(a, b)
                m[i, j] = m[j, i] = v
    return {a: {b: round(float(m[i, j]), 3) for j, b in enumerate(names) if not np.isnan(m[i, j])}
            for i, a in enumerate(names)}


def _ping_samples_ms(src: Endpoint, dst: Endpoint, probe: str, probes: int, timeout_s: float) -> list[float]:
    """``probes`` samples (ms) of one ordered pair: ICMP echoes (``probe`` ``icmp``) or TCP connects."""
    if probe == "icmp":
        return icmp_samples_ms(src, dst, probes, timeout_s)
    return [v for v in (tcp_connect_ms(src, dst, timeout_s) for _ in range(probes)) if v is not None]


def _resolve_probe(probe: str) -> str:
    if probe == "auto":
        return "icmp" if icmp_available() else "tcp"
    if probe not in ("icmp", "tcp"):
        raise ConfigError("must be icmp, tcp or auto", source="--probe", field=probe)
    if probe == "icmp" and not icmp_available():
        raise ConfigError("no ping binary here that may send ICMP echoes (install iputils-ping, or use "
                          "--probe tcp)", source="--probe", field=probe)
    return probe


def measure_ping(nodes: Sequence[Endpoint], *, probes: int = DEFAULT_PROBES, symmetric: bool = False,
                 timeout_s: float = DEFAULT_TIMEOUT_S, probe: str = "auto",
                 parallel: int = MAX_PARALLEL) -> dict[str, Any]:
    """Pairwise RTTs by ping (document with ``method: ping``, ``probe: icmp | tcp-connect``).

    ``probe``: ``icmp``, ``tcp`` or ``auto`` (ICMP when :func:`icmp_available`).
    With ``symmetric``, one direction per pair is measured and mirrored.
    Every node needs an ``ip``.
    """
    _need_ips(nodes)
    probe = _resolve_probe(probe)

    def one(pair: tuple[int, int]) -> tuple[tuple[int, int], float]:
        return pair, _median(_ping_samples_ms(nodes[pair[0]], nodes[pair[1]], probe, probes, timeout_s))

    pairs = _pairs(len(nodes), symmetric)
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(pairs)))) as pool:
        samples = {p: v for p, v in pool.map(one, pairs) if v == v}
    rtt = _assemble([n.name for n in nodes], samples, symmetric)
    return document(rtt, source="measured", method="ping", probe="icmp" if probe == "icmp" else "tcp-connect",
                    probes=probes, symmetric=symmetric, pairs=len(pairs), answered=len(samples))


def _need_ips(nodes: Sequence[Endpoint]) -> None:
    if len(nodes) < 2:
        raise ConfigError("need at least two nodes to measure", source="--nodes", field=str(len(nodes)))
    for n in nodes:
        if not n.ip:
            raise ConfigError("no address to probe (give 'ip' in the nodes file)", source="--nodes", field=n.name)


# -- the HTTP prober ---------------------------------------------------------------------------------------------
def http_samples_ms(src_ip: str | None, dst: Endpoint, probes: int, timeout_s: float) -> list[float]:
    """``probes`` durations (ms) of ``GET /healthz`` on ``dst`` over one kept-alive connection opened first
    (so a sample is one RTT plus the peer's answer time, no handshake)."""
    conn = http.client.HTTPConnection(str(dst.ip), dst.port, timeout=timeout_s,
                                      source_address=(src_ip, 0) if src_ip and src_ip != "0.0.0.0" else None)
    out: list[float] = []
    try:
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(probes):
            t0 = time.perf_counter()
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                out.append((time.perf_counter() - t0) * 1e3)
    except OSError:
        pass
    except http.client.HTTPException:
        pass
    finally:
        conn.close()
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall
    server: ProbeServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/healthz":
            self._send(404, {"error": "not found"})
            return
        if self.server.delay_s > 0:
            time.sleep(self.server.delay_s)
        self._send(200, {"name": self.server.name, "ok": True})

    def do_POST(self) -> None:
        if self.path.split("?")[0] != "/check":
            self._send(404, {"error": "not found"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            req = json.loads(self.rfile.read(length) or b"{}")
            targets = [Endpoint(t["name"], t["ip"], int(t.get("port", DEFAULT_PORT))) for t in req["targets"]]
            probes = max(1, min(int(req.get("probes", DEFAULT_PROBES)), 1000))
            timeout_s = float(req.get("timeout_s", DEFAULT_TIMEOUT_S))
        except (ValueError, KeyError, TypeError) as exc:
            self._send(400, {"error": f"bad request: {exc}"})
            return
        self._send(200, {"from": self.server.name, "rtt": self.server.check(targets, probes, timeout_s)})


class ProbeServer(ThreadingHTTPServer):
    """``krios latency serve``: ``GET /healthz`` answers (after ``delay_ms``, for tests), ``POST /check``
    ``{"targets": [{"name", "ip", "port"}], "probes": N}`` times every target from this server's address
    and answers ``{"from": name, "rtt": {target: median ms}}`` (unanswered targets left out)."""

    daemon_threads = True

    def __init__(self, name: str, host: str = "0.0.0.0", port: int = DEFAULT_PORT, *, delay_ms: float = 0.0):
        self.name = name
        self.host = host
        self.delay_s = max(0.0, delay_ms) / 1e3
        super().__init__((host, port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def check(self, targets: Sequence[Endpoint], probes: int, timeout_s: float) -> dict[str, float]:
        """Median ``/healthz`` time (ms) to every target but this server's node, probed in parallel."""
        others = [t for t in targets if t.name != self.name]
        if not others:
            return {}
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(others))) as pool:
            got = list(pool.map(lambda t: http_samples_ms(self.host, t, probes, timeout_s), others))
        return {t.name: round(_median(s), 3) for t, s in zip(others, got, strict=True) if s}

    @contextlib.contextmanager
    def running(self) -> Any:
        """Serve in a background thread for the ``with`` block (tests, in-process probers)."""
        thread = threading.Thread(target=self.serve_forever, name=f"krios-latency-{self.name}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.shutdown()
            thread.join()
            self.server_close()


def measure_http(nodes: Sequence[Endpoint], *, probes: int = DEFAULT_PROBES, symmetric: bool = True,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Ask every node's :class:`ProbeServer` to probe the others (in parallel); document with ``method: http``.

    ``symmetric`` (default): each pair gets the max of both directions (a pair
    one side could not reach keeps the other's figure); without, each row is
    what that node measured. Raises :class:`ConfigError` naming a node whose
    server does not answer.
    """
    _need_ips(nodes)
    targets = [n.as_json() for n in nodes]
    body = json.dumps({"targets": targets, "probes": probes, "timeout_s": timeout_s})

    def ask(node: Endpoint) -> dict[str, float]:
        budget = timeout_s * (probes + 1) * max(1, len(nodes) // MAX_PARALLEL + 1) + 5
        conn = http.client.HTTPConnection(str(node.ip), node.port, timeout=budget)
        try:
            conn.request("POST", "/check", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = json.loads(resp.read() or b"{}")
            if resp.status != 200:
                raise ConfigError(f"prober answered HTTP {resp.status}: {data.get('error')}", source="--nodes",
                                  field=node.name)
            return {str(k): float(v) for k, v in (data.get("rtt") or {}).items()}
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise ConfigError(f"no `krios latency serve` answering at {node.ip}:{node.port} ({exc})",
                              source="--nodes", field=node.name) from None
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(nodes))) as pool:
        rows = list(pool.map(ask, nodes))
    index = {n.name: i for i, n in enumerate(nodes)}
    samples = {(i, index[b]): v for i, row in enumerate(rows) for b, v in row.items() if b in index}
    rtt = _assemble([n.name for n in nodes], samples, symmetric)
    return document(rtt, source="measured", method="http", probe="http-get", probes=probes, symmetric=symmetric,
                    pairs=len(nodes) * (len(nodes) - 1), answered=len(samples))


# -- rows: each node probes the others; the controller assembles ---------------------------------------------------
#: ``kind`` of a row document (one node's RTTs to every other node).
ROW_KIND = "krios-latency-row"
#: How ``assemble_rows`` makes a pair's two directions one figure.
SYMMETRIC = ("max", "mean", "none")
_PROBE_LABELS = {"icmp": "icmp", "tcp": "tcp-connect"}


def probe_row(nodes: Sequence[Endpoint], source: str, *, method: str = "ping", probes: int = DEFAULT_PROBES,
              timeout_s: float = DEFAULT_TIMEOUT_S, probe: str = "auto",
              parallel: int = MAX_PARALLEL) -> dict[str, Any]:
    """One row, measured on THIS host, the node ``source``: the median RTT (ms) to every other node.

    ``method`` ``ping``: ``probes`` ICMP echoes by the ``ping`` binary (``probe``
    ``icmp``, or ``auto`` when :func:`icmp_available`) or TCP connects
    (``tcp``), sent along this host's own route to each target's address.
    ``http``: ``probes`` ``GET /healthz`` on each target's ``krios latency
    serve`` (one kept-alive connection). The targets are probed in parallel (at
    most ``parallel`` at once). Returns ``{"kind": "krios-latency-row", "from",
    "method", "probe", "probes", "unit": "ms", "updated" (unix s), "rtt": {to:
    ms}, "unanswered": [to, ...]}``.
    """
    _need_ips(nodes)
    names = [n.name for n in nodes]
    if source not in names:
        raise ConfigError(f"not a node of the nodes file ({', '.join(names)})", source="--from", field=source)
    if probes < 1:
        raise ConfigError("must be at least 1", source="--probes", field=str(probes))
    others = [n for n in nodes if n.name != source]
    me = Endpoint(source)  # no source address: this host's route to each target decides
    if method == "ping":
        kind = _resolve_probe(probe)
        label = _PROBE_LABELS[kind]

        def sample(target: Endpoint) -> list[float]:
            return _ping_samples_ms(me, target, kind, probes, timeout_s)
    elif method == "http":
        label = "http-get"

        def sample(target: Endpoint) -> list[float]:
            return http_samples_ms(None, target, probes, timeout_s)
    else:
        raise ConfigError(f"must be one of {', '.join(METHODS)}", source="--method", field=method)
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(others)))) as pool:
        got = list(pool.map(sample, others))
    return {"kind": ROW_KIND, "from": source, "method": method, "probe": label, "probes": probes, "unit": "ms",
            "updated": time.time(),
            "rtt": {t.name: round(_median(s), 3) for t, s in zip(others, got, strict=True) if s},
            "unanswered": [t.name for t, s in zip(others, got, strict=True) if not s]}


def _load_row(path: Path, index: Mapping[str, int]) -> dict[str, Any]:
    """A row document, checked: one :class:`ConfigError` naming the file and the field."""
    src = str(path)
    row = _read_json(path, "row")
    if not isinstance(row, dict) or row.get("kind") != ROW_KIND:
        raise ConfigError(f"not a row of `krios latency probe` (kind must be {ROW_KIND})", source=src, field="kind")
    if row.get("from") not in index:
        raise ConfigError(f"{row.get('from')!r} is not a node of the nodes file", source=src, field="from")
    for key in ("method", "probe"):
        if not isinstance(row.get(key), str):
            raise ConfigError("missing", source=src, field=key)
    probes = row.get("probes")
    if isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
        raise ConfigError(f"must be an integer >= 1, got {probes!r}", source=src, field="probes")
    rtt = row.get("rtt")
    if not isinstance(rtt, dict):
        raise ConfigError("must be an object {node: ms}", source=src, field="rtt")
    for to, ms in rtt.items():
        if to not in index:
            raise ConfigError(f"unknown node {to!r} (not in the nodes file)", source=src, field=f"rtt.{to}")
        value = _number(ms, src, f"rtt.{to}")
        if not np.isfinite(value) or value < 0:
            raise ConfigError(f"not a finite, non-negative RTT (ms): {ms!r}", source=src, field=f"rtt.{to}")
    return row


def assemble_rows(row_files: Sequence[str | Path], nodes_file: str | Path, *, symmetric: str = "max",
                  known_nodes: Iterable[str] | None = None) -> dict[str, Any]:
    """The ``krios-latency`` document (``source: measured``) of one row per node of ``nodes_file``.

    ``symmetric``: ``max`` (default; a delay bound then holds whichever side
    measured) or ``mean`` of both directions of a pair, or ``none`` (each row
    as measured). A pair only one side answered keeps that side's figure;
    a pair neither answered is left out ("no RTT known" to the readers).
    ``known_nodes``: the cluster's node names (see :func:`check_known`).
    Raises :class:`ConfigError` naming the file and the field: a row that is
    not one, from a node not in the nodes file or twice, an unknown target, a
    negative or non-finite RTT, rows of different methods or probes, a node
    without a row.
    """
    if symmetric not in SYMMETRIC:
        raise ConfigError(f"must be one of {', '.join(SYMMETRIC)}", source="--symmetric", field=symmetric)
    nodes = load_nodes(nodes_file)
    names = [n.name for n in nodes]
    check_known(names, known_nodes, nodes_file)
    index = {name: i for i, name in enumerate(names)}
    rows: dict[str, tuple[Path, dict[str, Any]]] = {}
    for f in row_files:
        path = Path(f)
        row = _load_row(path, index)
        name = row["from"]
        if name in rows:
            raise ConfigError(f"a second row from {name} (the first: {rows[name][0]})", source=str(path),
                              field="from")
        if rows:
            first_path, first = next(iter(rows.values()))
            for key in ("method", "probe"):
                if row[key] != first[key]:
                    raise ConfigError(f"{row[key]} but {first_path} has {first[key]}: rows of one matrix are "
                                      "measured one way", source=str(path), field=key)
        rows[name] = (path, row)
    for i, name in enumerate(names):
        if name not in rows:
            raise ConfigError(f"no row from node {name} among the {len(rows)} row files", source=str(nodes_file),
                              field=f"nodes[{i}]")
    samples = {(index[a], index[b]): float(ms) for a, (_, row) in rows.items() for b, ms in row["rtt"].items()
               if a != b}
    combine: Callable[[float, float], float] = max if symmetric == "max" else (lambda a, b: (a + b) / 2)
    rtt = _assemble(names, samples, symmetric != "none", combine)
    first = next(iter(rows.values()))[1]
    probes = max(int(r["probes"]) for _, r in rows.values())
    return document(rtt, source="measured", method=first["method"], probe=first["probe"], probes=probes,
                    symmetric=symmetric != "none", combine=symmetric, pairs=len(names) * (len(names) - 1),
                    answered=len(samples), measured_on="nodes")
