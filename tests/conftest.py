"""Shared pytest fixtures: a real local control plane for tests marked ``cluster``.

The control plane starts only when a test asks for one of these fixtures, so
tests that need no cluster run without it. Nothing here skips: if the
binaries are missing they are built (``scripts/build-control-plane.sh``) or
the fixture fails with the reason.

Fixtures
--------
``control_plane`` (session)
    :class:`krios.localcluster.LocalCluster` with 6 virtual workers, one
    control-plane node and kube-scheduler; state in a temporary folder; torn
    down at the end of the session. Do not stop its components: tests that
    restart the apiserver or add nodes make their own ``LocalCluster(tmp_path)``.
``api_client`` (session)
    ``kubernetes.client.ApiClient`` for it.
``core_v1`` (session)
    ``kubernetes.client.CoreV1Api`` on ``api_client``.
``namespace`` (function)
    A fresh namespace name; its pods are removed and the namespace finalized
    after the test (the session cluster runs no namespace controller).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from krios.localcluster import LocalCluster

    cluster = LocalCluster(
        tmp_path_factory.mktemp("control-plane"),
        workers=6,
        control_plane_nodes=1,
        components=("kube-scheduler",),
        owner_pid=os.getpid(),  # a killed test session takes its cluster with it
    )
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()


@pytest.fixture(scope="session")
def api_client(control_plane) -> Iterator:
    api = control_plane.api_client()
    try:
        yield api
    finally:
        api.close()


@pytest.fixture(scope="session")
def core_v1(api_client):
    from kubernetes import client

    return client.CoreV1Api(api_client)


@pytest.fixture
def namespace(core_v1, request: pytest.FixtureRequest) -> Iterator[str]:
    from kubernetes import client

    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{stem}-{secrets.token_hex(3)}"
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        _remove_namespace(core_v1, name)


def _remove_namespace(core_v1, name: str) -> None:
    """Delete the namespace's pods at once, then the namespace, and finalize it.

    Without kube-controller-manager nobody else would: a deleted namespace
    would stay Terminating for ever.
    """
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        core_v1.delete_collection_namespaced_pod(name, grace_period_seconds=0)
        core_v1.delete_namespace(name)
        ns = core_v1.read_namespace(name)
        ns.spec = client.V1NamespaceSpec(finalizers=[])
        core_v1.replace_namespace_finalize(name, ns)
    except ApiException as err:
        if err.status != 404:
            raise


def pytest_configure(config: pytest.Config) -> None:
    # The local apiserver's certificate is self-signed on loopback; the kubeconfig says so.
    config.addinivalue_line("filterwarnings", "ignore::urllib3.exceptions.InsecureRequestWarning")
