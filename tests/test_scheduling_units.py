"""Scheduling building blocks that need no cluster: labels, matrix, queue, rate limit, successor pods."""

from __future__ import annotations

import threading
import time

import pytest

from krios.control.controller import (
    APP_LABEL,
    FAILED_ANNOTATION,
    FROM_ANNOTATION,
    STARTED_ANNOTATION,
    app_key,
    failed_nodes,
    successor_body,
    successor_name,
)
from krios.control.placement import (
    LatencyMatrix,
    node_is_worker,
    node_ready,
    node_sat_id,
    pod_delays,
    pod_zone,
    summarize,
    tolerates,
)
from krios.errors import ConfigError
from krios.kube.client import TokenBucket
from krios.kube.leader import micro_time
from krios.kube.workqueue import WorkQueue


def _node(name: str, labels: dict | None = None, ready: bool = True, **spec) -> dict:
    return {
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def _pod(labels: dict | None = None, **spec) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": labels or {}}, "spec": spec}


def test_pod_zone_and_delays_parse_labels() -> None:
    zone = pod_zone(_pod({"leozone": "37.7749_-122.4194", "radius": "100"}), 30.0)
    assert (zone.lat_deg, zone.lon_deg, zone.radius_km, zone.min_elevation_deg) == (37.7749, -122.4194, 100.0, 30.0)
    assert pod_zone(_pod({"app": "x"}), 25.0) is None
    assert pod_delays(_pod({"delay_client": "20", "delay_krios-worker-1": "7.5", "app": "x"})) == {
        "client": 20.0, "krios-worker-1": 7.5}


@pytest.mark.parametrize(("labels", "source"), [
    ({"leozone": "sf"}, "label leozone"),
    ({"leozone": "37_-122", "radius": "far"}, "label radius"),
    ({"delay_client": "soon"}, "label delay_client"),
    ({"delay_client": "-3"}, "label delay_client"),
])
def test_bad_pod_labels_name_the_label(labels: dict, source: str) -> None:
    with pytest.raises(ConfigError) as err:
        pod_zone(_pod(labels), 25.0)
        pod_delays(_pod(labels))
    assert err.value.source == source


def test_node_predicates_and_sat_id() -> None:
    assert node_ready(_node("a")) and not node_ready(_node("a", ready=False))
    assert node_is_worker(_node("a"))
    assert not node_is_worker(_node("a", unschedulable=True))
    assert not node_is_worker(_node("c", {"node-role.kubernetes.io/control-plane": ""}))
    assert node_sat_id(_node("a", {"sat_id": "12"}), 100) == 12
    assert node_sat_id(_node("a")) is None
    for bad in ("x", "-1", "100"):
        with pytest.raises(ConfigError) as err:
            node_sat_id(_node("a", {"sat_id": bad}), 100)
        assert err.value.source == "node a label sat_id" and err.value.field == bad


def test_taints_need_tolerations() -> None:
    tainted = _node("a", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])
    assert not tolerates(_pod(), tainted)
    assert tolerates(_pod(tolerations=[{"key": "k", "operator": "Exists"}]), tainted)
    assert tolerates(_pod(tolerations=[{"key": "k", "value": "v", "effect": "NoSchedule"}]), tainted)
    assert not tolerates(_pod(tolerations=[{"key": "k", "value": "w"}]), tainted)


def test_latency_matrix_admits_and_reports() -> None:
    m = LatencyMatrix.from_json('{"updated": 5, "unit": "ms", "rtt": {"client": {"n1": 10, "n2": 30}}}')
    assert m.admits("n1", {"client": 20}) is None
    assert "30.0 ms > 20 ms" in m.admits("n2", {"client": 20})
    assert "no RTT known" in m.admits("n3", {"client": 20})
    assert "no RTT known" in m.admits("n1", {"krios-worker-0": 20})
    assert m.worst_ratio("n1", {"client": 20}) == pytest.approx(0.5)
    for text, field in (("{", "matrix.json"), ('{"rtt": {"client": {"n1": "x"}}}', "rtt.client")):
        with pytest.raises(ConfigError) as err:
            LatencyMatrix.from_json(text)
        assert err.value.field == field


def test_summarize_reads_like_kube_scheduler() -> None:
    text = summarize(["node(s) not ready", "node(s) whose satellite is not in zone z", "node(s) not ready"], 4)
    assert text == "0/4 nodes are available: 2 node(s) not ready, 1 node(s) whose satellite is not in zone z."


def test_micro_time_has_microseconds() -> None:
    assert micro_time(1767225600.123456) == "2026-01-01T00:00:00.123456Z"


def test_work_queue_dedupes_requeues_while_processing_and_backs_off() -> None:
    q = WorkQueue(backoff_base_s=0.05, backoff_max_s=0.2)
    q.add("a")
    q.add("a")
    assert len(q) == 1
    assert q.get(0.1) == "a"
    q.add("a")  # changed while a worker holds it: not handed out twice ...
    assert q.get(0.05) is None
    q.done("a")  # ... but queued again when the worker is done
    assert q.get(0.1) == "a"
    q.done("a")
    delays = [q.retry("b") for _ in range(4)]
    assert delays == [0.05, 0.1, 0.2, 0.2]
    t = time.monotonic()
    assert q.get(1.0) == "b"
    assert time.monotonic() - t < 0.15  # the earliest pending retry wins
    q.done("b")
    q.retry("c")
    q.retry("c", max_delay_s=10)
    assert q.wake_all() == 1 and q.get(0.01) == "c"


def test_token_bucket_limits_rate_after_burst() -> None:
    bucket = TokenBucket(qps=200, burst=10)
    t = time.monotonic()
    for _ in range(30):
        bucket.acquire()
    elapsed = time.monotonic() - t
    assert 0.08 <= elapsed < 0.5  # 20 tokens beyond the burst at 200/s = 0.1 s
    unlimited = TokenBucket(qps=0, burst=1)
    assert all(unlimited.acquire() == 0.0 for _ in range(100))


def test_token_bucket_is_thread_safe() -> None:
    bucket = TokenBucket(qps=1000, burst=1)
    threads = [threading.Thread(target=lambda: [bucket.acquire() for _ in range(25)]) for _ in range(4)]
    t = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert time.monotonic() - t >= 0.09  # 100 tokens at 1000/s


def test_successor_pod_keeps_spec_binds_node_and_records_state() -> None:
    pod = {
        "metadata": {"name": "nginx", "namespace": "ns", "uid": "u-1",
                     "labels": {"leozone": "37_-122", "app": "web"},
                     "annotations": {"note": "x", FAILED_ANNOTATION: "n1=3"}},
        "spec": {
            "schedulerName": "krios-scheduler", "nodeName": "old",
            "containers": [{"name": "c", "image": "nginx",
                            "volumeMounts": [{"name": "default-token-abcde", "mountPath": "/var/run/x"},
                                             {"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "default-token-abcde", "secret": {}}, {"name": "data", "emptyDir": {}}],
        },
    }
    assert app_key(pod) == "nginx"
    name = successor_name("nginx", pod, 0)
    assert name == successor_name("nginx", pod, 0) != successor_name("nginx", pod, 1)
    body = successor_body(pod, "nginx", "new", name, 1767225700.0, 1000.5)
    meta, spec = body["metadata"], body["spec"]
    assert spec["nodeName"] == "new" and spec["schedulerName"] == "krios-scheduler"
    assert [v["name"] for v in spec["volumes"]] == ["data"]
    assert [m["name"] for m in spec["containers"][0]["volumeMounts"]] == ["data"]
    assert meta["labels"] == {"leozone": "37_-122", "app": "web", APP_LABEL: "nginx"}
    assert meta["annotations"] == {"note": "x", FROM_ANNOTATION: "nginx", STARTED_ANNOTATION: "1000.500000",
                                   "krios.io/handover-exit": "1767225700.000",
                                   "krios.io/handover-from-node": "old", "krios.io/handover-from-sat": ""}
    assert pod["spec"]["nodeName"] == "old"  # the original is untouched
    assert app_key(body) == "nginx"
    assert failed_nodes(pod) == {"n1": 3}


def test_zone_radius_defaults_to_the_scenarios_when_the_pod_has_no_radius_label() -> None:
    from krios.cli import main
    from krios.config import scenarios
    from krios.control.controller import ControllerConfig
    from krios.control.scheduler import SchedulerConfig

    sc = scenarios.load("sf_4workers")
    for cls in (SchedulerConfig, ControllerConfig):
        assert cls.from_scenario(sc).default_radius_km == 100.0  # zone.radius_km
        assert cls.from_scenario(sc, default_radius_km=20).default_radius_km == 20.0
        assert cls.from_scenario(None).default_radius_km == 0.0
    only_zone = {"metadata": {"labels": {"leozone": sc.leozone}}}
    labelled = {"metadata": {"labels": {"leozone": sc.leozone, "radius": "5"}}}
    assert pod_zone(only_zone, 25.0).radius_km == 0.0
    assert pod_zone(only_zone, 25.0, 100.0).radius_km == 100.0
    assert pod_zone(labelled, 25.0, 100.0).radius_km == 5.0  # the label wins
    with pytest.raises(ConfigError, match="default_radius_km: -1"):
        SchedulerConfig.from_scenario(sc, default_radius_km=-1)
    assert main(["scheduler", "--scenario", "sf_4workers", "--default-radius-km", "-1"]) == 2
