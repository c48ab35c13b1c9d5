"""Summary statistics of latency samples, with bootstrap 95% confidence intervals.

Percentiles use linear interpolation between order statistics (numpy's default,
Hyndman & Fan type 7): for sorted samples ``x[0..n-1]`` the ``q``-th percentile
is at rank ``h = (n - 1) q / 100``, ``x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h])``.

Confidence intervals are percentile bootstrap intervals: the statistic is
recomputed on ``n_boot`` resamples drawn with replacement, and the interval is
the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of those values. The
generator is seeded so that a report is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

#: Percentiles reported per cell.
PERCENTILES = (50, 90, 95, 99)
#: Statistics reported per cell, in table order.
STATISTICS = ("min", "p50", "p90", "p95", "p99", "max", "mean")
#: Pod latency metrics (kube-burner field names), in report order.
METRICS = ("schedulingLatency", "podReadyLatency", "deletionLatency")

N_BOOT = 2000
LEVEL = 0.95


def _statistic(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """A function of an array ``(..., n)`` returning the statistic over the last axis."""
    if name == "min":
        return lambda a: np.min(a, axis=-1)
    if name == "max":
        return lambda a: np.max(a, axis=-1)
    if name == "mean":
        return lambda a: np.mean(a, axis=-1)
    if name.startswith("p") and name[1:].isdigit():
        q = float(name[1:])
        return lambda a: np.percentile(a, q, axis=-1)
    raise ValueError(f"unknown statistic {name!r}")


def point(values: Sequence[float] | np.ndarray, name: str) -> float:
    """One statistic (``min``, ``pNN``, ``max``, ``mean``) of ``values``; nan if empty."""
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return float("nan")
    return float(_statistic(name)(a))


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    name: str,
    *,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    rng: np.random.Generator | int | None = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval ``(low, high)`` of one statistic.

    ``rng`` is a generator or a seed (default 0: reproducible). Empty input
    gives ``(nan, nan)``; a single sample gives ``(x, x)``.
    """
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return float("nan"), float("nan")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    idx = gen.integers(0, a.size, size=(n_boot, a.size))
    stats = _statistic(name)(a[idx])
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def summarize(
    values: Iterable[float | None],
    *,
    errors: int = 0,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = 0,
) -> dict[str, Any]:
    """Summary of one cell: ``n``, ``errors`` and each statistic with its CI.

    ``None``/nan values are not samples (they count as errors). Keys: ``n``,
    ``errors``, and for each name in :data:`STATISTICS` the value and
    ``<name>_lo``/``<name>_hi`` (bootstrap CI bounds).
    """
    a = np.array([np.nan if v is None else v for v in values], dtype=float)
    missing = int(np.count_nonzero(np.isnan(a)))
    a = a[~np.isnan(a)]
    out: dict[str, Any] = {"n": int(a.size), "errors": int(errors + missing)}
    gen = np.random.default_rng(seed)
    for name in STATISTICS:
        out[name] = point(a, name)
        out[f"{name}_lo"], out[f"{name}_hi"] = bootstrap_ci(a, name, n_boot=n_boot, level=level, rng=gen)
    return out


def cells(rows: Iterable[Mapping[str, Any]], *, include_warmup: bool = False) -> dict[tuple[str, float], list[dict]]:
    """Group ``pod_latency`` rows by ``(scheduler, latency_ms)``; warm-up rows dropped.

    A cell repeated in a run (the zero-delay cell runs first and last) is
    grouped by its key, so its samples pool; ``cell`` in each row tells them apart.
    """
    out: dict[tuple[str, float], list[dict]] = {}
    for r in rows:
        if r.get("warmup") and not include_warmup:
            continue
        key = (str(r.get("scheduler")), float(r.get("latency_ms") or 0.0))
        out.setdefault(key, []).append(dict(r))
    return dict(sorted(out.items()))


def pod_latency_summary(
    rows: Iterable[Mapping[str, Any]],
    metrics: Sequence[str] = METRICS,
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Per cell and metric, the :func:`summarize` of the non-warm-up samples.

    Returns rows ``{"scheduler", "latency_ms", "metric", "n", "errors", ...}``
    sorted by scheduler, delay, metric order. A sample lacking a metric (it
    failed or timed out) counts as an error for that metric.
    """
    out = []
    for (sched, delay), group in cells(rows).items():
        for metric in metrics:
            s = summarize([r.get(metric) for r in group], n_boot=n_boot, seed=seed)
            out.append({"scheduler": sched, "latency_ms": delay, "metric": metric, **s})
    return out


def ecdf(values: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical CDF: sorted values and ``i / n`` for ``i = 1..n`` (nan dropped)."""
    a = np.sort(np.asarray(values, dtype=float))
    a = a[~np.isnan(a)]
    return a, np.arange(1, a.size + 1) / max(a.size, 1)
