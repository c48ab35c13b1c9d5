"""The collection krios.testbed as ``ansible-galaxy collection build`` packs it.

The repository is the collection, so the build runs over a copy of it into
which secrets and local state were put where a user's clone has them
(``.krios/`` with the admin kubeconfig and the lab's SSH key, ``results/``,
``site/`` from the docs build, caches): none may reach the tarball. The
collection's ``dependencies`` must name every collection the roles use, at
versions the installed ``ansible`` package satisfies.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import yaml
from provisioning_helpers import BIN, REPO, env

SECRETS = (
    ".krios/cloudlab/admin.conf",
    ".krios/lab/id_ed25519",
    "results/run-1/report.md",
    "site/index.html",
    ".cache/facts/node1",
    ".pytest_cache/v/cache/lastfailed",
    "src/krios/__pycache__/cli.cpython-311.pyc",
    "src/krios_testbed.egg-info/PKG-INFO",
)


def test_build_keeps_secrets_and_local_state_out_of_the_tarball(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(REPO, copy, symlinks=True,
                    ignore=shutil.ignore_patterns(".venv", ".git", "collections", ".krios", "results", "site"))
    for rel in SECRETS:
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_text("secret\n")
    out = tmp_path / "out"
    proc = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(copy)],
                          cwd=copy, env=env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tarball,) = out.glob("krios-testbed-*.tar.gz")
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    leaked = [n for n in names if n.startswith((".krios", "results", "site", ".cache", ".pytest_cache", ".venv"))
              or "__pycache__" in n or ".egg-info" in n]
    assert leaked == []
    # what the collection is made of is there
    for needed in ("roles/krios_kubeadm_control_plane/tasks/main.yml", "plugins/inventory/krios.py",
                   "playbooks/site.yml", "meta/runtime.yml", "MANIFEST.json"):
        assert needed in names, needed


def _installed_collections() -> dict[str, str]:
    out = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "list", "--format", "yaml"], cwd=REPO,
                         env=env(), capture_output=True, text=True, timeout=300, check=True).stdout
    found: dict[str, str] = {}
    for listing in yaml.safe_load(out).values():
        for name, info in listing.items():
            found.setdefault(name, info["version"])
    return found


def test_dependencies_name_every_collection_used_at_installed_versions() -> None:
    from ansible.galaxy.dependency_resolution.versioning import meets_requirements

    deps = yaml.safe_load((REPO / "galaxy.yml").read_text())["dependencies"]
    used = set()
    for folder in ("roles", "playbooks", "plugins"):
        for path in (REPO / folder).rglob("*"):
            if path.suffix in (".yml", ".yaml", ".py", ".j2") and path.is_file():
                used |= set(re.findall(r"\b((?:kubernetes\.core|ansible\.posix|community\.general))\.\w+",
                                       path.read_text()))
    used |= {"ansible.posix"}  # ansible.cfg: callbacks_enabled = ansible.posix.profile_tasks, ansible.posix.timer
    assert set(deps) == used | {"kubernetes.core", "community.general"}
    installed = _installed_collections()
    for name, spec in deps.items():
        assert name in installed, f"{name} is not installed"
        assert meets_requirements(installed[name], spec), f"{name} {installed[name]} does not meet {spec}"
