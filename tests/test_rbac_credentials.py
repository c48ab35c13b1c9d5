"""Credentials krios writes are never readable by others, not even for an instant (issue 15 item 9).

The delay proxy's kubeconfig holds the apiserver token. It used to be written
with the umask's mode and narrowed to 0600 afterwards; now it is created 0600.
The test takes the later ``chmod`` away (and the umask's protection with it):
only a file created 0600 stays 0600.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from krios.measure.delayproxy import proxied_kubeconfig, write_secret


@pytest.fixture
def no_umask_no_chmod(monkeypatch):
    """umask 0 (a file created without a mode is 0666) and no chmod: the mode is the one given at creation."""
    old = os.umask(0)
    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)
    monkeypatch.setattr(Path, "chmod", lambda *a, **k: None)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_proxied_kubeconfig_is_created_0600(tmp_path, no_umask_no_chmod) -> None:
    src = tmp_path / "kubeconfig"
    src.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "admin", "user": {"token": "s3cret"}}],
    }))
    out = proxied_kubeconfig(src, "https://127.0.0.1:7000", tmp_path / "proxied")
    assert _mode(out) == 0o600
    assert "s3cret" in out.read_text()
    # an existing, wider file is replaced by a 0600 one (never rewritten in place)
    wide = tmp_path / "wide"
    wide.write_text("old")
    fd = os.open(wide, os.O_RDONLY)
    os.fchmod(fd, 0o644)
    os.close(fd)
    out = proxied_kubeconfig(src, "https://127.0.0.1:7000", wide)
    assert _mode(out) == 0o600 and "s3cret" in out.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kubeconfig", "proxied", "wide"]  # no temp left


def test_write_secret_leaves_nothing_behind_on_failure(tmp_path) -> None:
    with pytest.raises(TypeError):
        write_secret(tmp_path / "x", None)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
