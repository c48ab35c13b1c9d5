"""The Krios components' RBAC (role krios_deploy, templates/rbac.yaml.j2) is scoped (issue 15 item 9).

Whoever may create pods in every namespace is in effect cluster-admin (a pod can
mount any service account's token, or be privileged). So no ClusterRole of the
template grants pod writes; the controller gets them through a Role in each app
namespace. The template is rendered with the role's variables and checked as
text, then applied to the real local apiserver and checked with
SubjectAccessReviews (the apiserver's own RBAC authorizer).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import jinja2
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "roles" / "krios_deploy" / "templates" / "rbac.yaml.j2"
SERVICE_ACCOUNTS = ["krios-scheduler", "krios-controller", "krios-emulator"]
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "*"}


def render(namespace: str = "krios-system", app_namespaces: list[str] | None = None) -> list[dict]:
    """The template's documents with the role's defaults (``krios_deploy_controller_namespaces``:
    the app namespace ``default`` unless given)."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    text = env.from_string(TEMPLATE.read_text()).render(
        krios_deploy_namespace=namespace,
        krios_deploy_rbac_prefix=f"{namespace}:",
        krios_deploy_service_accounts=SERVICE_ACCOUNTS,
        krios_deploy_app_namespace="default",
        krios_deploy_controller_namespaces=app_namespaces if app_namespaces is not None else ["default"],
    )
    return [d for d in yaml.safe_load_all(text) if d]


def pod_writes(rules: list[dict]) -> set[str]:
    """Verbs on pods (or ``*``) that ``rules`` grant beyond reading."""
    out: set[str] = set()
    for rule in rules:
        core = {"", "*"} & set(rule.get("apiGroups", []))
        if core and {"pods", "*"} & set(rule.get("resources", [])):
            out |= WRITE_VERBS & set(rule.get("verbs", []))
    return out


def test_no_cluster_role_writes_pods_and_the_controller_writes_them_only_in_app_namespaces() -> None:
    docs = render(app_namespaces=["default", "apps", "default"])
    cluster_roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    assert set(cluster_roles) == {f"krios-system:{sa}" for sa in SERVICE_ACCOUNTS}
    for name, role in cluster_roles.items():
        assert pod_writes(role["rules"]) == set(), f"ClusterRole {name} may write pods in every namespace"
    pod_roles = [d for d in docs if d["kind"] == "Role" and pod_writes(d["rules"])]
    assert sorted((r["metadata"]["namespace"], r["metadata"]["name"]) for r in pod_roles) == [
        ("apps", "krios-controller-pods"), ("apps", "krios-scheduler-pods"),
        ("default", "krios-controller-pods"), ("default", "krios-scheduler-pods")]  # one of each per namespace
    assert all(pod_writes(r["rules"]) == {"create", "delete", "patch"} for r in pod_roles
               if r["metadata"]["name"] == "krios-controller-pods")
    # the scheduler only annotates (backup reservations): no create, no delete
    assert all(pod_writes(r["rules"]) == {"patch"}
               for r in pod_roles if r["metadata"]["name"] == "krios-scheduler-pods")
    sched = [d for d in docs if d["kind"] == "RoleBinding" and d["roleRef"]["name"] == "krios-scheduler-pods"]
    assert all(b["subjects"] == [{"kind": "ServiceAccount", "name": "krios-scheduler",
                                  "namespace": "krios-system"}] for b in sched) and len(sched) == 2
    bindings = [d for d in docs if d["kind"] == "RoleBinding" and d["roleRef"]["name"] == "krios-controller-pods"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["apps", "default"]
    assert all(b["subjects"] == [{"kind": "ServiceAccount", "name": "krios-controller",
                                  "namespace": "krios-system"}] for b in bindings)
    # the emulator may patch nodes (RBAC cannot restrict fields), never replace or delete them
    emulator = cluster_roles["krios-system:krios-emulator"]["rules"]
    assert [set(r["verbs"]) for r in emulator if "nodes" in r["resources"]] == [{"get", "list", "patch"}]


# --------------------------------------------------------------------------- on the real apiserver


@pytest.fixture
def applied(api_client, namespace: str) -> Iterator[tuple[str, str]]:
    """The rendered RBAC applied with the component namespace ``namespace`` and one app namespace;
    cluster-scoped objects deleted afterwards."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    app_ns = f"{namespace[:50]}-app"
    core.create_namespace({"metadata": {"name": app_ns}})
    created: list[tuple[str, str]] = []
    try:
        for doc in render(namespace, [app_ns]):
            kind, meta = doc["kind"], doc["metadata"]
            if kind == "ServiceAccount":
                core.create_namespaced_service_account(meta["namespace"], doc)
            elif kind == "ClusterRole":
                rbac.create_cluster_role(doc)
                created.append((kind, meta["name"]))
            elif kind == "ClusterRoleBinding":
                rbac.create_cluster_role_binding(doc)
                created.append((kind, meta["name"]))
            elif kind == "Role":
                rbac.create_namespaced_role(meta["namespace"], doc)
            elif kind == "RoleBinding":
                rbac.create_namespaced_role_binding(meta["namespace"], doc)
            else:
                raise AssertionError(f"unexpected kind {kind}")
        yield namespace, app_ns
    finally:
        for kind, name in created:
            delete = rbac.delete_cluster_role if kind == "ClusterRole" else rbac.delete_cluster_role_binding
            try:
                delete(name)
            except ApiException as err:
                if err.status != 404:
                    raise
        core.delete_namespace(app_ns)
        ns = core.read_namespace(app_ns)
        ns.spec = client.V1NamespaceSpec(finalizers=[])
        core.replace_namespace_finalize(app_ns, ns)


def _allowed(api_client, sa_namespace: str, sa: str, verb: str, resource: str, namespace: str | None) -> bool:
    from kubernetes import client

    review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=f"system:serviceaccount:{sa_namespace}:{sa}",
        groups=["system:serviceaccounts", f"system:serviceaccounts:{sa_namespace}"],
        resource_attributes=client.V1ResourceAttributes(verb=verb, resource=resource, namespace=namespace),
    ))
    return client.AuthorizationV1Api(api_client).create_subject_access_review(review).status.allowed


@pytest.mark.cluster
def test_the_apiserver_lets_the_controller_write_pods_only_in_the_app_namespace(api_client, applied) -> None:
    ns, app_ns = applied
    other = f"elsewhere-{secrets.token_hex(3)}"
    answers = {
        (verb, where): _allowed(api_client, ns, "krios-controller", verb, "pods", where)
        for verb in ("create", "delete", "patch", "list", "watch")
        for where in (app_ns, "kube-system", "default", other)
    }
    assert {k for k, ok in answers.items() if ok} == {
        ("create", app_ns), ("delete", app_ns), ("patch", app_ns),
        *((v, w) for v in ("list", "watch") for w in (app_ns, "kube-system", "default", other)),
    }
    assert _allowed(api_client, ns, "krios-controller", "list", "pods", None)  # its cluster-wide informer
    assert not _allowed(api_client, ns, "krios-controller", "create", "pods", None)
    assert not _allowed(api_client, ns, "krios-emulator", "update", "nodes", None)
    assert _allowed(api_client, ns, "krios-emulator", "patch", "nodes", None)
    # the scheduler annotates pods (backup reservations) in the app namespace only, and never creates them
    assert _allowed(api_client, ns, "krios-scheduler", "patch", "pods", app_ns)
    assert not _allowed(api_client, ns, "krios-scheduler", "patch", "pods", "kube-system")
    assert not _allowed(api_client, ns, "krios-scheduler", "create", "pods", app_ns)
    assert not _allowed(api_client, ns, "krios-scheduler", "delete", "pods", app_ns)
