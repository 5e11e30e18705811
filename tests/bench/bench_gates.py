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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old-rows", type=int, default=2000)
    ap.add_argument("--rows", type=int, nargs="*", default=[8000, 50000])
    ap.add_argument("--n-boot", type=int, default=2000)
    a = ap.parse_args()
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


if __name__ == "__main__":
    main()
