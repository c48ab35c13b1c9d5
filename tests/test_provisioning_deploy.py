"""playbooks/deploy.yml (role krios_deploy, kubernetes.core) against the real local control plane.

Each test applies the Krios manifests twice: the first run creates everything,
the second must report ``changed=0``. The objects are then read back from the
apiserver, and the service accounts' permissions are checked with
SubjectAccessReviews against docs/design/interfaces.md "Component RBAC".
Namespaced objects go to the test's own namespace; the cluster-scoped RBAC
objects are named ``<namespace>:<component>`` and deleted afterwards.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from provisioning_helpers import REPO, run_playbook, write_inventory

pytestmark = pytest.mark.cluster

SCENARIO = REPO / "scenarios" / "sf_4workers.yml"
LEOZONE = "37.7749_-122.4194"
COMPONENTS = ("krios-scheduler", "krios-controller", "krios-emulator")


@pytest.fixture
def rbac_cleanup(api_client, namespace: str) -> Iterator[None]:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    yield
    rbac = client.RbacAuthorizationV1Api(api_client)
    for name in COMPONENTS:
        for delete in (rbac.delete_cluster_role, rbac.delete_cluster_role_binding):
            try:
                delete(f"{namespace}:{name}")
            except ApiException as err:
                if err.status != 404:
                    raise


def _vars(control_plane, namespace: str, **extra) -> dict:
    return {
        "scenario": "sf_4workers",
        "krios_kubeconfig": str(control_plane.kubeconfig),
        "krios_deploy_namespace": namespace,
        "krios_deploy_app_namespace": namespace,
        "krios_deploy_app_node_port": 0,  # the session cluster is shared: let it pick a port
        **extra,
    }


def _twice(inventories, extra_vars):
    first = run_playbook("deploy.yml", inventories, extra_vars, options=["--tags", "deploy"])
    assert first.returncode == 0, first.explain()
    assert first.recap["localhost"]["changed"] > 0, first.explain()
    second = run_playbook("deploy.yml", inventories, extra_vars, options=["--tags", "deploy"])
    assert second.returncode == 0, second.explain()
    assert second.total("changed") == 0, second.explain()
    return second


def _allowed(api_client, sa: str, namespace: str, verb: str, resource: str, *, group: str = "",
             subresource: str = "", in_namespace: str | None = None) -> bool:
    from kubernetes import client

    review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=f"system:serviceaccount:{namespace}:{sa}",
        groups=["system:serviceaccounts", f"system:serviceaccounts:{namespace}"],
        resource_attributes=client.V1ResourceAttributes(
            verb=verb, resource=resource, group=group, subresource=subresource, namespace=in_namespace),
    ))
    return client.AuthorizationV1Api(api_client).create_subject_access_review(review).status.allowed


def test_local_mode_deploy_is_idempotent_and_rbac_is_least_privilege(
    control_plane, api_client, core_v1, namespace: str, rbac_cleanup
) -> None:
    from kubernetes import client

    _twice([REPO / "inventories" / "local"], _vars(control_plane, namespace))

    # namespace objects: service accounts, the app pod pinned to the zone, its NodePort service
    sas = {sa.metadata.name for sa in core_v1.list_namespaced_service_account(namespace).items}
    assert set(COMPONENTS) <= sas
    pod = core_v1.read_namespaced_pod("nginx", namespace)
    assert pod.metadata.labels["leozone"] == LEOZONE
    assert pod.metadata.labels["app"] == "nginx"
    assert pod.spec.scheduler_name == "krios-scheduler"
    svc = core_v1.read_namespaced_service("nginx", namespace)
    assert svc.spec.type == "NodePort" and svc.spec.selector == {"app": "nginx"}
    assert 30000 <= svc.spec.ports[0].node_port <= 32767
    # local mode: the daemons run as local processes, so no Deployments
    assert client.AppsV1Api(api_client).list_namespaced_deployment(namespace).items == []

    ns = namespace
    sched, ctrl, emu = COMPONENTS
    allowed = [
        (sched, "get", "pods", "", "", None), (sched, "watch", "pods", "", "", None),
        (sched, "create", "pods", "", "binding", "default"), (sched, "list", "nodes", "", "", None),
        (sched, "watch", "configmaps", "", "", ns), (sched, "create", "events", "", "", "default"),
        (sched, "patch", "events", "events.k8s.io", "", "default"),
        (sched, "update", "leases", "coordination.k8s.io", "", ns),
        (ctrl, "create", "pods", "", "", ns), (ctrl, "delete", "pods", "", "", ns),
        (ctrl, "patch", "pods", "", "", ns), (ctrl, "watch", "nodes", "", "", None),
        (ctrl, "list", "pods", "", "", None),
        (ctrl, "get", "configmaps", "", "", ns), (ctrl, "create", "leases", "coordination.k8s.io", "", ns),
        (emu, "patch", "nodes", "", "", None), (emu, "list", "nodes", "", "", None),
        (emu, "create", "configmaps", "", "", ns), (emu, "update", "configmaps", "", "", ns),
    ]
    denied = [
        (sched, "delete", "pods", "", "", "default"), (sched, "create", "pods", "", "", "default"),
        (sched, "patch", "nodes", "", "", None), (sched, "get", "secrets", "", "", ns),
        (sched, "get", "configmaps", "", "", "default"), (sched, "delete", "leases", "coordination.k8s.io", "", ns),
        (sched, "update", "leases", "coordination.k8s.io", "", "default"),
        (ctrl, "create", "pods", "", "binding", "default"), (ctrl, "patch", "nodes", "", "", None),
        (ctrl, "create", "pods", "", "", "kube-system"), (ctrl, "create", "pods", "", "", "default"),
        (ctrl, "delete", "pods", "", "", "kube-system"),
        (ctrl, "update", "configmaps", "", "", ns), (ctrl, "list", "secrets", "", "", None),
        (emu, "delete", "nodes", "", "", None), (emu, "list", "pods", "", "", None),
        (emu, "delete", "configmaps", "", "", ns), (emu, "create", "configmaps", "", "", "default"),
    ]
    wrong = [rule for rule in allowed if not _allowed(api_client, rule[0], ns, rule[1], rule[2], group=rule[3],
                                                        subresource=rule[4], in_namespace=rule[5])]
    wrong += [rule for rule in denied if _allowed(api_client, rule[0], ns, rule[1], rule[2], group=rule[3],
                                                   subresource=rule[4], in_namespace=rule[5])]
    assert wrong == [], f"(sa, verb, resource, group, subresource, namespace) with the wrong answer: {wrong}"


def test_cloudlab_manifests_apply_idempotently_and_keep_one_app_copy(
    control_plane, api_client, core_v1, namespace: str, rbac_cleanup, tmp_path: Path
) -> None:
    from kubernetes import client

    inv = write_inventory(tmp_path / "controller.yml", {"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}})
    extra = _vars(control_plane, namespace, krios_mode="cloudlab", krios_deploy_replicas=2)
    _twice([inv], extra)

    apps = client.AppsV1Api(api_client)
    for component in ("scheduler", "controller"):
        dep = apps.read_namespaced_deployment(f"krios-{component}", namespace)
        spec = dep.spec.template.spec
        assert dep.spec.replicas == 2
        assert spec.service_account_name == f"krios-{component}"
        container = spec.containers[0]
        # tagged by content (role krios: krios_image_tag = 0.1.0-<hash of what goes into the image>)
        assert re.fullmatch(r"localhost/krios:0\.1\.0-[0-9a-f]{12}", container.image), container.image
        assert container.args == [component, "--scenario", "sf_4workers", "--scheduler-name", "krios-scheduler",
                                  "--lease-namespace", namespace]
        assert {"name": "KRIOS_SCENARIO_PATH", "value": "/etc/krios/scenario:/etc/krios/scenarios"} in [
            {"name": e.name, "value": e.value} for e in container.env]
        assert spec.node_selector == {"node-role.kubernetes.io/control-plane": ""}
        assert spec.security_context.run_as_non_root is True
    cm = core_v1.read_namespaced_config_map("krios-scenario", namespace)
    assert yaml.safe_load(cm.data["sf_4workers.yml"]) == yaml.safe_load(SCENARIO.read_text())

    # The Krios controller replaces the app pod under another name at a handover:
    # deploying again must not start a second copy.
    core_v1.delete_namespaced_pod("nginx", namespace, grace_period_seconds=0)
    copy = client.V1Pod(
        metadata=client.V1ObjectMeta(name="nginx-h1", labels={"app": "nginx", "leozone": LEOZONE}),
        spec=client.V1PodSpec(
            scheduler_name="krios-scheduler",
            containers=[client.V1Container(name="nginx", image="docker.io/library/nginx:1.27-alpine")],
        ),
    )
    core_v1.create_namespaced_pod(namespace, copy)
    again = run_playbook("deploy.yml", [inv], extra, options=["--tags", "deploy"])
    assert again.returncode == 0, again.explain()
    assert again.total("changed") == 0, again.explain()
    names = sorted(p.metadata.name for p in core_v1.list_namespaced_pod(namespace, label_selector="app=nginx").items)
    assert names == ["nginx-h1"]
