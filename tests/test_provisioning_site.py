"""The provisioning playbooks as a whole: syntax, role hygiene, a check-mode run of site.yml.

The check-mode run uses the repository's example CloudLab inventory (plugin
krios.testbed.krios, hosts node1-node6 on documentation addresses that do not
exist). To run it at all, a second inventory source points every CloudLab host
at THIS machine (``ansible_connection: local``), and it runs in check mode, so
nothing is changed here. What that shows: every play and role of site.yml
(validate, prepare, cluster, deploy) evaluates for every kind of host, the
per-host templates render with each host's variables (``--diff``), and nothing
fails. What it does not show: downloads (``--skip-tags upstream``: go.dev,
download.docker.com, pkgs.k8s.io, raw.githubusercontent.com are not reachable
here), nor anything needing a cluster (there is no kubeconfig, so the API tasks
are skipped, as they are in any check-mode run before the cluster exists).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from provisioning_helpers import REPO, env, run_playbook, write_inventory

ROLES = (
    "krios", "krios_validate", "krios_os_prep", "krios_go", "krios_container_runtime",
    "krios_kubernetes_packages", "krios_kubeadm_control_plane", "krios_kubeadm_join", "krios_calico",
    "krios_cni_bridge",
    "krios_node_ready", "krios_images", "krios_deploy", "krios_reset", "krios_latency",
)
PLAYBOOKS = ("site.yml", "validate.yml", "prepare.yml", "cluster.yml", "deploy.yml", "reset.yml", "latency.yml")
# Scenario-derived defaults of role krios: validated by krios_validate, not by the
# argument spec (the spec would load the scenario in every play, even reset.yml's).
SCENARIO_DERIVED = {"krios_scenario_data", "krios_emulator_time", "krios_latency_ms", "krios_samples_per_latency"}


def test_syntax_check_every_playbook() -> None:
    proc = subprocess.run(["bash", "scripts/syntax-check.sh"], cwd=REPO, env=env(), capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "playbooks ok" in proc.stdout
    for playbook in PLAYBOOKS:
        assert (REPO / "playbooks" / playbook).is_file()


def test_every_role_is_complete_and_documented() -> None:
    problems = []
    for role in ROLES:
        path = REPO / "roles" / role
        for part in ("defaults/main.yml", "meta/main.yml", "meta/argument_specs.yml", "README.md"):
            if not (path / part).is_file():
                problems.append(f"{role}: no {part}")
        defaults = yaml.safe_load((path / "defaults/main.yml").read_text()) or {}
        lines = (path / "defaults/main.yml").read_text().splitlines()
        for i, line in enumerate(lines):
            key = line.split(":", 1)[0]
            if key in defaults and not lines[i - 1].startswith("#"):
                problems.append(f"{role}: defaults/main.yml: {key} has no comment above it")
        specs = yaml.safe_load((path / "meta/argument_specs.yml").read_text())["argument_specs"]
        options = set().union(*((spec.get("options") or {}).keys() for spec in specs.values()))
        missing = set(defaults) - options - (SCENARIO_DERIVED if role == "krios" else set())
        problems += [f"{role}: {key} not in meta/argument_specs.yml" for key in sorted(missing)]
        readme = (path / "README.md").read_text()
        problems += [f"{role}: {key} not in README.md" for key in sorted(defaults) if f"`{key}`" not in readme]
        meta = yaml.safe_load((path / "meta/main.yml").read_text())
        if role != "krios" and {"role": "krios"} not in meta["dependencies"]:
            problems.append(f"{role}: does not depend on role krios (the shared defaults)")
    assert problems == []


DOWNLOADS = ("ansible.builtin.apt", "ansible.builtin.get_url", "ansible.builtin.deb822_repository")


def _tasks(node):
    """Every task (dict with a module key) in a task file, blocks included."""
    for item in node or []:
        if not isinstance(item, dict):
            continue
        yield item
        for key in ("block", "rescue", "always"):
            yield from _tasks(item.get(key))


def test_every_download_retries() -> None:
    """apt, get_url and repository tasks reach the network: each retries (until/retries/delay)."""
    problems = []
    for path in sorted((REPO / "roles").glob("*/tasks/*.yml")):
        for task in _tasks(yaml.safe_load(path.read_text())):
            if any(module in task for module in DOWNLOADS):
                register = task.get("register")
                if not (register and task.get("until") == f"{register} is succeeded"
                        and task.get("retries") == "{{ krios_download_retries }}"
                        and task.get("delay") == "{{ krios_download_delay }}"):
                    problems.append(f"{path.relative_to(REPO)}: {task.get('name')}")
    assert problems == []


def test_every_boolean_is_filtered_with_bool_and_validated() -> None:
    """``-e name=false`` gives the string "false", which is truthy: each use must apply ``| bool``.

    The names are validate's list (krios_validate_booleans), which must hold every
    bool option of the roles' argument specs, so a new boolean cannot be missed.
    """
    names = yaml.safe_load((REPO / "roles/krios_validate/vars/main.yml").read_text())["krios_validate_booleans"]
    spec_bools = set()
    for path in (REPO / "roles").glob("*/meta/argument_specs.yml"):
        for spec in yaml.safe_load(path.read_text())["argument_specs"].values():
            spec_bools |= {k for k, v in (spec.get("options") or {}).items() if v.get("type") == "bool"}
    assert spec_bools <= set(names), sorted(spec_bools - set(names))
    use = re.compile(r"(?<![\w.'\"])(" + "|".join(names) + r")\b(?![_=:])(?!\s*\|\s*(?:bool|default))")
    problems = []
    files = [*REPO.glob("roles/*/tasks/*.yml"), *REPO.glob("roles/*/handlers/*.yml"),
             *REPO.glob("roles/*/templates/*.j2"), *REPO.glob("playbooks/*.yml")]
    for path in sorted(files):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            text = line.strip()
            if text.startswith(("#", "- name:", "name:")) or "msg:" in line:
                continue
            if use.search(line):
                problems.append(f"{path.relative_to(REPO)}:{number}: {text}")
    assert problems == []


def test_ansible_doc_shows_every_role_and_the_scenario_lookup() -> None:
    listing = subprocess.run([str(REPO / ".venv/bin/ansible-doc"), "-t", "role", "-l"],
                             cwd=REPO, env=env(), capture_output=True, text=True, timeout=300, check=True).stdout
    for role in ROLES:
        # the repository is also the collection krios.testbed
        assert f"krios.testbed.{role}:\n  specs:\n    main " in listing, role
    doc = subprocess.run([str(REPO / ".venv/bin/ansible-doc"), "-t", "lookup", "krios.testbed.krios_scenario"],
                         cwd=REPO, env=env(), capture_output=True, text=True, timeout=300, check=True).stdout
    assert "krios.config.scenarios.load" in doc and "EXAMPLES" in doc


def _this_machine(tmp_path: Path) -> Path:
    """Point every host of the CloudLab inventory at this machine (local connection)."""
    here = {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_become": False}
    return write_inventory(tmp_path / "this-machine.yml", {"all": {"children": {
        "k8s_cluster": {"vars": here}, "krios_client": {"vars": here}}}})


def test_site_check_mode_against_the_example_cloudlab_inventory(tmp_path: Path) -> None:
    example = REPO / "inventories" / "cloudlab" / "krios.yml"
    run = run_playbook(
        "site.yml", [example, _this_machine(tmp_path)],
        # control, one worker and the client: every kind of host, a shorter run
        options=["--check", "--diff", "--skip-tags", "upstream",
                 "--limit", "localhost,krios_control,krios_client,node2.krios-demo.krios-pg0.utah.cloudlab.example"],
    )
    assert run.returncode == 0, run.explain()
    recap = run.recap
    assert set(recap) == {"localhost", "node1.krios-demo.krios-pg0.utah.cloudlab.example",
                          "node2.krios-demo.krios-pg0.utah.cloudlab.example",
                          "node6.krios-demo.krios-pg0.utah.cloudlab.example"}, run.explain()
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in recap.values()), run.explain()
    # validate ran and passed; then every phase of site.yml ran its plays
    for play in ("Validate variables, scenario and inventory groups", "Prepare the Kubernetes nodes",
                 "Initialise the Kubernetes control plane", "Join the workers", "Install Calico",
                 "Build the Krios image on the control node", "Deploy the Krios components and the app"):
        assert f"PLAY [{play}]" in run.output, play
    # per-host rendering (--diff): kubeadm's config on the control node, the kubelet's node IP on each node
    assert 'advertiseAddress: "192.0.2.11"' in run.output
    assert 'podSubnet: "192.168.0.0/16"' in run.output
    assert 'KUBELET_EXTRA_ARGS="--node-ip=192.0.2.11"' in run.output
    assert 'KUBELET_EXTRA_ARGS="--node-ip=192.0.2.12"' in run.output
    assert "SystemdCgroup = true" in run.output


def test_site_check_mode_with_local_artifacts_and_the_bridge_cni(tmp_path: Path) -> None:
    """The lab's settings (krios_artifact_source local, krios_cni bridge, Kubernetes 1.20) through site.yml.

    Check mode on this machine, as above: every play evaluates, the local
    artifacts are found on the controller (small stand-in files here), the
    kubeadm configuration renders as v1beta2 with the image repository, and
    nothing upstream is fetched (no --skip-tags needed).
    """
    bins = tmp_path / "bin"
    bins.mkdir()
    for name in ("kubelet", "kubeadm", "kubectl", "kube-proxy"):
        (bins / name).write_text("x\n")
    images = tmp_path / "images"
    images.mkdir()
    (images / "pause.tar").write_text("pause\n")
    (images / "SHA256SUMS").write_text(
        "8a9f8ed5e4e3a1e0d7c7b4ba0c7f3bc0c0d4c4b1d6f0f5bb0f3c0a3e1c3f5f7a  pause.tar\n")
    example = REPO / "inventories" / "cloudlab"
    run = run_playbook(
        "site.yml", [example, _this_machine(tmp_path)],
        {"krios_artifact_source": "local", "krios_kubernetes_version": "1.20", "krios_cni": "bridge",
         "krios_pod_cidr": "10.244.0.0/16", "krios_cgroup_driver": "cgroupfs",
         "krios_kubeadm_image_repository": "registry.krios.local", "krios_artifact_bin_dir": str(bins),
         "krios_artifact_dir": str(images)},
        options=["--check", "--diff", "--limit", "localhost,krios_control"],
    )
    assert run.returncode == 0, run.explain()
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in run.recap.values()), run.explain()
    for play in ("Prepare the Kubernetes nodes", "Initialise the Kubernetes control plane",
                 "Configure the bridge pod network (krios_cni=bridge)"):
        assert f"PLAY [{play}]" in run.output, play
    assert "apiVersion: kubeadm.k8s.io/v1beta2" in run.output
    assert 'imageRepository: "registry.krios.local"' in run.output
    assert "allocate-node-cidrs" in run.output
    assert 'sandbox_image = "registry.krios.local/pause:3.2"' in run.output
    assert "ExecStart=/usr/local/bin/kubelet" in run.output  # the kubelet unit of source local
    for upstream in ("Add the pkgs.k8s.io repository of Kubernetes 1.20", "Install kubelet, kubeadm and kubectl",
                     "Add Docker's apt repository", "Download the Go tarball (checksum verified)"):
        assert all(r.startswith("skipping") for r in _task_results(run.output, upstream)), upstream
    copied = _task_results(run.output, "Copy the node binaries")
    assert copied and not copied[0].startswith("skipping"), run.explain()


def test_reset_without_confirmation_changes_nothing(tmp_path: Path) -> None:
    example = REPO / "inventories" / "cloudlab" / "krios.yml"
    run = run_playbook("reset.yml", [example, _this_machine(tmp_path)])
    assert run.returncode != 0
    assert "reset: not confirmed (type yes, or pass -e reset_confirmed=true); nothing was changed" in run.output
    assert "PLAY [Reset the Kubernetes nodes]" not in run.output, run.explain()


def _task_results(output: str, task: str) -> list[str]:
    """The result lines (``ok:``, ``changed:``, ``skipping:`` ...) printed under ``TASK [... : task]``."""
    lines = output.splitlines()
    out: list[str] = []
    for i, line in enumerate(lines):
        if line.startswith("TASK [") and line.rstrip("* ").endswith(f"{task}]"):
            for follow in lines[i + 1:]:
                if follow.startswith(("TASK [", "PLAY [", "RUNNING HANDLER", "PLAY RECAP")):
                    break
                if follow.split(":", 1)[0] in ("ok", "changed", "skipping", "failed", "fatal"):
                    out.append(follow)
    return out


def test_string_false_from_the_command_line_does_not_skip_kubeadm(tmp_path: Path) -> None:
    """``-e krios_reuse_cluster=false`` is the STRING "false": kubeadm init must still run (``| bool``)."""
    example = REPO / "inventories" / "cloudlab" / "krios.yml"
    run = run_playbook(
        "cluster.yml", [example, _this_machine(tmp_path)],
        options=["--check", "--limit", "localhost,krios_control", "--tags", "control_plane",
                 "-e", "krios_reuse_cluster=false"],
    )
    assert run.returncode == 0, run.explain()
    results = _task_results(run.output, "Write the kubeadm configuration (validated with kubeadm config validate)")
    assert results and not results[0].startswith("skipping"), run.explain()
    fetched = _task_results(run.output, "Fetch the admin kubeconfig of the existing cluster")
    assert all(r.startswith("skipping") for r in fetched), run.explain()
