"""The Krios image: its tag follows its content, the Deployments roll with it, it holds only the daemons' needs.

* The tag (``krios_image_tag``, role krios) is ``0.1.0-<content hash>``, the hash
  of ``git ls-tree`` of exactly the paths that go into the image. Rendered for
  real (role defaults and ``component.yaml.j2`` through ansible-playbook) over a
  scratch git repository: a commit that changes ``src/`` gives a new tag and a
  different pod template (so ``kubectl apply`` rolls the Deployment); a commit
  that only changes README.md does not.
* The image installs the package with ``--no-deps`` and then only the ``daemon``
  extra of pyproject.toml; the daemons' commands run with Ansible, matplotlib,
  mkdocs and pytest made unimportable.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from provisioning_helpers import BIN, REPO, env

RENDER = """\
- name: Render a Krios component Deployment
  hosts: localhost
  gather_facts: false
  vars_files:
    - {repo}/roles/krios/defaults/main.yml
    - {repo}/roles/krios_deploy/defaults/main.yml
    - {repo}/roles/krios_deploy/vars/main.yml
  tasks:
    - name: Render component.yaml.j2
      ansible.builtin.copy:
        content: "{{{{ lookup('ansible.builtin.template', '{repo}/roles/krios_deploy/templates/component.yaml.j2') }}}}"
        dest: "{out}"
        mode: "0644"
"""


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={**env(), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"})


def _commit(repo: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "change")


def _render(tmp_path: Path, repo: Path, name: str) -> dict:
    out = tmp_path / f"{name}.yaml"
    play = tmp_path / "render.yml"
    play.write_text(RENDER.format(repo=REPO, out=out))
    extra = {"krios_image_repo": str(repo), "krios_mode": "cloudlab", "krios_deploy_component": "scheduler",
             "krios_deploy_args": ["scheduler", "--scenario", "sf_4workers"]}
    proc = subprocess.run([str(BIN / "ansible-playbook"), str(play), "-e", json.dumps(extra)], cwd=REPO,
                          env=env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return yaml.safe_load(out.read_text())


def test_tag_follows_the_image_content_and_the_pod_template_changes_with_it(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _commit(repo, {"images/krios/Dockerfile": "FROM scratch\n", "pyproject.toml": "[project]\nname = 'x'\n",
                   "src/krios/__init__.py": "VERSION = 1\n", "scenarios/sf_4workers.yml": "name: sf\n",
                   "README.md": "one\n"})
    first = _render(tmp_path, repo, "first")
    image = first["spec"]["template"]["spec"]["containers"][0]["image"]
    assert re.fullmatch(r"localhost/krios:0\.1\.0-[0-9a-f]{12}", image), image

    _commit(repo, {"README.md": "two\n", "docs/x.md": "not in the image\n"})
    assert _render(tmp_path, repo, "readme") == first  # nothing that goes into the image changed

    _commit(repo, {"src/krios/__init__.py": "VERSION = 2\n"})
    second = _render(tmp_path, repo, "second")
    new_image = second["spec"]["template"]["spec"]["containers"][0]["image"]
    assert new_image != image and new_image.startswith("localhost/krios:0.1.0-")
    assert second["spec"]["template"] != first["spec"]["template"]  # kubectl apply rolls the Deployment

    _commit(repo, {"scenarios/sf_4workers.yml": "name: sf2\n"})
    assert _render(tmp_path, repo, "third")["spec"]["template"]["spec"]["containers"][0]["image"] != new_image


def test_image_paths_are_what_the_build_context_holds() -> None:
    krios = yaml.safe_load((REPO / "roles/krios/defaults/main.yml").read_text())
    images = yaml.safe_load((REPO / "roles/krios_images/defaults/main.yml").read_text())
    assert krios["krios_image_paths"] == ["images/krios", "pyproject.toml", "src", "scenarios"]
    assert images["krios_images_paths"] == "{{ krios_image_paths }}"
    dockerfile = (REPO / "images/krios/Dockerfile").read_text()
    copied = re.findall(r"^COPY (\S+)", dockerfile, re.M)
    # README.md is not copied (it is not hashed); images/krios/wheels is inside images/krios.
    assert copied == ["pyproject.toml", "src", "images/krios/wheels", "scenarios"]


BLOCKED = ("ansible", "ansible_runner", "matplotlib", "mkdocs", "pytest", "jinja2", "cryptography")


def test_daemon_extra_holds_only_what_the_daemons_need() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    daemon = project["optional-dependencies"]["daemon"]
    assert set(daemon) <= set(project["dependencies"])  # same pins as the full install
    names = {re.split(r"[<>=!\[ ]", req)[0].lower() for req in daemon}
    assert names == {"kubernetes", "pyyaml", "skyfield", "sgp4", "numpy"}
    dockerfile = (REPO / "images/krios/Dockerfile").read_text()
    assert "pip install --no-deps ." in dockerfile and "['optional-dependencies']['daemon']" in dockerfile
    # the daemons' commands work with everything else unimportable
    code = (f"import sys\nfor m in {BLOCKED!r}:\n    sys.modules[m] = None\n"
            "import krios.control.scheduler, krios.control.controller, krios.emulation.emulator\n"
            "from krios.cli import main\n"
            "for cmd in ('scheduler', 'controller', 'emulator'):\n"
            "    try:\n        main([cmd, '--help'])\n    except SystemExit as e:\n        assert e.code == 0, cmd\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
