"""Issue 15, item 4 (the store and the report): no tick row twice; the served share is what the ticks say."""

from __future__ import annotations

from pathlib import Path

from krios.results.report import generate, served_share
from krios.results.store import ResultsStore


def rows(t_sim: float, t_wall: float, serving: str | None, nodes=("n0", "n1")) -> list[dict]:
    return [{"t_sim": t_sim, "t_wall": t_wall, "node": n, "sat_id": i, "serving": int(n == serving), "in_zone": 1,
             "rtt_ms": 10.0} for i, n in enumerate(nodes)]  # fmt: skip


def test_the_store_never_writes_a_tick_twice(tmp_path: Path):
    with ResultsStore(tmp_path / "krios.sqlite") as st:
        run = st.start_run("emulator", collect=False)
        assert st.add_many(run, "ticks", rows(100.0, 1.0, "n0")) == 2
        assert st.add_many(run, "ticks", rows(100.0, 2.0, None) + rows(105.0, 2.5, "n0")) == 2
        assert st.add_many(run, "ticks", rows(110.0, 3.0, "n0") * 2) == 2  # duplicates within a batch too
        assert st.counts(run)["ticks"] == 6
        last_t, last = st.last_tick(run)
        assert last_t == 110.0 and [r["node"] for r in last] == ["n0", "n1"]
        other = st.start_run("emulator", collect=False)  # the key is per run
        assert st.add_many(other, "ticks", rows(100.0, 1.0, "n0")) == 2
        assert st.last_tick(st.start_run("emulator", collect=False)) == (None, [])
        # other tables keep every row
        assert st.add_many(run, "events", [{"t": 1.0, "kind": "x"}] * 2) == 2


def test_served_share_counts_each_tick_not_each_instant():
    # a rewound emulator ticked 0..40 twice: served the first time, not the second
    ticks = [r for t in range(0, 50, 10) for r in rows(float(t), 1000.0 + t, "n0")]
    ticks += [r for t in range(0, 50, 10) for r in rows(float(t), 2000.0 + t, None)]
    share = served_share(ticks)
    assert share == {"ticks": 10, "served": 5, "share": 0.5, "repeated": 5, "missing": 0}
    # the old count (a set of instants served at least once) said 100 %
    assert len({int(t["t_sim"]) for t in ticks if t["serving"]}) / len({int(t["t_sim"]) for t in ticks}) == 1.0


def test_served_share_names_missing_ticks():
    ticks = [r for t in (0, 10, 20, 60, 70) for r in rows(float(t), 1000.0 + t, "n0" if t < 60 else None)]
    assert served_share(ticks) == {"ticks": 5, "served": 3, "share": 0.6, "repeated": 0, "missing": 3}


def test_report_prints_the_tick_count(tmp_path: Path):
    with ResultsStore(tmp_path / "krios.sqlite") as st:
        run = st.start_run("emulator", collect=False)
        for t in range(0, 100, 10):
            st.add_many(run, "ticks", rows(float(t), 1000.0 + t / 10, "n0" if t < 70 else None))
        text = generate(st, run).read_text()
    assert "zone served by an in-zone satellite at 70.0% of ticks (7 of 10)" in text
