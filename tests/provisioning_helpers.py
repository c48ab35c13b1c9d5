"""Helpers for the provisioning tests: run ansible-playbook for real and read its recap.

Every test runs the repository's playbooks with the repository's ``ansible.cfg``
(collections, roles, inventory plugins) from the project's venv, so what is
tested is exactly what a user runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ANSIBLE_PLAYBOOK = BIN / "ansible-playbook"

_RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)",
    re.M,
)


@dataclass
class PlaybookRun:
    """One finished ``ansible-playbook`` run."""

    args: list[str]
    returncode: int
    output: str

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        """``{host: {"ok": n, "changed": n, "failed": n, ...}}`` from the PLAY RECAP."""
        return {
            m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"}
            for m in _RECAP.finditer(self.output)
        }

    def total(self, key: str) -> int:
        return sum(host[key] for host in self.recap.values())

    def explain(self) -> str:
        """The command and the last lines of its output, for assertion messages."""
        tail = "\n".join(self.output.splitlines()[-60:])
        return f"$ {' '.join(self.args)}\n(rc={self.returncode})\n{tail}"


def env(**extra: str) -> dict[str, str]:
    """The environment of a run: the venv first on PATH, the repository's ansible.cfg."""
    out = dict(os.environ)
    out["PATH"] = f"{BIN}{os.pathsep}{out.get('PATH', '')}"
    out["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    out["ANSIBLE_FORCE_COLOR"] = "0"
    out["ANSIBLE_NOCOLOR"] = "1"
    # Facts in memory only: test hosts must not land in the user's fact cache.
    out["ANSIBLE_CACHE_PLUGIN"] = "memory"
    out.update(extra)
    return out


def run_playbook(
    playbook: str,
    inventories: Sequence[str | Path],
    extra_vars: Mapping[str, Any] | None = None,
    *,
    options: Sequence[str] = (),
    timeout: float = 900,
    env_extra: Mapping[str, str] | None = None,
) -> PlaybookRun:
    """Run ``playbooks/<playbook>`` with ``-i`` for each inventory and ``-e`` as JSON."""
    args = [str(ANSIBLE_PLAYBOOK), str(REPO / "playbooks" / playbook)]
    for inv in inventories:
        args += ["-i", str(inv)]
    if extra_vars:
        args += ["-e", json.dumps(dict(extra_vars))]
    args += list(options)
    proc = subprocess.run(
        args, cwd=REPO, env=env(**(env_extra or {})), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False,
    )
    return PlaybookRun(args, proc.returncode, proc.stdout)


def write_inventory(path: Path, data: Mapping[str, Any]) -> Path:
    """Write a YAML inventory and return its path."""
    path.write_text(yaml.safe_dump(dict(data), sort_keys=False))
    return path


def cloudlab_inventory(
    workers: int = 4,
    *,
    scenario: str = "sf_4workers",
    client: bool = True,
    hostvars: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """An inventory shaped like the krios.testbed.krios plugin's output (node1 = control)."""

    def host(i: int) -> dict[str, Any]:
        name = f"node{i}.exp.proj.utah.cloudlab.us"
        hv = {
            "ansible_host": f"128.110.218.{49 + i}",
            "krios_public_ip": f"128.110.218.{49 + i}",
            "krios_node_ip": f"10.10.1.{i}",
            "krios_node_index": i,
            "krios_scenario": scenario,
        }
        hv.update((hostvars or {}).get(name, {}))
        return {name: hv}

    control = host(1)
    worker_hosts: dict[str, Any] = {}
    for i in range(2, 2 + workers):
        worker_hosts.update(host(i))
    children: dict[str, Any] = {
        "k8s_cluster": {
            "children": {
                "krios_control": {"hosts": control},
                "krios_workers": {"hosts": worker_hosts},
            }
        }
    }
    if client:
        children["krios_client"] = {"hosts": host(2 + workers)}
    return {"all": {"children": children}}
