"""Helpers shared by the emulation tests (not a test module)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest


def _sh(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)


@contextlib.contextmanager
def veth_namespace() -> Iterator[str]:
    """A fresh network namespace with an up veth pair v0/v1 (10.99.0.1/24 on v0), deleted after.

    Skips the test (with the reason) where namespaces cannot be created.
    """
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2 to create a network namespace")
    name = f"krios-t6-{os.getpid()}-{time.monotonic_ns() % 100000}"
    proc = _sh("ip", "netns", "add", name)
    if proc.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {proc.stderr.strip()}")
    try:
        for argv in (["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
                     ["ip", "link", "set", "v0", "up"], ["ip", "link", "set", "v1", "up"],
                     ["ip", "addr", "add", "10.99.0.1/24", "dev", "v0"]):  # fmt: skip
            assert _sh("ip", "netns", "exec", name, *argv).returncode == 0
        yield name
    finally:
        _sh("ip", "netns", "del", name)
