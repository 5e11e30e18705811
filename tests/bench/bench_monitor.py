"""Benchmark: the monitor's pane fold against a plain pyarrow + numpy fold of the same records.

    python tests/bench/bench_monitor.py [--rows 1000000] [--features 50] [--chunk 100000]

Writes one prediction log of ROWS records × FEATURES float features (5 of them shifted 0.3 SD,
one minute of traffic per 60 000 records) twice: as the router's JSON lines and as Parquet
(zstd). Then, each in a fresh subprocess (CPU seconds from getrusage, peak RSS from ru_maxrss):
- mrc, JSON lines: the router source (pyarrow's C++ JSON reader) + console/monitor/panes.fold
  into per-minute panes with units, sketches and the prediction histogram;
- mrc, Parquet: the same fold reading the Parquet file;
- plain: pyarrow read_table + numpy searchsorted/bincount of the same bins per minute (the
  review's baseline: counts only, no units, no sketch);
- a 24 h window view: 1 440 stored panes summed and judged (console/monitor/monitor_run.judge).
Goals from issue #21: fold ≤ 6 CPU-s and ≤ the plain fold; a 24 h view ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def make_data(folder: Path, rows: int, features: int) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(21)
    names = [f"f{j}" for j in range(features)]
    ref = rng.normal(size=(200_000, features))
    np.save(folder / "ref.npy", ref)
    t0 = 1_800_000_000.0
    t = t0 + np.arange(rows) / 1000.0  # 1 000 records a second: 60 000 a pane
    x = rng.normal(size=(rows, features))
    x[:, :5] += 0.3
    p = 1 / (1 + np.exp(-x[:, 0]))
    keys = [f"u{k}" for k in rng.integers(0, 50_000, rows)]
    table = pa.table({"t": t, "id": [f"r{i}" for i in range(rows)], "v": ["1"] * rows, "k": keys,
                      **{n: x[:, j] for j, n in enumerate(names)}, "p": p})
    pq.write_table(table, folder / "log.parquet", compression="zstd", row_group_size=128 * 1024)
    seg = folder / "serving" / "m" / "capture"
    seg.mkdir(parents=True)
    with open(seg / "seg-0000000000001-1-0001.jsonl", "w") as fh:
        for i in range(rows):
            fh.write(json.dumps({"t": float(t[i]), "id": f"r{i}", "v": "1", "k": keys[i],
                                 "x": dict(zip(names, x[i].tolist())), "p": float(p[i]), "status": 200},
                                separators=(",", ":")) + "\n")
    return {"json_mb": (seg / "seg-0000000000001-1-0001.jsonl").stat().st_size / 1e6,
            "parquet_mb": (folder / "log.parquet").stat().st_size / 1e6}


CHILD = r'''
import json, resource, sys, time
sys.path.insert(0, REPO)
import numpy as np
mode, folder, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
ref = np.load(folder + "/ref.npy")
from console.monitor.profile import build_profile
names = [f"f{j}" for j in range(ref.shape[1])]
profile = build_profile({n: ref[:, j] for j, n in enumerate(names)})
before = resource.getrusage(resource.RUSAGE_SELF)
started = time.perf_counter()
panes = {}
if mode == "mrc-json":
    from backends.base import FieldMapping
    from backends.local.monitor_source import RouterLogSource
    from console.monitor.panes import Layout, fold, merge
    source = RouterLogSource(); source.open(folder, "m", FieldMapping(), {})
    cursor, layout = None, Layout(len(names))
    while True:
        batch = source.read(cursor)
        if batch.rows == 0:
            break
        merge(panes, fold(profile, batch.t, batch.versions, batch.keys, batch.ids, batch.features, batch.prediction), layout)
        cursor = batch.cursor
elif mode == "mrc-parquet":
    import pyarrow.parquet as pq
    from console.monitor.panes import Layout, fold, merge
    layout = Layout(len(names))
    for b in pq.ParquetFile(folder + "/log.parquet").iter_batches(batch_size=chunk):
        cols = {n: b.column(n).to_numpy() for n in names}
        merge(panes, fold(profile, b.column("t").to_numpy(), np.asarray(b.column("v").to_pylist(), dtype=object),
                          np.asarray(b.column("k").to_pylist(), dtype=object), np.asarray(b.column("id").to_pylist(), dtype=object),
                          cols, b.column("p").to_numpy()), layout)
else:  # plain: the review's pyarrow + numpy fold (counts per minute and feature only)
    import pyarrow.parquet as pq
    table = pq.read_table(folder + "/log.parquet")
    minute = np.floor(table.column("t").to_numpy() / 60).astype(np.int64)
    g = minute - minute.min(); G = int(g.max()) + 1
    for j, f in enumerate(profile.features):
        x = table.column(f.name).to_numpy()
        b = np.searchsorted(np.asarray(f.edges), x, side="right")
        panes[f.name] = np.bincount(g * 12 + b, minlength=G * 12)
wall = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
print(json.dumps({"mode": mode, "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
                  "peak_rss_mb": round(after.ru_maxrss / 1024, 1), "panes": len(panes)}))
'''


def child(mode: str, folder: Path, chunk: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", "REPO = %r\n" % str(REPO) + CHILD, mode, str(folder), str(chunk)],
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        return {"mode": mode, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def view_24h(features: int) -> dict:
    """1 440 panes of one version stored in a state db, then the 24 h window judged (median of 5)."""
    import numpy as np

    from console.monitor.decide import MonitorConfig
    from console.monitor.monitor_run import State, judge
    from console.monitor.panes import Layout, fold
    from console.monitor.profile import build_profile

    rng = np.random.default_rng(3)
    names = [f"f{j}" for j in range(features)]
    profile = build_profile({n: rng.normal(size=20_000) for n in names})
    layout = Layout(features)
    with tempfile.TemporaryDirectory() as tmp:
        state = State(Path(tmp) / "state.db")
        now = 1_800_000_000.0
        n = 600  # records a pane
        base = fold(profile, np.full(n, now), np.asarray(["1"] * n, dtype=object),
                    np.asarray([f"u{i}" for i in range(n)], dtype=object), np.asarray([f"r{i}" for i in range(n)], dtype=object),
                    {nm: rng.normal(size=n) for nm in names}, rng.uniform(size=n))[("1", int(now // 60))]
        assert len(base) == layout.size
        last = int(now // 60)
        state.db.execute("BEGIN")
        state.db.executemany("INSERT INTO panes VALUES (?, ?, ?)", [("1", m, base.tobytes()) for m in range(last - 1439, last + 1)])
        hourly = base.copy()
        hourly[:layout.counts] *= 60
        state.db.executemany("INSERT INTO hours VALUES (?, ?, ?)", [("1", h, hourly.tobytes())
                                                                    for h in range((last - 1439) // 60, last // 60 + 1)])
        state.db.execute("COMMIT")
        cfg = MonitorConfig(window_s=86400)
        times = []
        for _ in range(5):
            started = time.perf_counter()
            report, _labels = judge(state, profile, "1", now, cfg)
            times.append(time.perf_counter() - started)
        state.close()
    times.sort()
    return {"view_24h_ms_median": round(1000 * times[2], 1), "samples_ms": [round(1000 * x, 1) for x in times],
            "tier": report.tier, "units": report.units}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=50)
    ap.add_argument("--chunk", type=int, default=100_000)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} (CPU seconds are the comparable figure)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sizes = make_data(folder, args.rows, args.features)
        print(json.dumps({"rows": args.rows, "features": args.features, **sizes}), flush=True)
        for mode in ("plain", "mrc-parquet", "mrc-json"):
            print(json.dumps(child(mode, folder, args.chunk)), flush=True)
    print(json.dumps(view_24h(args.features)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
