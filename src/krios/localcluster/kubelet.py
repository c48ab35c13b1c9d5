"""The virtual kubelet: Ready nodes and Running pods without containers (KWOK-style).

One process serves every node labelled ``krios.dev/virtual-kubelet=true``:

* at start it creates the workers ``krios-worker-<i>`` and control-plane nodes
  ``krios-control-<i>`` it was asked for (existing ones are kept);
* it watches those nodes and makes each Ready (capacity, addresses, nodeInfo,
  ``Ready=True``), then removes the ``node.kubernetes.io/not-ready`` taint that
  admission puts on every new node; nodes created later with the label (e.g.
  by :meth:`krios.localcluster.LocalCluster.add_nodes`) are served the same way;
* it renews every node's Lease in ``kube-node-lease`` (every 10 s, 40 s lease);
* it watches bound pods (``spec.nodeName!=``) and, for those on its nodes,
  after ``ready_delay_s`` plus a uniform ``[0, jitter_s)`` draw sets them
  Running and Ready (conditions, hostIP/podIP = node address, startTime,
  containerStatuses); a pod with a ``deletionTimestamp`` is deleted with grace
  period 0, which completes a graceful deletion as a kubelet would;
* its watches resume from the last resourceVersion after an apiserver restart,
  relist on 410, and every failed write is retried with backoff until the pod
  is gone, so no pod is left behind.

Run: ``python -m krios.localcluster.kubelet --kubeconfig K --state-dir D --workers N``.
Each second it writes ``<state-dir>/virtual-kubelet.json`` (counts and whether
the apiserver answered) for ``krios cluster status``.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import logging
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import urllib3
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from krios.kube.client import API_ERRORS, RawClient, create_or_exists, lease_path, node_path, pod_path
from krios.kube.config import client_with_pool, load_client
from krios.kube.names import NODE_LEASE_NAMESPACE, VIRTUAL_KUBELET_LABEL
from krios.kube.objects import micro_time, node_ready, pod_running_ready
from krios.kube.reflector import Reflector, backoff_s
from krios.localcluster import nodes as vn
from krios.localcluster import process
from krios.localcluster.state import HEARTBEAT

log = logging.getLogger(__name__)

LEASE_NS = NODE_LEASE_NAMESPACE
TIMEOUT_S = 10

Obj = dict[str, Any]


class VirtualKubelet:
    """Serve virtual nodes and their pods through ``api`` until :meth:`run`'s ``stop`` is set.

    Parameters
    ----------
    api:
        Client for the cluster's apiserver.
    workers, control_plane_nodes:
        Nodes to create at start (``krios-worker-<i>``, ``krios-control-<i>``).
    ready_delay_s, jitter_s:
        A bound pod turns Running/Ready ``ready_delay_s + U[0, jitter_s)`` seconds
        after the kubelet sees it.
    capacity:
        Node capacity and allocatable (``cpu``, ``memory``, ``pods``, ...).
    heartbeat_path:
        File rewritten every second with the kubelet's counters.
    """

    def __init__(
        self,
        api: ApiClient | RawClient,
        *,
        workers: int = 0,
        control_plane_nodes: int = 0,
        ready_delay_s: float = 1.0,
        jitter_s: float = 0.0,
        capacity: dict[str, str] | None = None,
        heartbeat_path: Path | None = None,
        lease_interval_s: float = 10.0,
        lease_duration_s: int = 40,
        threads: int = 4,
        seed: int | None = None,
    ):
        self.client = api if isinstance(api, RawClient) else RawClient(api, qps=0, burst=1, timeout=(5, TIMEOUT_S))
        self.initial = [vn.control_name(i) for i in range(control_plane_nodes)]
        self.initial += [vn.worker_name(i) for i in range(workers)]
        self.ready_delay_s = ready_delay_s
        self.jitter_s = jitter_s
        self.capacity = capacity or dict(vn.DEFAULT_CAPACITY)
        self.heartbeat_path = heartbeat_path
        self.lease_interval_s = lease_interval_s
        self.lease_duration_s = lease_duration_s
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.nodes: dict[str, Obj] = {}  # served node name -> {"ip", "uid"}
        self.pods: dict[str, Obj] = {}  # uid -> latest pod (pods on served nodes)
        self.orphans: dict[str, dict[str, Obj]] = {}  # node not (yet) served -> uid -> pod
        self.inflight: dict[str, str] = {}  # uid -> "ready" | "delete"; "node/<name>" -> "node"
        self.done: set[str] = set()  # uids we made Running
        self._lease_due: dict[str, float] = {}  # node -> monotonic time its lease is due
        self.stats: Counter[str] = Counter()
        self.api_ok = False
        self.api_detail = "starting"
        self.connected_once = False
        self._heap: list[tuple[float, int, Callable[..., None], tuple, int]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="vkubelet")
        self.stop = threading.Event()

    # ----------------------------------------------------------------- running
    def run(self, stop: threading.Event | None = None) -> None:
        """Serve until ``stop`` (or ``self.stop``) is set."""
        if stop is not None:
            self.stop = stop
        node_reflector = Reflector(
            self.client, node_path(), name="nodes", on_sync=self._sync_nodes, on_event=self._on_node,
            label_selector=f"{VIRTUAL_KUBELET_LABEL}=true", on_health=self._health, watch_timeout_s=120,
        )
        pod_reflector = Reflector(
            self.client, pod_path(None), name="pods", on_sync=self._sync_pods, on_event=self._on_pod,
            field_selector="spec.nodeName!=", on_health=self._health, watch_timeout_s=120,
        )
        threads = [(self._register, ()), (self._timer_loop, ()),
                   (node_reflector.run, (self.stop,)), (pod_reflector.run, (self.stop,))]
        for target, args in threads:
            threading.Thread(target=target, args=args, name=getattr(target, "__name__", "vk"), daemon=True).start()
        while not self.stop.is_set():
            self._renew_leases()
            self._write_heartbeat()
            self.stop.wait(1.0)
        with self._cv:
            self._cv.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _health(self, ok: bool, detail: str) -> None:
        self.api_ok, self.api_detail = ok, detail
        self.connected_once = self.connected_once or ok

    # ------------------------------------------------------------ work queue
    def _schedule(self, delay_s: float, fn: Callable[..., None], *args: Any, attempt: int = 0) -> None:
        with self._cv:
            heapq.heappush(self._heap, (time.monotonic() + delay_s, next(self._seq), fn, args, attempt))
            self._cv.notify()

    def _timer_loop(self) -> None:
        while not self.stop.is_set():
            with self._cv:
                now = time.monotonic()
                due = []
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap))
                if not due:
                    wait = self._heap[0][0] - now if self._heap else 1.0
                    self._cv.wait(min(wait, 1.0))
                    continue
            for _, _, fn, args, attempt in due:
                self._pool.submit(self._attempt, fn, args, attempt)

    def _attempt(self, fn: Callable[..., None], args: tuple, attempt: int) -> None:
        """Run one unit of work; on any failure retry it later (0.2 s doubling to 5 s)."""
        try:
            fn(*args)
            self._health(True, "")
            return
        except ApiException as err:
            if err.status == 409:  # a conflict: retried soon with fresh data
                log.debug("%s%s: conflict", fn.__name__, args)
            else:
                level = logging.WARNING if self.connected_once else logging.DEBUG  # quiet while it starts
                log.log(level, "%s%s: API error %s %s", fn.__name__, args, err.status, err.reason)
                self._health(False, f"HTTP {err.status}")
        except (urllib3.exceptions.HTTPError, OSError) as err:
            self._health(False, type(err).__name__)
            log.debug("%s%s: %s", fn.__name__, args, err)
        except Exception:
            log.exception("%s%s failed", fn.__name__, args)
        self.stats["retries"] += 1
        # Failures while the apiserver is still starting do not count towards the backoff.
        attempt = attempt + 1 if self.connected_once else 0
        self._schedule(backoff_s(attempt - 1, self.connected_once), fn, *args, attempt=attempt)

    # ----------------------------------------------------------------- nodes
    def _register(self) -> None:
        """Create the initial nodes (existing ones are left as they are)."""
        for name in self.initial:
            control = name.startswith("krios-control-")
            body = vn.node_manifest(name, vn.ip_for_name(name) or "127.0.0.1", control=control)
            self._schedule(0.0, self._create_node, body)

    def _create_node(self, body: Obj) -> None:
        if create_or_exists(self.client, node_path(), body):
            log.info("registered node %s", body["metadata"]["name"])

    def _sync_nodes(self, items: list[Obj]) -> None:
        names = {n["metadata"]["name"] for n in items}
        with self.lock:
            for gone in set(self.nodes) - names:
                del self.nodes[gone]
        for node in items:
            self._on_node("SYNC", node)

    def _on_node(self, kind: str, node: Obj) -> None:
        name = node["metadata"]["name"]
        key = f"node/{name}"
        with self.lock:
            if kind == "DELETED":
                self.nodes.pop(name, None)
                return
            self.nodes[name] = {"ip": vn.node_ip(node), "uid": node["metadata"]["uid"]}
            for pod in self.orphans.pop(name, {}).values():
                self._consider(pod)
            need = not vn.node_is_ready(node) and key not in self.inflight
            if need:
                self.inflight[key] = "node"
        if need:
            self._schedule(0.0, self._ready_node, name)

    def _ready_node(self, name: str) -> None:
        """Post a Ready status, then drop the not-ready taints (optimistic concurrency)."""
        key = f"node/{name}"
        try:
            node = self.client.get(node_path(name))
        except ApiException as err:
            if err.status != 404:
                raise
            with self.lock:
                self.inflight.pop(key, None)
            return
        ip = vn.node_ip(node)
        if not node_ready(node):
            body = vn.node_status(name, ip, time.time(), self.capacity)
            node = self.client.patch(node_path(name, "status"), body, merge=False)
        taints = (node.get("spec") or {}).get("taints") or []
        keep = [t for t in taints if t.get("key") not in vn.NOT_READY_TAINTS]
        if len(keep) != len(taints):
            # resourceVersion makes this conditional: a concurrent taint change gives 409 and a retry.
            body = {"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]}, "spec": {"taints": keep}}
            self.client.patch(node_path(name), body)
        with self.lock:
            self.inflight.pop(key, None)
            self._lease_due.setdefault(name, 0.0)  # first lease right away
        self.stats["nodes_readied"] += 1
        log.info("node %s Ready at %s", name, ip)

    def _renew_leases(self) -> None:
        """Renew the leases that are due (each node every ``lease_interval_s``, new ones at once)."""
        now = time.monotonic()
        with self.lock:
            for gone in set(self._lease_due) - set(self.nodes):
                del self._lease_due[gone]
            for name in self.nodes:
                self._lease_due.setdefault(name, now)
            due = [(name, self.nodes[name]["uid"]) for name, t in self._lease_due.items() if t <= now]
        for name, uid in due:
            try:
                self._renew_lease(name, uid)
            except API_ERRORS as err:
                log.warning("lease renewal failed (%s); next try in 1 s", err)
                return  # the apiserver is away: do not hammer it once per node
            with self.lock:
                if name in self._lease_due:
                    self._lease_due[name] = now + self.lease_interval_s
            self.stats["lease_renewals"] += 1
            self._health(True, "")

    def _renew_lease(self, name: str, uid: str) -> None:
        spec = {
            "holderIdentity": name,
            "leaseDurationSeconds": self.lease_duration_s,
            "renewTime": micro_time(time.time()),
        }
        try:
            self.client.patch(lease_path(LEASE_NS, name), {"spec": spec}, timeout=5)
        except ApiException as err:
            if err.status != 404:
                raise
            owner = {"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": name, "namespace": LEASE_NS, "ownerReferences": [owner]}, "spec": spec}
            self.client.post(lease_path(LEASE_NS), body, timeout=5)

    # ------------------------------------------------------------------ pods
    def _sync_pods(self, items: list[Obj]) -> None:
        uids = {p["metadata"]["uid"] for p in items}
        with self.lock:
            for uid in set(self.pods) - uids:
                self._forget(uid)
            self.done &= uids
            for pods in self.orphans.values():
                for uid in set(pods) - uids:
                    del pods[uid]
            for pod in items:
                self._place(pod)

    def _on_pod(self, kind: str, pod: Obj) -> None:
        with self.lock:
            if kind == "DELETED":
                self._forget(pod["metadata"]["uid"])
                self.orphans.get(pod["spec"].get("nodeName", ""), {}).pop(pod["metadata"]["uid"], None)
                return
            self._place(pod)

    def _forget(self, uid: str) -> None:
        self.pods.pop(uid, None)
        self.inflight.pop(uid, None)
        self.done.discard(uid)

    def _place(self, pod: Obj) -> None:
        """(lock held) Serve the pod if its node is ours, else park it until the node shows up."""
        node = pod["spec"].get("nodeName", "")
        if node in self.nodes:
            self._consider(pod)
        else:
            self.orphans.setdefault(node, {})[pod["metadata"]["uid"]] = pod

    def _consider(self, pod: Obj) -> None:
        """(lock held) Decide what a pod on one of our nodes needs next."""
        uid = pod["metadata"]["uid"]
        self.pods[uid] = pod
        if pod["metadata"].get("deletionTimestamp"):
            if self.inflight.get(uid) != "delete":
                self.inflight[uid] = "delete"
                self._schedule(0.0, self._finish_deletion, uid)
            return
        if uid in self.inflight or uid in self.done:
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed") or pod_running_ready(pod):
            self.done.add(uid)
            return
        self.inflight[uid] = "ready"
        delay = self.ready_delay_s + (self.rng.uniform(0.0, self.jitter_s) if self.jitter_s > 0 else 0.0)
        self._schedule(delay, self._make_running, uid)

    def _make_running(self, uid: str) -> None:
        with self.lock:
            pod = self.pods.get(uid)
            if pod is None or self.inflight.get(uid) != "ready":
                return
            node = self.nodes.get(pod["spec"]["nodeName"])
            ip = node["ip"] if node else "127.0.0.1"
        meta = pod["metadata"]
        body = vn.pod_running_status(pod, ip, time.time())
        try:
            self.client.patch(pod_path(meta["namespace"], meta["name"], "status"), body, merge=False)
            self.stats["pods_running"] += 1
        except ApiException as err:
            if err.status not in (404, 409, 422):
                raise
            # 404: deleted meanwhile; 409/422: a new pod of the same name (uid differs) -- or a bad patch.
            level = logging.WARNING if err.status == 422 else logging.INFO
            log.log(level, "pod %s/%s not made Running: %s %s %s", meta["namespace"], meta["name"],
                    err.status, err.reason, (err.body or "")[:300])
        with self.lock:
            if self.inflight.get(uid) == "ready":
                del self.inflight[uid]
                self.done.add(uid)

    def _finish_deletion(self, uid: str) -> None:
        with self.lock:
            pod = self.pods.get(uid)
            if pod is None or self.inflight.get(uid) != "delete":
                return
        meta = pod["metadata"]
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        try:
            self.client.delete(pod_path(meta["namespace"], meta["name"]), body)
            self.stats["pods_deleted"] += 1
        except ApiException as err:
            if err.status not in (404, 409):
                raise
        with self.lock:
            if self.inflight.get(uid) == "delete":
                del self.inflight[uid]

    # ------------------------------------------------------------- heartbeat
    def snapshot(self) -> dict[str, Any]:
        """Counters for ``krios cluster status`` (also written to the heartbeat file)."""
        with self.lock:
            pending = sum(1 for v in self.inflight.values() if v == "ready")
            return {
                "pid": os.getpid(),
                "time": time.time(),
                "api_ok": self.api_ok,
                "api_detail": self.api_detail,
                "nodes": len(self.nodes),
                "pods": len(self.pods),
                "pods_pending": pending,
                **dict(self.stats),
            }

    def _write_heartbeat(self) -> None:
        if self.heartbeat_path is None:
            return
        tmp = self.heartbeat_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.snapshot()))
        os.replace(tmp, self.heartbeat_path)


def _parse_capacity(text: str) -> dict[str, str]:
    cap = dict(vn.DEFAULT_CAPACITY)
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        cap[key.strip()] = value.strip()
    return cap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m krios.localcluster.kubelet", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--state-dir", type=Path, help="where to write the heartbeat file")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--control-plane-nodes", type=int, default=0)
    parser.add_argument("--ready-delay-s", type=float, default=1.0)
    parser.add_argument("--jitter-s", type=float, default=0.0)
    parser.add_argument("--capacity", default="", help="e.g. cpu=8,memory=32Gi,pods=250")
    parser.add_argument("--lease-interval-s", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--owner-pid", type=int, help="take the cluster down once this process is gone")
    parser.add_argument("--owner-ticks", type=int, help="start time of --owner-pid (/proc/<pid>/stat)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s",
    )
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    kubelet = VirtualKubelet(
        client_with_pool(load_client(args.kubeconfig), args.threads + 4),
        workers=args.workers,
        control_plane_nodes=args.control_plane_nodes,
        ready_delay_s=args.ready_delay_s,
        jitter_s=args.jitter_s,
        capacity=_parse_capacity(args.capacity),
        heartbeat_path=args.state_dir / HEARTBEAT if args.state_dir else None,
        lease_interval_s=args.lease_interval_s,
        threads=args.threads,
        seed=args.seed,
    )
    stop = threading.Event()
    owner_gone = threading.Event()
    if args.owner_pid:
        threading.Thread(target=_watch_owner, args=(args.owner_pid, args.owner_ticks, stop, owner_gone),
                         name="owner", daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("virtual kubelet up: %d initial nodes, ready delay %.2f s + U[0, %.2f) s",
             len(kubelet.initial), args.ready_delay_s, args.jitter_s)
    kubelet.run(stop)
    log.info("virtual kubelet stopped: %s", dict(kubelet.stats))
    if owner_gone.is_set() and args.state_dir:
        from krios.localcluster.controlplane import LocalCluster

        LocalCluster(args.state_dir).down()
    return 0


def _watch_owner(pid: int, ticks: int | None, stop: threading.Event, gone: threading.Event) -> None:
    while not stop.wait(1.0):
        if not process.alive(pid, ticks):
            log.warning("owner process %d is gone: taking the cluster down", pid)
            gone.set()
            stop.set()


if __name__ == "__main__":
    sys.exit(main())
