"""What the client and the stand-in app need to know about the cluster, refreshed in the background.

:class:`ClusterView` polls the API server (every ``refresh_s`` wall seconds) for

- the app's pods (label selector, by default ``leozone=<zone>``): which nodes
  have a Ready app pod (*serving*). During a handover two copies are Ready;
  the one whose node's satellite is in the zone (emulator mapping) comes
  first, and among those the newest, so traffic moves to the successor as soon
  as it can serve, before the old copy is deleted;
- the nodes' InternalIP addresses;
- the emulator's mapping (ConfigMap ``krios-emulator``, key ``mapping.json``):
  the satellite each node emulates;
- the latency matrix (ConfigMap ``krios-latency``, key ``matrix.json``).

Reads that fail (API restarting) keep the last snapshot; the view never
raises into its users. Snapshots are immutable, so threads can share them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from krios.kube.client import RawClient, as_client, configmap_value, list_items, node_path, pod_path
from krios.kube.names import LATENCY_CONFIGMAP, LATENCY_KEY, MAPPING_CONFIGMAP, MAPPING_KEY, SYSTEM_NAMESPACE
from krios.kube.objects import name_of, node_internal_ip, pod_node, pod_ready_since

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """The cluster as last seen (wall-clock ``taken_at``, unix s)."""

    taken_at: float = 0.0
    serving: tuple[str, ...] = ()  # nodes with a Ready app pod, best first (see the module docs)
    pods: dict[str, str] = field(default_factory=dict)  # node -> Ready app pod name
    node_ips: dict[str, str] = field(default_factory=dict)  # node -> InternalIP
    sat_ids: dict[str, int] = field(default_factory=dict)  # node -> sat_id (emulator mapping)
    client_rtt_ms: dict[str, float] = field(default_factory=dict)  # node -> RTT from the client, ms
    api_ok: bool = False

    @property
    def serving_node(self) -> str | None:
        return self.serving[0] if self.serving else None


def serving_nodes(pods: list[dict[str, Any]],
                  in_zone: Mapping[str, bool] | None = None) -> tuple[tuple[str, ...], dict[str, str]]:
    """Nodes with a Ready pod among ``pods`` and the pod on each.

    Order: nodes whose satellite is in the zone (``in_zone``; unknown counts as
    in) first, then the most recently Ready first.
    """
    ready: list[tuple[float, str, str]] = []
    for pod in pods:
        since = pod_ready_since(pod)
        if since is not None:
            ready.append((since, pod_node(pod), name_of(pod)))
    zone = in_zone or {}
    ready.sort(key=lambda r: (not zone.get(r[1], True), -r[0], r[1]))
    order: list[str] = []
    names: dict[str, str] = {}
    for _since, node, name in ready:
        if node not in names:
            order.append(node)
            names[node] = name
    return tuple(order), names


def _configmap_json(client: RawClient, name: str, key: str) -> dict[str, Any] | None:
    text = configmap_value(client, SYSTEM_NAMESPACE, name, key)
    try:
        return json.loads(text or "null")
    except ValueError:
        log.warning("ConfigMap %s/%s key %s is not JSON", SYSTEM_NAMESPACE, name, key)
        return None


def read_snapshot(api: Any, selector: str, namespace: str | None = None) -> Snapshot:
    """One :class:`Snapshot` read now (raises the API's exceptions).

    ``api``: a :class:`krios.kube.client.RawClient` (or an ``ApiClient``).
    """
    client = as_client(api)
    pods = list_items(client, pod_path(namespace or None), label_selector=selector)
    ips = {name_of(n): ip for n in list_items(client, node_path()) if (ip := node_internal_ip(n))}
    sat_ids: dict[str, int] = {}
    in_zone: dict[str, bool] = {}
    mapping = _configmap_json(client, MAPPING_CONFIGMAP, MAPPING_KEY) or {}
    for node, entry in (mapping.get("nodes") or {}).items():
        if isinstance(entry, dict) and entry.get("sat_id") is not None:
            sat_ids[node] = int(entry["sat_id"])
            in_zone[node] = bool(entry.get("in_zone", True))
    serving, names = serving_nodes(pods, in_zone)
    matrix = _configmap_json(client, LATENCY_CONFIGMAP, LATENCY_KEY) or {}
    rtt = {k: float(v) for k, v in ((matrix.get("rtt") or {}).get("client") or {}).items()}
    return Snapshot(time.time(), serving, names, ips, sat_ids, rtt, True)


class ClusterView:
    """A background poller keeping the latest :class:`Snapshot`.

    ``selector`` picks the app's pods (e.g. ``leozone=37.7749_-122.4194``);
    ``namespace`` limits the search (default: all namespaces).
    """

    def __init__(self, api: Any, selector: str, *, namespace: str | None = None, refresh_s: float = 0.2):
        self.client = as_client(api)  # a RawClient, or an ApiClient to make one of
        self.selector = selector
        self.namespace = namespace
        self.refresh_s = refresh_s
        self._snap = Snapshot()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Any] = []

    @property
    def snapshot(self) -> Snapshot:
        return self._snap

    def on_update(self, fn: Any) -> None:
        """Call ``fn(snapshot)`` (in the poller thread) after every successful refresh."""
        self._listeners.append(fn)

    def refresh(self) -> Snapshot:
        """Read a snapshot now; on API errors keep the last one (marked ``api_ok=False``)."""
        try:
            snap = read_snapshot(self.client, self.selector, self.namespace)
        except Exception as exc:  # API down or restarting: keep serving the last view
            log.debug("cluster view refresh failed: %s", exc)
            old = self._snap
            self._snap = Snapshot(old.taken_at, old.serving, old.pods, old.node_ips, old.sat_ids,
                                  old.client_rtt_ms, False)  # fmt: skip
            return self._snap
        self._snap = snap
        for fn in self._listeners:
            try:
                fn(snap)
            except Exception:
                log.exception("cluster view listener failed")
        return snap

    def start(self) -> ClusterView:
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="krios-cluster-view", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh_s):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
