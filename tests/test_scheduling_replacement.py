"""Re-placement and backup reservations of delay-constrained pods (issue 19).

Unit tests of :mod:`krios.control.backup` and the reservation accounting of
:mod:`krios.control.constraints`, then, on the real control plane (session
cluster, in-process scheduler and controller): a pod with ``delay_appA: 20``
lands within 20 ms of appA's node; a matrix update that breaks it moves it
make-before-break (the successor Ready before the old copy is deleted); a
backup-reserved pod whose node goes NotReady moves to its reservation (the
wall time is printed: ``pytest -s``); a pod on a node deleted from the API is
moved too. Events and the results store carry the reasons.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
from scheduling_helpers import (
    bound_pods,
    clean_workers,
    create_pods,
    events,
    exists,
    is_ready,
    list_pods,
    orbits,
    pod_body,
    raw,
    running_scheduler,
    wait_for,
)

from krios.control import backup
from krios.control import constraints as C
from krios.control.controller import KIND_ANNOTATION, REASON_ANNOTATION, Controller
from krios.control.placement import LatencyMatrix
from krios.errors import ConfigError
from krios.kube.informer import Informer
from krios.kube.names import VIRTUAL_KUBELET_LABEL

LATENCY = "/api/v1/namespaces/krios-system/configmaps/krios-latency"
READY = {"conditions": [{"type": "Ready", "status": "True"}]}


# -- unit tests (no cluster) -----------------------------------------------------------------------------------
def _node(name: str, cpu: str = "4", ready: bool = True) -> dict:
    status = {"allocatable": {"cpu": cpu, "pods": "110"}}
    if ready:
        status.update(READY)
    return {"kind": "Node", "metadata": {"name": name, "labels": {}}, "spec": {}, "status": status}


def _pod(name: str, labels: dict | None = None, node: str | None = None, cpu: str | None = None,
         notes: dict | None = None, ns: str = "ns") -> dict:
    res = {"requests": {"cpu": cpu}} if cpu else {}
    spec: dict = {"containers": [{"name": "c", "resources": res}]}
    if node:
        spec["nodeName"] = node
    return {"kind": "Pod", "metadata": {"name": name, "namespace": ns, "uid": name, "labels": labels or {},
                                        "annotations": notes or {}},
            "spec": spec, "status": {"phase": "Running"}}


#: n0 hosts appA (its 4 CPUs full); n1 is 10 ms from it, n2 15 ms, n4 18 ms, n3 50 ms.
NAMES = ("n0", "n1", "n2", "n3", "n4")
RTT = {a: {b: 0.0 if a == b else 50.0 for b in NAMES} for a in NAMES}
for _b, _ms in (("n1", 10.0), ("n2", 15.0), ("n4", 18.0)):
    RTT["n0"][_b] = RTT[_b]["n0"] = _ms
NODES = [_node(n) for n in NAMES]
APP = _pod("a", {"app": "appA"}, node="n0", cpu="4")


def test_only_delay_pods_without_leozone_are_replaceable_and_want_backups():
    assert backup.replaceable(_pod("p", {"delay_appA": "20"}))
    assert not backup.replaceable(_pod("p", {"delay_appA": "20", "leozone": "0_0"}))
    assert not backup.replaceable(_pod("p", {"app": "x"}))
    labelled = _pod("p", {"delay_appA": "20", backup.BACKUP_LABEL: "true"})
    assert backup.wants_backup(labelled) and not backup.wants_backup(_pod("p", {"delay_appA": "20"}))
    assert backup.wants_backup(_pod("p", {"delay_appA": "20"}), default=True)  # --backup-reservations
    assert not backup.wants_backup(_pod("p", {"delay_appA": "20", backup.BACKUP_LABEL: "false"}), default=True)
    assert not backup.wants_backup(_pod("p", {"leozone": "0_0", backup.BACKUP_LABEL: "true"}))
    same = backup.group_of(_pod("x", {"delay_appA": "20", "app": "b"}))
    assert same == backup.group_of(_pod("y", {"delay_appA": "20"}))
    assert backup.group_of(_pod("x", {"delay_appA": "20"})) != backup.group_of(_pod("x", {"delay_appA": "21"}))
    assert backup.group_of(_pod("x", {"delay_appA": "20"})) != backup.group_of(_pod("x", {"delay_appA": "20"}, ns="o"))


def test_valid_nodes_rank_by_slack_and_count_reserved_slots():
    pod = _pod("p", {"delay_appA": "20"}, cpu="2")
    assert backup.valid_nodes(pod, NODES, [APP], RTT) == ["n1", "n2", "n4"]  # n0 full, n3 too far
    assert backup.valid_nodes(pod, NODES, [APP], RTT, exclude={"n1"}) == ["n2", "n4"]
    holder = _pod("h", {"delay_client": "9"}, node="n3", cpu="3",
                  notes={backup.BACKUP_NODE_ANNOTATION: "n1", backup.BACKUP_GROUP_ANNOTATION: "g"})
    assert backup.valid_nodes(pod, NODES, [APP, holder], RTT) == ["n2", "n4"]  # 3 CPUs of n1 reserved
    assert backup.valid_nodes(pod, NODES, [APP, holder], RTT, free_group="g") == ["n1", "n2", "n4"]
    assert backup.valid_nodes(pod, [_node("n1", ready=False), _node("n2")], [APP], RTT) == ["n2"]
    assert backup.valid_nodes(_pod("p", {"delay_appA": "x"}), NODES, [APP], RTT) == []  # bad label: none
    # the scheduler's fit counts the slot too (its requests, one pod)
    cands = [(n["metadata"]["name"], n) for n in NODES if n["metadata"]["name"] in ("n1", "n2")]
    reasons: list[str] = []
    got = C.fit_and_prefer(pod, cands, lambda: [APP, holder], reasons)
    assert [n for n, _ in got] == ["n2"] and reasons == ["Insufficient cpu"]
    assert C.reserved_slots([holder]) == {"n1": {"g": {"cpu": 3.0}}}
    holder["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert C.reserved_slots([holder]) == {}  # a pod being deleted holds nothing


def test_choose_backup_shares_a_group_slot_unless_the_primaries_coincide():
    first = _pod("p1", {"delay_appA": "20"}, node="n1", cpu="1")
    assert backup.choose_backup(first, "n1", NODES, [APP, first], RTT) == "n2"
    first["metadata"]["annotations"] = backup.reservation(first, "n2")
    second = _pod("p2", {"delay_appA": "20"}, node="n4", cpu="1")
    assert backup.choose_backup(second, "n4", NODES, [APP, first, second], RTT) == "n2"  # shared
    third = _pod("p3", {"delay_appA": "20"}, node="n1", cpu="1")  # n1 failing would need n2's slot twice
    assert backup.choose_backup(third, "n1", NODES, [APP, first, third], RTT) == "n4"
    other = _pod("q", {"delay_appA": "16"}, node="n1", cpu="1")  # another group: a slot of its own
    assert backup.group_of(other) != backup.group_of(first)
    assert backup.choose_backup(other, "n1", NODES, [APP, first, other], RTT) == "n2"  # room for both slots
    assert backup.choose_backup(first, "n1", NODES[:2], [APP], RTT) is None  # no second node


def test_replacement_target_prefers_a_valid_reservation_after_a_failure_only():
    plain = _pod("p", {"delay_appA": "20"}, node="n1", cpu="1")
    pod = _pod("p", {"delay_appA": "20"}, node="n1", cpu="1", notes=backup.reservation(plain, "n4"))
    assert backup.replacement_target(pod, NODES, [APP, pod], RTT, failure=True, exclude={"n1"}) == ("n4", True)
    # a broken delay label goes to the best valid node, not to the reservation
    assert backup.replacement_target(pod, NODES, [APP, pod], RTT, failure=False, exclude={"n1"}) == ("n2", False)
    far = {**RTT, "n0": {**RTT["n0"], "n4": 30.0}}  # the reservation no longer admits the pod
    assert backup.replacement_target(pod, NODES, [APP, pod], far, failure=True, exclude={"n1"}) == ("n2", False)
    assert backup.replacement_target(pod, NODES, [APP, pod], far, failure=True, exclude={"n1", "n2"}) == \
        (None, False)


def test_node_failure_and_an_empty_matrix():
    assert C.node_failure(None) == C.NODE_GONE
    assert C.node_failure(_node("n1", ready=False)) == "node n1 not Ready"
    assert C.node_failure(_node("n9"), delays={"client": 5}, rtt=RTT) == "node n9 not in the latency matrix"
    assert C.node_failure(_node("n9"), delays={"client": 5}, rtt={}) is None  # no matrix says nothing
    assert C.node_failure(_node("n9"), delays={}, rtt=RTT) is None  # no delay label: the matrix is not needed


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-1"])
def test_a_configmap_matrix_with_nan_inf_or_negative_rtt_is_one_clear_error(value):
    text = '{"rtt": {"client": {"n1": 1.5, "n2": ' + value + "}}}"
    with pytest.raises(ConfigError) as err:
        LatencyMatrix.from_json(text)
    assert str(err.value).startswith("configmap krios-latency: rtt.client.n2: must be a finite, non-negative RTT")


# -- on the real control plane -----------------------------------------------------------------------------------
@pytest.fixture
def workers(control_plane, api_client) -> Iterator[list[str]]:
    yield from clean_workers(control_plane, api_client)


@pytest.fixture
def scheduler(api_client):
    yield from running_scheduler(api_client, leader_elect=False)


@pytest.fixture
def moves(api_client) -> Iterator[tuple[Controller, list[dict]]]:
    """An in-process controller (no lease) recording its rows, as ``krios controller --run-id`` does."""
    rows: list[dict] = []
    ctl = Controller(api_client, orbits().constellation, leader_elect=False, ready_timeout_s=20,
                     resync_s=0.5, on_handover=rows.append)
    ctl.start(sync_timeout=30)
    try:
        yield ctl, rows
    finally:
        ctl.stop()


def _publish(client, rtt: dict) -> None:
    """Write the krios-latency ConfigMap (the document `krios latency publish` writes)."""
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "krios-latency", "namespace": "krios-system"},
            "data": {"matrix.json": json.dumps({"updated": time.time(), "unit": "ms", "source": "static",
                                                "method": "file", "rtt": rtt})}}
    if not exists(client, "/api/v1/namespaces/krios-system"):
        client.post("/api/v1/namespaces", {"metadata": {"name": "krios-system"}})
    if exists(client, LATENCY):
        client.put(LATENCY, body)
    else:
        client.post(LATENCY.rsplit("/", 1)[0], body)


def _matrix(names: list[str], near: dict[tuple[int, int], float]) -> dict:
    """``names`` 50 ms apart except the pairs in ``near`` (symmetric)."""
    rtt = {a: {b: 0.0 if a == b else 50.0 for b in names} for a in names}
    for (i, j), ms in near.items():
        rtt[names[i]][names[j]] = rtt[names[j]][names[i]] = ms
    return rtt


def _with_cpu(body: dict, cpu: str) -> dict:
    body["spec"]["containers"][0]["resources"] = {"requests": {"cpu": cpu}}
    return body


class Timeline:
    """A watch on the namespace's pods: when each became Ready and when each got deleted (wall s)."""

    def __init__(self, client, namespace: str) -> None:
        self.ready: dict[str, float] = {}
        self.deleted: dict[str, float] = {}
        self._lock = threading.Lock()
        self.inf = Informer(client, f"/api/v1/namespaces/{namespace}/pods", name="timeline")
        self.inf.add_handler(self._on)
        self.inf.start()
        assert self.inf.wait_synced(10)

    def _on(self, etype: str, pod: dict, _old) -> None:
        now, name = time.time(), pod["metadata"]["name"]
        with self._lock:
            if etype == "DELETED" or pod["metadata"].get("deletionTimestamp"):
                self.deleted.setdefault(name, now)
            elif is_ready(pod):
                self.ready.setdefault(name, now)

    def stop(self) -> None:
        self.inf.stop()


def _successor(client, namespace: str, old: str) -> dict | None:
    for p in list_pods(client, namespace):
        if p["metadata"].get("annotations", {}).get("krios.io/handover-from") == old:
            return p
    return None


def _reasons(client, namespace: str, reason: str) -> list[str]:
    return [e["note"] for e in events(client, namespace, reason)]


@pytest.mark.cluster
def test_matrix_update_moves_a_delay_pod_make_before_break(api_client, namespace, workers, scheduler, moves):
    client = raw(api_client)
    ctl, rows = moves
    w = workers
    _publish(client, _matrix(w, {(0, 1): 10.0, (0, 2): 15.0}))
    tl = Timeline(client, namespace)
    try:
        wait_for(lambda: scheduler.latency.rtt.get(w[0]) and ctl.latency.rtt.get(w[0]), 10, "the matrix read")
        # appA fills 3 of workers[0]'s 4 CPUs, so the 2-CPU pod cannot share its node
        create_pods(client, namespace, [_with_cpu(pod_body("a", {"app": "appA"}, node=w[0]), "3"),
                                        _with_cpu(pod_body("near", {"delay_appA": "20"}), "2")])
        bound = wait_for(lambda: (b := bound_pods(client, namespace)) and "near" in b and b, 15, "near bound")
        assert bound["near"] == w[1]  # 10 ms from appA's node: the most slack
        wait_for(lambda: "near" in tl.ready, 15, "near Ready")
        _publish(client, _matrix(w, {(0, 1): 40.0, (0, 2): 15.0}))  # workers[1] now 40 ms from appA
        succ = wait_for(lambda: _successor(client, namespace, "near"), 15, "a successor of near")
        assert succ["spec"]["nodeName"] == w[2]
        wait_for(lambda: "near" in tl.deleted and succ["metadata"]["name"] in tl.ready, 20, "the move done")
        assert tl.ready[succ["metadata"]["name"]] <= tl.deleted["near"], "old copy deleted before the new was Ready"
        notes = succ["metadata"]["annotations"]
        assert notes[KIND_ANNOTATION] == "replace"
        assert notes[REASON_ANNOTATION] == f"RTT from app appA on {w[0]} 40.0 ms > 20 ms"
        assert any(notes[REASON_ANNOTATION] in n for n in _reasons(client, namespace, "KriosReplaced"))
        wait_for(lambda: _reasons(client, namespace, "KriosReplaceCompleted"), 10, "KriosReplaceCompleted")
        row = wait_for(lambda: rows and rows[-1], 10, "the row recorded")
        assert (row["mode"], row["from_node"], row["to_node"], row["reason"]) == \
            ("replace", w[1], w[2], notes[REASON_ANNOTATION])
        assert row["app"] == f"{namespace}/near"
    finally:
        tl.stop()
        client.delete(LATENCY)


def _set_ready(client, node: str, ready: bool) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    cond = {"type": "Ready", "status": "True" if ready else "False", "reason": "KubeletStopped",
            "message": "the test stopped serving this node", "lastHeartbeatTime": now, "lastTransitionTime": now}
    client.patch(f"/api/v1/nodes/{node}/status", {"status": {"conditions": [cond]}}, merge=False)


@pytest.mark.cluster
def test_backup_reserved_pod_moves_to_its_reservation_when_its_node_goes_not_ready(
        api_client, namespace, workers, scheduler, moves, capsys):
    client = raw(api_client)
    ctl, rows = moves
    w = workers
    _publish(client, _matrix(w, {(0, 1): 10.0, (0, 2): 15.0}))
    tl = Timeline(client, namespace)
    victim = w[1]
    served = True
    try:
        wait_for(lambda: scheduler.latency.rtt.get(w[0]) and ctl.latency.rtt.get(w[0]), 10, "the matrix read")
        create_pods(client, namespace, [_with_cpu(pod_body("a", {"app": "appA"}, node=w[0]), "3"),
                                        _with_cpu(pod_body("b", {"delay_appA": "20", backup.BACKUP_LABEL: "true"}),
                                                  "2")])
        pod = wait_for(lambda: next((p for p in list_pods(client, namespace) if p["metadata"]["name"] == "b"
                                     and backup.BACKUP_NODE_ANNOTATION in p["metadata"].get("annotations", {})),
                                    None), 15, "b bound with a backup reservation")
        assert pod["spec"]["nodeName"] == victim
        assert pod["metadata"]["annotations"][backup.BACKUP_NODE_ANNOTATION] == w[2]  # the only other valid node
        assert _reasons(client, namespace, "BackupReserved")
        wait_for(lambda: "b" in tl.ready, 15, "b Ready")
        # "stop the kubelet" of victim: the virtual kubelet stops serving it, then its Ready condition goes False
        client.patch(f"/api/v1/nodes/{victim}", {"metadata": {"labels": {VIRTUAL_KUBELET_LABEL: None}}})
        served = False
        time.sleep(0.5)  # the kubelet's watch drops the node
        t0 = time.time()
        _set_ready(client, victim, False)
        succ = wait_for(lambda: _successor(client, namespace, "b"), 15, "a successor of b", interval_s=0.02)
        name = succ["metadata"]["name"]
        wait_for(lambda: name in tl.ready and "b" in tl.deleted, 20, "b moved", interval_s=0.02)
        assert succ["spec"]["nodeName"] == w[2]
        created = float(succ["metadata"]["annotations"]["krios.io/handover-started"])
        print(f"\nNotReady -> successor created {created - t0:.3f} s, Ready {tl.ready[name] - t0:.3f} s, "
              f"old copy deleted {tl.deleted['b'] - t0:.3f} s (wall, from the NotReady patch)")
        assert tl.ready[name] - t0 < 10.0
        note = _reasons(client, namespace, "KriosReplaced")
        assert any(f"node {victim} not Ready" in n and "backup reservation" in n for n in note), note
        row = wait_for(lambda: rows and rows[-1], 10, "the row recorded")
        assert row["reason"] == f"node {victim} not Ready" and row["to_node"] == w[2]
        assert all(p["metadata"]["name"] != "b" for p in list_pods(client, namespace))  # force-deleted
    finally:
        tl.stop()
        if not served:
            client.patch(f"/api/v1/nodes/{victim}", {"metadata": {"labels": {VIRTUAL_KUBELET_LABEL: "true"}}})
            wait_for(lambda: any(c["type"] == "Ready" and c["status"] == "True" for c in
                                 client.get(f"/api/v1/nodes/{victim}")["status"]["conditions"]), 20,
                     f"{victim} Ready again")
        client.delete(LATENCY)


@pytest.mark.cluster
def test_pod_on_a_node_deleted_from_the_api_is_moved(api_client, namespace, workers, scheduler, moves):
    client = raw(api_client)
    ctl, _rows = moves
    w = workers
    gone = f"krios-gone-{namespace[-6:]}"
    client.post("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": gone}})
    try:
        from krios.localcluster.nodes import node_status

        client.patch(f"/api/v1/nodes/{gone}/status", node_status(gone, "127.0.9.9", time.time()), merge=False)
        names = [*w, gone]
        _publish(client, _matrix(names, {(0, len(w)): 5.0, (0, 1): 10.0}))
        wait_for(lambda: ctl.latency.rtt.get(gone) and ctl.nodes.get(gone), 10, "the node and matrix seen")
        create_pods(client, namespace, [pod_body("a", {"app": "appA"}, node=w[0]),
                                        pod_body("c", {"delay_appA": "20"}, node=gone)])
        wait_for(lambda: ctl.pods.get(f"{namespace}/c"), 10, "c seen")
        time.sleep(1.0)
        assert _successor(client, namespace, "c") is None  # nothing wrong yet (not Ready: no kubelet serves it)
        client.delete(f"/api/v1/nodes/{gone}")
        succ = wait_for(lambda: _successor(client, namespace, "c"), 15, "a successor of c")
        assert succ["spec"]["nodeName"] in (w[0], w[1])
        assert succ["metadata"]["annotations"][REASON_ANNOTATION] == C.NODE_GONE
        wait_for(lambda: "c" not in {p["metadata"]["name"] for p in list_pods(client, namespace)}, 20, "c deleted")
        assert any("node gone" in n for n in _reasons(client, namespace, "KriosReplaced"))
    finally:
        if exists(client, f"/api/v1/nodes/{gone}"):
            client.delete(f"/api/v1/nodes/{gone}")
        client.delete(LATENCY)
