"""Every default of krios, in one table, with its unit.

A value a user can choose (in a scenario file, a command-line flag, an
Ansible variable) and does not choose comes from here; no other module
restates it. Each component resolves its configuration once, through its
config dataclass's ``from_scenario(scenario, **overrides)``: the dataclass's
field defaults are these constants, a scenario's keys override them, explicit
overrides (flags, module options) override both
(:func:`krios.config.resolve.from_scenario`).

Scenario files (:mod:`krios.config.scenarios`) are merged over
:data:`krios.config.scenarios.DEFAULTS`, which is built from this table too.
The Ansible side's table is the roles' ``defaults/main.yml``;
``tests/test_config_defaults.py`` checks that they agree where both hold a value.

Units are in the names (``_s`` seconds, ``_deg`` degrees, ``_km``, ``_ms``,
``_hz``); times of day are ISO 8601 strings in UTC.
"""

from __future__ import annotations

from typing import Any

# ----------------------------------------------------------------- orbits and zone
#: Walker shell generated when a scenario names no constellation.
SHELL = "starlink-1"
#: Epoch of generated Walker elements (ISO 8601, UTC).
EPOCH = "2026-01-01T00:00:00Z"
#: Emulated / simulated start time when a scenario or flag gives none (ISO 8601, UTC).
START = "2026-01-01T00:00:00Z"
#: Elevation mask of a zone (deg above the horizon): a satellite serves a zone
#: only while it is at least this high everywhere in it.
MIN_ELEVATION_DEG = 25.0
#: Radius of a scenario's zone when the file gives none (km; 0 = a point).
ZONE_RADIUS_KM = 0.0
#: Radius of a ``krios simulate --zone LAT_LON`` zone (km).
SIM_ZONE_RADIUS_KM = 100.0

# ----------------------------------------------------------------- scenario run
#: Emulated seconds an experiment runs (s).
DURATION_S = 60
#: Clock rate: emulated seconds per wall second.
ACCELERATION = 1.0
#: Emulator tick (emulated s).
TICK_S = 1.0
#: Seed of every random choice (policy ``random``, tie-breaks, cell order).
SEED = 0
#: Placement policy: ``krios`` | ``closest`` | ``random``.
POLICY = "krios"

# ----------------------------------------------------------------- handover
#: ``proactive`` (start the successor before the exit) or ``reactive``.
HANDOVER_MODE = "proactive"
#: Proactive handover lead: emulated seconds before the serving satellite's exit.
LOOKAHEAD_S = 30.0
#: Wall seconds a successor pod may take to become Ready.
READY_TIMEOUT_S = 60.0
#: Successors enter the zone at least this long before the satellite they follow
#: leaves, on top of :data:`LOOKAHEAD_S` (emulated s).
SUCCESSOR_MARGIN_S = 10.0

# ----------------------------------------------------------------- latency model
#: Processing delay per inter-satellite hop (ms).
PER_HOP_MS = 9.0
#: Length of one hop (km).
HOP_KM = 1000.0
#: Client RTT model: ``physical`` (propagation at c plus per-hop processing) or
#: ``krios-emulator`` (the original emulator's 9 ms x 1, 3, 5, ... hops by distance band);
#: :mod:`krios.orbits.rtt`, docs/guide/fidelity.md.
RTT_MODEL = "physical"

# ----------------------------------------------------------------- emulator
#: Satellites entering the zone within this many emulated seconds may be assigned (s).
EMULATOR_HORIZON_S = 900.0

# ----------------------------------------------------------------- scheduler and controller
#: ``spec.schedulerName`` the krios scheduler and controller handle.
SCHEDULER_NAME = "krios-scheduler"
#: Namespace of the daemons' Leases (and of the krios ConfigMaps).
LEASE_NAMESPACE = "krios-system"
#: Pass prediction window of the daemons' zone trackers (s).
TRACKER_HORIZON_S = 3600.0
#: Client-side API rate limit (requests/s) and burst, as kube-scheduler's.
KUBE_API_QPS = 50.0
KUBE_API_BURST = 100
#: Leader election, client-go's: lease duration, renew deadline, retry period (s).
LEASE_DURATION_S = 15.0
RENEW_DEADLINE_S = 10.0
RETRY_PERIOD_S = 2.0
#: Concurrent scheduling attempts / binds of the scheduler.
PARALLELISM = 8

# ----------------------------------------------------------------- client workload
#: Open-loop request rate (requests per wall second).
CLIENT_RATE_HZ = 5.0
#: Per-request timeout (wall s).
CLIENT_TIMEOUT_S = 2.0
#: Interval between node telemetry samples (wall s; ``krios telemetry``).
TELEMETRY_INTERVAL_S = 1.0

# ----------------------------------------------------------------- simulator
#: Simulated time of ``krios simulate`` (a duration string: 90m, 24h, 3600).
SIM_DURATION = "24h"
#: Sampling step for RTT and ``closest`` comparisons (s).
SIM_STEP_S = 1.0
#: Seconds from starting a successor until it can serve (s).
SIM_STARTUP_S = 5.0

# ----------------------------------------------------------------- latency sweep (krios bench latency)
#: Injected one-way control-plane delays (ms).
BENCH_LATENCY_MS = (0, 50, 100, 200)
#: Measured pods per (scheduler, delay) cell.
BENCH_SAMPLES_PER_LATENCY = 10
#: Discarded warm-up pods at the start of each cell.
BENCH_WARMUP_SAMPLES = 2
#: Per-stage timeout of one benchmark pod (wall s).
BENCH_TIMEOUT_S = 30.0
#: Namespace of the benchmark pods.
BENCH_NAMESPACE = "krios-bench"


def table() -> dict[str, Any]:
    """Every default of this module by name (``{"LOOKAHEAD_S": 30.0, ...}``), in definition order."""
    return {k: v for k, v in globals().items() if k.isupper() and not k.startswith("_")}
