#!/usr/bin/python
# Copyright (c) krios-testbed contributors
# Apache License 2.0 (see the repository's pyproject.toml)

from __future__ import annotations

DOCUMENTATION = r"""
module: krios_background
author:
  - krios-testbed contributors
short_description: Start and stop a long-running local process with a pid file (the local experiment's daemons)
version_added: 0.1.0
description:
  - Runs a command in the background, detached in its own session, with its output in a log file, and records
    it in a pid file (C(<pid_dir>/<name>.json)) with its process start time, so that a later task or playbook
    finds exactly that process again even after its pid was reused.
  - O(state=started) does nothing when the recorded process still runs (idempotent), else starts it and waits
    until it is ready (O(ready_file) exists, or it survived O(min_uptime) seconds). A process that exits before
    it is ready fails the task with the end of its log.
  - O(state=stopped) sends SIGTERM to the process group, waits up to O(stop_timeout) seconds, then SIGKILL,
    and removes the pid file.
  - Used by the roles C(krios_experiment) and C(krios_local_cluster) for the local mode; on real nodes the
    components run as Deployments instead.
options:
  name:
    description: Name of the process (file names C(<name>.json) and default log C(<name>.log)).
    type: str
    required: true
  argv:
    description: Command as a list of arguments (no shell). Required with O(state=started).
    type: list
    elements: str
  state:
    description: Whether the process should be running.
    type: str
    choices: [started, stopped]
    default: started
  pid_dir:
    description: Folder of the pid files (created).
    type: path
    required: true
  log:
    description: Log file (stdout and stderr, appended). Default C(<pid_dir>/<name>.log).
    type: path
  chdir:
    description: Working directory of the process.
    type: path
  env:
    description: Extra environment variables of the process.
    type: dict
    default: {}
  ready_file:
    description: Wait until this file exists (the process writes it when ready). Removed before starting.
    type: path
  ready_timeout:
    description: Seconds to wait for readiness.
    type: float
    default: 60
  min_uptime:
    description: Without O(ready_file), seconds the process must survive to count as started.
    type: float
    default: 1.0
  stop_timeout:
    description: Seconds between SIGTERM and SIGKILL.
    type: float
    default: 15
attributes:
  check_mode:
    support: full
    description: Reports whether it would start or stop the process.
  diff_mode:
    support: none
    description: No diff.
notes:
  - Only processes recorded by this module (pid and start time) are ever signalled.
"""

EXAMPLES = r"""
- name: Run the delay proxy in front of the local apiserver
  krios.testbed.krios_background:
    name: delayproxy
    argv: [/work/.venv/bin/python, -m, krios, delayproxy, --kubeconfig, /work/.krios/local/admin.conf,
           --state-file, /work/.krios/local/run/delayproxy.state.json]
    pid_dir: /work/.krios/local/run
    ready_file: /work/.krios/local/run/delayproxy.state.json

- name: Stop it
  krios.testbed.krios_background:
    name: delayproxy
    state: stopped
    pid_dir: /work/.krios/local/run
"""

RETURN = r"""
pid:
  description: Process id (also for a process that was already running); null when stopped.
  returned: always
  type: int
  sample: 12345
log:
  description: Log file of the process.
  returned: always
  type: str
  sample: /work/.krios/local/run/delayproxy.log
was_running:
  description: Whether the recorded process was running before the task.
  returned: always
  type: bool
  sample: false
"""

import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def _start_ticks(pid):
    """Start time of ``pid`` in clock ticks since boot (field 22 of /proc/<pid>/stat), or None."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    if fields and fields[0] == "Z":  # a zombie is not running
        return None
    return int(fields[19])


def _alive(record):
    pid = record.get("pid")
    return bool(pid) and _start_ticks(pid) == record.get("start_ticks")


def _read(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def _tail(path, lines=20):
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return ""


def _stop(record, timeout):
    pid = record["pid"]
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(record):
            return
        time.sleep(0.1)
    for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            kill()
            break
        except (ProcessLookupError, PermissionError):
            continue


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "argv": {"type": "list", "elements": "str"},
            "state": {"type": "str", "choices": ["started", "stopped"], "default": "started"},
            "pid_dir": {"type": "path", "required": True},
            "log": {"type": "path"},
            "chdir": {"type": "path"},
            "env": {"type": "dict", "default": {}},
            "ready_file": {"type": "path"},
            "ready_timeout": {"type": "float", "default": 60.0},
            "min_uptime": {"type": "float", "default": 1.0},
            "stop_timeout": {"type": "float", "default": 15.0},
        },
        required_if=[("state", "started", ["argv"])],
        supports_check_mode=True,
    )
    p = module.params
    pid_file = os.path.join(p["pid_dir"], p["name"] + ".json")
    log = p["log"] or os.path.join(p["pid_dir"], p["name"] + ".log")
    record = _read(pid_file)
    running = _alive(record)
    result = {"changed": False, "pid": record.get("pid") if running else None, "log": log, "was_running": running}

    if p["state"] == "stopped":
        if running:
            result["changed"] = True
            if not module.check_mode:
                _stop(record, p["stop_timeout"])
        if not module.check_mode and os.path.exists(pid_file):
            os.unlink(pid_file)
        result["pid"] = None
        module.exit_json(**result)

    if running:
        module.exit_json(**result)
    result["changed"] = True
    if module.check_mode:
        module.exit_json(**result)
    os.makedirs(p["pid_dir"], exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
    if p["ready_file"] and os.path.exists(p["ready_file"]):
        os.unlink(p["ready_file"])
    env = dict(os.environ)
    env.update({k: str(v) for k, v in p["env"].items()})
    with open(log, "ab") as out, open(os.devnull, "rb") as devnull:
        try:
            proc = subprocess.Popen(p["argv"], stdin=devnull, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=p["chdir"], env=env, start_new_session=True, close_fds=True)
        except OSError as exc:
            module.fail_json(msg=f"{p['name']}: cannot start {p['argv'][0]}: {exc}", **result)
    record = {"pid": proc.pid, "start_ticks": _start_ticks(proc.pid), "argv": p["argv"], "log": log,
              "started": time.time()}
    with open(pid_file + ".tmp", "w") as fh:
        json.dump(record, fh)
    os.replace(pid_file + ".tmp", pid_file)
    result["pid"] = proc.pid
    deadline = time.monotonic() + (p["ready_timeout"] if p["ready_file"] else p["min_uptime"])
    while True:
        if proc.poll() is not None:
            os.unlink(pid_file)
            module.fail_json(msg=f"{p['name']} exited with status {proc.returncode} before it was ready; "
                                 f"end of {log}:\n{_tail(log)}", **result)
        if p["ready_file"] and os.path.exists(p["ready_file"]):
            break
        if time.monotonic() >= deadline:
            if p["ready_file"]:
                _stop(record, p["stop_timeout"])
                os.unlink(pid_file)
                module.fail_json(msg=f"{p['name']} did not write {p['ready_file']} within "
                                     f"{p['ready_timeout']:g} s; end of {log}:\n{_tail(log)}", **result)
            break
        time.sleep(0.1)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
