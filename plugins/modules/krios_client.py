#!/usr/bin/python
# Copyright (c) krios-testbed contributors
# Apache License 2.0 (see the repository's pyproject.toml)

from __future__ import annotations

DOCUMENTATION = r"""
module: krios_client
author:
  - krios-testbed contributors
short_description: Send the experiment's open-loop HTTP requests to the app, every request recorded
version_added: 0.1.0
description:
  - Runs the Krios client (C(krios.emulation.workload.Client)) in the foreground - GET requests at a fixed rate
    (open loop) to the node serving the app (O(target=service)) or to a fixed URL - and records every request
    (send time, serving node, C(sat_id), injected RTT, measured latency, status) in the results store (table
    C(requests)) and a JSON Lines file.
  - Runs for O(duration_s) wall seconds, or until O(stop_file) exists, or (O(until_emulator_done)) until the
    emulator of the same results run has finished, whichever comes first.
  - Thin over the package; rate and timeout are resolved with C(ClientConfig.from_scenario(scenario, **overrides))
    as C(krios client) does.
  - O(rtt_injection) says how the satellite RTT of each request is injected, and is recorded in the run's
    metadata (C(meta.injection.client)) - V(netem) shapes this host's egress to each node with C(tc netem) at
    the emulator's client RTT (needs root and a kernel with netem; removed at the end), V(standin) means the
    local stand-in app delays its answers, V(none) injects nothing.
  - Returns the run id, counts and summary figures (RV(counts), RV(summary)).
  - Every request records the host it was sent from (C(client_host), O(client_host)). With O(import_log) the module
    sends nothing - it merges a client's JSON Lines file (e.g. fetched from the client node) into the results run
    O(run_id) of O(db) on this host, skipping records already there (RV(imported)).
  - In check mode it validates the options and the scenario, resolves the configuration and reports what would
    run without contacting the cluster or writing the results store.
  - Bad input fails the task with one line naming the file or option and the field.
options:
  scenario:
    description: Scenario (name or file) whose C(leozone) selects the app's pods and whose C(client:) gives defaults.
    type: str
  selector:
    description: Label selector of the app's pods (instead of the scenario's C(leozone)).
    type: str
  namespace:
    description: Namespace of the app's pods (default all).
    type: str
  target:
    description:
      - V(service) sends each request to the node serving the app (a Ready pod) on the NodePort of O(service)
        or O(port); a URL (C(http://host:port/)) sends every request there.
    type: str
    default: service
  service:
    description: Service C(NAME[.NAMESPACE]) whose nodePort to use with O(target=service).
    type: str
  port:
    description: NodePort of the app with O(target=service) (instead of O(service)).
    type: int
  path:
    description: Request path.
    type: str
    default: /
  rate_hz:
    description: Requests per wall second. Default the scenario's C(client.rate_hz), else 5.
    type: float
  timeout_s:
    description: Per-request timeout, wall seconds. Default the scenario's C(client.timeout_s), else 2.
    type: float
  duration_s:
    description:
      - Wall seconds to send for. Required unless O(stop_file) or O(until_emulator_done) is given (then at
        most O(max_duration_s)).
    type: float
  max_duration_s:
    description: Longest run, wall seconds, when O(duration_s) is not given.
    type: float
    default: 86400
  stop_file:
    description: Stop once this file exists (removed at the start if present).
    type: path
  until_emulator_done:
    description:
      - Stop once the emulator of the results run O(run_id) has finished (its summary appears in the run's
        metadata, C(meta.emulator)). Needs O(run_id).
    type: bool
    default: false
  rtt_injection:
    description: How the satellite RTT is injected (recorded in the run's metadata).
    type: str
    choices: [netem, standin, none]
    default: none
  dev:
    description: Egress interface for O(rtt_injection=netem) (default from the route to the nodes).
    type: str
  log:
    description: JSON Lines file of the requests. Default C(<results>/<run-id>/requests.jsonl).
    type: path
  client_host:
    description: Recorded in every request as the host it was sent from. Default this host's name.
    type: str
  client_id:
    description: Recorded in every request (column C(client)), to tell several clients of one run apart.
      Default C(<host>-<pid>).
    type: str
  app:
    description: Recorded in every request (column C(app)), the app aimed at. Default O(service) when given.
    type: str
  import_log:
    description:
      - Send nothing; merge this JSON Lines file of requests into the run O(run_id) (required) of O(db).
        Records without C(client_host) get O(client_host). The run's metadata records O(rtt_injection) as the
        client phase's injection (C(meta.injection.client)) and the file per client host (C(meta.clients)).
    type: path
attributes:
  check_mode:
    support: full
    description: Validates and resolves the configuration and reports what would run; touches nothing.
  diff_mode:
    support: none
    description: No diff.
requirements:
  - the C(krios) Python package (this repository) importable by the module's Python
    (set C(ansible_python_interpreter))
  - for O(rtt_injection=netem) - C(tc) from iproute2, root (C(become)) and a kernel with C(sch_netem)
notes:
  - A request that fails or times out is recorded and counted (RV(counts.requests_failed)); the task itself only
    fails on bad input or when nothing could be sent.
seealso:
  - module: krios.testbed.krios_emulator
  - module: krios.testbed.krios_netem
extends_documentation_fragment:
  - krios.testbed.krios
"""

EXAMPLES = r"""
- name: Requests to the serving node until the emulator of the run is done
  krios.testbed.krios_client:
    scenario: sf_4workers
    service: krios-app.default
    until_emulator_done: true
    rtt_injection: standin
    run_id: "{{ krios_experiment_current_run }}"
    db: /work/results/krios.sqlite
    kubeconfig: /work/.krios/local/admin.conf
  register: requests

- name: Request latency
  ansible.builtin.debug:
    msg: "p50 {{ requests.summary.request_latency_ms.p50 }} ms, {{ requests.counts.requests_failed }} failed"
"""

RETURN = r"""
run_id:
  description: The results run written into.
  returned: always (in check mode the given O(run_id), else null)
  type: str
  sample: sf_4workers-20260101T000000-1a2b
status:
  description: C(complete), C(failed), or C(check) in check mode.
  returned: always
  type: str
  sample: complete
config:
  description: The resolved client configuration (rate per wall s, timeout and duration in wall s, target).
  returned: always
  type: dict
  sample: {rate_hz: 5.0, timeout_s: 2.0, duration_s: 60.0, target: service, selector: "leozone=37.7749_-122.4194"}
stopped_by:
  description: What ended the run - C(duration), C(stop_file) or C(emulator_done).
  returned: success, not in check mode
  type: str
  sample: emulator_done
client:
  description: This client's own figures - C(sent), C(ok), C(errors), C(nodes) (requests per node), C(jsonl).
  returned: success, not in check mode
  type: dict
counts:
  description: Counts of the run in the store - C(ticks), C(handovers), C(requests_ok), C(requests_failed),
    C(pods_measured) (zeros in check mode).
  returned: always
  type: dict
  sample: {ticks: 601, handovers: 3, requests_ok: 298, requests_failed: 2, pods_measured: 0}
summary:
  description: Figures of the run - C(served_share), C(handover_lead_median_s), C(request_latency_ms) (C(p50),
    C(p99)), C(scheduling_latency_median_ms); null without samples.
  returned: success, not in check mode
  type: dict
imported:
  description: With O(import_log), the records read from the file and those added to the run (C(read), C(imported)).
  returned: with O(import_log), not in check mode
  type: dict
  sample: {read: 300, imported: 300}
injection:
  description: The injection method used, per phase (C(client) - C(netem), C(standin) or C(none)).
  returned: always
  type: dict
  sample: {client: standin}
"""


from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.krios.testbed.plugins.module_utils.krios import ConfigError, run_krios  # noqa: E402

ZERO_COUNTS = {"ticks": 0, "handovers": 0, "requests_ok": 0, "requests_failed": 0, "pods_measured": 0}


def _resolve(p: dict):
    """(scenario, ClientConfig, selector, duration given?) from the options; ConfigError naming the option."""
    from krios.config import scenarios
    from krios.emulation.workload import ClientConfig

    scenario = scenarios.load(p["scenario"]) if p["scenario"] else None
    if p["duration_s"] is None and not (p["stop_file"] or p["until_emulator_done"]):
        raise ConfigError("give duration_s, stop_file or until_emulator_done", source="options", field="duration_s")
    if p["until_emulator_done"] and not p["run_id"]:
        raise ConfigError("until_emulator_done needs the run_id of the emulator's run", source="options",
                          field="run_id")
    duration = p["duration_s"] if p["duration_s"] is not None else p["max_duration_s"]
    cfg = ClientConfig.from_scenario(scenario, rate_hz=p["rate_hz"], timeout_s=p["timeout_s"], duration_s=duration)
    selector = p["selector"] or (f"leozone={scenario.leozone}" if scenario else None)
    if p["target"] == "service":
        if p["service"] is None and p["port"] is None:
            raise ConfigError("give service or port with target=service", source="options", field="service")
        if selector is None:
            raise ConfigError("give scenario or selector to find the app's pods", source="options", field="scenario")
    elif not p["target"].startswith(("http://", "https://")):
        raise ConfigError("must be 'service' or an http(s) URL", source="target", field=p["target"])
    if p["rtt_injection"] == "netem" and selector is None:
        raise ConfigError("rtt_injection=netem needs scenario or selector (the emulator's RTT per node)",
                          source="options", field="rtt_injection")
    return scenario, cfg, selector


def import_log(module: AnsibleModule) -> dict:
    """Merge the JSON Lines file O(import_log) into the run O(run_id) of O(db)."""
    from pathlib import Path

    p = module.params
    if not p["run_id"]:
        raise ConfigError("import_log needs the run_id to merge into", source="options", field="run_id")
    path = Path(p["import_log"])
    if not path.is_file():
        raise ConfigError("no such file", source="import_log", field=str(path))
    result = {"changed": False, "run_id": p["run_id"], "counts": dict(ZERO_COUNTS), "status": "check",
              "injection": {"client": p["rtt_injection"]}}
    if module.check_mode:
        return result
    from krios.emulation.workload import import_jsonl
    from krios.results.figures import run_figures
    from krios.results.store import ResultsStore, check_run_id

    run_id = check_run_id(p["run_id"], source="run_id")
    with ResultsStore(p["db"]) as store:
        store.run(run_id)  # one line naming the run if it is not there
        imported = import_jsonl(store, run_id, path, client_host=p["client_host"])
        # The client phase's injection as the client node ran it, and where the requests came from.
        store.merge_meta(run_id, "injection", client=p["rtt_injection"])
        store.merge_meta(run_id, "clients", **{p["client_host"] or path.stem: {
            "requests": imported["read"], "rtt_injection": p["rtt_injection"], "log": str(path)}})
        result.update(changed=imported["imported"] > 0, status="complete", imported=imported,
                      **run_figures(store, run_id))
    return result


def run(module: AnsibleModule) -> dict:
    import threading
    import time
    from pathlib import Path

    p = module.params
    if p["import_log"]:
        return import_log(module)
    scenario, cfg, selector = _resolve(p)
    result = {
        "changed": True, "run_id": p["run_id"], "injection": {"client": p["rtt_injection"]},
        "config": {"rate_hz": cfg.rate_hz, "timeout_s": cfg.timeout_s, "duration_s": cfg.duration_s,
                   "target": p["target"], "selector": selector},
        "counts": dict(ZERO_COUNTS),
    }
    if module.check_mode:
        result["status"] = "check"
        return result

    import signal

    from krios.emulation.appview import ClusterView
    from krios.emulation.workload import Client, RecordSink, serving_target, static_target
    from krios.kube.client import as_client
    from krios.kube.config import load_client
    from krios.results.figures import run_figures
    from krios.results.store import ResultsStore

    netem = None
    if p["rtt_injection"] == "netem":
        from krios.emulation import netem

        ok, why = netem.netem_support()
        if not ok:
            raise ConfigError(why, source="rtt_injection", field="netem")
    view = core = None
    if selector is not None:
        core = as_client(load_client(p["kubeconfig"]))
        view = ClusterView(core, selector, namespace=p["namespace"])
    if p["target"] == "service":
        port = p["port"]
        if port is None:
            from krios.emulation.standin import node_port

            name, _, ns = p["service"].partition(".")
            port = node_port(core, name, ns or "default")
        target = serving_target(port, p["path"])
    else:
        target = static_target(p["target"])
    shaper = None
    if netem is not None:
        shaper = netem.Shaper(p["dev"])

        def shape(snap) -> None:
            dests = [netem.Destination(snap.node_ips[n], round(ms, 1)) for n, ms in snap.client_rtt_ms.items()
                     if n in snap.node_ips]
            if dests:
                shaper.update(dests)

        view.on_update(shape)
    store = ResultsStore(p["db"])
    run_id = store.start_run(
        "client", scenario=scenario.name if scenario else None, run_id=p["run_id"],
        meta={"rate_hz": cfg.rate_hz, "duration_s": cfg.duration_s, "timeout_s": cfg.timeout_s,
              "target": p["target"], "rtt_injection": p["rtt_injection"]},
    )
    store.merge_meta(run_id, "injection", client=p["rtt_injection"])
    jsonl = Path(p["log"]) if p["log"] else store.results_dir / run_id / "requests.jsonl"
    sink = RecordSink(jsonl, store, run_id)
    client = Client(target, sink, rate_hz=cfg.rate_hz, duration_s=cfg.duration_s, timeout_s=cfg.timeout_s,
                    view=view, client_host=p["client_host"], client_id=p["client_id"],
                    app=p["app"] or p["service"])
    stop = threading.Event()
    stopped_by = ["duration"]
    signal.signal(signal.SIGTERM, lambda *_: (stopped_by.__setitem__(0, "signal"), stop.set()))
    stop_file = Path(p["stop_file"]) if p["stop_file"] else None
    if stop_file is not None and stop_file.exists():
        stop_file.unlink()
    emulator_before = store.run(run_id)["meta"].get("emulator") if p["until_emulator_done"] else None

    def watch() -> None:
        watcher = ResultsStore(p["db"]) if p["until_emulator_done"] else None
        try:
            while not stop.wait(0.5):
                if stop_file is not None and stop_file.exists():
                    stopped_by[0] = "stop_file"
                    break
                if watcher is not None and watcher.run(run_id)["meta"].get("emulator") not in (None, emulator_before):
                    stopped_by[0] = "emulator_done"
                    break
        finally:
            if watcher is not None:
                watcher.close()
        client.stop()

    threading.Thread(target=watch, name="client-stop", daemon=True).start()
    status = "failed"
    t0 = time.time()
    try:
        if view is not None:
            view.start()
        outcome = client.run()
        status = "complete" if stopped_by[0] != "signal" else "failed"
    finally:
        stop.set()
        if view is not None:
            view.stop()
        if shaper is not None:
            shaper.clear()
        sink.close()
        store.finish_run(run_id, status)
    result.update(run_id=run_id, status=status, stopped_by=stopped_by[0], wall_s=round(time.time() - t0, 3),
                  client={"sent": outcome.sent, "ok": outcome.ok, "errors": outcome.errors, "nodes": outcome.nodes,
                          "jsonl": str(jsonl)},
                  **run_figures(store, run_id))
    store.close()
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "scenario": {"type": "str"},
            "selector": {"type": "str"},
            "namespace": {"type": "str"},
            "target": {"type": "str", "default": "service"},
            "service": {"type": "str"},
            "port": {"type": "int"},
            "path": {"type": "str", "default": "/"},
            "rate_hz": {"type": "float"},
            "timeout_s": {"type": "float"},
            "duration_s": {"type": "float"},
            "max_duration_s": {"type": "float", "default": 86400.0},
            "stop_file": {"type": "path"},
            "until_emulator_done": {"type": "bool", "default": False},
            "rtt_injection": {"type": "str", "choices": ["netem", "standin", "none"], "default": "none"},
            "dev": {"type": "str"},
            "run_id": {"type": "str"},
            "db": {"type": "path"},
            "kubeconfig": {"type": "path"},
            "chdir": {"type": "path"},
            "log": {"type": "path"},
            "client_host": {"type": "str"},
            "client_id": {"type": "str"},
            "app": {"type": "str"},
            "import_log": {"type": "path"},
        },
        mutually_exclusive=[("service", "port")],
        supports_check_mode=True,
    )
    result = run_krios(module, run, chdir=module.params["chdir"])
    if result.get("status") == "failed":
        module.fail_json(msg="the client was stopped by a signal", **result)
    if result.get("client") and result["client"]["sent"] == 0:
        module.fail_json(msg="the client sent no request", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
