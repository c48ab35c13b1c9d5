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
requirements:
  - the C(krios) Python package (this repository) importable by the module's Python, the controller's venv
    (set C(ansible_python_interpreter)); the module is a thin front of C(krios.localcluster.process), the one
    supervisor of krios's local processes
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

import traceback  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

try:
    from krios.errors import KriosError
    from krios.localcluster import process
except ImportError:
    process = None
    IMPORT_ERROR = traceback.format_exc()
else:
    IMPORT_ERROR = None


def main() -> None:
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
    if process is None:
        import sys

        module.fail_json(
            msg=f"the krios Python package is not importable by {sys.executable}; install it there "
            "or set ansible_python_interpreter",
            exception=IMPORT_ERROR,
        )
    p = module.params
    log = p["log"] or f"{p['pid_dir']}/{p['name']}.log"
    record = process.read_record(process.pid_file(p["pid_dir"], p["name"]))
    running = record is not None and record.alive()
    result = {"changed": False, "pid": record.pid if running else None, "log": log, "was_running": running}

    if p["state"] == "stopped":
        result["changed"] = running
        if not module.check_mode:
            process.stop_named(p["name"], p["pid_dir"], p["stop_timeout"])
        result["pid"] = None
        module.exit_json(**result)

    if running or module.check_mode:
        result["changed"] = not running
        module.exit_json(**result)
    try:
        record, _started = process.start(
            p["name"], p["argv"], p["pid_dir"], log=log, env=p["env"], cwd=p["chdir"],
            ready_file=p["ready_file"], ready_timeout_s=p["ready_timeout"], min_uptime_s=p["min_uptime"],
            stop_timeout_s=p["stop_timeout"],
        )
    except KriosError as err:
        module.fail_json(msg=str(err), **result)
    result.update(changed=True, pid=record.pid)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
