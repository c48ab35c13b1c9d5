"""Errors that reach the user as one clear line.

Every error caused by bad input names *where* it came from (a file, a label,
a command-line option) and *which field* was wrong, so that the CLI, the
Ansible plugins and the daemons can all report it the same way.
"""

from __future__ import annotations


class KriosError(Exception):
    """An error a user can fix; the CLI prints ``str(err)`` and exits non-zero.

    Parameters
    ----------
    message:
        What is wrong, in one sentence.
    source:
        The file, label or option the bad value came from (e.g. ``ip_mapping.json``).
    field:
        The entry or field inside ``source`` (e.g. ``node7.example.org``).
    """

    exit_code = 2

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        self.message = message
        self.source = source
        self.field = field
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ": ".join(str(p) for p in (self.source, self.field) if p not in (None, ""))
        return f"{where}: {self.message}" if where else self.message


class ConfigError(KriosError):
    """Bad input: a file, a scenario, a label or an option."""


class ClusterError(KriosError):
    """The local control plane could not be started, reached or stopped."""

    exit_code = 3
