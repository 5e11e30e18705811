"""Task-shaped views of a version's evaluation: residuals for a regression, the confusion
matrix and per-class recall for a multi-class model. Plotly figures for `mrc report --html`,
and plain text blocks for the console's review screen (which never imports plotly)."""

from __future__ import annotations

from typing import Any

import numpy as np

REGRESSION_METRICS = ("rmse", "mae", "r2", "mape", "max_residual", "mean_residual")
MULTICLASS_METRICS = ("accuracy", "macro_f1", "weighted_f1", "balanced_accuracy", "min_class_recall", "log_loss")


def metric_rows(evaluation) -> list[dict[str, Any]]:
    """The task's metrics, candidate beside production (test set; no intervals: the paired
    tests are in the gate checks)."""
    cand, base = evaluation.candidate_metrics, evaluation.baseline_metrics or {}
    names = list(REGRESSION_METRICS if evaluation.task == "regression" else MULTICLASS_METRICS)
    if evaluation.task == "multiclass":
        names += sorted(k for k in cand if k.startswith("recall_class_"))
    rows = []
    for name in names:
        c, b = cand.get(name), base.get(name)
        if c is None:
            continue
        rows.append({"metric": name, "candidate": c, "baseline": b,
                     "delta": c - b if isinstance(b, (int, float)) else None, "ci_low": None, "ci_high": None})
    return rows


def _residuals(details: dict[str, Any], which: str) -> tuple[np.ndarray, np.ndarray] | None:
    pred = details.get(which)
    if pred is None:
        return None
    pred = np.asarray(pred, dtype=float)
    return pred, pred - np.asarray(details["y_true"], dtype=float)


def figures(evaluation, version: str) -> list[Any]:
    """Plotly figures for the report: residuals vs predicted (and by slice), or confusion matrices."""
    import plotly.graph_objects as go  # ~0.4 s: only when an HTML report is written

    d = evaluation.task_details
    out = []
    if evaluation.task == "regression":
        fig = go.Figure()
        for which, name in (("candidate", f"candidate {version}"), ("baseline", f"production {evaluation.report.baseline}")):
            got = _residuals(d, which)
            if got is not None:
                fig.add_trace(go.Scattergl(x=got[0], y=got[1], mode="markers", name=name, opacity=0.5,
                                           marker={"size": 4}))
        fig.add_hline(y=0, line_dash="dash", line_color="#888")
        fig.update_layout(title="Residuals (predicted − true) vs predicted, test set", xaxis_title="predicted",
                          yaxis_title="residual", height=380)
        out.append(fig)
        by_slice = d.get("residuals_by_slice")
        if by_slice:
            fig = go.Figure()
            for which in ("candidate", "baseline"):
                groups = by_slice.get(which)
                if groups:
                    fig.add_trace(go.Bar(x=list(groups), y=[g["mae"] for g in groups.values()], name=which))
            fig.update_layout(title=f"MAE by {by_slice['column']}", yaxis_title="MAE", barmode="group", height=340)
            out.append(fig)
    elif evaluation.task == "multiclass":
        classes = d.get("classes", [])
        for key, who in (("confusion_candidate", f"candidate {version}"),
                         ("confusion_baseline", f"production {evaluation.report.baseline}")):
            cm = d.get(key)
            if cm is None:
                continue
            fig = go.Figure(go.Heatmap(z=cm, x=classes, y=classes, colorscale="Blues", text=cm,
                                       texttemplate="%{text}", showscale=False))
            fig.update_layout(title=f"Confusion matrix, {who} (rows: true, columns: predicted)",
                              xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed", height=380)
            out.append(fig)
        cand, base = evaluation.candidate_metrics, evaluation.baseline_metrics or {}
        fig = go.Figure()
        fig.add_trace(go.Bar(x=classes, y=[cand.get(f"recall_class_{c}") for c in classes], name=f"candidate {version}"))
        if base:
            fig.add_trace(go.Bar(x=classes, y=[base.get(f"recall_class_{c}") for c in classes], name="production"))
        fig.update_layout(title="Recall per class", yaxis_title="recall", barmode="group", height=340)
        out.append(fig)
    return out


def text_blocks(evaluation) -> list[str]:
    """The same views as text, for the console: a confusion matrix table, or residual quantiles
    and MAE by slice."""
    d = evaluation.task_details
    if evaluation.task == "multiclass" and d.get("confusion_candidate") is not None:
        classes = [str(c) for c in d["classes"]]
        width = max(6, *(len(c) for c in classes))
        lines = ["confusion matrix, candidate (rows: true, columns: predicted)",
                 " " * width + " " + " ".join(c.rjust(width) for c in classes)]
        for c, row in zip(classes, d["confusion_candidate"]):
            lines.append(c.rjust(width) + " " + " ".join(str(v).rjust(width) for v in row))
        cand = evaluation.candidate_metrics
        base = evaluation.baseline_metrics or {}
        lines.append("recall per class: " + ", ".join(
            f"{c} {cand.get(f'recall_class_{c}', float('nan')):.3f}"
            + (f" (prod {base[f'recall_class_{c}']:.3f})" if f"recall_class_{c}" in base else "") for c in classes))
        return ["\n".join(lines)]
    if evaluation.task == "regression" and d.get("candidate") is not None:
        q = d.get("residual_quantiles") or []
        lines = ["residuals (predicted − true), candidate: "
                 + ", ".join(f"{name} {v:+.4g}" for name, v in zip(("min", "p5", "p25", "median", "p75", "p95", "max"), q))]
        by_slice = d.get("residuals_by_slice")
        if by_slice:
            base = by_slice.get("baseline") or {}
            lines.append(f"MAE by {by_slice['column']}: " + ", ".join(
                f"{g} {v['mae']:.4g}" + (f" (prod {base[g]['mae']:.4g})" if g in base else "")
                for g, v in by_slice["candidate"].items()))
        return ["\n".join(lines)]
    return []
