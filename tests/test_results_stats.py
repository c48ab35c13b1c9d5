"""Statistics of latency cells against hand-computed values, and the sweep plan."""

from __future__ import annotations

import math

import numpy as np
import pytest

from krios.errors import ConfigError
from krios.measure.sweep import SweepConfig, plan
from krios.results import stats


def test_percentiles_match_hand_computed_linear_interpolation():
    # Sorted x = 10 20 30 40 50, n = 5: rank h = (n - 1) q / 100 = 4 q / 100.
    x = [30, 10, 50, 20, 40]
    assert stats.point(x, "min") == 10
    assert stats.point(x, "max") == 50
    assert stats.point(x, "mean") == 30
    assert stats.point(x, "p50") == 30  # h = 2
    assert stats.point(x, "p90") == pytest.approx(46.0)  # h = 3.6: 40 + 0.6 * 10
    assert stats.point(x, "p95") == pytest.approx(48.0)  # h = 3.8
    assert stats.point(x, "p99") == pytest.approx(49.6)  # h = 3.96


def test_bootstrap_ci_of_a_two_point_sample_is_hand_computable():
    # Resampling [0, 1] twice gives means 0 (p = 1/4), 0.5 (1/2), 1 (1/4).
    # 95%: the 2.5% quantile is 0 and the 97.5% quantile is 1.
    assert stats.bootstrap_ci([0.0, 1.0], "mean", n_boot=4000, rng=1) == (0.0, 1.0)
    # 40%: the 30% and 70% quantiles both fall on 0.5 (P(0) = .25 < .3, P(<= .5) = .75 > .7).
    assert stats.bootstrap_ci([0.0, 1.0], "mean", n_boot=4000, level=0.4, rng=1) == (0.5, 0.5)
    # A constant sample has a degenerate interval; one sample is its own interval.
    assert stats.bootstrap_ci([7.0] * 9, "p95") == (7.0, 7.0)
    assert stats.bootstrap_ci([3.0], "p50") == (3.0, 3.0)
    assert all(math.isnan(v) for v in stats.bootstrap_ci([], "mean"))


def test_bootstrap_ci_contains_the_estimate_and_is_reproducible():
    x = np.random.default_rng(5).lognormal(3.0, 0.5, 200)
    lo, hi = stats.bootstrap_ci(x, "p50", rng=3)
    assert lo < np.median(x) < hi
    assert stats.bootstrap_ci(x, "p50", rng=3) == (lo, hi)


def test_summarize_counts_missing_samples_as_errors():
    s = stats.summarize([10.0, None, 30.0, float("nan"), 20.0], errors=1, n_boot=200)
    assert s["n"] == 3
    assert s["errors"] == 3
    assert s["p50"] == 20.0
    assert s["mean"] == 20.0
    assert s["min_lo"] <= s["min"] <= s["min_hi"]
    assert set(stats.STATISTICS) <= set(s)


def test_cells_drop_warmup_and_pool_repeated_zero_cells():
    rows = [
        {"scheduler": "a", "latency_ms": 0.0, "cell": 0, "warmup": 1, "schedulingLatency": 1000.0},
        {"scheduler": "a", "latency_ms": 0.0, "cell": 0, "warmup": 0, "schedulingLatency": 10.0},
        {"scheduler": "a", "latency_ms": 0.0, "cell": 3, "warmup": 0, "schedulingLatency": 20.0},
        {"scheduler": "b", "latency_ms": 50.0, "cell": 1, "warmup": 0, "schedulingLatency": 110.0,
         "error": "not ready within 30 s", "podReadyLatency": None},
    ]
    summary = stats.pod_latency_summary(rows, metrics=("schedulingLatency", "podReadyLatency"), n_boot=100)
    by = {(s["scheduler"], s["latency_ms"], s["metric"]): s for s in summary}
    assert by[("a", 0.0, "schedulingLatency")]["n"] == 2
    assert by[("a", 0.0, "schedulingLatency")]["mean"] == 15.0  # the warm-up 1000 is not in it
    assert by[("b", 50.0, "schedulingLatency")]["n"] == 1
    assert by[("b", 50.0, "podReadyLatency")]["errors"] == 1


def test_plan_is_seeded_complete_and_repeats_the_zero_cells_last():
    cfg = SweepConfig(latency_ms=[100, 0, 50], schedulers=["krios-scheduler", "default-scheduler"], seed=7).check()
    cells = plan(cfg)
    assert [c.index for c in cells] == list(range(8))
    first = {(c.scheduler, c.latency_ms) for c in cells[:6]}
    assert first == {(s, d) for s in cfg.schedulers for d in (0.0, 50.0, 100.0)}
    assert all(c.latency_ms == 0.0 and c.repeat for c in cells[6:])
    assert {c.scheduler for c in cells[6:]} == set(cfg.schedulers)
    assert plan(cfg) == cells
    other = plan(SweepConfig(latency_ms=[100, 0, 50], schedulers=cfg.schedulers, seed=8).check())
    assert [(c.scheduler, c.latency_ms) for c in other] != [(c.scheduler, c.latency_ms) for c in cells]
    # One value: nothing to repeat.
    assert len(plan(SweepConfig(latency_ms=[0], schedulers=["a"]).check())) == 1


@pytest.mark.parametrize(
    ("kwargs", "source"),
    [
        # The domain names the config field; the CLI rewrites it to its flag (tests/test_config_defaults.py).
        ({"latency_ms": [-1]}, "latency_ms"),
        ({"samples_per_latency": 0}, "samples_per_latency"),
        ({"warmup": -1}, "warmup"),
        ({"schedulers": ["Bad_Name"]}, "schedulers"),
    ],
)
def test_bad_sweep_options_name_the_option(kwargs, source):
    with pytest.raises(ConfigError) as err:
        SweepConfig(**kwargs).check()
    assert err.value.source == source
