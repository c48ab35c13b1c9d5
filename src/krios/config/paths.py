"""Where krios keeps local state on this machine (one definition for every component).

- the local cluster's state folder: ``$KRIOS_STATE_DIR`` or
  ``$XDG_STATE_HOME/krios/cluster`` (default ``~/.local/state/krios/cluster``);
- the admin kubeconfig inside it (:data:`KUBECONFIG`).
"""

from __future__ import annotations

import os
from pathlib import Path

#: File name of the admin kubeconfig inside a local cluster's state folder.
KUBECONFIG = "kubeconfig"


def default_state_dir() -> Path:
    """``$KRIOS_STATE_DIR`` if set, else ``$XDG_STATE_HOME/krios/cluster`` (``~/.local/state`` by default)."""
    env = os.environ.get("KRIOS_STATE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "krios" / "cluster"
