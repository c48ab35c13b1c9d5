"""One way to resolve a component's configuration: defaults, then the scenario, then overrides.

Every component's config dataclass has a ``from_scenario(scenario, **overrides)``
that calls :func:`from_scenario` here:

1. the dataclass's field defaults (the constants of :mod:`krios.config.defaults`);
2. over them, the scenario's value of each field that has a scenario key
   (``keys``: field -> dotted key, e.g. ``"lookahead_s": "handover.lookahead_s"``);
3. over both, every override that is not ``None`` (flags, Ansible module options).

Then the dataclass's ``check()`` runs. Domain errors name the config *field*:
:func:`field_error` gives ``ConfigError(message, source=<field>, field=<value>)``,
printed ``tick_s: 0.0: must be a positive number``. When the bad value came
from the scenario file, the error is re-raised naming the file and its key
instead (``scenarios/x.yml: handover.lookahead_s: -5: must not be negative``).
The command line rewrites a field to its flag (:mod:`krios.cli.flags`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from krios.errors import ConfigError

T = TypeVar("T")

_MISSING = object()


def field_error(field: str, value: Any, message: str) -> ConfigError:
    """The error for a bad value of config field ``field`` (``source`` is the field's name)."""
    return ConfigError(message, source=field, field=_show(value))


def _show(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return str(value)


def scenario_value(scenario: Any, key: str, default: Any = _MISSING) -> Any:
    """The scenario's value at dotted ``key`` (``handover.lookahead_s``), or ``default``."""
    data = getattr(scenario, "data", scenario)
    for part in key.split("."):
        if not isinstance(data, Mapping) or part not in data:
            if default is _MISSING:
                raise KeyError(key)
            return default
        data = data[part]
    return data


def check_positive(cfg: Any, *names: str) -> None:
    """Raise :func:`field_error` unless each named field of ``cfg`` is a finite number > 0."""
    for name in names:
        value = getattr(cfg, name)
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise field_error(name, value, "must be a positive number")


def check_at_least(cfg: Any, low: float, *names: str) -> None:
    """Raise :func:`field_error` unless each named field of ``cfg`` is a finite number ``>= low``."""
    for name in names:
        value = getattr(cfg, name)
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= low):
            raise field_error(name, value, f"must be a number >= {low:g}")


def _coerce(name: str, annotation: Any, value: Any) -> Any:
    kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    try:
        if kind == "float" and not isinstance(value, bool):
            return float(value)
        if kind == "int" and not isinstance(value, bool):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
    except (TypeError, ValueError):
        raise field_error(name, value, f"must be {'an integer' if kind == 'int' else 'a number'}") from None
    return value


def from_scenario(
    cls: Callable[..., T],
    scenario: Any,
    keys: Mapping[str, str],
    overrides: Mapping[str, Any],
    *,
    convert: Mapping[str, Callable[[Any, str], Any]] | None = None,
) -> T:
    """``cls`` (a dataclass with a ``check()``) resolved as the module docstring says.

    ``scenario`` may be ``None`` (defaults and overrides only). ``convert``
    maps a field to ``fn(value, source) -> value`` applied to the value
    whichever layer it came from (e.g. an ISO time to unix s); ``source`` is
    the field name or ``<scenario file>: <key>``. Unknown override names are a
    ``TypeError`` (a programming error, not bad input).
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise TypeError(f"{getattr(cls, '__name__', cls)}.from_scenario: unknown field(s) {', '.join(unknown)}")
    where = str(getattr(scenario, "path", "scenario"))
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}  # field -> scenario key it came from
    if scenario is not None:
        for name, key in keys.items():
            value = scenario_value(scenario, key, _MISSING)
            if value is not _MISSING and value is not None:
                values[name], origin[name] = value, key
    for name, value in overrides.items():
        if value is not None:
            values[name] = value
            origin.pop(name, None)
    try:
        for name, value in list(values.items()):
            if convert and name in convert:
                source = f"{where}: {origin[name]}" if name in origin else name
                value = convert[name](value, source)
            values[name] = _coerce(name, fields[name].type, value)
        cfg = cls(**values)
        cfg.check()  # type: ignore[attr-defined]
    except ConfigError as err:
        if err.source in origin:  # the bad value is the scenario file's: name the file and key
            raise ConfigError(f"{err.field}: {err.message}" if err.field else err.message,
                              source=where, field=origin[err.source]) from None
        raise
    return cfg
