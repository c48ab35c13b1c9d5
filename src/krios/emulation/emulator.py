"""The satellite emulator: worker nodes play satellites as the constellation moves over the zone.

Emulated time runs from ``start`` at ``acceleration`` emulated seconds per
wall second (``t_sim = start + (wall - wall0) * acceleration``). The emulator
publishes that clock (ConfigMap ``krios-clock``, :mod:`krios.kube.clock`) so the
scheduler and controller share it, then every ``tick_s`` emulated seconds:

1. reads the nodes (their ``sat_id`` labels) and the app's pods (label
   ``leozone=<zone>``): which nodes serve (Ready pod) or are starting one;
2. computes the assignment with :func:`krios.emulation.mapping.assign` (serving node
   keeps its satellite while in the zone; the others get satellites in or
   about to enter the zone so that a successor always exists);
3. patches ``sat_id`` on each node whose label differs: one merge patch per
   changed node, never a removal, so a node is never unlabelled;
4. publishes the mapping (ConfigMap ``krios-emulator``, key ``mapping.json``)
   and the latency matrix (``krios-latency``, key ``matrix.json``, model in
   :mod:`krios.orbits.rtt`), appends a JSON Lines record, and writes one row per
   node to the results store (table ``ticks``).

When a tick's work overruns the next tick's wall time, the missed ticks are
skipped (counted), never bunched. API errors are logged and retried on the
next tick (the labels are compared with the wanted mapping every tick), so
the emulator survives an API server restart. Labels are left in place at exit
so that the scheduler keeps working.

A restarted emulator given the same run id (``--run-id``; ``--resume`` makes it
an error when there is nothing to resume) *resumes*: emulated time continues
from the tick after the run's last stored tick (the clock is republished at
that instant, never rewound to ``start``), the node -> satellite mapping is
the one the cluster already has (the nodes' ``sat_id`` labels; the last tick's
rows if the API cannot be read) and the serving node keeps its title, so no
node is relabelled because of the restart; the store never writes a tick
``(t_sim, node)`` twice.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TextIO

from krios.config import defaults as D
from krios.config import resolve
from krios.config.times import iso, parse_time
from krios.emulation import mapping
from krios.errors import ConfigError
from krios.kube.client import as_client, ensure_namespace, list_items, node_path, pod_path, put_configmap
from krios.kube.clock import Clock
from krios.kube.names import (
    LATENCY_CONFIGMAP,
    LATENCY_KEY,
    LEOZONE_LABEL,
    MAPPING_CONFIGMAP,
    MAPPING_KEY,
    SAT_LABEL,
    SYSTEM_NAMESPACE,
)
from krios.kube.objects import labels, name_of, node_is_control_plane, pod_deleting, pod_node, pod_ready_since
from krios.orbits.constellation import Constellation
from krios.orbits.passes import ZoneTracker
from krios.orbits.rtt import LatencyModel, matrix_document
from krios.orbits.zones import Zone

log = logging.getLogger(__name__)

#: Per-request timeout (s, connect and read) of the tick loop's API calls, so a hung API server
#: delays a tick by a bounded time (missed ticks are then skipped).
REQUEST_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class EmulatorConfig:
    """What to emulate; times in unix s (emulated), durations in emulated s.

    Defaults in :mod:`krios.config.defaults`; build it with :meth:`from_scenario`.
    ``overlap_s`` is how long before the serving satellite leaves a successor
    must be in the zone: the controller's lead plus a margin.
    """

    scenario: str
    zone: Zone
    leozone: str
    constellation: Constellation = field(repr=False)
    latency: LatencyModel = field(repr=False)
    start: float
    duration_s: float = D.DURATION_S
    seed: int = D.SEED
    acceleration: float = D.ACCELERATION
    tick_s: float = D.TICK_S
    horizon_s: float = D.EMULATOR_HORIZON_S
    lookahead_s: float = D.LOOKAHEAD_S
    overlap_s: float = D.LOOKAHEAD_S + D.SUCCESSOR_MARGIN_S

    #: Config field -> scenario key.
    SCENARIO_KEYS: ClassVar[dict[str, str]] = {
        "start": "start", "duration_s": "duration_s", "seed": "seed", "acceleration": "acceleration",
        "tick_s": "tick_s", "lookahead_s": "handover.lookahead_s",
    }

    @classmethod
    def from_scenario(cls, scenario: Any, **overrides: Any) -> EmulatorConfig:
        """Defaults, then ``scenario``'s keys, then ``overrides`` that are not ``None``.

        ``start`` may be unix s, an ISO 8601 time or ``now``. ``lookahead_s``
        (default: the scenario's ``handover.lookahead_s``) is the controller's
        proactive lead; successors are chosen to enter the zone at least
        ``lookahead_s`` + :data:`~krios.config.defaults.SUCCESSOR_MARGIN_S` before
        the satellite they follow leaves. ``rtt_model`` (``physical`` or
        ``krios-emulator``) overrides the scenario's ``latency.rtt_model``.
        """
        rtt_model = overrides.pop("rtt_model", None)  # chooses the latency model, not a field of its own
        lead = overrides.get("lookahead_s")
        if lead is None:
            lead = resolve.scenario_value(scenario, "handover.lookahead_s", D.LOOKAHEAD_S)
        derived = {
            "scenario": scenario.name,
            "zone": Zone.from_scenario(scenario),
            "leozone": scenario.leozone,
            "constellation": Constellation.from_scenario(scenario),
            "latency": LatencyModel.from_scenario(scenario, rtt_model=rtt_model),
        }
        if isinstance(lead, int | float):
            derived["overlap_s"] = float(lead) + D.SUCCESSOR_MARGIN_S
        return resolve.from_scenario(cls, scenario, cls.SCENARIO_KEYS, {**overrides, **derived},
                                     convert={"start": _parse_start})

    def check(self) -> None:
        """Raise :class:`ConfigError` naming the field of a value the emulator cannot run with."""
        resolve.check_positive(self, "duration_s", "acceleration", "tick_s", "horizon_s")
        resolve.check_at_least(self, 0.0, "lookahead_s")
        if self.tick_s > self.duration_s:
            raise resolve.field_error("tick_s", self.tick_s, "must not exceed the duration")


def _parse_start(value: Any, source: str) -> float:
    return float(value) if isinstance(value, int | float) else parse_time(value, source=source)


def _natural(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def select_nodes(api: Any, count: int, *, names: Sequence[str] | None = None,
                 selector: str | None = None) -> list[str]:  # fmt: skip
    """The nodes to emulate satellites: ``names``, or those matching ``selector``, or the first
    ``count`` worker nodes (not control plane), in natural name order.

    ``api``: a :class:`krios.kube.client.RawClient` (or an ``ApiClient``)."""
    by_name = {name_of(n): n for n in list_items(as_client(api), node_path(), label_selector=selector)}
    if names:
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ConfigError("no such node", source="nodes", field=missing[0])
        chosen = list(dict.fromkeys(names))
    else:
        workers = [n for n, obj in by_name.items() if not node_is_control_plane(obj)]
        chosen = sorted(workers, key=_natural)
        if not selector:
            chosen = chosen[:count]
    if len(chosen) < count:
        where = "--node-selector" if selector else ("--nodes" if names else "cluster")
        raise ConfigError(f"too few nodes: the scenario needs {count} workers, found {len(chosen)}",
                          source=where, field=selector or ",".join(names or []) or "workers")  # fmt: skip
    return chosen


def app_pods(pods: Sequence[dict[str, Any]], nodes: Sequence[str]) -> dict[str, str]:
    """node -> ``serving`` (a Ready app pod) or ``starting`` (bound, not Ready, not terminating)."""
    out: dict[str, str] = {}
    wanted = set(nodes)
    for pod in pods:
        node = pod_node(pod)
        if node not in wanted or pod_deleting(pod):
            continue
        if pod_ready_since(pod) is not None:
            out[node] = mapping.SERVING
        elif (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            out.setdefault(node, mapping.STARTING)
    return out


@dataclass
class Stats:
    ticks: int = 0
    skipped: int = 0
    label_patches: int = 0
    mapping_changes: int = 0
    serving_changes: int = 0
    successor_ok: int = 0
    serving_ticks: int = 0
    api_errors: int = 0
    tick_ms: list[float] = field(default_factory=list)


class Emulator:
    """Runs the tick loop of one emulation (see the module docs).

    ``store``: a :class:`krios.results.store.ResultsStore` (or ``None``);
    ``run_id`` is used if given, else a run of kind ``emulator`` is started.
    ``log_path``: the JSON Lines tick log (default ``<results>/<run-id>/ticks.jsonl``).
    When the run (``run_id``) already has ticks the emulator resumes it (module docs);
    ``resume=True`` requires that (a :class:`ConfigError` otherwise).
    """

    def __init__(self, config: EmulatorConfig, api: Any, nodes: Sequence[str], *, store: Any = None,
                 run_id: str | None = None, log_path: Path | None = None, resume: bool = False):  # fmt: skip
        self.config = config
        self.client = as_client(api)  # a RawClient, or an ApiClient to make one of
        self.nodes = list(nodes)
        self.store = store
        self.tracker = ZoneTracker(config.constellation, config.zone, horizon_s=max(3600.0, 2 * config.horizon_s),
                                   start=config.start)  # fmt: skip
        self.rng = random.Random(config.seed)
        self.mapping: dict[str, int | None] = {}
        self.labels: dict[str, str | None] = {}
        self.pods: dict[str, str] = {}
        self.serving: str | None = None
        self.stats = Stats()
        self.clock: Clock | None = None
        meta = {"nodes": self.nodes, "start": iso(config.start), "duration_s": config.duration_s,
                "acceleration": config.acceleration, "tick_s": config.tick_s, "horizon_s": config.horizon_s,
                "leozone": config.leozone, "rtt_model": config.latency.rtt_model}  # fmt: skip
        #: First tick index (``t_sim = start + k * tick_s``) and its emulated time; > 0 when resuming.
        self.first_tick = 0
        self.resumed_from: float | None = None  # t_sim of the run's last stored tick, when resuming
        self._last_rows: list[dict[str, Any]] = []
        self._finish_force = False
        if resume and run_id is None:
            raise ConfigError("needs the run id of the emulator run to resume", source="--resume", field="--run-id")
        if store is not None:
            self.run_id = store.start_run("emulator", scenario=config.scenario, seed=config.seed, meta=meta,
                                          run_id=run_id)  # fmt: skip
            # A joined run (the experiment's) keeps its own metadata: say which RTT model this run used there too.
            store.merge_meta(self.run_id, "emulator", rtt_model=config.latency.rtt_model)
            default_log = store.results_dir / self.run_id / "ticks.jsonl"
            last_t, self._last_rows = store.last_tick(self.run_id) if run_id is not None else (None, [])
            if last_t is not None:
                self._plan_resume(last_t)
                # the process that started the run is gone: this one finishes it
                self._finish_force = store.run(self.run_id).get("kind") == "emulator"
            elif resume:
                raise ConfigError("the run has no ticks to resume from", source="--run-id", field=run_id)
        else:
            if resume:
                raise ConfigError("needs a results store (the run's ticks)", source="--resume", field="--db")
            from krios.results.store import check_run_id

            self.run_id = check_run_id(run_id) if run_id is not None else f"emulator-{int(time.time())}"
            default_log = Path("results") / self.run_id / "ticks.jsonl"
        self.log_path = Path(log_path) if log_path else default_log
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: TextIO = self.log_path.open("a", encoding="utf-8")

    # -- resuming a run --------------------------------------------------------------
    def _plan_resume(self, last_t: float) -> None:
        """Continue after the stored tick at ``last_t`` (emulated unix s): next tick, serving node."""
        cfg = self.config
        self.resumed_from = last_t
        self.first_tick = max(0, math.floor((last_t - cfg.start) / cfg.tick_s + 1e-9) + 1)
        serving = [r["node"] for r in self._last_rows if r.get("serving") and r.get("node") in self.nodes]
        self.serving = serving[0] if serving else None
        log.info("resuming run %s after emulated %s (tick %d)", self.run_id, iso(last_t), self.first_tick)

    def _adopt_mapping(self) -> None:
        """Take the mapping the cluster has: the nodes' ``sat_id`` labels (else the last stored tick)."""
        if self._observe():
            self.mapping = {n: int(v) for n, v in self.labels.items() if v is not None and v.isdigit()}
        if not self.mapping:
            self.mapping = {r["node"]: int(r["sat_id"]) for r in self._last_rows
                            if r.get("node") in self.nodes and r.get("sat_id") is not None}  # fmt: skip

    # -- reading the cluster ---------------------------------------------------------
    def _observe(self) -> bool:
        """Refresh node labels and app pods; ``False`` (keeping the last view) on API errors."""
        try:
            items = list_items(self.client, node_path(), timeout=REQUEST_TIMEOUT_S)
            self.labels = {name_of(n): labels(n).get(SAT_LABEL) for n in items if name_of(n) in self.nodes}
            pods = list_items(self.client, pod_path(None), label_selector=f"{LEOZONE_LABEL}={self.config.leozone}",
                              timeout=REQUEST_TIMEOUT_S)
            self.pods = app_pods(pods, self.nodes)
            return True
        except Exception as exc:  # API down or restarting: keep going on the last view
            self.stats.api_errors += 1
            log.warning("cannot read nodes/pods (%s); using the last view", _short(exc))
            return False

    # -- one tick --------------------------------------------------------------------
    def tick(self, t_sim: float) -> dict[str, Any]:
        """Observe, assign, relabel and publish at emulated time ``t_sim``; returns the tick record."""
        wall0 = time.time()
        cfg = self.config
        api_ok = self._observe()
        if not self.mapping:  # first tick: adopt the satellites of nodes that hold the app
            self.mapping = {n: int(v) for n, v in self.labels.items()
                            if n in self.pods and v is not None and v.isdigit()}  # fmt: skip
        passes = self.tracker.passes(t_sim, t_sim + cfg.horizon_s)
        new = mapping.assign(t_sim, self.nodes, self.mapping, self.pods, passes, rng=self.rng,
                             horizon_s=cfg.horizon_s, overlap_s=cfg.overlap_s)  # fmt: skip
        changes = [{"node": n, "from": self.mapping.get(n), "to": new[n]} for n in self.nodes
                   if new[n] != self.mapping.get(n)]  # fmt: skip
        self.mapping = new
        patched = self._relabel()
        win = mapping.windows(passes, t_sim)
        serving_nodes = sorted(n for n, s in self.pods.items() if s == mapping.SERVING)
        # the app may briefly run twice during a handover: the node that served keeps the title
        serving = self.serving if self.serving in serving_nodes else (serving_nodes[0] if serving_nodes else None)
        if serving != self.serving and self.serving is not None and serving is not None:
            self.stats.serving_changes += 1
            if self.store is not None:
                self.store.event(self.run_id, "serving-changed", t=t_sim, from_node=self.serving, to_node=serving,
                                 from_sat=self.mapping.get(self.serving), to_sat=self.mapping.get(serving))  # fmt: skip
        if serving is not None:
            self.serving = serving
        serving_sat = new.get(serving) if serving else None
        succ = mapping.successor(t_sim, serving_sat, [new[n] for n in self.nodes if n != serving], win,
                                 cfg.lookahead_s)  # fmt: skip
        sats = [s for s in new.values() if s is not None]
        r = cfg.constellation.positions(sats, t_sim)
        positions = {n: r[sats.index(s)] for n, s in new.items() if s is not None}
        rtt = cfg.latency.matrix(positions)
        elev, _az, rng_km = self.tracker.look(sats, t_sim)
        look = {s: (float(elev[i]), float(rng_km[i])) for i, s in enumerate(sats)}
        nodes_doc: dict[str, Any] = {}
        for n in self.nodes:
            s = new[n]
            w = win.get(s) if s is not None else None
            nodes_doc[n] = {
                "sat_id": s,
                "sat_name": cfg.constellation.names[s] if s is not None else None,
                "in_zone": bool(w and w.covers(t_sim)),
                "enters_at": w.enter if w else None,
                "exits_at": w.exit if w else None,
                "elevation_deg": round(look[s][0], 3) if s is not None else None,
                "range_km": round(look[s][1], 3) if s is not None else None,
                "rtt_ms": rtt["client"].get(n),
                "app": self.pods.get(n),
            }
        succ_node = next((n for n in self.nodes if succ is not None and new[n] == succ), None)
        record = {
            "tick": self.stats.ticks,
            "run_id": self.run_id,
            "scenario": cfg.scenario,
            "t_sim": t_sim,
            "t_sim_iso": iso(t_sim),
            "t_wall": wall0,
            "serving": serving,
            "successor": succ_node,
            "successor_ok": succ_node is not None,
            "covered_for_s": round(mapping.covered_for_s(t_sim, new.values(), win), 3),
            "nodes": nodes_doc,
            "changes": changes,
            "patched": patched,
            "api_ok": api_ok,
        }
        self._publish(record, rtt, t_sim)
        tick_ms = (time.time() - wall0) * 1000.0
        record["tick_ms"] = round(tick_ms, 3)
        self._log.write(json.dumps(record, sort_keys=True) + "\n")
        self._log.flush()
        if self.store is not None:
            self.store.add_many(self.run_id, "ticks", [
                {"t_sim": t_sim, "t_wall": wall0, "node": n, "sat_id": d["sat_id"], "serving": int(n == serving),
                 "in_zone": int(d["in_zone"]), "rtt_ms": d["rtt_ms"]} for n, d in nodes_doc.items()])  # fmt: skip
        st = self.stats
        st.ticks += 1
        st.label_patches += len(patched)
        st.mapping_changes += len(changes)
        st.tick_ms.append(tick_ms)
        if serving is not None:
            st.serving_ticks += 1
        if succ_node is not None:
            st.successor_ok += 1
        return record

    def _relabel(self) -> list[str]:
        """Patch ``sat_id`` on every node whose label differs from the mapping; returns those patched."""
        patched = []
        for node in self.nodes:
            sat = self.mapping.get(node)
            if sat is None or self.labels.get(node) == str(sat):
                continue
            try:
                self.client.patch(node_path(node), {"metadata": {"labels": {SAT_LABEL: str(sat)}}},
                                  merge=False, timeout=REQUEST_TIMEOUT_S)
            except Exception as exc:
                self.stats.api_errors += 1
                log.warning("cannot label %s sat_id=%s (%s); retrying next tick", node, sat, _short(exc))
                continue
            self.labels[node] = str(sat)
            patched.append(node)
        return patched

    def _publish(self, record: dict[str, Any], rtt: dict[str, dict[str, float]], t_sim: float) -> None:
        try:
            put_configmap(self.client, SYSTEM_NAMESPACE, MAPPING_CONFIGMAP,
                          {MAPPING_KEY: json.dumps(record, sort_keys=True)}, timeout=REQUEST_TIMEOUT_S)
            put_configmap(self.client, SYSTEM_NAMESPACE, LATENCY_CONFIGMAP,
                          {LATENCY_KEY: json.dumps(matrix_document(t_sim, rtt, self.config.latency.rtt_model))},
                          timeout=REQUEST_TIMEOUT_S)
        except Exception as exc:
            self.stats.api_errors += 1
            log.warning("cannot publish the mapping/latency ConfigMaps (%s)", _short(exc))

    # -- the loop --------------------------------------------------------------------
    def start_clock(self) -> Clock:
        """Publish ``krios-clock``: emulated ``start`` now (the resumed tick's time when resuming),
        at ``acceleration``."""
        ensure_namespace(self.client, SYSTEM_NAMESPACE, timeout=REQUEST_TIMEOUT_S)
        epoch = self.config.start + self.first_tick * self.config.tick_s
        self.clock = Clock.starting(epoch_sim=epoch, rate=self.config.acceleration)
        self.clock.publish(self.client)
        return self.clock

    def run(self, stop: threading.Event | None = None) -> dict[str, Any]:
        """Tick from ``start`` (or the resumed tick) to ``start + duration_s`` (emulated); returns the summary."""
        stop = stop or threading.Event()
        cfg = self.config
        if self.resumed_from is not None and not self.mapping:
            self._adopt_mapping()
        clock = self.clock or self.start_clock()
        wall_start = time.time()
        n_ticks = math.floor(cfg.duration_s / cfg.tick_s + 1e-9) + 1
        k = self.first_tick
        status = "complete"
        try:
            while k < n_ticks:
                t_sim = cfg.start + k * cfg.tick_s
                wait = clock.wall_at(t_sim) - time.time()
                if wait > 0 and stop.wait(wait):
                    break
                if stop.is_set():
                    break
                self.tick(t_sim)
                # skip ticks whose wall time has already passed (never bunch them)
                due = math.floor((clock.now() - cfg.start) / cfg.tick_s + 1e-9)
                nxt = max(k + 1, min(due, n_ticks - 1) if due > k else k + 1)
                self.stats.skipped += nxt - k - 1
                k = nxt
            if k < n_ticks:
                status = "failed"
        except BaseException:
            status = "failed"
            raise
        finally:
            summary = self.summary(status, time.time() - wall_start)
            self._log.close()
            if self.store is not None:
                self.store.update_meta(self.run_id, emulator=summary)
                self.store.finish_run(self.run_id, status, force=self._finish_force)
        return summary

    def summary(self, status: str, wall_s: float) -> dict[str, Any]:
        st = self.stats
        ms = sorted(st.tick_ms)
        return {
            "run_id": self.run_id,
            "status": status,
            "ticks": st.ticks,
            "skipped_ticks": st.skipped,
            "label_patches": st.label_patches,
            "mapping_changes": st.mapping_changes,
            "serving_changes": st.serving_changes,
            "serving_ticks": st.serving_ticks,
            "successor_ok_ticks": st.successor_ok,
            "api_errors": st.api_errors,
            "emulated_s": self.config.duration_s,
            "rtt_model": self.config.latency.rtt_model,
            "resumed_from": iso(self.resumed_from) if self.resumed_from is not None else None,
            "first_tick": self.first_tick,
            "wall_s": round(wall_s, 3),
            "tick_ms": {
                "mean": round(statistics.fmean(ms), 3) if ms else None,
                "p50": round(ms[len(ms) // 2], 3) if ms else None,
                "p95": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 3) if ms else None,
                "max": round(ms[-1], 3) if ms else None,
            },
            "log": str(self.log_path),
        }


def _short(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    return f"{type(exc).__name__} {status} {reason}" if status else f"{type(exc).__name__}: {exc}"[:200]
