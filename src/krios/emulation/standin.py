"""A local stand-in for the app's NodePort on virtual nodes.

Virtual nodes run no containers, so nothing would answer the client. The
stand-in plays the app's Service: one HTTP server per virtual node, bound to
that node's InternalIP (``127.0.1.<i+1>``, loopback only) on the NodePort,
answering **only while a Ready app pod is bound to that node** (otherwise
503). A handover is therefore visible to the client exactly as the pods move.

A ``GET`` answers ``200`` with JSON ``{"node", "pod", "sat_id"}`` and the
header ``X-Krios-Node``. With ``inject_rtt`` it first sleeps the client RTT
the emulator published for that node (``krios-latency``), an application-level
substitute for ``tc netem`` on kernels that lack it.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from krios.emulation.appview import ClusterView
from krios.errors import ConfigError

log = logging.getLogger(__name__)

NODE_HEADER = "X-Krios-Node"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], node: str, standin: StandIn):
        self.node = node
        self.standin = standin
        super().__init__(addr, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet: the client records requests
        log.debug("%s %s", self.server.node, fmt % args)

    def do_GET(self) -> None:
        standin = self.server.standin
        node = self.server.node
        snap = standin.view.snapshot
        pod = snap.pods.get(node)
        if pod is None:
            self._send(503, {"node": node, "error": "no Ready app pod on this node"})
            return
        if standin.inject_rtt:
            delay = snap.client_rtt_ms.get(node, 0.0)
            if delay > 0:
                time.sleep(delay / 1000.0)
        standin.served[node] = standin.served.get(node, 0) + 1
        self._send(200, {"node": node, "pod": pod, "sat_id": snap.sat_ids.get(node)})

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header(NODE_HEADER, self.server.node)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True


def node_port(api: Any, service: str, namespace: str) -> int:
    """The first ``nodePort`` of Service ``namespace/service`` (``api``: a ``RawClient`` or an ``ApiClient``)."""
    from krios.kube.client import as_client, get_or_none, resource_path

    svc = get_or_none(as_client(api), resource_path("services", namespace, service))
    if svc is None:
        raise ConfigError("no such Service", source="--service", field=f"{namespace}/{service}")
    for p in (svc.get("spec") or {}).get("ports") or []:
        if p.get("nodePort"):
            return int(p["nodePort"])
    raise ConfigError("the Service has no nodePort", source="--service", field=f"{namespace}/{service}")


class StandIn:
    """HTTP servers on ``port`` of each node's loopback InternalIP, answering while the node serves.

    ``nodes``: node names to serve (default: every node with a loopback
    InternalIP other than the control plane's 127.0.0.1).
    """

    def __init__(self, view: ClusterView, port: int, *, nodes: list[str] | None = None, inject_rtt: bool = False):
        self.view = view
        self.port = port
        self.nodes = nodes
        self.inject_rtt = inject_rtt
        self.served: dict[str, int] = {}
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> StandIn:
        if self.view._thread is None:
            self.view.start()
        ips = self.view.snapshot.node_ips
        names = self.nodes or sorted(n for n, ip in ips.items() if ip != "127.0.0.1")
        for node in names:
            ip = ips.get(node)
            if ip is None:
                raise ConfigError("node has no InternalIP (or does not exist)", source="--nodes", field=node)
            if not ipaddress.ip_address(ip).is_loopback:
                raise ConfigError(f"InternalIP {ip} is not a loopback address; the stand-in only serves "
                                  "virtual nodes", source="node", field=node)  # fmt: skip
            try:
                server = _Server((ip, self.port), node, self)
            except OSError as exc:
                self.stop()
                raise ConfigError(f"cannot listen on {ip}:{self.port}: {exc.strerror}", source="node",
                                  field=node) from exc  # fmt: skip
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                      name=f"standin-{node}", daemon=True)  # fmt: skip
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
            log.info("stand-in for %s listening on http://%s:%d/", node, ip, self.port)
        return self

    @property
    def addresses(self) -> dict[str, str]:
        """node -> ``http://ip:port/``."""
        return {s.node: f"http://{s.server_address[0]}:{s.server_address[1]}/" for s in self._servers}

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
        self.view.stop()

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
