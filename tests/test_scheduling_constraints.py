"""krios.control.constraints: quantities, resource fit, delay to an app, cloud nodes (no cluster needed)."""

from __future__ import annotations

import pytest

from krios.control import constraints as C
from krios.control.placement import pod_delays
from krios.errors import ConfigError


def _node(name: str, labels: dict | None = None, allocatable: dict | None = None) -> dict:
    status = {"allocatable": allocatable} if allocatable is not None else {}
    return {"kind": "Node", "metadata": {"name": name, "labels": labels or {}}, "spec": {}, "status": status}


def _pod(name: str, labels: dict | None = None, node: str | None = None, requests: dict | None = None,
         limits: dict | None = None, uid: str | None = None, phase: str = "Running", **spec) -> dict:
    resources = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    body = {"containers": [{"name": "c", "image": "x", "resources": resources}], **spec}
    if node:
        body["nodeName"] = node
    return {"kind": "Pod", "metadata": {"name": name, "uid": uid or name, "labels": labels or {}},
            "spec": body, "status": {"phase": phase}}


# -- quantities ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, value", [
    ("0", 0.0), ("1", 1.0), ("500m", 0.5), ("1.5", 1.5), (".5", 0.5), ("250u", 250e-6), ("3n", 3e-9),
    ("1k", 1e3), ("1M", 1e6), ("2G", 2e9), ("1T", 1e12), ("1P", 1e15), ("1E", 1e18),
    ("1Ki", 1024.0), ("1Mi", 2.0**20), ("1.5Gi", 1.5 * 2**30), ("1Ti", 2.0**40), ("1Pi", 2.0**50), ("1Ei", 2.0**60),
    ("1e3", 1e3), ("1E3", 1e3), ("12e-1", 1.2), ("2E+2", 200.0), ("+4", 4.0), (" 6Gi ", 6.0 * 2**30),
    (3, 3.0), (0.25, 0.25),
])
def test_parse_quantity_every_suffix(text, value):
    assert C.parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("bad", ["", "Gi", "1GB", "1gi", "1 Gi", "abc", "-1", "1.2.3", "1e", "nan", "inf", True])
def test_parse_quantity_rejects_with_one_error_naming_the_field(bad):
    with pytest.raises(ConfigError) as err:
        C.parse_quantity(bad, source="pod p", field="memory")
    assert str(err.value).startswith("pod p: memory")


def test_pod_requests_sums_containers_defaults_to_limits_and_takes_init_max():
    pod = _pod("p", requests={"cpu": "250m"}, limits={"memory": "1Gi", "cpu": "1"})
    pod["spec"]["containers"].append({"name": "b", "resources": {"requests": {"cpu": "0.5", "memory": "512Mi"}}})
    pod["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "2"}}}]
    pod["spec"]["overhead"] = {"memory": "1Mi"}
    req = C.pod_requests(pod)
    assert req["cpu"] == pytest.approx(2.0)  # init container 2 > 0.25 + 0.5
    assert req["memory"] == pytest.approx(2**30 + 512 * 2**20 + 2**20)


def test_pod_requests_bad_quantity_names_pod_container_and_value():
    with pytest.raises(ConfigError, match=r"pod p container c resources: memory=6GB"):
        C.pod_requests(_pod("p", requests={"memory": "6GB"}))


def test_fits_against_allocatable_minus_bound_pods():
    node = _node("n", allocatable={"cpu": "2", "memory": "4Gi", "pods": "3"})
    assert C.fits(_pod("p", requests={"cpu": "1500m", "memory": "1Gi"}), node, []) is None
    bound = [_pod("a", node="n", requests={"cpu": "1", "memory": "3Gi"})]
    assert C.fits(_pod("p", requests={"cpu": "1"}), node, bound) is None  # exactly full
    assert C.fits(_pod("p", requests={"cpu": "1001m"}), node, bound) == "Insufficient cpu"
    assert C.fits(_pod("p", requests={"memory": "1025Mi"}), node, bound) == "Insufficient memory"
    done = [_pod("d", node="n", requests={"cpu": "2"}, phase="Succeeded")]
    assert C.fits(_pod("p", requests={"cpu": "2"}), node, done) is None  # finished pods free their share
    many = [_pod(f"x{i}", node="n") for i in range(3)]
    assert C.fits(_pod("p"), node, many) == "Too many pods"


def test_fits_node_without_allocatable_is_unlimited_and_no_requests_always_fit():
    assert C.fits(_pod("p", requests={"cpu": "64", "memory": "1Ei"}), _node("n"), []) is None
    assert C.fits(_pod("p"), _node("n", allocatable={"cpu": "0"}), []) is None


def test_virtual_kubelet_capacity_parses():
    from krios.localcluster.nodes import DEFAULT_CAPACITY  # the virtual nodes' allocatable

    have = C.node_allocatable(_node("n", allocatable=dict(DEFAULT_CAPACITY)))
    assert have["cpu"] > 0 and have["memory"] > 0


# -- delay to an app ------------------------------------------------------------------------------
RTT = {
    "client": {"n1": 30.0, "n2": 10.0, "n3": 50.0},
    "n1": {"n1": 0.0, "n2": 15.0, "n3": 40.0},
    "n2": {"n1": 15.0, "n2": 0.0, "n3": 25.0},
    "n3": {"n1": 40.0, "n2": 25.0, "n3": 0.0},
}
NODES = [(n, _node(n)) for n in ("n1", "n2", "n3")]


def test_delay_to_app_resolves_exact_app_label_to_its_nodes():
    pods = [_pod("a1", {"app": "appA"}, node="n1"), _pod("b1", {"app": "appAB"}, node="n3"),
            _pod("a-pending", {"app": "appA"})]
    targets = C.delay_targets({"appA": 20}, C.pods_by_app(pods), RTT)
    assert targets == [C.DelayTarget("appA", 20.0, ("n1",), "app")]  # not appAB (no substring match)
    ok = [n for n, _ in NODES if C.delay_violation(n, targets, RTT) is None]
    assert ok == ["n1", "n2"]
    assert C.delay_violation("n3", targets, RTT) == "RTT from app appA on n1 40.0 ms > 20 ms"


def test_delay_to_app_with_replicas_holds_to_every_node_it_runs_on():
    pods = [_pod("a1", {"app": "appA"}, node="n1"), _pod("a2", {"app": "appA"}, node="n3")]
    targets = C.delay_targets({"appA": 30}, C.pods_by_app(pods), RTT)
    assert targets[0].origins == ("n1", "n3")
    assert [n for n, _ in NODES if C.delay_violation(n, targets, RTT) is None] == ["n2"]


def test_several_delay_labels_must_all_hold():
    pods = [_pod("a1", {"app": "appA"}, node="n1")]
    pod = _pod("p", {"delay_appA": "20", "delay_client": "12"})
    targets = C.delay_targets(pod_delays(pod), C.pods_by_app(pods), RTT)
    assert [t.kind for t in sorted(targets, key=lambda t: t.ref)] == ["app", "client"]
    assert [n for n, _ in NODES if C.delay_violation(n, targets, RTT) is None] == ["n2"]
    tight = C.delay_targets({"appA": 20, "client": 5}, C.pods_by_app(pods), RTT)
    assert all(C.delay_violation(n, tight, RTT) is not None for n, _ in NODES)


def test_delay_to_node_wins_over_app_of_the_same_name_and_unplaced_app_waits():
    pods = [_pod("x", {"app": "n3"}, node="n1")]
    assert C.delay_targets({"n3": 30}, C.pods_by_app(pods), RTT)[0] == C.DelayTarget("n3", 30.0, ("n3",), "node")
    targets = C.delay_targets({"appB": 100}, C.pods_by_app([_pod("b", {"app": "appB"})]), RTT)
    assert C.delay_violation("n2", targets, RTT) == "no pod of app appB is placed yet"


def test_delay_uses_reverse_direction_when_a_row_is_missing_and_ratio_ranks():
    rtt = {"n1": {"n2": 12.0}}
    t = [C.DelayTarget("x", 24.0, ("n2",), "app")]
    assert C.delay_violation("n1", t, rtt) is None
    assert C.delay_ratio("n1", t, rtt) == pytest.approx(0.5)
    assert C.delay_violation("n3", t, rtt) == "no RTT known from n2"


def test_pod_being_placed_and_deleted_pods_do_not_count_as_the_app():
    me = _pod("me", {"app": "appA", "delay_appA": "5"}, node="n3", uid="u-me")
    gone = _pod("gone", {"app": "appA"}, node="n3")
    gone["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    targets = C.delay_targets({"appA": 5}, C.pods_by_app([me, gone]), RTT, exclude_uid="u-me")
    assert targets[0].origins == ()


# -- cloud nodes and the combined filter ---------------------------------------------------------------
def test_cloud_nodes_take_pods_without_delay_or_leozone_labels():
    cloud = ("c1", _node("c1", {"kubernetes.io/role": "cloud"}))
    cands = [*NODES, cloud]
    assert C.prefer_cloud(_pod("plain", {"app": "web"}), cands) == [cloud]
    assert C.prefer_cloud(_pod("edge", {"delay_client": "40"}), cands) == cands
    assert C.prefer_cloud(_pod("zone", {"leozone": "0_0"}), cands) == cands
    assert C.prefer_cloud(_pod("plain"), NODES) == NODES  # no cloud node: any node


def test_filter_nodes_combines_fit_delays_and_cloud_with_reasons():
    small = {"cpu": "1", "memory": "1Gi"}
    cands = [(n, _node(n, allocatable=small)) for n in ("n1", "n2", "n3")]
    pods = [_pod("a1", {"app": "appA"}, node="n1", requests={"cpu": "1"})]
    pod = _pod("p", {"delay_appA": "30"}, requests={"cpu": "500m", "memory": "6Gi"})
    reasons: list[str] = []
    assert C.filter_nodes(pod, cands, pods=pods, delays=pod_delays(pod), rtt=RTT, reasons=reasons) == []
    assert sorted(reasons) == ["Insufficient cpu", "Insufficient memory", "Insufficient memory"]
    pod = _pod("p", {"delay_appA": "30"}, requests={"cpu": "500m", "memory": "512Mi"})
    reasons = []
    got = C.filter_nodes(pod, cands, pods=pods, delays=pod_delays(pod), rtt=RTT, reasons=reasons)
    assert [n for n, _ in got] == ["n2"]
    assert sorted(reasons) == ["Insufficient cpu", C.DELAY_REASON]


def test_placement_violation_names_why_a_running_pod_should_move():
    ready = {"conditions": [{"type": "Ready", "status": "True"}]}
    n2 = {**_node("n2"), "status": ready}
    app = _pod("a1", {"app": "appA"}, node="n1")
    pod = _pod("p", {"delay_appA": "20"}, node="n2")
    assert C.placement_violation(pod, n2, pods=[app, pod], delays={"appA": 20}, rtt=RTT) is None
    moved = {**RTT, "n1": {**RTT["n1"], "n2": 25.0}}
    moved["n2"] = {**RTT["n2"], "n1": 25.0}
    assert C.placement_violation(pod, n2, pods=[app, pod], delays={"appA": 20}, rtt=moved) == \
        "RTT from app appA on n1 25.0 ms > 20 ms"
    assert C.placement_violation(pod, None, pods=[], delays={}, rtt=RTT) == "node gone"
    assert C.placement_violation(pod, _node("n2"), pods=[], delays={}, rtt=RTT) == "node n2 not Ready"
    gone = {k: {m: v for m, v in row.items() if m != "n2"} for k, row in RTT.items() if k != "n2"}
    assert C.placement_violation(pod, n2, pods=[app], delays={"appA": 20}, rtt=gone) == \
        "node n2 not in the latency matrix"


# -- the scheduler's hooks ---------------------------------------------------------------------------------
def test_resolve_app_delays_turns_apps_into_their_nodes_and_keeps_the_rest():
    pods = [_pod("a1", {"app": "appA"}, node="n1"), _pod("a2", {"app": "appA"}, node="n3"),
            _pod("b1", {"app": "appB"}, node="n1")]
    calls = []

    def listing():
        calls.append(1)
        return pods

    pod = _pod("p", uid="me")
    assert C.resolve_app_delays({"client": 10, "n2": 5}, pod, RTT, listing) == {"client": 10, "n2": 5}
    assert not calls  # no app ref: the pods are not even listed
    got = C.resolve_app_delays({"appA": 30, "appB": 20, "client": 12}, pod, RTT, listing)
    assert got == {"n1": 20, "n3": 30, "client": 12}
    assert C.resolve_app_delays({"appC": 30}, pod, RTT, listing) == {"app:appC": 30}
    from krios.control.placement import LatencyMatrix

    m = LatencyMatrix(RTT)
    assert [n for n in ("n1", "n2", "n3") if m.admits(n, got) is None] == ["n2"]
    assert m.admits("n2", {"app:appC": 30}) == "no RTT known from app:appC"


def test_fit_and_prefer_counts_assigned_pods_and_is_free_for_plain_pods():
    cands = [(n, _node(n, allocatable={"cpu": "2"})) for n in ("n1", "n2")]
    placed = _pod("x", requests={"cpu": "1500m"})
    placed["metadata"]["namespace"] = "ns"
    pod = _pod("p", requests={"cpu": "1"})
    reasons: list[str] = []
    got = C.fit_and_prefer(pod, cands, lambda: [placed], reasons, assigned={"ns/x": "n1"})
    assert [n for n, _ in got] == ["n2"] and reasons == ["Insufficient cpu"]

    def boom():
        raise AssertionError("listed pods for a pod without requests")

    assert C.fit_and_prefer(_pod("plain", {"delay_client": "1"}), cands, boom) == cands
    assert not C.needs_filter(_pod("plain"), cands)
    assert C.needs_filter(pod, cands)
    cloud = [*cands, ("c", _node("c", {"kubernetes.io/role": "cloud"}))]
    assert C.needs_filter(_pod("plain"), cloud) and not C.needs_filter(_pod("e", {"leozone": "0_0"}), cloud)
    assert [n for n, _ in C.fit_and_prefer(_pod("plain"), cloud, boom)] == ["c"]
