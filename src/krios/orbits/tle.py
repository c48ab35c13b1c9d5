"""Two-line element sets: reading, checking and writing TLE files.

A TLE file holds one satellite per record, either in the 3-line form Celestrak
publishes (a name line, then lines 1 and 2) or in the bare 2-line form. Every
data line is checked before SGP4 sees it: length, line number, the modulo-10
checksum in column 69, matching catalog numbers on lines 1 and 2, and numeric
fields that parse. Then the orbit: an eccentricity below
:data:`MAX_ECCENTRICITY` (a LEO model; 0.9999999 would make the pass finder
allocate terabytes), a positive mean motion, elements SGP4 accepts at their
epoch, and a perigee above the Earth's surface. A bad record raises
:class:`~krios.errors.ConfigError` naming the file and ``line N (<satellite name>)``.

A satellite's ``sat_id`` is its 0-based position in the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sgp4.api import SGP4_ERRORS, WGS72, Satrec

from krios.errors import ConfigError

#: Largest eccentricity accepted (exclusive): LEO shells are near-circular (Starlink < 0.001); at
#: 0.25 a 550 km orbit's perigee is already far below the surface.
MAX_ECCENTRICITY = 0.25

#: Columns (0-based slices) of the numeric fields checked on each line.
_LINE1_FIELDS = {"epoch": slice(18, 32)}
_LINE2_FIELDS = {
    "inclination": slice(8, 16),
    "right ascension": slice(17, 25),
    "eccentricity": slice(26, 33),
    "argument of perigee": slice(34, 42),
    "mean anomaly": slice(43, 51),
    "mean motion": slice(52, 63),
}


@dataclass(frozen=True)
class TLE:
    """One element set: a name and the two 69-character data lines."""

    name: str
    line1: str
    line2: str

    @property
    def catalog(self) -> str:
        """The catalog number field (columns 3-7), as written (may be Alpha-5)."""
        return self.line1[2:7].strip()

    def text(self) -> str:
        """The 3-line form of this element set, ending in a newline."""
        return f"{self.name}\n{self.line1}\n{self.line2}\n"


def checksum(line: str) -> int:
    """The TLE checksum of ``line``'s first 68 columns: digits summed, ``-`` counts 1, mod 10."""
    total = 0
    for ch in line[:68]:
        if ch.isdigit():
            total += int(ch)
        elif ch == "-":
            total += 1
    return total % 10


def _check_line(line: str, number: int, lineno: int, name: str, source: str) -> None:
    field = f"line {lineno} ({name})"
    if len(line) != 69:
        raise ConfigError(f"TLE line {number} must be 69 characters, not {len(line)}",
                          source=source, field=field)
    if line[0] != str(number) or line[1] != " ":
        raise ConfigError(f"expected TLE line {number} (starting '{number} ')", source=source,
                          field=field)
    if not line[68].isdigit():
        raise ConfigError("the checksum (column 69) is not a digit", source=source, field=field)
    want = checksum(line)
    if int(line[68]) != want:
        raise ConfigError(f"bad checksum: column 69 says {line[68]}, the line sums to {want}",
                          source=source, field=field)
    fields = _LINE1_FIELDS if number == 1 else _LINE2_FIELDS
    for label, cols in fields.items():
        text = line[cols].strip()
        if label == "eccentricity":
            text = "0." + text
        try:
            float(text)
        except ValueError:
            raise ConfigError(f"the {label} field {line[cols]!r} is not a number", source=source,
                              field=field) from None


def _check_orbit(line1: str, line2: str, lineno: int, name: str, source: str) -> None:
    """Raise :class:`ConfigError` for elements krios's LEO model cannot propagate sensibly."""
    field = f"line {lineno} ({name})"
    ecc = float("0." + line2[26:33].strip())
    if ecc >= MAX_ECCENTRICITY:
        raise ConfigError(f"eccentricity 0.{line2[26:33].strip()} is not a LEO orbit krios can propagate "
                          f"(must be below {MAX_ECCENTRICITY:g})", source=source, field=field)
    if float(line2[52:63]) <= 0:
        raise ConfigError(f"the mean motion {line2[52:63].strip()!r} must be positive (revolutions per day)",
                          source=source, field=field)
    sat = Satrec.twoline2rv(line1, line2, WGS72)
    if sat.error:
        raise ConfigError(f"SGP4 cannot propagate these elements: {SGP4_ERRORS.get(sat.error, sat.error)}",
                          source=source, field=field)
    if sat.altp <= 0:  # perigee altitude, Earth radii
        raise ConfigError(f"the perigee is {-sat.altp * sat.radiusearthkm:.0f} km below the Earth's surface",
                          source=source, field=field)


def parse_tles(text: str, source: str = "<tles>") -> list[TLE]:
    """Element sets from the text of a 3-line or 2-line TLE file, in file order.

    ``source`` names the file in errors. Blank lines are ignored. A 2-line
    record gets the name ``NORAD <catalog>``. A name line may start with ``0 ``
    (the Space-Track 3LE form); that prefix is dropped.
    """
    return [tle for _lineno, tle in parse_tle_records(text, source)]


def check_orbit(tle: TLE, lineno: int, source: str) -> None:
    """Raise :class:`ConfigError` naming ``source`` and ``line lineno`` if krios's LEO model
    cannot propagate ``tle`` (the orbit checks of :func:`parse_tles`)."""
    _check_orbit(tle.line1, tle.line2, lineno, tle.name, source)


def parse_tle_records(text: str, source: str = "<tles>", *, check_orbits: bool = True) -> list[tuple[int, TLE]]:
    """:func:`parse_tles`'s element sets with the file line number of each one's line 2.

    With ``check_orbits=False`` only the lines are checked (format, checksum,
    catalog numbers), so that a caller can drop unpropagable satellites itself
    (:func:`check_orbit`; :mod:`krios.orbits.snapshot`).
    """
    lines = [(i + 1, raw.rstrip("\r\n").rstrip()) for i, raw in enumerate(text.splitlines())]
    lines = [(n, s) for n, s in lines if s.strip()]
    tles: list[tuple[int, TLE]] = []
    i = 0
    while i < len(lines):
        lineno, first = lines[i]
        if first.startswith("1 ") and len(first) >= 60:
            name = None
            l1_no, l1 = lineno, first
            i += 1
        else:
            name = first.strip()
            if name.startswith("0 "):
                name = name[2:].strip()
            if i + 1 >= len(lines):
                raise ConfigError("name line without the two TLE lines after it", source=source,
                                  field=f"line {lineno} ({name})")
            l1_no, l1 = lines[i + 1]
            i += 2
        label = name or (l1[2:7].strip() if len(l1) > 7 else "?")
        _check_line(l1, 1, l1_no, label, source)
        if i >= len(lines):
            raise ConfigError("TLE line 2 is missing", source=source, field=f"line {l1_no} ({label})")
        l2_no, l2 = lines[i]
        i += 1
        _check_line(l2, 2, l2_no, label, source)
        if l1[2:7] != l2[2:7]:
            raise ConfigError(
                f"catalog number {l2[2:7].strip()!r} differs from line 1's {l1[2:7].strip()!r}",
                source=source, field=f"line {l2_no} ({label})")
        if check_orbits:
            _check_orbit(l1, l2, l2_no, label, source)
        tles.append((l2_no, TLE(name or f"NORAD {l1[2:7].strip()}", l1, l2)))
    return tles


def read_tle_text(path: str | os.PathLike[str]) -> str:
    """The text of a TLE file; missing, unreadable or not ASCII is one :class:`ConfigError` naming the file."""
    source = str(path)
    try:
        return Path(path).read_text(encoding="ascii", errors="strict")
    except FileNotFoundError:
        raise ConfigError("no such TLE file", source=source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not an ASCII TLE file (byte {exc.start})", source=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=source) from None


def load_tles(path: str | os.PathLike[str]) -> list[TLE]:
    """Element sets from a TLE file; a missing or unreadable file is a :class:`ConfigError`."""
    source = str(path)
    tles = parse_tles(read_tle_text(path), source)
    if not tles:
        raise ConfigError("no element sets in the file", source=source)
    return tles


def format_tles(tles: Iterable[TLE]) -> str:
    """The 3-line text of ``tles``."""
    return "".join(t.text() for t in tles)


def write_tles(tles: Iterable[TLE], path: str | os.PathLike[str]) -> None:
    """Write ``tles`` to ``path`` in the 3-line form, atomically (no half-written file)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(format_tles(tles), encoding="ascii")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write: {exc.strerror}", source=str(path)) from None
