#!/usr/bin/python
# Copyright (c) krios-testbed contributors
# Apache License 2.0 (see the repository's pyproject.toml)

from __future__ import annotations

DOCUMENTATION = r"""
module: krios_emulator
author:
  - krios-testbed contributors
short_description: Run the satellite emulator for its emulated duration (worker nodes play satellites)
version_added: 0.1.0
description:
  - Runs the Krios satellite emulator (C(krios.emulation.emulator)) in the foreground until its emulated
    duration has passed (O(duration_s) emulated seconds at O(acceleration), so O(duration_s) / O(acceleration)
    wall seconds). It publishes the emulated clock, labels the scenario's worker nodes C(sat_id) as the
    constellation moves over the zone, publishes the mapping and the latency matrix every tick, and writes
    every tick to the results store (table C(ticks)) and a JSON Lines log.
  - Thin over the package; the configuration is resolved once with
    C(EmulatorConfig.from_scenario(scenario, **overrides)) (defaults, then the scenario file, then the options
    given here), exactly as C(krios emulator) does.
  - Writes into the results run O(run_id) (joining it when it exists, e.g. started by the experiment) of the
    database O(db), and records its C(injection) method there (C(meta.injection.emulator)).
  - Returns the run id, counts and summary figures of the run (RV(counts), RV(summary)); the figures are the
    run's (handovers and requests recorded by the controller and the client in the same run count too).
  - In check mode it validates the options and the scenario, resolves the configuration and reports what would
    run (RV(config), RV(wall_s)) without reading or touching the cluster or the results store.
  - Bad input (an unknown scenario, a bad value in the scenario file or in an option) fails the task with one
    line naming the file or option and the field.
options:
  scenario:
    description: Scenario name (C(scenarios/<name>.yml)) or file.
    type: str
    required: true
  duration_s:
    description: Emulated seconds to run. Default the scenario's C(duration_s).
    type: float
  start:
    description: Emulated start time, ISO 8601, unix seconds or C(now). Default the scenario's C(start).
    type: str
  seed:
    description: Tie-break seed. Default the scenario's C(seed).
    type: int
  acceleration:
    description: Emulated seconds per wall second. Default the scenario's C(acceleration).
    type: float
  tick_s:
    description: Tick, emulated seconds. Default the scenario's C(tick_s).
    type: float
  lookahead_s:
    description:
      - The controller's proactive lead, emulated seconds (default the scenario's C(handover.lookahead_s));
        successors enter the zone at least this plus a margin before the satellite they follow leaves.
    type: float
  horizon_s:
    description: Assign satellites entering the zone within this many emulated seconds (default 900).
    type: float
  rtt_model:
    description:
      - Client RTT model of the published latency matrix - C(physical) (propagation plus 9 ms per started
        1,000 km) or C(krios-emulator) (the original emulator's hop bands). Default the scenario's
        C(latency.rtt_model). Recorded in the run's metadata.
    type: str
    choices: [physical, krios-emulator]
  nodes:
    description: Node names to emulate satellites. Default the first C(workers) worker nodes of the scenario.
    type: list
    elements: str
  node_selector:
    description: Label selector choosing the nodes (instead of O(nodes)).
    type: str
  log:
    description: JSON Lines tick log. Default C(<results>/<run-id>/ticks.jsonl).
    type: path
attributes:
  check_mode:
    support: full
    description: Validates and resolves the configuration and reports what would run; touches nothing.
  diff_mode:
    support: none
    description: No diff.
requirements:
  - the C(krios) Python package (this repository) importable by the module's Python, the controller's venv
    (set C(ansible_python_interpreter))
notes:
  - The task lasts the emulated duration divided by the acceleration (wall seconds); run it with C(async) to
    do something else meanwhile (for example the client with M(krios.testbed.krios_client)).
  - SIGTERM (a task timeout) stops the emulator at the next tick; the run's tick rows stay, the emulator
    reports C(status=failed).
seealso:
  - module: krios.testbed.krios_client
  - module: krios.testbed.krios_bench
extends_documentation_fragment:
  - krios.testbed.krios
"""

EXAMPLES = r"""
- name: Emulate the scenario's 10 minutes at 10x, in the experiment's results run
  krios.testbed.krios_emulator:
    scenario: sf_4workers
    duration_s: 600
    acceleration: 10
    run_id: "{{ krios_experiment_current_run }}"
    db: /work/results/krios.sqlite
    kubeconfig: /work/.krios/local/admin.conf
  register: emulation

- name: Zone served share and handover lead
  ansible.builtin.debug:
    msg: "{{ emulation.summary.served_share }} of ticks served, lead {{ emulation.summary.handover_lead_median_s }} s"
"""

RETURN = r"""
run_id:
  description: The results run written into.
  returned: always (in check mode the given O(run_id), else null)
  type: str
  sample: sf_4workers-20260101T000000-1a2b
status:
  description: C(complete) when every tick ran, else C(failed); C(check) in check mode.
  returned: always
  type: str
  sample: complete
config:
  description: The resolved emulator configuration (start as ISO 8601, times in emulated seconds).
  returned: always
  type: dict
  sample: {scenario: sf_4workers, start: "2026-01-01T00:00:00Z", duration_s: 600.0, acceleration: 10.0,
           tick_s: 1.0, lookahead_s: 30.0, horizon_s: 900.0, seed: 0, leozone: "37.7749_-122.4194",
           radius_km: 100.0, rtt_model: physical}
wall_s:
  description: Wall seconds the emulation takes (planned in check mode, measured otherwise).
  returned: always
  type: float
  sample: 60.0
emulator:
  description: The emulator's own summary (ticks, skipped ticks, label patches, serving changes, tick ms, log).
  returned: success, not in check mode
  type: dict
counts:
  description:
    - Counts of the run in the store - C(ticks) (emulated instants), C(handovers), C(requests_ok),
      C(requests_failed), C(pods_measured).
    - In check mode C(ticks) is the number of ticks that would run, the others 0.
  returned: always
  type: dict
  sample: {ticks: 601, handovers: 3, requests_ok: 0, requests_failed: 0, pods_measured: 0}
summary:
  description:
    - Figures of the run - C(served_share) (fraction of ticks the app ran on an in-zone satellite),
      C(handover_lead_median_s), C(request_latency_ms) (C(p50), C(p99)), C(scheduling_latency_median_ms)
      (scheduler -> delay ms -> median ms); null without samples.
  returned: success, not in check mode
  type: dict
  sample: {served_share: 1.0, handover_lead_median_s: 29.5, request_latency_ms: {p50: null, p99: null},
           scheduling_latency_median_ms: {}}
injection:
  description: The delay injection method used, per phase; the emulator injects no delay itself (it publishes
    the RTT matrix the client phase or the stand-in app applies).
  returned: always
  type: dict
  sample: {emulator: none}
"""


from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.krios.testbed.plugins.module_utils.krios import run_krios  # noqa: E402

#: The emulator's injection method: none of its own (the RTT matrix is applied by the client phase).
INJECTION = "none"


def _config_doc(cfg) -> dict:
    from krios.config.times import iso

    return {
        "scenario": cfg.scenario, "start": iso(cfg.start), "duration_s": cfg.duration_s,
        "acceleration": cfg.acceleration, "tick_s": cfg.tick_s, "lookahead_s": cfg.lookahead_s,
        "horizon_s": cfg.horizon_s, "seed": cfg.seed, "leozone": cfg.leozone, "radius_km": cfg.zone.radius_km,
        "rtt_model": cfg.latency.rtt_model,
    }


def run(module: AnsibleModule) -> dict:
    import math
    import signal
    import threading

    from krios.config import scenarios
    from krios.emulation.emulator import Emulator, EmulatorConfig, select_nodes

    p = module.params
    scenario = scenarios.load(p["scenario"])
    config = EmulatorConfig.from_scenario(
        scenario, duration_s=p["duration_s"], start=p["start"], seed=p["seed"], acceleration=p["acceleration"],
        tick_s=p["tick_s"], horizon_s=p["horizon_s"], lookahead_s=p["lookahead_s"], rtt_model=p["rtt_model"],
    )
    n_ticks = math.floor(config.duration_s / config.tick_s + 1e-9) + 1
    result = {
        "changed": True, "run_id": p["run_id"], "config": _config_doc(config),
        "wall_s": round(config.duration_s / config.acceleration, 3), "injection": {"emulator": INJECTION},
        "counts": {"ticks": n_ticks, "handovers": 0, "requests_ok": 0, "requests_failed": 0, "pods_measured": 0},
    }
    if module.check_mode:
        result["status"] = "check"
        return result

    from krios.kube.client import as_client
    from krios.kube.config import load_client
    from krios.results.figures import run_figures
    from krios.results.store import ResultsStore

    core = as_client(load_client(p["kubeconfig"]))
    node_list = select_nodes(core, scenario.workers, names=p["nodes"], selector=p["node_selector"])
    store = ResultsStore(p["db"])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    emu = Emulator(config, core, node_list, store=store, run_id=p["run_id"], log_path=p["log"])
    store.merge_meta(emu.run_id, "injection", emulator=INJECTION)
    summary = emu.run(stop)
    result.update(run_id=emu.run_id, status=summary["status"], emulator=summary, wall_s=summary["wall_s"],
                  **run_figures(store, emu.run_id))
    store.close()
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "scenario": {"type": "str", "required": True},
            "run_id": {"type": "str"},
            "db": {"type": "path"},
            "kubeconfig": {"type": "path"},
            "chdir": {"type": "path"},
            "duration_s": {"type": "float"},
            "start": {"type": "str"},
            "seed": {"type": "int"},
            "acceleration": {"type": "float"},
            "tick_s": {"type": "float"},
            "lookahead_s": {"type": "float"},
            "horizon_s": {"type": "float"},
            "rtt_model": {"type": "str", "choices": ["physical", "krios-emulator"]},
            "nodes": {"type": "list", "elements": "str"},
            "node_selector": {"type": "str"},
            "log": {"type": "path"},
        },
        mutually_exclusive=[("nodes", "node_selector")],
        supports_check_mode=True,
    )
    result = run_krios(module, run, chdir=module.params["chdir"])
    if result.get("status") == "failed":
        module.fail_json(msg=f"the emulator stopped before its end ({result['emulator']['ticks']} ticks ran)",
                         **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
