"""What the real-node tests share: the cached artifacts and a lab of node containers that is always removed."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def script_output(name: str) -> Path:
    """Run ``scripts/<name>`` (a cached build) and return the folder it prints on its last line."""
    out = subprocess.run(["bash", str(REPO / "scripts" / name)], check=True, capture_output=True, text=True,
                         timeout=3600)
    return Path(out.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def lab_env(base: Path, prefix: str, subnet: str, workers: int = 2) -> Iterator[dict[str, Any]]:
    """A lab (``workers`` workers, 1 client) under ``base``, named ``<prefix><pid>`` on ``subnet``.

    Yields ``{"state", "base", "bin", "images", "name"}``; on exit the lab is taken
    down and nothing of it (containers, network, state folder) may be left.
    """
    from krios import lab

    if shutil.which("podman") is None:
        subprocess.run(["bash", str(REPO / "scripts" / "install-system-deps.sh")], check=True, timeout=900)
    bin_dir = script_output("build-control-plane.sh")
    images = script_output("build-node-images.sh")
    state_dir = base / ".krios" / "lab"
    name = f"{prefix}{os.getpid() % 10000}"
    state = lab.up(workers=workers, clients=1, state_dir=state_dir, name=name, subnet=subnet)
    try:
        yield {"state": state, "base": base, "bin": bin_dir, "images": images, "name": name}
    finally:
        lab.down(state_dir)
        left = subprocess.run(["podman", "ps", "-a", "--filter", f"label=krios.lab={name}", "-q"],
                              capture_output=True, text=True).stdout.split()
        assert not left, f"containers left behind: {left}"
        assert subprocess.run(["podman", "network", "exists", name]).returncode != 0, "network left behind"
        assert not state_dir.exists(), f"{state_dir} left behind"


def run_playbook(base: Path, inventory: Path, playbook: str, extravars: dict[str, Any], *, ok: bool = True,
                 timeout: int = 2400) -> tuple[list[dict], str]:
    """``playbook`` on the lab ``inventory`` through ansible-runner (a private data dir under ``base``,
    the project's ansible.cfg, this interpreter's tools first on PATH).

    Returns the job events and the output; with ``ok`` (default) asserts the run succeeded and names the
    failed tasks otherwise.
    """
    import sys
    import time

    import ansible_runner

    private = base / f"runner-{playbook.replace('/', '_')}-{time.monotonic_ns()}"
    private.mkdir(parents=True)
    result = ansible_runner.run(
        private_data_dir=str(private),
        project_dir=str(REPO),
        playbook=playbook,
        inventory=str(inventory),
        extravars=extravars,
        envvars={
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
            "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(base / "facts"),
        },
        quiet=True,
        timeout=timeout,
    )
    events = list(result.events)
    out = result.stdout.read()
    if ok:
        failed = [(e["event_data"].get("host"), e["event_data"].get("task"),
                   str(e["event_data"].get("res", {}).get("msg", ""))[:400])
                  for e in events if e["event"] == "runner_on_failed" and not e["event_data"].get("ignore_errors")]
        assert result.status == "successful" and result.rc == 0, (failed, out[-4000:])
    return events, out


def artifact_vars(env: dict[str, Any]) -> dict[str, str]:
    """The extra-vars pointing a lab run at the cached artifacts and a private artifacts folder."""
    return {
        "krios_artifacts_dir": str(env["base"] / "artifacts"),
        "krios_artifact_bin_dir": str(env["bin"]),
        "krios_artifact_dir": str(env["images"]),
    }
