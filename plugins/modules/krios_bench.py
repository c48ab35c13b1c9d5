#!/usr/bin/python
# Copyright (c) krios-testbed contributors
# Apache License 2.0 (see the repository's pyproject.toml)

from __future__ import annotations

DOCUMENTATION = r"""
module: krios_bench
author:
  - krios-testbed contributors
short_description: Run the scheduling latency sweep (injected control-plane delay x scheduler)
version_added: 0.1.0
description:
  - Runs the latency benchmark of C(krios bench latency) (C(krios.measure.sweep)) in the foreground - per
    (scheduler, injected one-way delay) cell it creates warm-up plus O(samples_per_latency) pods one at a time
    and times them with a watch (C(schedulingLatency), C(podReadyLatency), C(deletionLatency), ms); cells run
    in seeded random order, the zero-delay cells repeated last. Every pod is a row of the results store (table
    C(pod_latency)) in the run O(run_id).
  - Thin over the package; the sweep is resolved with C(SweepConfig.from_scenario(scenario, **overrides)).
  - "O(injection) chooses how the delay is injected, and the method actually used is recorded in the run's
    metadata (C(meta.injection.sweep)) and returned: V(proxy) - the schedulers talk to the apiserver through
    the krios delay proxy (attached with O(proxy_control), else started by the benchmark with the schedulers
    under test behind it); V(netem) - C(tc netem) on O(netem_dev) delays the traffic to O(netem_destinations)
    by each cell's delay (needs root and a kernel with netem); V(none) - nothing is injected."
  - A sweep with more than one delay value and O(injection=none) is refused (its cells would differ only in
    their labels).
  - In check mode it validates the options and the scenario, resolves the sweep and reports the cells that
    would run (and, with V(netem), the exact C(tc) commands of each delay) without touching the cluster.
  - Bad input fails the task with one line naming the file or option and the field.
options:
  scenario:
    description: Scenario (name or file) whose C(benchmark:) section and seed give the defaults.
    type: str
  latency_ms:
    description: Injected one-way delays, ms. Default the scenario's C(benchmark.latency_ms), else 0, 50, 100, 200.
    type: list
    elements: float
  samples_per_latency:
    description: Measured pods per cell. Default the scenario's, else 10.
    type: int
  warmup:
    description: Discarded pods at the start of each cell. Default the scenario's, else 2.
    type: int
  schedulers:
    description: C(schedulerName)s compared.
    type: list
    elements: str
    default: [krios-scheduler, default-scheduler]
  seed:
    description: Cell order seed. Default the scenario's seed, else 0.
    type: int
  namespace:
    description: Namespace of the benchmark pods.
    type: str
    default: krios-bench
  timeout_s:
    description: Per-stage timeout of a pod, wall seconds.
    type: float
    default: 30
  image:
    description: Image of the benchmark pods (a pause image the nodes have). Default C(registry.k8s.io/pause:3.2).
    type: str
  leozone:
    description: Label the pods C(leozone=LAT_LON) (the krios scheduler's zone path; needs the emulator running).
    type: str
  injection:
    description: How the delay is injected (see the description).
    type: str
    choices: [proxy, netem, none]
    default: proxy
  proxy_control:
    description: With O(injection=proxy), the control URL of a running C(krios delayproxy) the schedulers already
      talk through; without it the benchmark starts the proxy and the schedulers itself.
    type: str
  state_dir:
    description: Local cluster state folder (its kube-scheduler is paused while the benchmark's runs).
    type: path
  netem_dev:
    description: With O(injection=netem), the interface whose egress is delayed (default from the route to the
      first destination).
    type: str
  netem_destinations:
    description: With O(injection=netem), the IPv4 addresses whose traffic is delayed (the schedulers' nodes as seen
      from the apiserver's node). Required with O(injection=netem).
    type: list
    elements: str
attributes:
  check_mode:
    support: full
    description: Validates and resolves the sweep and reports its cells (and tc commands); touches nothing.
  diff_mode:
    support: none
    description: No diff.
requirements:
  - the C(krios) Python package (this repository) importable by the module's Python
    (set C(ansible_python_interpreter))
  - for O(injection=netem) - C(tc) from iproute2, root (C(become)) and a kernel with C(sch_netem)
seealso:
  - module: krios.testbed.krios_emulator
  - module: krios.testbed.krios_netem
extends_documentation_fragment:
  - krios.testbed.krios
"""

EXAMPLES = r"""
- name: Sweep 0/50/100/200 ms through the experiment's delay proxy
  krios.testbed.krios_bench:
    scenario: sf_4workers
    injection: proxy
    proxy_control: "{{ krios_experiment_proxy.control }}"
    run_id: "{{ krios_experiment_current_run }}"
    db: /work/results/krios.sqlite
    kubeconfig: /work/.krios/local/admin.conf
  register: sweep

- name: Median scheduling latency per cell
  ansible.builtin.debug:
    msg: "{{ sweep.summary.scheduling_latency_median_ms }}"
"""

RETURN = r"""
run_id:
  description: The results run written into.
  returned: always (in check mode the given O(run_id), else null)
  type: str
  sample: sf_4workers-20260101T000000-1a2b
status:
  description: C(complete), or C(check) in check mode.
  returned: always
  type: str
  sample: complete
config:
  description: The resolved sweep (delays in ms, samples, warm-up, schedulers, seed, namespace, timeout).
  returned: always
  type: dict
cells:
  description: The cells in run order - C(scheduler), C(latency_ms), C(repeat).
  returned: always
  type: list
  elements: dict
tc_commands:
  description: With O(injection=netem) in check mode, the C(tc) commands that set each delay (delay ms -> argv list).
  returned: check mode with O(injection=netem)
  type: dict
counts:
  description: Counts of the run in the store - C(ticks), C(handovers), C(requests_ok), C(requests_failed),
    C(pods_measured) (in check mode C(pods_measured) is the number that would be measured).
  returned: always
  type: dict
  sample: {ticks: 0, handovers: 0, requests_ok: 0, requests_failed: 0, pods_measured: 80}
summary:
  description: Figures of the run; C(scheduling_latency_median_ms) maps scheduler -> delay (ms, a string) -> median
    scheduling latency (ms).
  returned: success, not in check mode
  type: dict
  sample: {scheduling_latency_median_ms: {krios-scheduler: {"0": 4.1, "50": 104.9}}}
injection:
  description: The injection method used, per phase (C(sweep) - C(proxy), C(netem) or C(none)), and its details.
  returned: always
  type: dict
  sample: {sweep: proxy, sweep_detail: "krios delayproxy 127.0.0.1:40001 -> 127.0.0.1:6443 (attached via ...)"}
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.krios.testbed.plugins.module_utils.krios import ConfigError, run_krios  # noqa: E402


def _resolve(p: dict):
    """(scenario, SweepConfig) from the options; ConfigError naming the option or the scenario's key."""
    from krios.config import scenarios
    from krios.measure.sweep import SweepConfig

    scenario = scenarios.load(p["scenario"]) if p["scenario"] else None
    labels = {}
    if p["leozone"]:
        from krios.kube.names import LEOZONE_LABEL
        from krios.orbits.zones import parse_leozone

        parse_leozone(p["leozone"], source="leozone")
        labels[LEOZONE_LABEL] = p["leozone"]
    cfg = SweepConfig.from_scenario(
        scenario, latency_ms=p["latency_ms"] or None, samples_per_latency=p["samples_per_latency"],
        warmup=p["warmup"], schedulers=p["schedulers"], seed=p["seed"], namespace=p["namespace"],
        timeout_s=p["timeout_s"], labels=labels, image=p["image"],
    )
    if p["injection"] == "none" and len(cfg.latency_ms) > 1:
        values = " ".join(f"{v:g}" for v in cfg.latency_ms)
        raise ConfigError("more than one delay value needs an injection (injection: proxy or netem); with "
                          "none the cells would differ only in their labels", source="latency_ms", field=values)
    if p["injection"] == "netem" and not p["netem_destinations"]:
        raise ConfigError("injection=netem needs the addresses to delay", source="options",
                          field="netem_destinations")
    if p["proxy_control"] and p["injection"] != "proxy":
        raise ConfigError("proxy_control goes with injection=proxy", source="options", field="proxy_control")
    return scenario, cfg


class NetemInjector:
    """Each cell's one-way delay on ``dev``'s egress to ``ips`` with tc netem (cleared at the end)."""

    def __init__(self, dev: str | None, ips: list[str]):
        from krios.emulation import netem

        self.netem = netem
        self.ips = ips
        self.tc = netem.Tc(dev or netem.egress_device(ips))
        self.description = f"tc netem on {self.tc.dev} to {', '.join(ips)}"

    def commands(self, ms: float, dry_run: bool) -> list[list[str]]:
        return self.tc.apply([self.netem.Destination(ip, float(ms)) for ip in self.ips], dry_run=dry_run)

    def set_delay(self, ms: float) -> None:
        self.commands(ms, dry_run=False)

    def check(self) -> None:
        pass

    def close(self) -> None:
        self.tc.clear()

    def info(self) -> dict:
        return {"mode": "netem", "dev": self.tc.dev, "destinations": self.ips}


def _kubeconfig(p: dict):
    from pathlib import Path

    from krios.localcluster.state import KUBECONFIG, default_state_dir

    if p["kubeconfig"]:
        return Path(p["kubeconfig"])
    if os.environ.get("KUBECONFIG"):
        return Path(os.environ["KUBECONFIG"].split(":")[0])
    path = (Path(p["state_dir"]) if p["state_dir"] else default_state_dir()) / KUBECONFIG
    if not path.is_file():
        raise ConfigError("no kubeconfig: set kubeconfig or start a local cluster", source="kubeconfig",
                          field=str(path))
    return path


def run(module: AnsibleModule) -> dict:
    import time
    from pathlib import Path

    from krios.measure.sweep import config_dict, plan

    p = module.params
    scenario, cfg = _resolve(p)
    cells = plan(cfg)
    result = {
        "changed": True, "run_id": p["run_id"], "config": config_dict(cfg),
        "cells": [{"scheduler": c.scheduler, "latency_ms": c.latency_ms, "repeat": c.repeat} for c in cells],
        "injection": {"sweep": p["injection"]},
        "counts": {"ticks": 0, "handovers": 0, "requests_ok": 0, "requests_failed": 0,
                   "pods_measured": len(cells) * cfg.samples_per_latency},
    }
    if module.check_mode:
        if p["injection"] == "netem":
            inj = NetemInjector(p["netem_dev"], p["netem_destinations"])
            result["tc_commands"] = {f"{ms:g}": inj.commands(ms, dry_run=True) for ms in cfg.latency_ms}
            result["injection"]["sweep_detail"] = inj.description
        result["status"] = "check"
        return result

    from krios.kube.client import as_client
    from krios.kube.config import load_client
    from krios.measure import injection
    from krios.measure.sweep import run_sweep
    from krios.results.figures import run_figures
    from krios.results.store import ResultsStore

    injector = None
    if p["injection"] == "netem":  # before anything else: where the kernel has no netem, say so first
        from krios.emulation import netem

        ok, why = netem.netem_support()
        if not ok:
            raise ConfigError(f"{why}; use injection: proxy", source="injection", field="netem")
        injector = NetemInjector(p["netem_dev"], p["netem_destinations"])
    kubeconfig = _kubeconfig(p)
    api = load_client(str(kubeconfig))
    try:
        kube_version = as_client(api).get("/version")["gitVersion"]
    except Exception as exc:  # unreachable apiserver: one line
        raise ConfigError(f"apiserver not reachable: {str(exc).splitlines()[0]}", source=str(kubeconfig),
                          field="server") from exc
    store = ResultsStore(p["db"])
    run_id = store.start_run("bench-latency", scenario=scenario.name if scenario else None, seed=cfg.seed,
                             meta={"bench": config_dict(cfg), "kube_version": kube_version}, run_id=p["run_id"])
    run_label = run_id.rsplit("-", 1)[-1] + time.strftime("%H%M%S")
    status = "failed"
    try:
        if injector is None:
            if p["injection"] == "none":
                injector = injection.NoInjector()
            elif p["proxy_control"]:
                injector = injection.AttachInjector(p["proxy_control"])
            else:
                injector = injection.SpawnInjector(kubeconfig, cfg.schedulers, store.run_dir(run_id) / "bench",
                                                   state_dir=Path(p["state_dir"]) if p["state_dir"] else None,
                                                   scenario=p["scenario"])
        store.update_meta(run_id, bench={**config_dict(cfg), "injection": injector.description,
                                         "injector": injector.info()})
        store.merge_meta(run_id, "injection", sweep=p["injection"], sweep_detail=injector.description)
        result["injection"]["sweep_detail"] = injector.description
        run_sweep(api, cfg, injector.set_delay, lambda row: store.add(run_id, "pod_latency", row),
                  run_label=run_label, check=injector.check)
        status = "complete"
    finally:
        if injector is not None:
            injector.close()
        store.finish_run(run_id, status)
    result.update(run_id=run_id, status=status, **run_figures(store, run_id))
    store.close()
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "scenario": {"type": "str"},
            "latency_ms": {"type": "list", "elements": "float"},
            "samples_per_latency": {"type": "int"},
            "warmup": {"type": "int"},
            "schedulers": {"type": "list", "elements": "str",
                           "default": ["krios-scheduler", "default-scheduler"]},
            "seed": {"type": "int"},
            "namespace": {"type": "str", "default": "krios-bench"},
            "timeout_s": {"type": "float", "default": 30.0},
            "leozone": {"type": "str"},
            "image": {"type": "str"},
            "injection": {"type": "str", "choices": ["proxy", "netem", "none"], "default": "proxy"},
            "proxy_control": {"type": "str"},
            "state_dir": {"type": "path"},
            "netem_dev": {"type": "str"},
            "netem_destinations": {"type": "list", "elements": "str"},
            "run_id": {"type": "str"},
            "db": {"type": "path"},
            "kubeconfig": {"type": "path"},
            "chdir": {"type": "path"},
        },
        supports_check_mode=True,
    )
    result = run_krios(module, run, chdir=module.params["chdir"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
