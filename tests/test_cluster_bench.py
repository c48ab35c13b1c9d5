"""`krios bench cluster` runs end to end on a small cluster and prints its figures."""

from __future__ import annotations

import numpy as np
import pytest

from krios.bench import cluster as bench

pytestmark = pytest.mark.cluster


def test_bench_cluster_times_every_pod(tmp_path):
    result = bench.run(tmp_path / "cluster", workers=3, pods=12, ready_delay_s=0.1, jitter_s=0.0)
    assert result.bind_latency_s.shape == result.ready_latency_s.shape == (12,)
    # Ready comes after bound, and not before the configured delay.
    assert np.all(result.ready_latency_s >= result.bind_latency_s + 0.05)  # 0.1 s, less watch skew
    assert 0 < result.all_bound_s <= result.all_running_s
    lines = result.lines()
    assert lines[0].startswith("cluster up (3 virtual nodes + kube-scheduler)")
    assert any(line.startswith("graceful delete of all 12") for line in lines)
    assert not (tmp_path / "cluster").exists()  # taken down
