"""Gate benchmark: the AUC paired bootstrap (2,000 resamples), rank-based vs the old pairwise table.

The old form built the n_pos × n_neg table of pairwise wins once and contracted it with every
resample's weights (O(B · n_pos · n_neg) time, O(n_pos · n_neg) memory: 8,000 rows took 99 s
and 384 MB in the review, 50,000 rows would need ≈ 5 GB). The new form sorts the scores once
and reads each resample's negatives-below counts from a cumulative sum (Mann–Whitney on ranks,
ties ½): O(n log n + B · n) time, O(block · n) memory.

Both run in the same process on the same data at a size the old one can handle (--old-rows),
then the new one alone at 8,000 and 50,000 rows. Peak memory is tracemalloc's peak of the
call (numpy reports its buffers to it), above what was allocated before. Both give the same
CI to rounding (the same resamples, the same AUC per resample).

Measured on the shared 2-core build machine, 2026-12-01 (other helpers' tests running, so
absolute times are noisy): 2,000 rows pairwise 11.0 s / 36.5 MB, ranks 1.25 s / 49.9 MB, the
same CI to the last bit; 8,000 rows ranks 5.0 s / 50 MB (pairwise: 99 s / 384 MB in the review);
50,000 rows ranks 37.8 s / 52 MB (the pairwise table alone would be 4.8 GB). The peak is the
resample block (≈ 1e6 weights at a time), the same at every size; about half the time is
numpy's multinomial draw of the resample weights, kept so results stay reproducible.

Run: .venv/bin/python tests/bench/bench_gates.py [--old-rows 2000] [--rows 8000 50000] [--n-boot 2000]

Per task (--tasks; --tasks-only skips the AUC part): on 50,000 rows of a regression and a
4-class model, mrc's task metrics (console/evaluate/regression.py, multiclass.py) beside
scikit-learn's own calls for the same figures on the same arrays (rmse, mse, mae, r2, mape,
max error, median absolute error; accuracy, macro/weighted F1, precision and recall, balanced
accuracy, per-class P/R/F1, confusion matrix, log loss), the median of 15 runs each; goal ≤ 1.5× sklearn. Then
the whole gate (evaluate_task_predictions: metrics, the seed's checks, 3 slices, the paired
test) for scale. Model inference is not in either figure.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from console.evaluate import stats  # noqa: E402


def old_weighted_auc(weights: np.ndarray, y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The pairwise form mrc used before (console/evaluate/stats.py at 2072360), kept here to compare."""
    pos, neg = scores[y], scores[~y]
    wins = (pos[:, None] > neg[None, :]).astype(float) + 0.5 * (pos[:, None] == neg[None, :])
    wp, wn = weights[:, y].astype(float), weights[:, ~y].astype(float)
    num = np.einsum("bi,ij,bj->b", wp, wins, wn)
    den = wp.sum(axis=1) * wn.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    # two decimals: ties, as real scores have
    cand = np.round(1 / (1 + np.exp(-(1.2 * y + rng.normal(0, 1, n)))), 2)
    base = np.round(1 / (1 + np.exp(-(1.1 * y + rng.normal(0, 1, n)))), 2)
    return y, cand, base


def measure(auc_impl, n: int, n_boot: int):
    y, cand, base = data(n)
    saved = stats._weighted_auc
    stats._weighted_auc = auc_impl
    try:
        tracemalloc.start()
        t0 = time.perf_counter()
        result = stats.paired_bootstrap("auc_roc", y, cand, base, n_boot=n_boot, seed=0)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        stats._weighted_auc = saved
    return seconds, peak / 1e6, result


def task_arrays(n: int, seed: int = 0, k: int = 4):
    rng = np.random.default_rng(seed)
    y = rng.normal(100, 20, n)
    reg = (y, y + rng.normal(0, 5, n), y + rng.normal(0, 5.5, n))
    c = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k)) + 1.5 * np.eye(k)[c]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    base = np.where(rng.random(n) < 0.8, proba.argmax(axis=1), rng.integers(0, k, n))
    return reg, (c, proba, base), rng.choice(["a", "b", "c"], n)


def median_of(fn, repeat: int = 15) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench_tasks(n: int) -> None:
    import warnings

    from sklearn import metrics as skm

    from console.evaluate import gates, multiclass, regression
    from console.evaluate.task_gates import TaskPredictions, evaluate_task_predictions

    warnings.filterwarnings("ignore")
    (y, pred, pred_b), (c, proba, base_c), region = task_arrays(n)
    k = proba.shape[1]

    def sk_regression():
        return (skm.root_mean_squared_error(y, pred), skm.mean_squared_error(y, pred), skm.mean_absolute_error(y, pred),
                skm.r2_score(y, pred), skm.mean_absolute_percentage_error(y, pred), skm.max_error(y, pred),
                skm.median_absolute_error(y, pred))

    labels = proba.argmax(axis=1)

    def sk_multiclass():
        out = [skm.accuracy_score(c, labels), skm.balanced_accuracy_score(c, labels), skm.confusion_matrix(c, labels),
               skm.log_loss(c, proba, labels=list(range(k)))]
        for avg in ("macro", "weighted", None):
            out += [skm.f1_score(c, labels, average=avg), skm.precision_score(c, labels, average=avg),
                    skm.recall_score(c, labels, average=avg)]
        return out

    def mrc_multiclass():
        enc = multiclass.encode(c, labels)
        return (multiclass.multiclass_metrics(enc.y, enc.predictions[0], enc.names, proba=proba),
                multiclass.confusion_matrix(enc.y, enc.predictions[0], len(enc.names)))

    policy_reg = gates.parse_policy({"metric_directions": {"rmse": "lower", "mae": "lower", "r2": "higher"},
                                     "hard_gates": {"r2": 0.5}, "relative_gates": {"rmse": 0.05, "mae": 0.05},
                                     "slices": {"column": "region", "metrics": ["mae"], "n_boot": 200},
                                     "significance": {"metrics": ["mae", "rmse"]}}, "bench")
    policy_mc = gates.parse_policy({"metric_directions": {"accuracy": "higher", "macro_f1": "higher"},
                                    "hard_gates": {"accuracy": 0.5}, "relative_gates": {"macro_f1": 0.03},
                                    "slices": {"column": "region", "n_boot": 200},
                                    "significance": {"n_boot": 200}}, "bench")
    cols = {"region": region}
    print(f"\nper-task metrics on {n:,} rows (median of 15 runs; model inference excluded)")
    print(f"{'task':>12} {'sklearn s':>10} {'mrc s':>8} {'ratio':>7}   whole gate s (slices, paired test)")
    for task, sk, mine, gate in (
            ("regression", sk_regression, lambda: regression.regression_metrics(y, pred),
             lambda: evaluate_task_predictions(policy_reg, TaskPredictions("regression", y, pred, pred_b, cols))),
            ("multiclass", sk_multiclass, mrc_multiclass,
             lambda: evaluate_task_predictions(policy_mc, TaskPredictions("multiclass", c, proba, base_c, cols,
                                                                          candidate_classes=list(range(k)))))):
        t_sk, t_mine = median_of(sk), median_of(mine)
        t_gate = median_of(gate, repeat=2)
        print(f"{task:>12} {t_sk:>10.4f} {t_mine:>8.4f} {t_mine / t_sk:>6.2f}×   {t_gate:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old-rows", type=int, default=2000)
    ap.add_argument("--rows", type=int, nargs="*", default=[8000, 50000])
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--tasks", type=int, nargs="?", const=50000, default=None, metavar="ROWS",
                    help="also time per-task metrics vs scikit-learn on ROWS rows (default 50,000)")
    ap.add_argument("--tasks-only", action="store_true", help="only the per-task part")
    a = ap.parse_args()
    if a.tasks_only:
        bench_tasks(a.tasks or 50000)
        return
    print(f"AUC paired bootstrap, {a.n_boot} resamples")
    print(f"{'rows':>8} {'method':>10} {'seconds':>9} {'peak MB':>9}  CI of Δ AUC")
    t_old, m_old, r_old = measure(old_weighted_auc, a.old_rows, a.n_boot)
    t_new, m_new, r_new = measure(stats._weighted_auc, a.old_rows, a.n_boot)
    for name, t, mem, r in (("pairwise", t_old, m_old, r_old), ("ranks", t_new, m_new, r_new)):
        print(f"{a.old_rows:>8} {name:>10} {t:>9.2f} {mem:>9.1f}  [{r['ci_low']:+.5f}, {r['ci_high']:+.5f}]")
    same = abs(r_old["ci_low"] - r_new["ci_low"]) + abs(r_old["ci_high"] - r_new["ci_high"])
    print(f"{'':>8} ranks/pairwise: {t_new / t_old:.3f}× time, {m_new / m_old:.3f}× memory; CI ends differ by {same:.1e}")
    for n in a.rows:
        t, mem, r = measure(stats._weighted_auc, n, a.n_boot)
        pairs_mb = (0.4 * n) * (0.6 * n) * 8 / 1e6
        print(f"{n:>8} {'ranks':>10} {t:>9.2f} {mem:>9.1f}  [{r['ci_low']:+.5f}, {r['ci_high']:+.5f}]"
              f"   (the pairwise table alone: {pairs_mb:,.0f} MB)")
    if a.tasks:
        bench_tasks(a.tasks)


if __name__ == "__main__":
    main()
