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
