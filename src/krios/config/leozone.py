"""The ``leozone`` pod label: one encoding of a zone centre valid for every place on Earth.

Kubernetes label values must be empty or start and end with an alphanumeric
(``[-A-Za-z0-9_.]`` between, at most 63 characters), so the seed's
``<lat>_<lon>`` is refused south of the equator (``-33.8688_151.2093``: the API
answers 422 for the pod and 400 for a selector). :func:`leozone_label` writes
the seed's form where Kubernetes accepts it and the hemisphere form
``s33.8688_e151.2093`` otherwise; :func:`leozone_coordinates` reads both.
``docs/guide/scheduling.md`` documents the encoding.
"""

from __future__ import annotations

import math
import re

#: Kubernetes' rule for a label value (``k8s.io/apimachinery`` ``IsValidLabelValue``): empty,
#: or alphanumerics at both ends with ``-``, ``_`` and ``.`` between, at most 63 characters.
LABEL_VALUE_RE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
#: Longest label value Kubernetes accepts (characters).
LABEL_VALUE_MAX = 63
_PART_RE = re.compile(r"([nsewNSEW]?)(.+)")


def is_label_value(text: str) -> bool:
    """Whether ``text`` is a valid Kubernetes label value (:data:`LABEL_VALUE_RE`, <= 63 chars)."""
    return len(text) <= LABEL_VALUE_MAX and LABEL_VALUE_RE.fullmatch(text) is not None


def _degrees(value: float) -> str:
    """Shortest text that reads back as ``value`` (deg): whole numbers without ``.0``, no ``-0``."""
    number = float(value)
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return repr(number)


def leozone_label(lat_deg: float, lon_deg: float) -> str:
    """The ``leozone`` label value of a zone centre (WGS84 latitude, longitude in degrees).

    Two forms, both read by :func:`leozone_coordinates` (and ``krios.orbits.zones.parse_leozone``):

    - the seed's ``<lat>_<lon>`` (``37.7749_-122.4194``, ``35.6762_139.6503``) whenever
      Kubernetes accepts it, i.e. the latitude is >= 0 (a value must start with an
      alphanumeric; a negative longitude's ``-`` sits inside, which is allowed);
    - otherwise the hemisphere form ``<n|s><|lat|>_<e|w><|lon|>``
      (Sydney ``s33.8688_e151.2093``, Santiago ``s33.4489_w70.6693``).

    Numbers are written in their shortest exact form, so the value round-trips to the
    same floats. Every latitude in [-90, 90] and longitude in [-180, 180] gives a
    valid label value (at most 49 characters: two shortest float reprs, two letters, ``_``).
    """
    seed = f"{_degrees(lat_deg)}_{_degrees(lon_deg)}"
    if is_label_value(seed):
        return seed
    lat, lon = float(lat_deg), float(lon_deg)
    ns = "s" if math.copysign(1.0, lat) < 0 and lat != 0 else "n"
    ew = "w" if math.copysign(1.0, lon) < 0 and lon != 0 else "e"
    return f"{ns}{_degrees(abs(lat))}_{ew}{_degrees(abs(lon))}"


def _leozone_part(text: str, letters: str) -> float:
    """One coordinate of a ``leozone`` value: a signed number, or ``letters[0|1]`` and an unsigned one."""
    match = _PART_RE.fullmatch(text)
    if match is None:
        raise ValueError(text)
    letter, number = match.group(1).lower(), match.group(2)
    if not letter:
        return float(text)
    if letter not in letters or number[:1] in "+-":
        raise ValueError(text)
    value = float(number)
    return -value if letter == letters[1] else value


def leozone_coordinates(value: str) -> tuple[float, float]:
    """``(lat, lon)`` in degrees from a ``leozone`` value in either form; ``ValueError`` if malformed.

    Each coordinate is a signed number (``-33.8688``) or a hemisphere letter and an
    unsigned number (``s33.8688``; ``n``/``s`` for the latitude, ``e``/``w`` for the
    longitude, either case). Ranges are not checked here (the :class:`~krios.orbits.zones.Zone` does).
    """
    parts = str(value).strip().split("_")
    if len(parts) != 2:
        raise ValueError(value)
    return _leozone_part(parts[0], "ns"), _leozone_part(parts[1], "ew")
