"""TLE files: parsing 3-line and 2-line forms, checks with clear errors, writing."""

from __future__ import annotations

from pathlib import Path

import pytest

from krios.errors import ConfigError
from krios.orbits.tle import TLE, checksum, load_tles, parse_tles, write_tles

FIXTURES = Path(__file__).parent / "fixtures" / "orbits"


def test_three_line_file_keeps_names_and_order():
    tles = load_tles(FIXTURES / "real3.tle")
    assert [t.name for t in tles][:2] == ["ISS (ZARYA)", "STARLINK-1007"]
    assert tles[0].catalog == "25544"
    assert all(len(t.line1) == 69 and len(t.line2) == 69 for t in tles)


def test_two_line_file_gets_catalog_names():
    tles = load_tles(FIXTURES / "real2.tle")
    assert [t.name for t in tles] == ["NORAD 25544", "NORAD 44713", "NORAD 44929"]
    assert [t.line1 for t in tles] == [t.line1 for t in load_tles(FIXTURES / "real3.tle")[:3]]


def test_checksum_counts_digits_and_minus_signs():
    line = "1 25544U 98067A   08264.51782528 -.00002182  00000-0 -11606-4 0  2927"
    assert checksum(line) == 7


def _lines() -> list[str]:
    return (FIXTURES / "real3.tle").read_text().splitlines()


def _expect(text: str, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_tles(text, "sats.tle")
    err = info.value
    assert err.source == "sats.tle"
    assert err.field == field
    assert words in err.message


def test_bad_checksum_names_file_line_and_satellite():
    lines = _lines()
    good = int(lines[4][68])
    lines[4] = lines[4][:68] + str((good + 1) % 10)
    _expect("\n".join(lines), "line 5 (STARLINK-1007)", "bad checksum")
    assert str(parse_err("\n".join(lines))).startswith("sats.tle: line 5 (STARLINK-1007): bad checksum")


def parse_err(text: str) -> ConfigError:
    try:
        parse_tles(text, "sats.tle")
    except ConfigError as err:
        return err
    raise AssertionError("no error")


def test_catalog_numbers_must_match():
    lines = _lines()
    body = lines[2][:2] + "25545" + lines[2][7:68]
    lines[2] = body + str(checksum(body))
    _expect("\n".join(lines), "line 3 (ISS (ZARYA))", "catalog number")


def test_line_numbers_and_lengths_are_checked():
    lines = _lines()
    swapped = [lines[0], lines[2], lines[1]]
    _expect("\n".join(swapped), "line 2 (ISS (ZARYA))", "expected TLE line 1")
    short = [lines[0], lines[1][:60], lines[2]]
    _expect("\n".join(short), "line 2 (ISS (ZARYA))", "69 characters")
    _expect("\n".join(lines[:2]), "line 2 (ISS (ZARYA))", "line 2 is missing")
    _expect("LONELY NAME\n", "line 1 (LONELY NAME)", "without the two TLE lines")


def test_non_numeric_field_is_an_error():
    lines = _lines()
    body = lines[2][:8] + " 5x.6416" + lines[2][16:68]
    lines[2] = body + str(checksum(body))
    _expect("\n".join(lines), "line 3 (ISS (ZARYA))", "inclination")


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(ConfigError, match="no such TLE file"):
        load_tles(tmp_path / "nope.tle")
    (tmp_path / "empty.tle").write_text("\n\n")
    with pytest.raises(ConfigError, match="no element sets"):
        load_tles(tmp_path / "empty.tle")


def test_write_then_read_round_trips(tmp_path):
    tles = load_tles(FIXTURES / "real3.tle")
    out = tmp_path / "copy.tle"
    write_tles(tles, out)
    assert load_tles(out) == tles
    assert out.read_text() == "".join(t.text() for t in tles)
    assert not list(tmp_path.glob(".*tmp*"))


def test_write_to_missing_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot write"):
        write_tles([TLE("x", "1" * 69, "2" * 69)], tmp_path / "no" / "such.tle")
