"""Where the control-plane binaries come from.

In order of preference:

1. ``$KUBEBUILDER_ASSETS`` when it names a folder holding ``etcd`` and
   ``kube-apiserver`` (the convention of controller-runtime's envtest);
2. the cache ``${KRIOS_CACHE_DIR:-~/.cache/krios}/k8s-<version>/bin`` that a
   finished build marked with ``.complete``;
3. a build from Debian's ``kubernetes`` source package by
   ``scripts/build-control-plane.sh`` (about 6 min on 2 cores, once; its
   progress goes to stderr).
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from krios.errors import ClusterError

log = logging.getLogger(__name__)

#: Kubernetes version of the cached build (Debian bookworm's source package).
K8S_VERSION = os.environ.get("KRIOS_K8S_VERSION", "1.20.2")
#: Binaries a cluster cannot run without.
REQUIRED = ("etcd", "kube-apiserver")


def cache_dir() -> Path:
    """``${KRIOS_CACHE_DIR:-~/.cache/krios}/k8s-<version>``."""
    root = os.environ.get("KRIOS_CACHE_DIR") or str(Path.home() / ".cache" / "krios")
    return Path(root).expanduser() / f"k8s-{K8S_VERSION}"


def _has_required(folder: Path) -> bool:
    return all(os.access(folder / name, os.X_OK) for name in REQUIRED)


def build_script() -> Path | None:
    """``scripts/build-control-plane.sh`` of the source checkout, if krios runs from one."""
    script = Path(__file__).resolve().parents[3] / "scripts" / "build-control-plane.sh"
    return script if script.is_file() else None


def find_bin_dir(build: bool = True) -> Path:
    """The folder holding ``etcd``, ``kube-apiserver`` and the optional components.

    Builds (and caches) them when ``build`` is true and no folder is found;
    raises :class:`ClusterError` otherwise or when the build fails.
    """
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and _has_required(Path(assets)):
        return Path(assets)
    cached = cache_dir()
    if (cached / ".complete").is_file() and _has_required(cached / "bin"):
        return cached / "bin"
    script = build_script()
    if not build or script is None:
        raise ClusterError(
            f"no control-plane binaries: set KUBEBUILDER_ASSETS or build them into {cached}/bin "
            "with scripts/build-control-plane.sh",
            source="binaries",
        )
    log.warning("building the control plane once (about 6 min on 2 cores), cached in %s", cached)
    # stderr is inherited so the user sees the build's progress; stdout's last line is the folder.
    proc = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not _has_required(Path(lines[-1])):
        raise ClusterError(
            f"{script.name} failed (exit {proc.returncode}); see its output above",
            source="binaries",
        )
    return Path(lines[-1])


def binary(bin_dir: Path, name: str) -> Path:
    """Path of ``name`` in ``bin_dir``; :class:`ClusterError` when it is missing."""
    path = Path(bin_dir) / name
    if not os.access(path, os.X_OK):
        raise ClusterError(f"{name} not found in {bin_dir}", source="binaries", field=name)
    return path
