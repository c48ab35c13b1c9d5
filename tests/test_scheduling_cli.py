"""Bad options of ``krios scheduler|controller|bench scheduler``: one clear line, exit 2, nothing started."""

from __future__ import annotations

import pytest

from krios.cli import main


@pytest.mark.parametrize(("argv", "expected"), [
    (["scheduler", "--scenario", "atlantis"], "krios: error: scenario: atlantis: unknown scenario (known: "),
    (["scheduler"], "krios: error: options: constellation: give --scenario NAME, --tles FILE or --shell NAME"),
    (["scheduler", "--tles", "/nonexistent/tles.txt"], "krios: error: /nonexistent/tles.txt"),
    (["controller", "--shell", "starlink-1", "--tles", "x.txt"], "krios: error: options: --tles/--shell:"),
    (["controller", "--scenario", "sf_4workers", "--epoch", "2026-01-01T00:00:00Z"],
     "krios: error: options: --epoch: --epoch goes with --shell"),
    (["controller", "--shell", "starlink-1", "--epoch", "yesterday"], "krios: error: --epoch: yesterday:"),
    (["controller", "--scenario", "sf_4workers", "--ready-timeout-s", "0"], "krios: error: --ready-timeout-s: 0"),
    (["controller", "--scenario", "sf_4workers", "--leader-elect-renew-deadline", "20"],
     "krios: error: --leader-elect-*: 15 20 2: need 0 < retry period < renew deadline < lease duration"),
    (["scheduler", "--scenario", "sf_4workers", "--min-elevation-deg", "95"],
     "krios: error: --min-elevation-deg: 95"),
    (["bench", "scheduler", "--pods", "0"], "krios: error: --pods: 0: must be at least 1"),
])
def test_bad_options_give_one_error_line(argv: list[str], expected: str, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KRIOS_STATE_DIR", str(tmp_path / "no-cluster"))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(expected), err[0]
    assert not (tmp_path / "no-cluster").exists()
