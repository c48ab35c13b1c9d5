"""The tables of the results database (SQLite) and their columns.

Every sample table has a ``run_id`` column referring to ``runs.id``. Times are
UTC unix seconds (float); latencies and RTTs are milliseconds. Columns named in
camelCase in ``pod_latency`` keep kube-burner's field names so that exported
JSON Lines read like kube-burner's ``podLatencyMeasurement`` documents.

The schema is versioned with SQLite's ``user_version``; ``SCHEMA_VERSION``
changes whenever a column is added, and new columns are added in place
(``ALTER TABLE ... ADD COLUMN``) so old databases keep working.
"""

from __future__ import annotations

SCHEMA_VERSION = 6
#: What each version added (a database of an older version gains the columns when a store opens it;
#: the rows it holds get NULL there).
SCHEMA_HISTORY: dict[int, str] = {
    2: "requests.client_host",
    3: "requests.client, requests.app, handovers.app",
    4: "tables coldstart and churn",
    5: "requests.request_id, client_group, service, created_at, done_at, bytes; table telemetry",
    6: "handovers.reason",
}

#: Run status values. A run starts ``incomplete`` and stays so if its process dies.
RUN_STATUSES = ("incomplete", "complete", "failed")

#: ``runs``: one row per experiment run.
RUNS_COLUMNS: dict[str, str] = {
    "id": "TEXT PRIMARY KEY",  # 20261123T064200Z-sf_4workers-ab12
    "kind": "TEXT NOT NULL",  # experiment | bench-latency | emulator | client | ...
    "scenario": "TEXT",
    "seed": "INTEGER",
    "started_at": "REAL NOT NULL",  # unix s
    "finished_at": "REAL",  # unix s; NULL while running / if killed
    "status": "TEXT NOT NULL DEFAULT 'incomplete'",
    "meta": "TEXT NOT NULL DEFAULT '{}'",  # JSON: versions, git revision, tc state, options
}

#: Sample tables: column name -> SQLite type. ``run_id`` is implicit and first.
TABLES: dict[str, dict[str, str]] = {
    # The client's requests to the app (#6 writes them).
    "requests": {
        "seq": "INTEGER",  # request number within the run
        "sent_at": "REAL",  # unix s (wall clock)
        "node": "TEXT",  # node that answered (or was targeted)
        "sat_id": "INTEGER",  # satellite that node emulated at the time
        "injected_rtt_ms": "REAL",  # RTT the emulator imposed on the path, ms
        "latency_ms": "REAL",  # measured request latency, ms (NULL on error)
        "status": "TEXT",  # ok | error | timeout | HTTP status code
        "error": "TEXT",
        "client_host": "TEXT",  # host the request was sent from (the client node)
        "client": "TEXT",  # which client sent it: krios client --client-id, default <host>-<pid>
        "app": "TEXT",  # the app it was aimed at: krios client --app, default the pods' label selector
        # v5: Galileo's trace fields (krios.emulation.workload; workload groups: krios.config.workload)
        "request_id": "TEXT",  # <client>:<seq>, unique in the run
        "client_group": "TEXT",  # workload group the client belongs to (NULL: a plain krios client)
        "service": "TEXT",  # the group's service: zone, a zone key LAT_LON or a Service NAME.NAMESPACE
        "created_at": "REAL",  # unix s: when the open-loop schedule said to send
        "done_at": "REAL",  # unix s: answer complete, or the request failed
        "bytes": "INTEGER",  # response body bytes received (NULL: no answer)
    },
    # The emulator's node <-> satellite mapping, one row per node per tick (#6 writes).
    "ticks": {
        "t_sim": "REAL",  # emulated unix s
        "t_wall": "REAL",  # wall-clock unix s
        "node": "TEXT",
        "sat_id": "INTEGER",
        "serving": "INTEGER",  # 1 if the app pod runs on this node
        "in_zone": "INTEGER",  # 1 if the satellite is in the zone
        "rtt_ms": "REAL",  # client <-> node RTT at this tick, ms
    },
    # Handovers of the app between nodes (controller / emulator / simulator).
    "handovers": {
        "t_sim": "REAL",  # emulated unix s of the handover
        "from_node": "TEXT",
        "to_node": "TEXT",
        "from_sat": "INTEGER",
        "to_sat": "INTEGER",
        "lead_s": "REAL",  # s between the handover and the old satellite's zone exit
        "mode": "TEXT",  # proactive | reactive | replace (a delay-constrained pod re-placed by the controller)
        "app": "TEXT",  # <namespace>/<app key> (krios.io/app-instance, else the first copy's name)
        "reason": "TEXT",  # why it moved (e.g. "sat 3 leaves zone ... in 25 s", "node krios-worker-2 not Ready")
    },
    # Per-pod latency samples of the benchmarks (krios.measure.podlatency / krios.measure.sweep).
    "pod_latency": {
        "scheduler": "TEXT",  # schedulerName of the pod
        "latency_ms": "REAL",  # injected one-way control-plane delay of the cell, ms
        "cell": "INTEGER",  # position of the cell in the run's (shuffled) order
        "sample": "INTEGER",  # sample index within the cell (warm-up ones included)
        "pod": "TEXT",
        "node": "TEXT",  # node the pod was bound to
        "warmup": "INTEGER",  # 1 if the sample is a discarded warm-up sample
        "t_submit": "REAL",  # unix s: create request sent
        "t_seen": "REAL",  # first watch event (creationTimestamp observed)
        "t_bound": "REAL",  # PodScheduled=True observed
        "t_running": "REAL",  # phase Running observed
        "t_ready": "REAL",  # Ready=True observed
        "t_delete": "REAL",  # delete request sent
        "t_deleted": "REAL",  # DELETED watch event
        "schedulingLatency": "REAL",  # ms, t_bound - t_submit
        "podReadyLatency": "REAL",  # ms, t_ready - t_submit
        "deletionLatency": "REAL",  # ms, t_deleted - t_delete
        "error": "TEXT",
    },
    # One row per arrival of `krios bench coldstart` (mode coldstart) and per pod of `krios bench churn`
    # (mode churn), written as soon as the pod is gone (krios.measure.coldstart / krios.measure.churn).
    "coldstart": {
        "mode": "TEXT",  # coldstart | churn
        "scheduler": "TEXT",  # schedulerName of the pod
        "rps": "REAL",  # target arrival rate of the cell, 1/s
        "step": "INTEGER",  # index of the rate step (ascending rates; churn: 0)
        "cell": "INTEGER",  # position of the cell in the run's order
        "repeat": "INTEGER",  # 1 in the repeated baseline cell
        "seq": "INTEGER",  # arrival index within the cell
        "pod": "TEXT",
        "node": "TEXT",  # node the pod was bound to
        "served_via": "TEXT",  # ready (virtual kubelets: served = Ready) | http (a GET answered 2xx)
        "t_arrival": "REAL",  # unix s: when the open-loop schedule said to send
        "t_submit": "REAL",  # unix s: create request sent
        "t_bound": "REAL",  # PodScheduled=True / nodeName observed
        "t_ready": "REAL",  # Ready=True observed
        "t_served": "REAL",  # the one request answered (= t_ready with served_via ready)
        "t_delete": "REAL",  # delete request sent
        "t_deleted": "REAL",  # DELETED watch event
        "lagMs": "REAL",  # ms, t_submit - t_arrival (sender lateness; should stay ~0)
        "schedulingLatency": "REAL",  # ms, t_bound - t_submit
        "podReadyLatency": "REAL",  # ms, t_ready - t_submit
        "coldStartLatency": "REAL",  # ms, t_served - t_arrival (the bound of a rate step applies to it)
        "deletionLatency": "REAL",  # ms, t_deleted - t_delete
        "error": "TEXT",
    },
    # Backlog samples of `krios bench churn`, one per sampling period per cell.
    "churn": {
        "scheduler": "TEXT",
        "cell": "INTEGER",
        "repeat": "INTEGER",  # 1 in the repeated baseline cell
        "rate": "REAL",  # target creation rate, 1/s
        "t": "REAL",  # unix s of the sample
        "created": "INTEGER",  # pods submitted so far in the cell
        "ready": "INTEGER",  # of those, seen Ready so far
        "deleted": "INTEGER",  # of those, gone so far
        "failed": "INTEGER",  # of those, with an error so far
        "not_ready": "INTEGER",  # backlog: created, not (yet) Ready, no error
        "not_deleted": "INTEGER",  # backlog: created, not yet gone
        "create_rate": "REAL",  # 1/s, creations since the previous sample
        "ready_rate": "REAL",  # 1/s, pods turned Ready since the previous sample
    },
    # Node telemetry of `krios telemetry` (krios.measure.telemetry): per sample (interval), per node, one row
    # per CPU (kind cpu, item total|cpu<N>), memory (mem), network interface (net), load (load) and
    # watched process (proc, item = its name).
    "telemetry": {
        "t": "REAL",  # unix s of the sample
        "interval": "INTEGER",  # sample index within the run (0, 1, ...); paused intervals are skipped
        "node": "TEXT",  # the Kubernetes node the row describes
        "host": "TEXT",  # the machine sampled (local clusters: one host for every virtual node)
        "kind": "TEXT",  # cpu | mem | net | load | proc | cgroup
        "item": "TEXT",  # cpu: total | cpu0 ...; net: interface; proc: process name; cgroup: its path; else total
        "pid": "INTEGER",  # proc rows
        "cpu_pct": "REAL",  # cpu: busy % of that CPU since the previous sample; proc: % of one CPU
        "mem_bytes": "INTEGER",  # mem: used (total - available); proc: resident set size
        "mem_pct": "REAL",  # mem_bytes as % of the host's memory
        "rx_bytes": "INTEGER",  # net: counters since boot (differences give rates)
        "tx_bytes": "INTEGER",
        "rx_packets": "INTEGER",
        "tx_packets": "INTEGER",
        "load1": "REAL",  # load: 1, 5 and 15 min load averages
        "load5": "REAL",
        "load15": "REAL",
    },
    # Free-form events (phase changes, faults, notes).
    "events": {
        "t": "REAL",  # unix s
        "kind": "TEXT",
        "data": "TEXT",  # JSON
    },
}

#: Columns stored as JSON text and decoded on reading.
JSON_COLUMNS: dict[str, tuple[str, ...]] = {"runs": ("meta",), "events": ("data",)}

#: Per table, the columns that (with ``run_id``) identify a row: the store skips a row whose key is
#: already there (a restarted emulator never writes a tick twice). A plain index, not a UNIQUE one,
#: so databases that already hold duplicates still open.
KEYS: dict[str, tuple[str, ...]] = {
    "ticks": ("t_sim", "node"),
    "telemetry": ("t", "node", "kind", "item", "pid"),  # a node's JSON Lines imported twice adds nothing
}

#: Indexes that make per-run reads (and the key look-ups) cheap.
INDEXES = {table: f"CREATE INDEX IF NOT EXISTS {table}_run ON {table}(run_id)" for table in TABLES}
KEY_INDEXES = {
    table: f"CREATE INDEX IF NOT EXISTS {table}_key ON {table}(run_id, {', '.join(cols)})"
    for table, cols in KEYS.items()
}


def create_statements() -> list[str]:
    """The ``CREATE TABLE``/``INDEX`` statements for a fresh (or older) database."""
    cols = ", ".join(f"{name} {kind}" for name, kind in RUNS_COLUMNS.items())
    stmts = [f"CREATE TABLE IF NOT EXISTS runs ({cols})"]
    for table, columns in TABLES.items():
        cols = ", ".join(f'"{name}" {kind}' for name, kind in columns.items())
        stmts.append(
            f"CREATE TABLE IF NOT EXISTS {table} (run_id TEXT NOT NULL REFERENCES runs(id), {cols})"
        )
        stmts.append(INDEXES[table])
        if table in KEY_INDEXES:
            stmts.append(KEY_INDEXES[table])
    return stmts


def columns(table: str) -> list[str]:
    """All columns of ``table`` in order, ``run_id`` first (``id`` first for ``runs``)."""
    if table == "runs":
        return list(RUNS_COLUMNS)
    return ["run_id", *TABLES[table]]
