"""Open-loop arrival schedules: when each client of a workload group sends (wall seconds from its start).

The schedule of a client is a function of its :class:`~krios.config.workload.Arrivals`
and its *stream* (the group name and client index), never of how fast the
server answers: open loop. Offsets are wall seconds after the workload's start
``t0``; request ``k`` is due at ``t0 + offsets[k]``.

- ``rate``: ``k / rate_hz`` (request 0 at once), as ``krios client --rate-hz`` always did;
- ``ia``: request 0 at once, then cumulative sums of inter-arrival draws (wall s):
  ``constant`` ``k * mean_s``; ``expon`` exponential with mean ``mean_s``; ``lognorm``
  ``exp(N(ln mean_s - sigma^2/2, sigma^2))`` (mean ``mean_s``). Draws come from
  :class:`random.Random` seeded with ``"<seed>/<stream>"``: the same seed and stream give
  the same schedule on every machine and Python version (string seeds are hashed with SHA-512);
- ``trace``: the trace's offsets (emulated s from its first timestamp) divided by the
  emulation's ``acceleration`` (emulated s per wall s).

Every schedule stops before ``duration_s`` (wall s).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator

from krios.config.workload import Arrivals


def rng(seed: int, stream: str = "") -> random.Random:
    """The generator of one client's draws: seeded by ``seed`` and the client's ``stream`` name."""
    return random.Random(f"{seed}/{stream}")


def interarrivals(arrivals: Arrivals, stream: str = "") -> Iterator[float]:
    """Endless inter-arrival times (wall s) of an ``ia`` or ``rate`` schedule."""
    if arrivals.kind == "rate":
        assert arrivals.rate_hz is not None
        return itertools.repeat(1.0 / arrivals.rate_hz)
    if arrivals.kind != "ia":
        raise ValueError(f"no inter-arrival draws for a {arrivals.kind} schedule")
    mean = arrivals.param("mean_s")
    if arrivals.dist == "constant":
        return itertools.repeat(mean)
    r = rng(arrivals.seed, stream)
    if arrivals.dist == "expon":
        return (r.expovariate(1.0 / mean) for _ in itertools.count())
    if arrivals.dist == "lognorm":
        sigma = arrivals.param("sigma")
        mu = math.log(mean) - sigma * sigma / 2.0
        return (r.lognormvariate(mu, sigma) for _ in itertools.count())
    raise ValueError(f"unknown distribution {arrivals.dist!r}")


def offsets(arrivals: Arrivals, duration_s: float, *, stream: str = "", acceleration: float = 1.0) -> Iterator[float]:
    """Send times (wall s after the start, increasing) of one client, all ``< duration_s``.

    ``acceleration`` (emulated s per wall s) scales ``trace`` timestamps only;
    ``rate_hz`` and ``ia`` are wall-clock already.
    """
    if arrivals.kind == "trace":
        for t in arrivals.trace:
            wall = t / acceleration
            if wall >= duration_s:
                return
            yield wall
        return
    if arrivals.kind == "rate" or arrivals.dist == "constant":  # k * interval: no accumulated rounding
        for k in itertools.count():
            t = k / arrivals.rate_hz if arrivals.rate_hz else k * arrivals.param("mean_s")
            if t >= duration_s:
                return
            yield t
    t = 0.0
    for gap in interarrivals(arrivals, stream):
        if t >= duration_s:
            return
        yield t
        t += gap


def schedule(arrivals: Arrivals, duration_s: float, *, stream: str = "", acceleration: float = 1.0) -> list[float]:
    """:func:`offsets` as a list."""
    return list(offsets(arrivals, duration_s, stream=stream, acceleration=acceleration))
