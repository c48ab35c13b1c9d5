# Copyright: krios-testbed contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the krios.testbed modules share: running one call of the krios package as a module.

The modules stay thin over the ``krios`` package; this is the one place that
checks the package is importable by the module's Python, moves to ``chdir``,
keeps the package's prints off stdout (which carries the module's JSON answer)
and turns a domain error into one ``fail_json`` line.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

try:
    from krios.errors import ConfigError, KriosError
except ImportError:
    ConfigError = KriosError = None
    IMPORT_ERROR: str | None = traceback.format_exc()
else:
    IMPORT_ERROR = None


__all__ = ["IMPORT_ERROR", "ConfigError", "KriosError", "run_krios"]


def run_krios(module: Any, call: Callable[[Any], dict], chdir: str | None = None) -> dict:
    """``call(module)`` with the package's output on stderr; fails the module in one line on a domain error."""
    if IMPORT_ERROR is not None:
        module.fail_json(msg=f"the krios Python package is not importable by {sys.executable}; install it there "
                         "or set ansible_python_interpreter", exception=IMPORT_ERROR)
    if chdir:
        os.chdir(chdir)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the module's JSON answer only
            return call(module)
    except KriosError as err:
        module.fail_json(msg=str(err))
    raise AssertionError("unreachable")  # fail_json exits
