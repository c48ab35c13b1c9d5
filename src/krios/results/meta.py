"""What a run records about its environment: versions, git revision, ``tc`` state, host.

Collected once when a run starts (:meth:`krios.results.store.ResultsStore.start_run`)
so that a result can be traced to the code and the network set-up that made it.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import krios

#: Python distributions whose versions a run records.
PACKAGES = ("krios-testbed", "kubernetes", "numpy", "skyfield", "sgp4", "matplotlib", "ansible-core")


def versions() -> dict[str, str]:
    """Versions of Python and the packages krios results depend on."""
    out = {"python": platform.python_version(), "krios": krios.__version__}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def repo_root() -> Path | None:
    """The git checkout holding the krios sources, if any."""
    for parent in Path(krios.__file__).resolve().parents:
        if (parent / ".git").exists():
            return parent
    return None


def git_revision() -> dict[str, Any]:
    """``{"commit": sha, "dirty": bool}`` of the source checkout (empty if unknown)."""
    root = repo_root()
    if root is None or shutil.which("git") is None:
        return {}
    try:
        sha = _run(["git", "-C", str(root), "rev-parse", "HEAD"])
        dirty = bool(_run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"]))
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": sha, "dirty": dirty}


def tc_state() -> str:
    """``tc qdisc show`` output of this host (the emulated links' qdiscs), or why not."""
    tc = shutil.which("tc") or next((p for p in ("/usr/sbin/tc", "/sbin/tc") if Path(p).exists()), None)
    if tc is None:
        return "unavailable: tc not installed"
    try:
        return _run([tc, "qdisc", "show"])
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable: {exc}"


def collect() -> dict[str, Any]:
    """The environment record stored in ``runs.meta`` (keys: versions, git, tc, host, argv)."""
    return {
        "versions": versions(),
        "git": git_revision(),
        "tc": tc_state(),
        "host": {"name": platform.node(), "system": platform.platform(), "cpus": _cpus()},
        "argv": list(sys.argv),
    }


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)


def _run(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=10).stdout.strip()
