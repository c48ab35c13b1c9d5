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

import subprocess
from pathlib import Path

import yaml
from provisioning_helpers import REPO, env, run_playbook, write_inventory

ROLES = (
    "krios", "krios_validate", "krios_os_prep", "krios_go", "krios_container_runtime",
    "krios_kubernetes_packages", "krios_kubeadm_control_plane", "krios_kubeadm_join", "krios_calico",
    "krios_node_ready", "krios_images", "krios_deploy", "krios_reset",
)
PLAYBOOKS = ("site.yml", "validate.yml", "prepare.yml", "cluster.yml", "deploy.yml", "reset.yml")
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


def test_reset_without_confirmation_changes_nothing(tmp_path: Path) -> None:
    example = REPO / "inventories" / "cloudlab" / "krios.yml"
    run = run_playbook("reset.yml", [example, _this_machine(tmp_path)])
    assert run.returncode != 0
    assert "reset: not confirmed (type yes, or pass -e reset_confirmed=true); nothing was changed" in run.output
    assert "PLAY [Reset the Kubernetes nodes]" not in run.output, run.explain()
