"""Unknown keys in configuration files: refused with one line, with a "did you mean" if close.

A typo such as ``base_node_index`` for ``base_node_idx`` (inventory plugin
options) or ``handover.lookhead_s`` (scenarios) used to be ignored silently and
the default used instead; :func:`check_known_keys` turns it into a
:class:`~krios.errors.ConfigError` naming the file and the (dotted) key.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from krios.errors import ConfigError


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the closest of ``known`` (difflib ratio >= 0.6), else ``""``."""
    close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def check_known_keys(keys: Iterable[object], known: Iterable[str], *, source: str, prefix: str = "",
                     what: str = "key") -> None:
    """Raise :class:`ConfigError` for the first of ``keys`` not in ``known``.

    The error names ``source`` (the file), the dotted key ``prefix + key`` and,
    when one is close, the key probably meant; otherwise it lists the known keys.
    """
    allowed = set(known)
    for key in keys:
        if key in allowed:
            continue
        hint = did_you_mean(str(key), allowed)
        if not hint:
            hint = f" (known: {', '.join(sorted(allowed))})"
        raise ConfigError(f"unknown {what}{hint}", source=source, field=f"{prefix}{key}")
