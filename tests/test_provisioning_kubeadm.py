"""kubeadm init and join as the roles run them: markers, reset-and-retry, no token in the output.

Two kinds of test:

* The kubeadm configuration templates rendered for each Kubernetes version
  (``krios_kubeadm_api_version``: v1beta2 for 1.20, v1beta3 for 1.22-1.30,
  v1beta4 from 1.31), and the 1.20 one read by the real kubeadm 1.20.2 of the
  cached build (``kubeadm config images list --config``).
* The init and join task files of krios_kubeadm_control_plane and
  krios_kubeadm_join run for real through ansible-runner (as tests/test_e2e_site.py
  does) in a Debian 12 chroot, where ``kubeadm`` is a STUB script (a real
  kubeadm cannot run in a chroot: it needs a kubelet, containerd and the
  network). The stub logs every call, writes admin.conf EARLY and fails its
  first init (the failure mode the marker fixes), fails its first join, and
  prints a known bootstrap token wherever the real kubeadm would. The job
  events of the whole run must not contain that token.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from provisioning_helpers import BIN, REPO, env, write_inventory
from test_provisioning_chroot import debian_root  # noqa: F401  (fixture)

TOKEN = "krios7.s3cr3tt0k3nv4lu3"
CA_HASH = "sha256:" + "ab" * 32
KUBEADM_1_20 = Path(os.environ.get("KRIOS_CACHE_DIR") or Path.home() / ".cache" / "krios") / "k8s-1.20.2/bin/kubeadm"

RENDER = """\
- name: Render the kubeadm templates
  hosts: localhost
  gather_facts: false
  vars_files:
    - {repo}/roles/krios/defaults/main.yml
    - {repo}/roles/krios/vars/main.yml
    - {repo}/roles/krios_kubeadm_control_plane/defaults/main.yml
    - {repo}/roles/krios_kubeadm_join/defaults/main.yml
  tasks:
    - name: Render the init configuration
      ansible.builtin.copy:
        content: "{{{{ lookup('ansible.builtin.template', '{init}') }}}}"
        dest: "{out}/init.yaml"
        mode: "0600"
    - name: Render the join configuration
      ansible.builtin.copy:
        content: "{{{{ lookup('ansible.builtin.template', '{join}') }}}}"
        dest: "{out}/join.yaml"
        mode: "0600"
"""


def _render(tmp_path: Path, **extra: object) -> tuple[list[dict], dict]:
    (tmp_path / "render.yml").write_text(RENDER.format(
        repo=REPO, out=tmp_path, init=REPO / "roles/krios_kubeadm_control_plane/templates/kubeadm-init.yaml.j2",
        join=REPO / "roles/krios_kubeadm_join/templates/kubeadm-join.yaml.j2"))
    values = {
        "krios_node_ip": "10.10.1.1", "krios_node_name": "node1", "ansible_host": "192.0.2.11",
        "krios_public_ip": "192.0.2.11", "krios_kubeadm_control_plane_version": {"stdout": "v1.20.2"},
        "krios_kubeadm_join_token": TOKEN, "krios_kubeadm_join_ca_hash": CA_HASH,
        "krios_kubeadm_join_endpoint": "10.10.1.1:6443", **extra,
    }
    proc = subprocess.run([str(BIN / "ansible-playbook"), str(tmp_path / "render.yml"), "-e", json.dumps(values)],
                          cwd=REPO, env=env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    init = list(yaml.safe_load_all((tmp_path / "init.yaml").read_text()))
    join = yaml.safe_load((tmp_path / "join.yaml").read_text())
    return init, join


@pytest.mark.parametrize(("version", "api"), [("1.20", "v1beta2"), ("1.21", "v1beta2"), ("1.22", "v1beta3"),
                                              ("1.30", "v1beta3"), ("1.31", "v1beta4"), ("1.33", "v1beta4")])
def test_kubeadm_api_version_follows_the_kubernetes_version(tmp_path: Path, version: str, api: str) -> None:
    init, join = _render(tmp_path, krios_kubernetes_version=version)
    kinds = {doc["kind"]: doc for doc in init}
    assert kinds["InitConfiguration"]["apiVersion"] == f"kubeadm.k8s.io/{api}"
    assert kinds["ClusterConfiguration"]["apiVersion"] == f"kubeadm.k8s.io/{api}"
    assert join["apiVersion"] == f"kubeadm.k8s.io/{api}"
    node_ip = kinds["InitConfiguration"]["nodeRegistration"]["kubeletExtraArgs"]
    join_ip = join["nodeRegistration"]["kubeletExtraArgs"]
    if api == "v1beta4":  # extra arguments are name/value lists from v1beta4
        assert node_ip == join_ip == [{"name": "node-ip", "value": "10.10.1.1"}]
    else:
        assert node_ip == join_ip == {"node-ip": "10.10.1.1"}
    assert kinds["KubeletConfiguration"] == {"apiVersion": "kubelet.config.k8s.io/v1beta1",
                                             "kind": "KubeletConfiguration", "cgroupDriver": "systemd",
                                             "failSwapOn": True}


def test_lab_settings_render_and_kubeadm_1_20_reads_them(tmp_path: Path) -> None:
    """Source local + bridge CNI + cgroupfs, as the lab runs it; the real kubeadm 1.20.2 parses the file."""
    init, _ = _render(tmp_path, krios_kubernetes_version="1.20", krios_artifact_source="local", krios_cni="bridge",
                      krios_cgroup_driver="cgroupfs", krios_kubelet_fail_swap_on="false",
                      krios_kubeadm_image_repository="registry.krios.local", krios_kubeadm_etcd_image_tag="3.4.23",
                      krios_pod_cidr="10.244.0.0/16", krios_kubeadm_control_plane_taint="false")
    kinds = {doc["kind"]: doc for doc in init}
    cluster = kinds["ClusterConfiguration"]
    assert cluster["imageRepository"] == "registry.krios.local"
    assert cluster["etcd"]["local"] == {"imageRepository": "registry.krios.local", "imageTag": "3.4.23"}
    assert cluster["controllerManager"]["extraArgs"] == {"allocate-node-cidrs": "true", "node-cidr-mask-size": "24"}
    assert cluster["networking"]["podSubnet"] == "10.244.0.0/16"
    assert kinds["InitConfiguration"]["nodeRegistration"]["taints"] == []
    assert kinds["KubeletConfiguration"]["cgroupDriver"] == "cgroupfs"
    assert kinds["KubeletConfiguration"]["failSwapOn"] is False
    if not KUBEADM_1_20.is_file():
        pytest.skip(f"no {KUBEADM_1_20} (make control-plane builds it)")
    images = subprocess.run([str(KUBEADM_1_20), "config", "images", "list", "--config", str(tmp_path / "init.yaml")],
                            capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert "registry.krios.local/kube-apiserver:v1.20.2" in images
    assert "registry.krios.local/etcd:3.4.23" in images
    assert "registry.krios.local/pause:3.2" in images


# ----------------------------------------------------------------- init and join in a chroot, kubeadm stubbed

STUB = f"""#!/bin/sh
# kubeadm stub for tests/test_provisioning_kubeadm.py: logs each call; see the module docstring.
echo "$*" >> /var/log/kubeadm-stub.log
mkdir -p /etc/kubernetes /var/lib/kubeadm-stub
case "$1" in
  version) echo v1.33.0 ;;
  config) exit 0 ;;
  init)
    echo "apiVersion: v1" > /etc/kubernetes/admin.conf   # written EARLY, as the real kubeadm does
    if [ ! -e /var/lib/kubeadm-stub/init-failed ]; then
      touch /var/lib/kubeadm-stub/init-failed
      echo "error execution phase wait-control-plane: couldn't initialize a Kubernetes cluster" >&2
      exit 1
    fi
    echo "Your Kubernetes control-plane has initialized successfully!"
    case "$*" in
      *--skip-token-print*) t="<value withheld>" ;;
      *) t={TOKEN} ;;
    esac
    echo "kubeadm join 10.10.1.1:6443 --token $t --discovery-token-ca-cert-hash {CA_HASH}" ;;
  token) echo "kubeadm join 10.10.1.1:6443 --token {TOKEN} --discovery-token-ca-cert-hash {CA_HASH} " ;;
  join)
    grep -q "token: \\"{TOKEN}\\"" "$3" || {{ echo "join: no token in $3" >&2; exit 2; }}
    echo "apiVersion: v1" > /etc/kubernetes/kubelet.conf
    if [ ! -e /var/lib/kubeadm-stub/join-failed ]; then
      touch /var/lib/kubeadm-stub/join-failed
      echo "error execution phase kubelet-start: timed out waiting for the condition" >&2
      exit 1
    fi
    echo "This node has joined the cluster" ;;
  reset) rm -f /etc/kubernetes/admin.conf /etc/kubernetes/kubelet.conf ;;
  *) echo "kubeadm stub: unexpected $*" >&2; exit 3 ;;
esac
"""

PLAYBOOK = """\
- name: Initialise the control plane (krios_kubeadm_control_plane, init.yml)
  hosts: krios_control
  gather_facts: false
  tasks:
    - name: Run the role's init tasks
      ansible.builtin.include_role:
        name: krios_kubeadm_control_plane
        tasks_from: init.yml

- name: Join the workers (krios_kubeadm_join, join.yml)
  hosts: krios_workers
  gather_facts: false
  tasks:
    - name: Run the role's join tasks
      ansible.builtin.include_role:
        name: krios_kubeadm_join
        tasks_from: join.yml
"""


def _run(private: Path, inventory: Path, playbook: Path, extravars: dict | None = None) -> tuple[object, list[dict]]:
    import ansible_runner

    result = ansible_runner.run(
        private_data_dir=str(private), project_dir=str(playbook.parent), playbook=str(playbook),
        inventory=str(inventory), extravars=extravars or {},
        envvars={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
                 "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
                 "ANSIBLE_CACHE_PLUGIN": "memory"},
        quiet=True, timeout=600,
    )
    return result, list(result.events)


@pytest.mark.slow
def test_init_and_join_retry_once_write_markers_and_never_print_the_token(
    tmp_path: Path, debian_root: Path  # noqa: F811
) -> None:
    stub = debian_root / "usr/local/bin/kubeadm"
    stub.write_text(STUB)
    stub.chmod(0o755)
    host = {"ansible_host": str(debian_root), "ansible_connection": "community.general.chroot",
            "ansible_python_interpreter": "/usr/bin/python3", "krios_scenario": "sf_4workers"}
    inventory = write_inventory(tmp_path / "chroot.yml", {"all": {"children": {"k8s_cluster": {"children": {
        "krios_control": {"hosts": {"node1": {**host, "krios_node_ip": "10.10.1.1", "krios_node_index": 1}}},
        # the same root plays the worker: its markers and files are separate from the control node's
        "krios_workers": {"hosts": {"node2": {**host, "krios_node_ip": "10.10.1.2", "krios_node_index": 2}}},
    }}}}})
    # init.yml renders nothing itself: the configuration file the role would have written
    (debian_root / "etc/kubernetes/krios").mkdir(parents=True)
    (debian_root / "etc/kubernetes/krios/kubeadm-config.yaml").write_text("kind: InitConfiguration\n")
    playbook = tmp_path / "project" / "kubeadm.yml"
    playbook.parent.mkdir()
    playbook.write_text(PLAYBOOK)
    log = debian_root / "var/log/kubeadm-stub.log"

    (tmp_path / "run1").mkdir()
    result, events = _run(tmp_path / "run1", inventory, playbook)
    assert result.status == "successful", result.stdout.read()[-4000:]
    calls = [line.split()[0] + (" " + line.split()[1] if line.startswith("token") else "")
             for line in log.read_text().splitlines() if not line.startswith(("version", "config"))]
    assert calls == ["init", "reset", "init", "token create", "join", "reset", "join"], log.read_text()
    assert "init --config /etc/kubernetes/krios/kubeadm-config.yaml --skip-token-print" in log.read_text()
    assert (debian_root / "etc/kubernetes/krios/initialised").is_file()
    assert (debian_root / "etc/kubernetes/krios/joined").is_file()
    assert not (debian_root / "etc/kubernetes/krios/kubeadm-join.yaml").exists()  # it held the token
    rescued = {e["event_data"]["host"] for e in events if e["event"] == "runner_on_ok"
               and e["event_data"].get("task", "").startswith(("Reset the half-initialised", "Reset the half-joined"))}
    assert rescued == {"node1", "node2"}
    dump = json.dumps(events) + result.stdout.read()
    assert TOKEN not in dump, "the bootstrap token reached the job events"
    assert TOKEN.split(".")[1] not in dump

    # Second run: the markers say done, so kubeadm is not called again (no init, no reset, no join).
    before = log.read_text()
    (tmp_path / "run2").mkdir()
    result, events = _run(tmp_path / "run2", inventory, playbook)
    assert result.status == "successful", result.stdout.read()[-4000:]
    assert log.read_text() == before
    stats = next(e for e in events if e["event"] == "playbook_on_stats")["event_data"]
    assert not stats["changed"], stats


@pytest.mark.slow
def test_a_failed_init_leaves_no_marker_so_the_next_run_tries_again(
    tmp_path: Path, debian_root: Path  # noqa: F811
) -> None:
    stub = debian_root / "usr/local/bin/kubeadm"
    # kubeadm init always fails, after writing admin.conf (the old marker) early
    stub.write_text("#!/bin/sh\necho \"$*\" >> /var/log/kubeadm-stub.log\ncase \"$1\" in\n"
                    "  init) mkdir -p /etc/kubernetes; echo x > /etc/kubernetes/admin.conf; echo boom >&2; exit 1 ;;\n"
                    "  reset) rm -f /etc/kubernetes/admin.conf ;;\nesac\n")
    stub.chmod(0o755)
    host = {"ansible_host": str(debian_root), "ansible_connection": "community.general.chroot",
            "ansible_python_interpreter": "/usr/bin/python3", "krios_node_ip": "10.10.1.1", "krios_node_index": 1}
    inventory = write_inventory(tmp_path / "chroot.yml", {"all": {"children": {"k8s_cluster": {"children": {
        "krios_control": {"hosts": {"node1": host}}}}}}})
    playbook = tmp_path / "project" / "kubeadm.yml"
    playbook.parent.mkdir()
    playbook.write_text(PLAYBOOK)
    for attempt in ("run1", "run2"):
        (tmp_path / attempt).mkdir()
        result, _ = _run(tmp_path / attempt, inventory, playbook)
        assert result.status == "failed"
        assert not (debian_root / "etc/kubernetes/krios/initialised").exists()
    calls = [line.split()[0] for line in (debian_root / "var/log/kubeadm-stub.log").read_text().splitlines()]
    assert calls == ["init", "reset", "init"] * 2  # each run: init, reset, one more init


@pytest.mark.slow
def test_a_hanging_init_is_stopped_at_the_timeout_reset_and_retried(
    tmp_path: Path, debian_root: Path  # noqa: F811
) -> None:
    stub = debian_root / "usr/local/bin/kubeadm"
    # the first kubeadm init hangs (writing admin.conf first); the second succeeds
    stub.write_text("#!/bin/sh\necho \"$*\" >> /var/log/kubeadm-stub.log\ncase \"$1\" in\n"
                    "  init) mkdir -p /etc/kubernetes; echo x > /etc/kubernetes/admin.conf\n"
                    "        if [ ! -e /etc/kubernetes/hung ]; then touch /etc/kubernetes/hung; sleep 30; fi ;;\n"
                    "  reset) rm -f /etc/kubernetes/admin.conf ;;\nesac\n")
    stub.chmod(0o755)
    host = {"ansible_host": str(debian_root), "ansible_connection": "community.general.chroot",
            "ansible_python_interpreter": "/usr/bin/python3", "krios_node_ip": "10.10.1.1", "krios_node_index": 1}
    inventory = write_inventory(tmp_path / "chroot.yml", {"all": {"children": {"k8s_cluster": {"children": {
        "krios_control": {"hosts": {"node1": host}}}}}}})
    playbook = tmp_path / "project" / "kubeadm.yml"
    playbook.parent.mkdir()
    playbook.write_text(PLAYBOOK)
    (tmp_path / "run").mkdir()
    result, events = _run(tmp_path / "run", inventory, playbook, {"krios_kubeadm_control_plane_init_timeout": 5})
    assert result.status == "successful", result.stdout.read()[-4000:]
    calls = [line.split()[0] for line in (debian_root / "var/log/kubeadm-stub.log").read_text().splitlines()]
    assert calls == ["init", "reset", "init"]
    timed_out = [e for e in events if e["event"] == "runner_on_failed"
                 and e["event_data"].get("task") == "Initialise the control plane (kubeadm init)"]
    assert timed_out and timed_out[0]["event_data"]["res"]["timedout"]["period"] == 5  # stopped after 5 s
    assert (debian_root / "etc/kubernetes/krios/initialised").is_file()
