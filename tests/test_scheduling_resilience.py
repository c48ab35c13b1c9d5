"""Informer, leader election and scheduler behaviour when the API misbehaves (real control plane)."""

from __future__ import annotations

import os
import threading

import pytest
from scheduling_helpers import create_pods, list_pods, pod_body, raw, wait_for

from krios.control.scheduler import Scheduler
from krios.kube.informer import Informer
from krios.kube.leader import LeaderElector

pytestmark = pytest.mark.cluster


def test_informer_resumes_from_its_resource_version(api_client, namespace) -> None:
    """Stopped and started again, the informer watches from where it was and sees what changed meanwhile."""
    client = raw(api_client)
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    def record(etype: str, obj: dict, _old: dict | None) -> None:
        with lock:
            seen.append((etype, obj["metadata"]["name"]))

    path = f"/api/v1/namespaces/{namespace}/configmaps"
    for name in ("keep", "drop"):
        client.post(path, {"metadata": {"name": name}, "data": {"v": "1"}})
    inf = Informer(client, path, name="cm")
    inf.add_handler(record)
    inf.start()
    try:
        assert inf.wait_synced(10)
        assert sorted(o["metadata"]["name"] for o in inf.list()) == ["drop", "keep"]
        inf.stop()
        client.delete(f"{path}/drop")
        client.post(path, {"metadata": {"name": "new"}, "data": {"v": "1"}})
        client.patch(f"{path}/keep", {"data": {"v": "2"}})
        inf.start()
        wait_for(lambda: sorted(o["metadata"]["name"] for o in inf.list()) == ["keep", "new"], 10,
                 "the store to match the API")
        wait_for(lambda: (inf.get(f"{namespace}/keep") or {}).get("data") == {"v": "2"}, 10, "the update")
        with lock:
            assert ("DELETED", "drop") in seen and ("ADDED", "new") in seen and ("MODIFIED", "keep") in seen
        assert inf.stats["lists"] == 1 and inf.stats["watches"] >= 2  # resumed, no relist
    finally:
        inf.stop()


def test_only_one_leader_and_a_standby_takes_over_on_release(api_client, namespace) -> None:
    client = raw(api_client)
    kw = {"lease_duration_s": 3.0, "renew_deadline_s": 2.0, "retry_period_s": 0.5}
    a = LeaderElector(client, namespace, "lease-test", "a", **kw).start()
    assert a.wait_leading(10)
    b = LeaderElector(client, namespace, "lease-test", "b", **kw).start()
    try:
        assert not b.wait_leading(2.0), "a second leader while the first renews"
        lease = client.get(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/lease-test")
        assert lease["spec"]["holderIdentity"] == "a"
        a.stop()  # gives the lease up
        assert b.wait_leading(5), "the standby did not take over"
        assert not a.is_leader()
        lease = client.get(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/lease-test")
        assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] >= 1
    finally:
        a.stop()
        b.stop()


@pytest.mark.slow
def test_scheduler_loses_no_pod_across_an_apiserver_restart(tmp_path) -> None:
    """Pods pending while the apiserver goes away, and pods created after it is back, are all bound."""
    from krios.localcluster import LocalCluster
    from krios.orbits.constellation import Constellation

    cl = LocalCluster(tmp_path / "cluster", workers=3, components=(), kubelet_ready_delay_s=0.2,
                      owner_pid=os.getpid())
    cl.up()
    sched = None
    try:
        api = cl.api_client()
        client = raw(api)
        client.post("/api/v1/namespaces", {"metadata": {"name": "work"}})
        sched = Scheduler(cl.api_client(), Constellation.from_shell("starlink-1", 1767225600.0),
                          backoff_base_s=0.2, backoff_max_s=1.0)
        sched.start(sync_timeout=30)
        assert sched.wait_leading(30)
        create_pods(client, "work", [pod_body(f"before-{i}") for i in range(5)])
        # the stop lands while these are being scheduled (or just after): none may be lost
        cl.stop_component("kube-apiserver")
        wait_for(lambda: sched.pods.stats["errors"] > 0, 20, "the scheduler to notice the API is gone")
        cl.start_component("kube-apiserver")
        create_pods(client, "work", [pod_body(f"after-{i}") for i in range(5)])

        def all_bound() -> bool:
            pods = list_pods(client, "work")
            return len(pods) == 10 and all(p["spec"].get("nodeName") for p in pods)

        wait_for(all_bound, 60, "all 10 pods bound after the restart", interval_s=0.5)
        assert sched.pods.stats["watches"] >= 2  # it resumed watching
        # the restarted apiserver's watch cache begins after the versions the caches held: 410, relist
        informers = sched.informers()
        assert sum(i.stats["expired"] for i in informers) >= 1
        assert sum(i.stats["lists"] for i in informers) > len(informers)
        assert all(t.is_alive() for t in sched._threads)
    finally:
        if sched is not None:
            sched.stop()
        cl.down()
