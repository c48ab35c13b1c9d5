"""Time conversions at the edges of the package.

Inside krios every instant is UTC unix seconds as a float (or a numpy array of
them). These helpers turn ISO 8601 strings and datetimes into that form and
back, with clear errors for bad input.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from krios.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNIT_S = {None: 1.0, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_time(value: str | float | datetime | None, *, source: str = "time") -> float:
    """Unix seconds (UTC) from an ISO 8601 string, a datetime, a number, or ``None`` (now).

    A string without a zone is taken as UTC; ``Z`` and ``+hh:mm`` are honoured.
    """
    if value is None:
        return datetime.now(tz=UTC).timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return dt.timestamp()
    text = str(value).strip()
    if text.lower() == "now":
        return datetime.now(tz=UTC).timestamp()
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ConfigError("not an ISO 8601 time (e.g. 2026-01-01T00:00:00Z)", source=source, field=text) from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def iso(t: float) -> str:
    """ISO 8601 UTC string with milliseconds and a ``Z`` suffix."""
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_duration(value: str | float, *, source: str = "duration") -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``24h``, ``1d`` or ``250ms``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ConfigError("not a duration (e.g. 90, 90s, 15m, 24h)", source=source, field=str(value))
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if seconds < 0:
        raise ConfigError("must not be negative", source=source, field=str(value))
    return seconds
