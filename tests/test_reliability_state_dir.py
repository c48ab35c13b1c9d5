"""Issue 15, item 1: `krios cluster up|down` never deletes what the cluster did not make.

A state folder is the cluster's only if it holds the marker file ``up``
writes (:data:`krios.localcluster.state.MARKER`); anything else is refused
with one line naming the folder, and its files stay.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from krios.localcluster.state import MARKER


def krios(*args: str, env: dict[str, str] | None = None, timeout_s: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "krios", *args], capture_output=True, text=True,
                          timeout=timeout_s, check=False, env={**os.environ, **(env or {})})


def one_line(result: subprocess.CompletedProcess, folder: Path) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(folder) in lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def thesis(tmp_path: Path) -> Path:
    folder = tmp_path / "X"
    folder.mkdir()
    (folder / "thesis.tex").write_text("keep\n")
    return folder


def test_down_refuses_a_folder_without_the_marker(thesis: Path):
    result = krios("cluster", "down", "--state-dir", str(thesis))
    assert result.returncode != 0
    assert "marker" in one_line(result, thesis)
    assert (thesis / "thesis.tex").read_text() == "keep\n"
    assert "removed" not in result.stdout


def test_down_through_krios_state_dir_refuses_too(thesis: Path):
    result = krios("cluster", "down", env={"KRIOS_STATE_DIR": str(thesis)})
    assert result.returncode != 0
    one_line(result, thesis)
    assert (thesis / "thesis.tex").read_text() == "keep\n"


def test_down_refuses_a_folder_that_only_looks_like_a_cluster(thesis: Path):
    (thesis / "state.json").write_text("{}")  # someone's own state.json: still not the cluster's
    result = krios("cluster", "down", "--state-dir", str(thesis))
    assert result.returncode != 0
    one_line(result, thesis)
    assert sorted(p.name for p in thesis.iterdir()) == ["state.json", "thesis.tex"]


def test_up_refuses_a_non_empty_foreign_folder(thesis: Path):
    result = krios("cluster", "up", "--state-dir", str(thesis), "--workers", "1", "--components", "")
    assert result.returncode != 0
    one_line(result, thesis)
    assert [p.name for p in thesis.iterdir()] == ["thesis.tex"]


def test_up_refuses_a_file(tmp_path: Path):
    target = tmp_path / "notes.txt"
    target.write_text("keep\n")
    result = krios("cluster", "up", "--state-dir", str(target), "--workers", "1", "--components", "")
    assert result.returncode != 0
    one_line(result, target)
    assert target.read_text() == "keep\n"


@pytest.mark.cluster
def test_up_and_down_on_a_fresh_folder_still_work(tmp_path: Path):
    folder = tmp_path / "fresh" / "cluster"
    up = krios("cluster", "up", "--state-dir", str(folder), "--workers", "1", "--components", "",
               "--ready-delay-s", "0.1", "--jitter-s", "0")
    assert up.returncode == 0, up.stderr
    assert (folder / MARKER).is_file()
    down = krios("cluster", "down", "--state-dir", str(folder))
    assert down.returncode == 0, down.stderr
    assert not folder.exists()
    assert (tmp_path / "fresh").is_dir()  # only the folder `up` used goes


@pytest.mark.cluster
def test_down_keeps_files_put_into_a_cluster_folder(tmp_path: Path):
    folder = tmp_path / "cluster"
    folder.mkdir()  # an empty folder may be used
    up = krios("cluster", "up", "--state-dir", str(folder), "--workers", "1", "--components", "",
               "--ready-delay-s", "0.1", "--jitter-s", "0")
    assert up.returncode == 0, up.stderr
    (folder / "notes.md").write_text("mine\n")
    down = krios("cluster", "down", "--state-dir", str(folder))
    assert down.returncode == 0, down.stderr
    assert [p.name for p in folder.iterdir()] == ["notes.md"]


@pytest.mark.cluster
def test_a_cluster_folder_from_before_the_marker_is_still_taken_down(tmp_path: Path):
    folder = tmp_path / "old"
    up = krios("cluster", "up", "--state-dir", str(folder), "--workers", "1", "--components", "",
               "--ready-delay-s", "0.1", "--jitter-s", "0")
    assert up.returncode == 0, up.stderr
    (folder / MARKER).unlink()  # as `up` left it before the marker existed: only what a cluster makes
    down = krios("cluster", "down", "--state-dir", str(folder))
    assert down.returncode == 0, down.stderr
    assert not folder.exists()
