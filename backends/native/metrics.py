"""Classification metrics in plain numpy: the trainer, the gates and the canary share them."""

from __future__ import annotations

import numpy as np


def auc_roc(y_true, scores) -> float:
    """Area under the ROC curve by the rank-sum (Mann–Whitney) identity, ties averaged."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=float)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size, dtype=float)
    sorted_s = s[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def confusion(y_true, y_pred) -> tuple[int, int, int, int]:
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(y_pred).astype(bool)
    tp = int(np.sum(y & p))
    fp = int(np.sum(~y & p))
    fn = int(np.sum(y & ~p))
    tn = int(np.sum(~y & ~p))
    return tp, fp, fn, tn


def precision_recall_f1(y_true, y_pred) -> tuple[float, float, float]:
    tp, fp, fn, _ = confusion(y_true, y_pred)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def log_loss(y_true, scores, eps: float = 1e-7) -> float:
    y = np.asarray(y_true, dtype=float)
    p = np.clip(np.asarray(scores, dtype=float), eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def classification_metrics(y_true, scores, threshold: float = 0.5, prefix: str = "") -> dict[str, float]:
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=float)
    pred = s >= threshold
    precision, recall, f1 = precision_recall_f1(y, pred)
    return {
        f"{prefix}auc_roc": auc_roc(y, s),
        f"{prefix}precision": precision,
        f"{prefix}recall": recall,
        f"{prefix}f1": f1,
        f"{prefix}accuracy": float(np.mean(pred == y.astype(bool))),
        f"{prefix}log_loss": log_loss(y, s),
    }


def percentile(values, q: float) -> float:
    arr = np.asarray(values, dtype=float)
    return float(np.percentile(arr, q)) if arr.size else float("nan")
