"""Drift benchmark: 200,000 rows × 50 columns (40 numeric, 10 categorical), drift injected in a few.

Compares, on the same data in the same run, each in its own process (so peak memory is its own):
  - mrc's vectorised engine, cold (reference profile built in the timed region) and warm
    (profile cached), on 1 and 2 threads;
  - a per-column scipy loop: ks_2samp + PSI on reference-decile bins for numeric columns,
    chi2_contingency + PSI for categorical ones;
  - Evidently's DataDriftPreset (0.7.23, in its own venv since it needs pandas<3:
    tests/bench/setup_evidently.sh creates .bench-venv/ at the repo root).
Prints medians, ratios against the scipy loop and Evidently, peak memory above the loaded data,
and checks that the KS and χ² statistics equal scipy's.

Measured on the shared 2-core build machine, 2026-11-23, load average 2.9 at the start and 1.5
at the end (other work running; absolute times are noisy, the methods are interleaved over
rounds so the ratios are fair): mrc warm 2 threads 0.219 s (min 0.201), 1 thread 0.261 s,
cold 2 threads 0.433 s; scipy loop 2.28 s (10.4× warm, 5.3× cold); Evidently 41.2 s (188× warm);
peak memory 91 MB warm, 187 MB cold, Evidently 877 MB. KS identical to ks_2samp, χ² within 2e-16.
Evidently runs once per bench (≈ 40–57 s across runs here). Before the KS search was pruned and
the merge dropped (an earlier run, load 2–5): 0.99 s warm, 1.24 s cold, scipy loop 3.09 s.

Run: .venv/bin/python tests/bench/bench_drift.py [--rows 200000] [--rounds 3] [--repeats 3]
     [--evidently-python .bench-venv/bin/python] [--evidently-repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
N_NUMERIC, N_CATEGORICAL = 40, 10
DRIFTED = ["num_00 (mean +0.1 sd)", "num_01 (scale ×1.3)", "num_02 (tail)", "num_03 (missing 2% -> 10%)",
           "cat_00 (shares)", "cat_01 (new category)"]


def make_data(rows: int, seed: int = 7):
    """Reference and current tables as dicts of arrays; drift in num_00..03 and cat_00..01."""
    rng = np.random.default_rng(seed)

    def numeric(n, drift: bool):
        cols = {}
        for j in range(N_NUMERIC):
            kind = j % 4
            if kind == 0:
                x = rng.normal(10, 2, n)
            elif kind == 1:
                x = rng.lognormal(0, 0.6, n)
            elif kind == 2:
                x = np.round(rng.normal(50, 10, n))  # ties
            else:
                x = rng.uniform(0, 1, n)
            if drift and j == 0:
                x = x + 0.1 * 2
            if drift and j == 1:
                x = x * 1.3
            if drift and j == 2:
                x = x + rng.exponential(2, n) * (rng.random(n) < 0.2)
            missing = 0.02 if j in (3, 7) else 0.0
            if drift and j == 3:
                missing = 0.10
            if missing:
                x[rng.random(n) < missing] = np.nan
            cols[f"num_{j:02d}"] = x
        return cols

    def categorical(n, drift: bool):
        cols = {}
        for j in range(N_CATEGORICAL):
            k = 5 + 3 * j
            p = 1.0 / np.arange(1, k + 1) ** 1.1
            labels = np.array([f"c{j}_{i}" for i in range(k)], dtype=object)
            if drift and j == 0:
                p = p[::-1].copy()
            if drift and j == 1:
                labels = np.concatenate([labels, np.array([f"c{j}_new"], dtype=object)])
                p = np.concatenate([p, [p.sum() * 0.08]])
            p = p / p.sum()
            cols[f"cat_{j:02d}"] = labels[rng.choice(len(labels), size=n, p=p)]
        return cols

    reference = {**numeric(rows, False), **categorical(rows, False)}
    current = {**numeric(rows, True), **categorical(rows, True)}
    return reference, current


def save(path: Path, reference, current) -> None:
    arrays = {}
    for side, data in (("ref", reference), ("cur", current)):
        for name, values in data.items():
            arrays[f"{side}__{name}"] = values.astype(str) if values.dtype == object else values
    np.savez(path, **arrays)


def load(path: Path):
    blob = np.load(path)
    reference, current = {}, {}
    for key in blob.files:
        side, name = key.split("__", 1)
        values = blob[key]
        if values.dtype.kind == "U":
            values = values.astype(object)
        (reference if side == "ref" else current)[name] = values
    return reference, current


# -- peak memory of this process, above what the loaded data already holds ------------------------


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak() -> int:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS
    except OSError:
        pass
    return _status("VmRSS")


# -- workers ---------------------------------------------------------------------------------------


def worker_mrc(path: Path, repeats: int, mode: str, threads: int) -> dict:
    sys.path.insert(0, str(REPO))
    from console.evaluate.drift import drift_report, profile

    reference, current = load(path)
    drift_report(profile({k: v[:2000] for k, v in reference.items()}), {k: v[:2000] for k, v in current.items()})  # warm imports
    times = []
    cached = profile(reference, threads=threads) if mode == "warm" else None
    base = reset_peak()
    report = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        if mode == "warm":
            report = drift_report(cached, current, threads=threads)
        else:
            report = drift_report(reference, current, threads=threads)
        times.append(time.perf_counter() - t0)
    peak = _status("VmHWM") - base
    feats = {f.name: f for f in report.features}
    return {"times": times, "peak_bytes": peak,
            "ks": {n: f.extra.get("ks") for n, f in feats.items() if f.kind == "numeric"},
            "chi2": {n: f.statistic for n, f in feats.items() if f.kind == "categorical"},
            "psi": {n: f.extra.get("psi") for n, f in feats.items()},
            "severity": {n: f.severity for n, f in feats.items()}}


def worker_scipy(path: Path, repeats: int) -> dict:
    import pandas as pd
    from scipy import stats

    reference, current = load(path)
    base = reset_peak()
    times = []
    out = {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = {"ks": {}, "ks_p": {}, "chi2": {}, "psi": {}}
        for name in reference:  # the per-column loop
            ref, cur = reference[name], current[name]
            if ref.dtype.kind == "f":
                x, y = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
                res = stats.ks_2samp(x, y)
                edges = np.unique(np.quantile(x, np.linspace(0, 1, 11)))
                rc, _ = np.histogram(x, edges)
                cc, _ = np.histogram(y, edges)
                out["ks"][name], out["ks_p"][name] = float(res.statistic), float(res.pvalue)
            else:
                codes, labels = pd.factorize(np.concatenate([ref, cur]))
                rc = np.bincount(codes[: len(ref)], minlength=len(labels))
                cc = np.bincount(codes[len(ref):], minlength=len(labels))
                table = np.vstack([rc, cc])
                out["chi2"][name] = float(stats.chi2_contingency(table[:, table.sum(axis=0) > 0])[0])
            p = np.clip(rc / rc.sum(), 1e-4, None)
            q = np.clip(cc / cc.sum(), 1e-4, None)
            out["psi"][name] = float(np.sum((q - p) * np.log(q / p)))
        times.append(time.perf_counter() - t0)
    return {"times": times, "peak_bytes": _status("VmHWM") - base, **out}


def worker_evidently(path: Path, repeats: int) -> dict:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference, current = load(path)
    numeric = [n for n, v in reference.items() if v.dtype.kind == "f"]
    categorical = [n for n in reference if n not in numeric]
    ref_df, cur_df = pd.DataFrame(reference), pd.DataFrame(current)
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    base = reset_peak()
    times = []
    drifted = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ref_ds = Dataset.from_pandas(ref_df, data_definition=definition)
        cur_ds = Dataset.from_pandas(cur_df, data_definition=definition)
        snapshot = Report([DataDriftPreset()]).run(cur_ds, ref_ds)
        result = snapshot.dict()
        times.append(time.perf_counter() - t0)
    try:
        for metric in result.get("metrics", []):
            name = str(metric.get("metric_id", ""))
            value = metric.get("value")
            if "ValueDrift" in name and isinstance(value, (int, float)):
                drifted.append([name, value])
    except Exception:  # the shape of Evidently's output is not what we time
        pass
    import evidently

    return {"times": times, "peak_bytes": _status("VmHWM") - base, "version": evidently.__version__,
            "pandas": pd.__version__, "values": drifted}


def run_worker(python: str, path: Path, *args: str, timeout: float = 1800) -> dict:
    proc = subprocess.run([python, __file__, "--worker", *args, "--data", str(path)], capture_output=True, text=True,
                          timeout=timeout, cwd=str(REPO), env={**os.environ, "PYTHONPATH": str(REPO)})
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of fresh worker processes, methods interleaved (the machine's load drifts)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per mrc worker and round")
    ap.add_argument("--scipy-repeats", type=int, default=1, help="timed runs per scipy worker and round")
    # Evidently's own venv (it needs pandas<3): MRC_BENCH_VENV, else .bench-venv/ at the repo root,
    # where tests/bench/setup_evidently.sh puts it by default.
    bench_venv = Path(os.environ.get("MRC_BENCH_VENV") or Path(__file__).resolve().parents[2] / ".bench-venv")
    ap.add_argument("--evidently-python", default=str(bench_venv / "bin" / "python"))
    ap.add_argument("--evidently-repeats", type=int, default=1)
    ap.add_argument("--worker")
    ap.add_argument("--data")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.worker:
        path = Path(args.data)
        if args.worker == "scipy":
            result = worker_scipy(path, args.repeats)
        elif args.worker == "evidently":
            result = worker_evidently(path, args.repeats)
        else:
            result = worker_mrc(path, args.repeats, args.worker, args.threads)
        print(json.dumps(result))
        return 0

    print(f"data: {args.rows:,} rows × {N_NUMERIC + N_CATEGORICAL} columns ({N_NUMERIC} numeric, {N_CATEGORICAL} "
          f"categorical), reference and current; drift injected in: {', '.join(DRIFTED)}")
    load_before = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load_before[0]:.1f} / {load_before[1]:.1f} / "
          f"{load_before[2]:.1f} (1/5/15 min) at start; medians of {args.rounds} rounds × {args.repeats} runs "
          f"(scipy {args.rounds} × {args.scipy_repeats}, Evidently {args.evidently_repeats}); each method in its own "
          f"process per round, the methods interleaved round by round")
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        path = Path(tmp) / "data.npz"
        reference, current = make_data(args.rows)
        save(path, reference, current)
        del reference, current
        results: dict[str, dict] = {}

        def collect(label: str, res: dict) -> None:  # times pooled over rounds, peak memory the worst round
            if label in results:
                res = {**res, "times": results[label]["times"] + res["times"],
                       "peak_bytes": max(results[label]["peak_bytes"], res["peak_bytes"])}
            results[label] = res

        for _ in range(args.rounds):
            for label, worker, threads in (("mrc warm, 2 threads (profile cached)", "warm", 2),
                                           ("mrc warm, 1 thread", "warm", 1),
                                           ("mrc cold, 2 threads", "cold", 2),
                                           ("mrc cold, 1 thread", "cold", 1)):
                collect(label, run_worker(sys.executable, path, worker, "--repeats", str(args.repeats),
                                          "--threads", str(threads)))
            collect("scipy loop", run_worker(sys.executable, path, "scipy", "--repeats", str(args.scipy_repeats)))
        evidently_python = args.evidently_python
        if evidently_python and Path(evidently_python).exists():
            results["Evidently DataDriftPreset"] = run_worker(evidently_python, path, "evidently", "--repeats",
                                                              str(args.evidently_repeats))
        else:
            print(f"(Evidently skipped: {evidently_python} missing; run tests/bench/setup_evidently.sh)")
    medians = {k: statistics.median(v["times"]) for k, v in results.items()}
    scipy_t = medians["scipy loop"]
    evid_t = medians.get("Evidently DataDriftPreset")
    load_after = os.getloadavg()
    print(f"\nload average at the end {load_after[0]:.1f} / {load_after[1]:.1f} / {load_after[2]:.1f}")
    print(f"\n{'method':42s} {'median s':>9s} {'min s':>7s} {'vs scipy':>9s} {'vs Evidently':>13s} {'peak MB':>8s}")
    for label, res in results.items():
        med = medians[label]
        print(f"{label:42s} {med:9.3f} {min(res['times']):7.3f} {scipy_t / med:8.1f}× "
              f"{(f'{evid_t / med:12.0f}×') if evid_t else '           -'} {res['peak_bytes'] / 2**20:8.0f}")
    if "Evidently DataDriftPreset" in results:
        r = results["Evidently DataDriftPreset"]
        print(f"(Evidently {r['version']} on pandas {r['pandas']})")

    ours, ref = results["mrc warm, 2 threads (profile cached)"], results["scipy loop"]
    ks_diff = max(abs(ours["ks"][n] - ref["ks"][n]) for n in ref["ks"])
    chi_diff = max(abs(ours["chi2"][n] - ref["chi2"][n]) / max(abs(ref["chi2"][n]), 1e-12) for n in ref["chi2"])
    print(f"\nsame statistics: max |KS − scipy ks_2samp| = {ks_diff:.3g}; max relative |χ² − chi2_contingency| = {chi_diff:.3g}")
    flagged = sorted(n for n, s in ours["severity"].items() if s != "none")
    sev = ours["severity"]
    print("mrc flags: " + (", ".join(f"{n}={sev[n]}" for n in flagged) or "nothing"))
    warm, cold = medians["mrc warm, 2 threads (profile cached)"], medians["mrc cold, 2 threads"]
    print(f"targets: warm ≥ 5× scipy loop: {scipy_t / warm:.1f}× {'OK' if scipy_t / warm >= 5 else 'MISSED'}; "
          f"cold ≥ 2.5×: {scipy_t / cold:.1f}× {'OK' if scipy_t / cold >= 2.5 else 'MISSED'}"
          + (f"; ≥ 100× Evidently: {evid_t / warm:.0f}× warm, {evid_t / cold:.0f}× cold "
             f"{'OK' if evid_t / warm >= 100 else 'MISSED'}" if evid_t else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
