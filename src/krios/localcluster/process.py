"""The one supervisor of krios's local processes: start, identify, wait for, stop.

Every long-running process krios starts on this machine (the local control
plane, the virtual kubelet, the schedulers a benchmark runs, the local
experiment's daemons started by the Ansible module ``krios_background``) goes
through this module:

- :func:`spawn` starts it detached in its own session (so a command can return
  and a Ctrl-C in the user's terminal does not reach it), stdout and stderr
  appended to a log file;
- it is identified by its pid *and* its start time in clock ticks since boot
  (:func:`start_ticks`), so a recycled pid is never mistaken for ours
  (:func:`alive`) and never signalled (:func:`stop`: SIGTERM to the process
  group, SIGKILL after a timeout);
- :func:`wait_ready` waits until it is healthy (a check passes) or has
  survived a minimum uptime, and reports an early exit with the end of its log;
- :class:`Child` is a started child process the caller owns (stopped on close);
  :func:`start` / :func:`stop_named` keep a :class:`Record` in a pid file
  (``<pid_dir>/<name>.json``) so that a later command finds exactly that process
  again (idempotent start, stop by name).

Only the standard library: the Ansible module imports it on the controller.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from krios.errors import ClusterError

#: Seconds between SIGTERM and SIGKILL unless the caller says otherwise.
STOP_TIMEOUT_S = 10.0
#: Poll interval of the waits (s).
POLL_S = 0.05


def spawn(cmd: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None,
          cwd: str | os.PathLike[str] | None = None) -> subprocess.Popen:
    """Start ``cmd`` detached (new session), stdout and stderr appended to ``log_path``.

    Raises :class:`ClusterError` naming the program when it cannot be executed.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        try:
            return subprocess.Popen(
                list(cmd),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                cwd=cwd,
                env=dict(env) if env is not None else None,
            )
        except OSError as exc:
            program = str(cmd[0]) if cmd else "command"
            raise ClusterError(f"cannot start: {exc.strerror or exc}", source=program) from exc


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name, or ``None``."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name sits in parentheses and may itself hold spaces or ')'.
    return raw[raw.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or ``None`` if it does not exist."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def alive(pid: int | None, ticks: int | None = None) -> bool:
    """True if ``pid`` runs (not a zombie) and, when given, started at ``ticks``."""
    if not pid:
        return False
    fields = _stat(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return ticks is None or int(fields[19]) == ticks


def stop(pid: int | None, ticks: int | None, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM the process group of ``pid``, SIGKILL it after ``timeout_s``.

    Returns True if the process was ours and running. Does nothing to a pid
    whose start time differs from ``ticks`` (the pid was recycled).
    """
    if not alive(pid, ticks):
        return False
    assert pid is not None
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(pid, ticks):
            return True
        time.sleep(POLL_S)
    _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while alive(pid, ticks) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    return True


def _signal(pid: int, sig: int) -> None:
    """Signal the process group led by ``pid`` (our processes lead their own session)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def tail(path: str | os.PathLike[str], lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ("" if unreadable)."""
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return ""


def wait_ready(proc: subprocess.Popen, name: str, log_path: str | os.PathLike[str], *,
               ready: Callable[[], bool] | None = None, timeout_s: float = 60.0,
               min_uptime_s: float = 0.0) -> None:
    """Wait until ``ready()`` is true (at most ``timeout_s``), or, without it, ``min_uptime_s``.

    Raises :class:`ClusterError` with the end of the log if the process exits
    first or ``ready()`` stays false; the process is then left to the caller
    (stop it).
    """
    deadline = time.monotonic() + (timeout_s if ready is not None else min_uptime_s)
    while True:
        if proc.poll() is not None:
            raise ClusterError(f"exited with status {proc.returncode} before it was ready; end of {log_path}:\n"
                               f"{tail(log_path)}", source=name)
        if ready is not None and ready():
            return
        if time.monotonic() >= deadline:
            if ready is None:
                return
            raise ClusterError(f"not ready within {timeout_s:g} s; end of {log_path}:\n{tail(log_path)}",
                               source=name)
        time.sleep(POLL_S)


class Child:
    """A process started by :func:`spawn` that its caller owns: ``stop()`` ends and reaps it.

    ``proc`` is the :class:`subprocess.Popen`; ``ticks`` its start time (identity).
    """

    def __init__(self, name: str, cmd: Sequence[str], log_path: Path,
                 env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None) -> None:
        self.name = name
        self.log_path = Path(log_path)
        self.proc = spawn(cmd, self.log_path, env=env, cwd=cwd)
        self.ticks = start_ticks(self.proc.pid)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def args(self) -> list[str]:
        return list(self.proc.args)  # type: ignore[arg-type]

    def poll(self) -> int | None:
        """Exit status, or ``None`` while it runs."""
        return self.proc.poll()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM its process group, SIGKILL after ``timeout_s``; reap it."""
        if self.proc.poll() is None:
            stop(self.proc.pid, self.ticks, timeout_s)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5.0)


# ------------------------------------------------------------------ pid files


@dataclass
class Record:
    """What a pid file holds: the process's identity (pid, start ticks), command, log, wall start (unix s)."""

    pid: int
    start_ticks: int | None
    argv: list[str] = field(default_factory=list)
    log: str = ""
    started: float = 0.0

    def alive(self) -> bool:
        """True while this very process (pid and start time) runs."""
        return self.start_ticks is not None and alive(self.pid, self.start_ticks)


def pid_file(pid_dir: str | os.PathLike[str], name: str) -> Path:
    """``<pid_dir>/<name>.json``."""
    return Path(pid_dir) / f"{name}.json"


def read_record(path: str | os.PathLike[str]) -> Record | None:
    """The record in pid file ``path``, or ``None`` (missing or unreadable)."""
    try:
        data = json.loads(Path(path).read_text())
        return Record(int(data["pid"]), data.get("start_ticks"), list(data.get("argv") or []),
                      str(data.get("log") or ""), float(data.get("started") or 0.0))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_record(path: str | os.PathLike[str], record: Record) -> None:
    """Write ``record`` to pid file ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(record)))
    os.replace(tmp, path)


def start(name: str, argv: Sequence[str], pid_dir: str | os.PathLike[str], *,
          log: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
          cwd: str | os.PathLike[str] | None = None, ready_file: str | os.PathLike[str] | None = None,
          ready_timeout_s: float = 60.0, min_uptime_s: float = 1.0,
          stop_timeout_s: float = STOP_TIMEOUT_S) -> tuple[Record, bool]:
    """Start ``argv`` as process ``name`` recorded in ``<pid_dir>/<name>.json``; ``(record, started)``.

    Idempotent: when the recorded process still runs, nothing is started
    (``started`` False). Otherwise it is started detached (log default
    ``<pid_dir>/<name>.log``, ``env`` added to this environment) and waited for:
    until ``ready_file`` exists (removed before the start; at most
    ``ready_timeout_s``), else ``min_uptime_s``. A process that exits or is not
    ready in time is stopped, its pid file removed, and :class:`ClusterError`
    raised with the end of its log.
    """
    path = pid_file(pid_dir, name)
    old = read_record(path)
    if old is not None and old.alive():
        return old, False
    log_path = Path(log) if log else Path(pid_dir) / f"{name}.log"
    if ready_file is not None:
        Path(ready_file).unlink(missing_ok=True)
    full_env = {**os.environ, **{k: str(v) for k, v in (env or {}).items()}}
    proc = spawn(argv, log_path, env=full_env, cwd=cwd)
    record = Record(proc.pid, start_ticks(proc.pid), list(argv), str(log_path), time.time())
    write_record(path, record)
    try:
        wait_ready(proc, name, log_path, timeout_s=ready_timeout_s, min_uptime_s=min_uptime_s,
                   ready=(lambda: Path(ready_file).exists()) if ready_file is not None else None)
    except ClusterError:
        stop(record.pid, record.start_ticks, stop_timeout_s)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5.0)
        path.unlink(missing_ok=True)
        raise
    return record, True


def stop_named(name: str, pid_dir: str | os.PathLike[str], timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Stop the process recorded as ``name`` (see :func:`stop`) and remove its pid file; was it running?"""
    path = pid_file(pid_dir, name)
    record = read_record(path)
    running = record is not None and record.alive()
    if running:
        assert record is not None
        stop(record.pid, record.start_ticks, timeout_s)
    path.unlink(missing_ok=True)
    return running
