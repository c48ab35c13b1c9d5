"""The JSON client's shared operations and the reflector, against the real apiserver."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException
from scheduling_helpers import raw, wait_for

from krios.kube import names
from krios.kube.client import (
    RawClient,
    as_client,
    configmap_path,
    configmap_value,
    create_or_exists,
    ensure_namespace,
    get_or_none,
    list_items,
    put_configmap,
    resource_path,
)
from krios.kube.clock import Clock
from krios.kube.config import client_with_pool
from krios.kube.reflector import Reflector

pytestmark = pytest.mark.cluster


def _finalize(client: RawClient, name: str) -> None:
    """Delete namespace ``name`` for good (the test cluster runs no namespace controller)."""
    path = resource_path("namespaces", name=name)
    ns = get_or_none(client, path)
    if ns is None:
        return
    if not ns["metadata"].get("deletionTimestamp"):
        client.delete(path)
        ns = client.get(path)
    ns["spec"] = {"finalizers": []}
    client.put(f"{path}/finalize", ns)


def test_as_client_takes_the_json_client_an_api_client_or_a_generated_api(api_client) -> None:
    client = RawClient(api_client, qps=5, burst=2)
    assert as_client(client) is client
    assert as_client(api_client).api is api_client and as_client(api_client).limiter.qps == 0
    assert as_client(CoreV1Api(api_client)).api is api_client
    with pytest.raises(TypeError, match="not a Kubernetes API client"):
        as_client(object())


def test_requests_reuse_warm_connections_read_chunked_answers_and_replace_closed_ones(api_client,
                                                                                     namespace) -> None:
    client = RawClient(client_with_pool(api_client, 3), qps=0, burst=1)
    transport = client._transport
    assert transport is not None  # no proxy: the client's own HTTP path
    assert client.warm(3) == 3 and client.warm(3) == 0
    socks = {c.sock for c in transport._idle}
    for i in range(12):  # one request at a time: the same connection every time
        client.post(configmap_path(namespace), {"metadata": {"name": f"c{i}"}, "data": {"k": "x" * 4000}})
    assert {c.sock for c in transport._idle} == socks
    listed = list_items(client, configmap_path(namespace))  # ~50 kB: a chunked answer
    assert sorted(c["metadata"]["name"] for c in listed) == sorted(f"c{i}" for i in range(12))
    with pytest.raises(ApiException) as err:  # an error answer: its status and body
        client.post(configmap_path(namespace), {"metadata": {"name": "c0"}})
    assert err.value.status == 409 and "already exists" in err.value.body
    # the server closes the pooled connections (after our half-close of each): idle for a while,
    # each is checked before use and dropped; used recently, the request fails on it and is sent
    # again on a new connection, the pool's other connections dropped as well
    for recent in (False, True):
        assert client.warm(3) >= 0 and len(transport._idle) == 3
        socks = {c.sock for c in transport._idle}
        for conn in transport._idle:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.last = time.monotonic() if recent else 0.0
        time.sleep(0.3)
        assert client.get(configmap_path(namespace, "c3"))["data"]["k"] == "x" * 4000
        assert not {c.sock for c in transport._idle} & socks


def test_configmaps_are_created_replaced_and_read(api_client, namespace) -> None:
    client = raw(api_client)
    assert configmap_value(client, namespace, "cm", "k") is None  # no ConfigMap
    put_configmap(client, namespace, "cm", {"k": "1"})  # created
    assert configmap_value(client, namespace, "cm", "k") == "1"
    put_configmap(client, namespace, "cm", {"k": "2", "other": "x"})  # replaced
    cm = client.get(configmap_path(namespace, "cm"))
    assert cm["data"] == {"k": "2", "other": "x"}
    assert cm["metadata"]["labels"] == {names.PART_OF_LABEL: names.PART_OF}
    assert configmap_value(client, namespace, "cm", "missing") is None
    assert get_or_none(client, configmap_path(namespace, "nope")) is None
    body = {"metadata": {"name": "once"}, "data": {}}
    assert create_or_exists(client, configmap_path(namespace), body)
    assert not create_or_exists(client, configmap_path(namespace), body)
    assert sorted(c["metadata"]["name"] for c in list_items(client, configmap_path(namespace))
                  if c["metadata"]["name"] in ("cm", "once")) == ["cm", "once"]
    assert [c["metadata"]["name"] for c in list_items(client, configmap_path(namespace),
                                                      label_selector=f"{names.PART_OF_LABEL}=krios")] == ["cm"]


def test_the_clock_travels_through_its_configmap(api_client, namespace) -> None:
    client = raw(api_client)
    ensure_namespace(client, names.SYSTEM_NAMESPACE)
    path = configmap_path(names.SYSTEM_NAMESPACE, names.CLOCK_CONFIGMAP)
    if get_or_none(client, path) is not None:
        client.delete(path)
    try:
        assert Clock.from_configmap(client) == Clock.real()  # none published: real time
        clock = Clock(epoch_wall=1000.0, epoch_sim=1767225600.0, rate=30.0)
        clock.publish(api_client)  # an ApiClient works as well
        assert Clock.from_configmap(client) == clock
        put_configmap(client, names.SYSTEM_NAMESPACE, names.CLOCK_CONFIGMAP, {names.CLOCK_KEY: "{"})
        assert Clock.from_configmap(client) == Clock.real()  # unreadable: real time
    finally:
        client.delete(path)


def test_ensure_namespace_creates_keeps_and_waits_out_a_deletion(api_client, namespace) -> None:
    client = raw(api_client)
    name = f"{namespace}-e"
    path = resource_path("namespaces", name=name)
    try:
        ensure_namespace(client, name)
        assert client.get(path)["status"]["phase"] == "Active"
        ensure_namespace(client, name)  # exists: nothing to do
        client.delete(path)  # no namespace controller here: it stays Terminating
        assert client.get(path)["status"]["phase"] == "Terminating"
        ensure_namespace(client, name)  # not asked to wait: it exists
        with pytest.raises(TimeoutError, match="stays Terminating"):
            ensure_namespace(client, name, wait_terminating_s=1.0)
        finish = threading.Timer(0.5, _finalize, (client, name))
        finish.start()
        ensure_namespace(client, name, wait_terminating_s=20.0)  # gone, then made again
        finish.join()
        ns = client.get(path)
        assert ns["status"]["phase"] == "Active" and not ns["metadata"].get("deletionTimestamp")
    finally:
        _finalize(client, name)


def test_reflector_lists_watches_resumes_and_relists(api_client, namespace) -> None:
    client = raw(api_client)
    path = configmap_path(namespace)
    client.post(path, {"metadata": {"name": "a"}, "data": {}})
    syncs: list[list[str]] = []
    events: list[tuple[str, str]] = []
    health: list[bool] = []
    lock = threading.Lock()

    def on_sync(items: list[dict]) -> None:
        with lock:
            syncs.append(sorted(o["metadata"]["name"] for o in items))
            assert all(o["kind"] == "ConfigMap" and o["apiVersion"] == "v1" for o in items)

    def on_event(kind: str, obj: dict) -> None:
        with lock:
            events.append((kind, obj["metadata"]["name"]))

    refl = Reflector(client, path, name="cm", on_sync=on_sync, on_event=on_event,
                     on_health=lambda ok, _detail: health.append(ok), page_size=1)
    stop = threading.Event()
    thread = threading.Thread(target=refl.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: syncs, 10, "the first list")
        client.post(path, {"metadata": {"name": "b"}, "data": {}})
        client.delete(f"{path}/a")
        wait_for(lambda: ("DELETED", "a") in events, 10, "the watch events")
        assert syncs == [["a"]] and ("ADDED", "b") in events and all(health)
        # a closed watch resumes from the last version seen: no relist, nothing missed
        refl.close()
        client.post(path, {"metadata": {"name": "c"}, "data": {}})
        wait_for(lambda: ("ADDED", "c") in events, 10, "the event after the reconnect")
        assert refl.stats["lists"] == 1 and refl.stats["watches"] >= 2
    finally:
        stop.set()
        refl.close()
        thread.join(10)
    assert not thread.is_alive()
    # no version to resume from (what a 410 Gone leaves; tests/test_scheduling_resilience.py makes a real
    # one by restarting the apiserver): list again, and hand over the whole collection
    refl.resource_version = None
    stop.clear()
    thread = threading.Thread(target=refl.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(syncs) == 2, 10, "the relist")
        assert syncs[-1] == ["b", "c"] and refl.stats["lists"] == 2
    finally:
        stop.set()
        refl.close()
        thread.join(10)
