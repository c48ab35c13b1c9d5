"""playbooks/validate.yml against good and bad inventories: real ansible-playbook runs.

validate.yml never connects to a node (fact-free asserts), so the CloudLab
hosts of these inventories need not exist. Each bad inventory must fail with
one line that names the group, host or variable and what is expected.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from provisioning_helpers import REPO, cloudlab_inventory, run_playbook, write_inventory

CONTROL = "node1.exp.proj.utah.cloudlab.us"
WORKER = "node3.exp.proj.utah.cloudlab.us"


def test_example_cloudlab_inventory_passes() -> None:
    """The repository's example inventory (plugin krios.testbed.krios) is valid as shipped."""
    run = run_playbook("validate.yml", [REPO / "inventories" / "cloudlab" / "krios.yml"])
    assert run.returncode == 0, run.explain()
    assert run.recap["localhost"]["failed"] == 0
    # every cluster node and the client went through the per-host checks
    assert len(run.recap) == 7, run.explain()
    assert run.total("changed") == 0


def test_hand_written_inventory_and_flags_pass(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "good.yml", cloudlab_inventory())
    run = run_playbook(
        "validate.yml", [inv],
        {"scenario": "sf_4workers", "krios_measure": True, "krios_latency_ms": 50,
         "krios_samples_per_latency": 3, "krios_emulator_time": 120, "krios_kubernetes_version": "1.32"},
    )
    assert run.returncode == 0, run.explain()


def _inv(tmp_path: Path, **kwargs) -> Path:
    return write_inventory(tmp_path / "bad.yml", cloudlab_inventory(**kwargs))


BAD = {
    "too_few_workers": (
        {"workers": 3}, {},
        "inventory: krios_workers: has 3 hosts but scenario sf_4workers needs 4",
    ),
    "no_client": (
        {"client": False}, {},
        "inventory: krios_client: needs exactly 1 host, has 0",
    ),
    "duplicate_node_ip": (
        {"hostvars": {WORKER: {"krios_node_ip": "10.10.1.2"}}}, {},
        "inventory: krios_node_ip: used by more than one node: 10.10.1.2",
    ),
    "bad_node_ip": (
        {"hostvars": {WORKER: {"krios_node_ip": "10.10.1.300"}}}, {},
        f"inventory: {WORKER}: krios_node_ip: not an IPv4 address: 10.10.1.300",
    ),
    "bad_node_name": (
        {"hostvars": {CONTROL: {"krios_node_name": "Node_1"}}}, {},
        f"inventory: {CONTROL}: krios_node_name: Node_1 is not a valid node name",
    ),
    "unsupported_kubernetes": (
        {}, {"krios_kubernetes_version": "1.20"},
        "variables: krios_kubernetes_version: unsupported value 1.20 (supported: 1.31, 1.32, 1.33, 1.34)",
    ),
    "unsupported_calico": (
        {}, {"krios_calico_version": "v3.20.0"},
        "variables: krios_calico_version: unsupported value v3.20.0 (supported: v3.29.1, v3.30.0)",
    ),
    "unknown_scenario": (
        {}, {"scenario": "mars_4workers"},
        "scenario: mars_4workers: unknown scenario (known: seattle_4workers, sf_4workers, tokyo_6workers)",
    ),
    "scenario_differs_from_inventory": (
        {}, {"scenario": "tokyo_6workers"},
        "inventory: krios_scenario: the inventory was built for scenario sf_4workers but -e scenario=tokyo_6workers",
    ),
    "latency_without_measure": (
        {}, {"krios_latency_ms": 50},
        "variables: krios_latency_ms: only used by the benchmarks; set krios_measure=true too",
    ),
    "bad_emulator_time": (
        {}, {"krios_emulator_time": "2min"},
        "variables: krios_emulator_time: must be a whole number of seconds > 0, not 2min",
    ),
    "string_boolean": (
        {}, {"krios_deploy_wait": "maybe"},
        "variables: krios_deploy_wait: not a boolean: maybe (use true or false; yes/no, on/off and 1/0 are read "
        "the same way)",
    ),
    "unsupported_cni": (
        {}, {"krios_cni": "flannel"},
        "variables: krios_cni: unsupported value flannel (supported: calico, bridge)",
    ),
    "unsupported_artifact_source": (
        {}, {"krios_artifact_source": "mirror"},
        "variables: krios_artifact_source: unsupported value mirror (supported: upstream, local)",
    ),
    "kubernetes_1_20_needs_local_artifacts": (
        {}, {"krios_kubernetes_version": "1.33", "krios_artifact_source": "local"},
        "variables: krios_kubernetes_version: unsupported value 1.33 (supported: 1.20)",
    ),
    "local_artifacts_without_checksums": (
        {}, {"krios_artifact_source": "local", "krios_kubernetes_version": "1.20",
             "krios_artifact_bin_dir": str(REPO / "tests"), "krios_artifact_dir": "/nonexistent/images"},
        "variables: krios_artifact_bin_dir: " + str(REPO / "tests") + "/kubelet does not exist",
    ),
    "bad_pod_cidr": (
        {}, {"krios_pod_cidr": "192.168.0.0/33"},
        "variables: krios_pod_cidr: not an IPv4 CIDR: 192.168.0.0/33",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inventory_or_variables_fail_clearly(tmp_path: Path, case: str) -> None:
    inv_kwargs, extra_vars, message = BAD[case]
    run = run_playbook("validate.yml", [_inv(tmp_path, **inv_kwargs)], extra_vars)
    assert run.returncode != 0, run.explain()
    assert message in run.output, run.explain()
    # the failure is reported by validate, before anything could touch a node
    assert "unreachable=1" not in run.output


def test_bad_flag_type_is_rejected_by_the_argument_spec(tmp_path: Path) -> None:
    run = run_playbook("validate.yml", [_inv(tmp_path)], {"krios_reuse_cluster": "maybe"})
    assert run.returncode != 0
    assert "argument 'krios_reuse_cluster' is of type str and we were unable to convert to bool" in run.output


def test_string_booleans_from_the_command_line_pass(tmp_path: Path) -> None:
    """``-e name=false`` gives the string "false": validate accepts it (every use applies ``| bool``)."""
    run = run_playbook("validate.yml", [_inv(tmp_path)],
                       options=["-e", "krios_reuse_cluster=false", "-e", "krios_deploy_wait=False",
                                "-e", "krios_reset_images=no", "-e", "keep_cluster=1"])
    assert run.returncode == 0, run.explain()


def test_local_artifacts_and_bridge_cni_pass(tmp_path: Path) -> None:
    """The lab's settings: artifacts from the controller (binaries + archives with SHA256SUMS), bridge CNI."""
    bins = tmp_path / "bin"
    bins.mkdir()
    for name in ("kubelet", "kubeadm", "kubectl", "kube-proxy"):
        (bins / name).write_text("x\n")
    images = tmp_path / "images"
    images.mkdir()
    (images / "SHA256SUMS").write_text("")
    run = run_playbook("validate.yml", [_inv(tmp_path)],
                       {"krios_artifact_source": "local", "krios_kubernetes_version": "1.20", "krios_cni": "bridge",
                        "krios_cgroup_driver": "cgroupfs", "krios_artifact_bin_dir": str(bins),
                        "krios_artifact_dir": str(images)})
    assert run.returncode == 0, run.explain()
    (images / "SHA256SUMS").unlink()
    run = run_playbook("validate.yml", [_inv(tmp_path)],
                       {"krios_artifact_source": "local", "krios_kubernetes_version": "1.20",
                        "krios_artifact_bin_dir": str(bins), "krios_artifact_dir": str(images)})
    assert run.returncode != 0
    assert f"variables: krios_artifact_dir: {images}/SHA256SUMS does not exist" in run.output, run.explain()
