"""site.yml on real nodes: a lab of podman node containers provisioned over SSH, end to end.

The path a CloudLab user takes, on this machine: ``krios lab up`` (1 control,
2 workers, 1 client), then ``playbooks/site.yml`` through ansible-runner against
the lab's ``krios.yml``; the ``group_vars/all.yml`` the lab writes beside it
selects the offline artifact source (``local``: binaries and image archives
built here, checked by SHA256) and the ``bridge`` CNI. Asserted:

- every node Ready, with a real kubelet on containerd;
- krios-scheduler and krios-controller Running as containers (containerd IDs);
- the app pod bound by krios-scheduler, once the emulator labels the workers,
  to a worker whose satellite is in the zone (the emulator's own tick log);
- an HTTP GET from the client node to the app's NodePort answers 200;
- no bootstrap token in any ansible-runner job event;
- a second site.yml run changes nothing; reset.yml leaves the nodes clean and a
  third run rebuilds the cluster;
- ``krios lab down`` leaves no container, network, volume or file.

Slow (several minutes): nodes install packages from the Debian mirror.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import lab_helpers
import pytest

from krios import lab
from krios.results.store import ResultsStore

# Three site.yml runs, a reset and an emulation: well past the suite's 600 s default.
pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.timeout(2400)]

REPO = Path(__file__).resolve().parents[1]
WORKERS = 2
#: kubeadm bootstrap tokens look like this ([a-z0-9]{6}.[a-z0-9]{16}).
TOKEN = re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b")


@pytest.fixture(scope="module")
def lab_env(tmp_path_factory):
    with lab_helpers.lab_env(tmp_path_factory.mktemp("lab"), "krios-t", "10.214.0.0/24", workers=WORKERS) as env:
        yield env


def _run(env, playbook: str, **extra):
    events, _ = lab_helpers.run_playbook(env["base"], env["state"].inventory, playbook,
                                         {**lab_helpers.artifact_vars(env), **extra})
    stats = next(e for e in events if e["event"] == "playbook_on_stats")["event_data"]
    return events, stats


def _kubectl(env, *args: str) -> str:
    kubeconfig = env["base"] / "artifacts" / "admin.conf"
    out = subprocess.run([str(env["bin"] / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
                         check=True, capture_output=True, text=True, timeout=60)
    return out.stdout


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(2)


def _nodes_ready(env) -> bool:
    nodes = json.loads(_kubectl(env, "get", "nodes", "-o", "json"))["items"]
    ready = [n for n in nodes if any(c["type"] == "Ready" and c["status"] == "True"
                                     for c in n["status"]["conditions"])]
    return len(nodes) == WORKERS + 1 and len(ready) == len(nodes)


def _pods(env, namespace: str, selector: str | None = None) -> list[dict]:
    args = ["get", "pods", "-n", namespace, "-o", "json"] + (["-l", selector] if selector else [])
    return json.loads(_kubectl(env, *args))["items"]


def _running(pod: dict) -> bool:
    return pod["status"].get("phase") == "Running" and all(
        cs.get("ready") for cs in pod["status"].get("containerStatuses", []))


def test_site_yml_builds_a_real_cluster_on_lab_nodes(lab_env):
    env = lab_env
    t0 = time.monotonic()
    events, stats = _run(env, "playbooks/site.yml")
    first_run_s = time.monotonic() - t0
    print(f"site.yml, first run: {first_run_s:.0f} s")
    assert not stats["failures"] and not stats["dark"]

    # No bootstrap token in any job event (kubeadm output, registered results, ...).
    leaked = {TOKEN.search(json.dumps(e)).group(0) for e in events if TOKEN.search(json.dumps(e))}
    assert not leaked, f"bootstrap token in ansible-runner job events: {sorted(leaked)}"

    _wait(lambda: _nodes_ready(env), 180, "every node Ready")
    nodes = json.loads(_kubectl(env, "get", "nodes", "-o", "json"))["items"]
    for n in nodes:
        assert n["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://"), n["metadata"]["name"]

    # The Krios daemons run as real containers.
    def daemons():
        pods = _pods(env, "krios-system")
        up = {p["metadata"]["labels"].get("app.kubernetes.io/name", p["metadata"]["name"]): p
              for p in pods if _running(p)}
        return up if any("scheduler" in k for k in up) and any("controller" in k for k in up) else None

    up = _wait(daemons, 300, "krios-scheduler and krios-controller Running")
    for pod in up.values():
        for cs in pod["status"]["containerStatuses"]:
            assert cs["containerID"].startswith("containerd://"), cs

    # The emulator labels the workers with satellites; the app is then bound by krios-scheduler.
    db = env["base"] / "results.sqlite"
    emu = subprocess.run(
        [sys.executable, "-m", "krios", "emulator", "--scenario", str(env["state"].state_dir / "lab_2workers.yml"),
         "--kubeconfig", str(env["base"] / "artifacts" / "admin.conf"), "--duration-s", "120",
         "--acceleration", "4", "--start", "now", "--run-id", "lab-site", "--db", str(db)],
        capture_output=True, text=True, timeout=300,
    )
    assert emu.returncode == 0, emu.stderr[-2000:]
    app = _wait(lambda: [p for p in _pods(env, "default", "leozone") if _running(p)], 120, "the app Running")[0]
    assert app["spec"]["schedulerName"] == "krios-scheduler"
    node = app["spec"]["nodeName"]
    ticks = ResultsStore(db).rows("lab-site", "ticks")
    serving = [t for t in ticks if t["serving"]]
    assert serving, "the emulator never saw the app served"
    assert all(t["in_zone"] for t in serving), [t for t in serving if not t["in_zone"]][:3]
    assert node in {t["node"] for t in serving}

    # HTTP from the client node to the app's NodePort.
    svc = json.loads(_kubectl(env, "get", "svc", "-n", "default", "-o", "json"))["items"]
    node_port = next(p["nodePort"] for s in svc if s["spec"]["type"] == "NodePort" for p in s["spec"]["ports"])
    worker = env["state"].node(node.split(".")[0])  # Kubernetes names nodes by FQDN
    client = next(n for n in env["state"].nodes if n.role == "client")
    code = lab.ssh(env["state"], client.hostname,
                   f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 http://{worker.address}:{node_port}/")
    assert code.stdout.strip() == "200", (code.stdout, code.stderr)

    # A second run changes nothing.
    t0 = time.monotonic()
    _, stats = _run(env, "playbooks/site.yml")
    print(f"site.yml, second run: {time.monotonic() - t0:.0f} s")
    changed = {h: n for h, n in stats["changed"].items() if n}
    assert not changed, f"the second run changed something: {changed}"

    # reset.yml leaves the nodes clean ...
    _run(env, "playbooks/reset.yml", reset_confirmed=True)
    for n in env["state"].nodes:
        if n.role == "client":
            continue
        left = lab.ssh(env["state"], n.hostname,
                       "ls /etc/kubernetes/admin.conf /etc/kubernetes/kubelet.conf 2>/dev/null;"
                       " find /etc/cni/net.d -type f 2>/dev/null;"
                       " ip link show cni0 2>/dev/null; ctr -n k8s.io containers ls -q 2>/dev/null")
        assert not left.stdout.strip(), (n.hostname, left.stdout)

    # ... and a third run rebuilds the cluster.
    t0 = time.monotonic()
    _run(env, "playbooks/site.yml")
    print(f"site.yml, after reset: {time.monotonic() - t0:.0f} s")
    _wait(lambda: _nodes_ready(env), 180, "every node Ready after the rebuild")
