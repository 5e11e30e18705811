"""Windows are sums of panes: read through the hourly rollups they equal the minute panes summed;
a restart (a new State on the same file) resumes with the same panes. A temporary SQLite file only."""

from __future__ import annotations

import numpy as np

from console.monitor.monitor_run import State, _add_panes, pane_matrix, window_sum
from console.monitor.panes import Layout, distinct_rows, fold, unite
from console.monitor.profile import build_profile


def test_a_window_through_hourly_rollups_equals_its_minute_panes(tmp_path):
    rng = np.random.default_rng(5)
    profile = build_profile({"a": rng.normal(size=2000), "b": rng.normal(size=2000)})
    layout = Layout(2)
    state = State(tmp_path / "state.db")
    t0 = 1_800_000_000.0
    for part in range(6):  # six batches over three hours, out of order, the same minutes twice
        n = 4000
        t = t0 + rng.uniform(0, 3 * 3600, n)
        panes = fold(profile, t, np.asarray(["1"] * n, dtype=object),
                     np.asarray([f"u{k}" for k in rng.integers(0, 300, n)], dtype=object),
                     np.asarray([f"r{part}-{i}" for i in range(n)], dtype=object),
                     {"a": rng.normal(size=n), "b": np.round(rng.normal(size=n), 1)}, rng.uniform(size=n))
        state.db.execute("BEGIN")
        _add_panes(state.db, panes, layout)
        state.db.execute("COMMIT")
    state.close()
    state = State(tmp_path / "state.db")  # a restart reads the same panes
    first_minute = int(t0 // 60)
    for lo, hi in [(0, 180), (7, 173), (60, 120), (61, 62), (100, 100), (-30, 250)]:
        matrix = pane_matrix(state, "1", first_minute + lo, first_minute + hi, layout)
        expected_counts = matrix[:, :layout.counts].sum(axis=0)
        got = window_sum(state, "1", first_minute + lo, first_minute + hi, layout)
        assert (got[:layout.counts] == expected_counts).all(), (lo, hi)
        assert (got[layout.counts:] == unite([layout.sketch(matrix)])).all()
    whole = window_sum(state, "1", first_minute - 10, first_minute + 200, layout)
    assert whole[0] == 6 * 4000
    state.close()


def test_distinct_rows_is_exact_when_few_and_close_when_many():
    rng = np.random.default_rng(9)
    profile = build_profile({"a": rng.normal(size=1000)})
    layout = Layout(1)
    values = rng.normal(size=142)
    n = 5000
    replay = fold(profile, np.full(n, 60.0), np.asarray(["1"] * n, dtype=object), np.asarray([None] * n, dtype=object),
                  np.asarray([str(i) for i in range(n)], dtype=object), {"a": values[rng.integers(0, 142, n)]},
                  np.zeros(n))
    assert distinct_rows(layout.sketch(next(iter(replay.values())))) == 142
    fresh = fold(profile, np.full(n, 60.0), np.asarray(["1"] * n, dtype=object), np.asarray([None] * n, dtype=object),
                 np.asarray([str(i) for i in range(n)], dtype=object), {"a": rng.normal(size=n)}, np.zeros(n))
    assert abs(distinct_rows(layout.sketch(next(iter(fresh.values())))) - n) < 0.25 * n
