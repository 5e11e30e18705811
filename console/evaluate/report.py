"""Reports: one self-contained HTML page (plotly.js inlined, so it opens offline) and a markdown
summary for a pull-request comment (as CML posts one).

The HTML holds: the verdict and every gate check, metric differences candidate − production
with paired-bootstrap confidence intervals, drift per feature (PSI with its tiers), the
distributions of the most drifted features and of the scores overlaid, a slice table, lineage.
"""

from __future__ import annotations

import html
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from backends.base import BadInputError
from console.domain import DriftReport, GateReport
from console.evaluate import drift, gates, stats

DIFF_METRICS = ("auc_roc", "accuracy", "f1", "precision", "recall")
SEVERITY_COLOURS = {"none": "#4c9f70", "warning": "#e0a526", "critical": "#d1453b"}


@dataclass
class ReportBundle:
    model: str
    version: str
    evaluation: Any  # gates.VersionEvaluation
    drift: DriftReport | None
    candidate: Any  # ModelVersion
    baseline: Any | None
    metric_diffs: list[dict[str, Any]] = field(default_factory=list)
    slices: list[dict[str, Any]] = field(default_factory=list)
    slice_column: str = ""
    drift_note: str = ""  # why there is no drift section, in one line


def check_output_path(path: str | os.PathLike) -> Path:
    """The path of a file to write, refused (one line) when it is a folder or its folder is missing:
    called before the work, so a refusal costs nothing and prints nothing else."""
    p = Path(path)
    if not p.name or p.is_dir():
        raise BadInputError(f"{p}: is a folder; give a file name")
    if not p.parent.is_dir():
        raise BadInputError(f"{p}: folder {p.parent} does not exist")
    return p


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write through a temporary file in the target's own folder, then replace: a reader never sees
    half a file, and a refusal leaves nothing behind anywhere."""
    import tempfile

    p = check_output_path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    except OSError as exc:
        raise BadInputError(f"{p}: cannot write ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, p)
    except BaseException as exc:
        os.unlink(tmp)
        if isinstance(exc, OSError):
            raise BadInputError(f"{p}: cannot write ({exc.strerror or exc})") from None
        raise


def collect(ws, model: str, version: str, policy_path: str | None = None,
            progress: Callable[[str, float], None] | None = None) -> ReportBundle:
    say = progress or (lambda message, fraction=None: None)
    evaluation = gates.evaluate_version_full(ws, model, version, policy_path)
    registry = ws.registry()
    candidate = registry.get_version(model, version)
    gate = evaluation.report
    baseline = registry.get_version(model, gate.baseline) if gate.baseline else None
    say("drift of the training data", 0.5)
    drift_report = None
    drift_note = ""
    try:
        drift_report = drift.version_drift(ws, model, version, record=False)
    except BadInputError as exc:
        drift_note = str(exc)
    bundle = ReportBundle(model, version, evaluation, drift_report, candidate, baseline, drift_note=drift_note)
    say("confidence intervals", 0.7)
    if evaluation.task != "binary" and evaluation.has_data:  # the task's metrics; its paired tests are checks
        from console.evaluate import task_plots

        bundle.metric_diffs = task_plots.metric_rows(evaluation)
        return bundle
    if not evaluation.has_data:  # no test set: the recorded metrics, side by side, no intervals
        cand, base = evaluation.candidate_metrics, evaluation.baseline_metrics or {}
        for metric in sorted(set(cand) | set(base)):
            c, b = cand.get(metric), base.get(metric)
            bundle.metric_diffs.append({"metric": metric, "candidate": c, "baseline": b,
                                        "delta": c - b if c is not None and b is not None else None,
                                        "ci_low": None, "ci_high": None})
        return bundle
    if evaluation.baseline_scores is not None:
        for metric in DIFF_METRICS:
            boot = stats.paired_bootstrap(metric, evaluation.test_y, evaluation.candidate_scores,
                                          evaluation.baseline_scores, n_boot=1000, seed=0)
            bundle.metric_diffs.append({"metric": metric, **boot})
    else:
        for metric in DIFF_METRICS:
            value = stats.metric_value(metric, evaluation.test_y, evaluation.candidate_scores)
            bundle.metric_diffs.append({"metric": metric, "candidate": value, "baseline": None, "delta": None,
                                        "ci_low": None, "ci_high": None})
    _slice_table(bundle)
    return bundle


def _slice_table(bundle: ReportBundle) -> None:
    """Accuracy per quartile of the most drifted numeric feature (else the first feature)."""
    ev = bundle.evaluation
    if not ev.features:
        return
    column = ev.features[0]
    if bundle.drift:
        numeric = [f for f in bundle.drift.features if f.kind == "numeric" and f.name in ev.features]
        if numeric:
            column = max(numeric, key=lambda f: f.extra.get("psi") or 0).name
    codes, names = gates._groups(ev.test_rows[:, ev.features.index(column)], 4)
    bundle.slice_column = column
    for g, name in enumerate(names):
        rows = codes == g
        if not rows.any():
            continue
        entry = {"slice": name, "rows": int(rows.sum()),
                 "candidate": stats.metric_value("accuracy", ev.test_y[rows], ev.candidate_scores[rows])}
        entry["baseline"] = (stats.metric_value("accuracy", ev.test_y[rows], ev.baseline_scores[rows])
                             if ev.baseline_scores is not None else None)
        bundle.slices.append(entry)


# -- figures ------------------------------------------------------------------------------------


def _fig_metric_diffs(bundle: ReportBundle):
    import plotly.graph_objects as go  # plotly: ~0.05 s

    diffs = [d for d in bundle.metric_diffs if d.get("delta") is not None and _finite(d["delta"])
             and _finite(d.get("ci_low")) and _finite(d.get("ci_high"))]
    fig = go.Figure()
    if not diffs and (not bundle.evaluation.has_data or bundle.evaluation.task != "binary"):
        return None  # recorded metrics only: the table says it, there is no interval to draw
    if diffs:
        fig.add_trace(go.Scatter(
            x=[d["delta"] for d in diffs], y=[d["metric"] for d in diffs], mode="markers",
            marker={"size": 11, "color": ["#4c9f70" if d["ci_low"] > 0 else "#d1453b" if d["ci_high"] < 0 else "#5477c4"
                                          for d in diffs]},
            error_x={"type": "data", "symmetric": False, "array": [d["ci_high"] - d["delta"] for d in diffs],
                     "arrayminus": [d["delta"] - d["ci_low"] for d in diffs]},
            hovertemplate="%{y}: Δ %{x:.4f}<extra></extra>", name="candidate − production"))
        fig.add_vline(x=0, line_dash="dash", line_color="#888")
    fig.update_layout(title=f"Metric differences, candidate {bundle.version} − production "
                            f"{bundle.evaluation.report.baseline or '(none)'} (95% paired-bootstrap CI, test set)",
                      xaxis_title="difference", height=340, margin={"l": 90, "r": 20, "t": 60, "b": 40})
    return fig


def _fig_drift(drift: DriftReport):
    import plotly.graph_objects as go  # plotly: ~0.05 s

    feats = drift.features
    fig = go.Figure(go.Bar(
        x=[f.name for f in feats], y=[f.extra.get("psi") or 0 for f in feats],
        marker_color=[SEVERITY_COLOURS.get(f.severity, "#888") for f in feats],
        customdata=[[f.method, f.severity, f.p_value if f.p_value is not None else float("nan")] for f in feats],
        hovertemplate="%{x}<br>PSI %{y:.4f}<br>method %{customdata[0]}, p %{customdata[2]:.3g}<br>%{customdata[1]}<extra></extra>"))
    fig.add_hline(y=0.1, line_dash="dot", line_color=SEVERITY_COLOURS["warning"], annotation_text="warning 0.1",
                  annotation_position="top left")
    fig.add_hline(y=0.25, line_dash="dot", line_color=SEVERITY_COLOURS["critical"], annotation_text="critical 0.25",
                  annotation_position="top right")
    fig.update_layout(title=f"Drift per feature (PSI; severity needs significance after BH) — {drift.severity}",
                      yaxis_title="PSI", height=380, margin={"l": 60, "r": 20, "t": 60, "b": 120})
    return fig


def _fig_overlays(drift: DriftReport, limit: int = 4):
    import plotly.graph_objects as go  # plotly: ~0.05 s
    from plotly.subplots import make_subplots

    numeric = [f for f in drift.features if f.kind == "numeric" and f.extra.get("reference_bins")]
    top = sorted(numeric, key=lambda f: -(f.extra.get("psi") or 0))[:limit]
    if not top:
        return None
    fig = make_subplots(rows=1, cols=len(top), subplot_titles=[f"{f.name} ({f.severity})" for f in top])
    for i, f in enumerate(top, start=1):
        edges = f.extra["edges"]
        labels = [f"≤{edges[0]:.3g}" if edges and edges[0] is not None else "bin 1"]
        labels += [f"({a:.3g}, {b:.3g}]" for a, b in zip(edges, edges[1:]) if a is not None and b is not None]
        labels += [f">{edges[-1]:.3g}" if edges and edges[-1] is not None else "last", "missing"]
        ref, cur = np.asarray(f.extra["reference_bins"], float), np.asarray(f.extra["current_bins"], float)
        ref, cur = ref / max(ref.sum(), 1), cur / max(cur.sum(), 1)
        labels = labels[:len(ref)]
        fig.add_trace(go.Bar(x=labels, y=ref, name="reference", marker_color="#5477c4", showlegend=i == 1, opacity=0.75), 1, i)
        fig.add_trace(go.Bar(x=labels, y=cur, name="current", marker_color="#e0703a", showlegend=i == 1, opacity=0.75), 1, i)
    fig.update_layout(title="Distributions of the most drifted features (share per reference-decile bin)",
                      barmode="group", height=380, margin={"l": 50, "r": 20, "t": 80, "b": 100})
    return fig


def _fig_scores(bundle: ReportBundle):
    import plotly.graph_objects as go  # plotly: ~0.05 s

    ev = bundle.evaluation
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=ev.candidate_scores, name=f"candidate {bundle.version}", opacity=0.6,
                               xbins={"start": 0, "end": 1, "size": 0.05}, marker_color="#e0703a"))
    if ev.baseline_scores is not None:
        fig.add_trace(go.Histogram(x=ev.baseline_scores, name=f"production {ev.report.baseline}", opacity=0.6,
                                   xbins={"start": 0, "end": 1, "size": 0.05}, marker_color="#5477c4"))
    fig.update_layout(title="Score distributions on the test set", barmode="overlay", xaxis_title="score",
                      height=320, margin={"l": 50, "r": 20, "t": 60, "b": 40})
    return fig


# -- rendering ---------------------------------------------------------------------------------


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _f(x, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return "NaN" if math.isnan(x) else f"{x:.{digits}g}"
    return html.escape(str(x))


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#1d2330;background:#fafbfc}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #dde;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #dde;padding:4px 8px;text-align:left}
th{background:#eef1f6}.pass{color:#2e7d4f;font-weight:600}.fail{color:#c0392b;font-weight:600}
.notrun{color:#8a6d1a;font-style:italic}.verdict{display:inline-block;padding:4px 12px;border-radius:4px;color:#fff}.ok{background:#2e7d4f}.bad{background:#c0392b}
.figure{background:#fff;border:1px solid #e3e6ee;margin:12px 0;padding:4px}
"""


def _verdict_word(check) -> tuple[str, str]:
    if check.status == "not_run":
        return "notrun", "not run"
    return ("pass", "pass") if check.passed else ("fail", "FAIL")


def _count_line(gate: GateReport) -> str:
    ran = len(gate.checks) - len(gate.not_run)
    text = f"{ran - len(gate.failed_checks)} of {ran} checks pass"
    if gate.not_run:
        text += f", {len(gate.not_run)} not run ({gate.not_run[0].detail.removeprefix('not run: ')})"
    return text


def _checks_table(report: GateReport) -> str:
    rows = "".join(
        f"<tr><td class='{_verdict_word(c)[0]}'>{_verdict_word(c)[1]}</td><td>{html.escape(c.name)}</td>"
        f"<td>{html.escape(c.kind)}</td><td>{_f(c.value)}</td><td>{_f(c.threshold)}</td><td>{_f(c.baseline_value)}</td>"
        f"<td>{html.escape(c.detail)}</td></tr>" for c in report.checks)
    return ("<table><tr><th></th><th>check</th><th>kind</th><th>value</th><th>threshold</th><th>baseline</th>"
            f"<th>why</th></tr>{rows}</table>")


def _figures_html(figures) -> str:
    parts = []
    first = True
    for fig in figures:
        if fig is None:
            continue
        # plotly.js travels once, inlined in the first figure: the page renders offline
        parts.append("<div class='figure'>" + fig.to_html(full_html=False, include_plotlyjs=True if first else False,
                                                          config={"displaylogo": False}) + "</div>")
        first = False
    return "\n".join(parts)


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{body}</body></html>\n")


def render_html(bundle: ReportBundle) -> str:
    gate = bundle.evaluation.report
    verdict = f"<span class='verdict {'ok' if gate.passed else 'bad'}'>{'PASSED' if gate.passed else 'FAILED'}</span>"
    body = [f"<h1>{html.escape(bundle.model)} version {html.escape(bundle.version)} vs production "
            f"{html.escape(gate.baseline or '(none)')} {verdict}</h1>",
            f"<p>{html.escape(_count_line(gate))} · policy sha256 "
            f"<code>{gate.policy_sha256[:16]}</code></p>",
            "<h2>Gate checks</h2>", _checks_table(gate),
            "<h2>Metric differences</h2>"]
    figures = [_fig_metric_diffs(bundle)]
    # the first figure inlines plotly.js: with no interval figure, the drift figures carry it
    inline = _figures_html if figures[0] is not None else (lambda figs: "")
    body.append(inline(figures))
    if not bundle.evaluation.has_data:
        body.append("<p>No test set: the recorded metrics of both versions (no intervals).</p>" + _recorded_table(bundle))
    if bundle.drift:
        body.append(f"<h2>Drift of the training data ({html.escape(bundle.drift.current)} vs "
                    f"{html.escape(bundle.drift.reference)})</h2>")
        draw = _figures_html_noinline if figures[0] is not None else _figures_html
        body.append(draw([_fig_drift(bundle.drift), _fig_overlays(bundle.drift)]))
    elif bundle.drift_note:
        body.append(f"<h2>Drift of the training data</h2><p>not computed: {html.escape(bundle.drift_note)}</p>")
    if bundle.evaluation.has_data and bundle.evaluation.task != "binary":
        from console.evaluate import task_plots

        body.append(("<h2>Residuals</h2>" if bundle.evaluation.task == "regression" else
                     "<h2>Confusion matrix and recall per class</h2>")
                    + _recorded_table(bundle)
                    + (_figures_html_noinline if figures[0] is not None or bundle.drift else _figures_html)(
                        task_plots.figures(bundle.evaluation, bundle.version)))
    elif bundle.evaluation.has_data:
        body.append("<h2>Scores</h2>" + _figures_html_noinline([_fig_scores(bundle)]))
    if bundle.slices:
        body.append(f"<h2>Slices (accuracy by quartile of {html.escape(bundle.slice_column)})</h2>")
        body.append("<table><tr><th>slice</th><th>rows</th><th>candidate</th><th>production</th><th>Δ</th></tr>" + "".join(
            f"<tr><td>{html.escape(s['slice'])}</td><td>{s['rows']}</td><td>{_f(s['candidate'])}</td><td>{_f(s['baseline'])}</td>"
            f"<td>{_f(s['candidate'] - s['baseline']) if s['baseline'] is not None else '–'}</td></tr>" for s in bundle.slices)
            + "</table>")
    body.append("<h2>Lineage</h2>" + _lineage_table(bundle))
    return _page(f"mrc report {bundle.model} {bundle.version}", "\n".join(body))


def _recorded_table(bundle: ReportBundle) -> str:
    return ("<table><tr><th>metric</th><th>candidate</th><th>production</th><th>Δ</th></tr>" + "".join(
        f"<tr><td>{html.escape(d['metric'])}</td><td>{_f(d['candidate'])}</td><td>{_f(d['baseline'])}</td>"
        f"<td>{_f(d['delta'])}</td></tr>" for d in bundle.metric_diffs) + "</table>")


def _figures_html_noinline(figures) -> str:
    return "\n".join("<div class='figure'>" + f.to_html(full_html=False, include_plotlyjs=False,
                                                        config={"displaylogo": False}) + "</div>"
                     for f in figures if f is not None)


def _lineage_rows(bundle: ReportBundle) -> list[tuple[str, str, str]]:
    c, b = bundle.candidate.lineage, bundle.baseline.lineage if bundle.baseline else None

    def g(lin, attr):
        return "" if lin is None else str(getattr(lin, attr) or "")

    return [(label, g(c, attr), g(b, attr)) for label, attr in (
        ("data version", "data_version"), ("data sha256", "data_sha256"), ("code commit", "code_commit"),
        ("training run", "training_run"), ("parent version", "parent_version"))] + [
        ("params", str(c.params), str(b.params) if b else ""),
        ("artifact sha256", bundle.candidate.artifact.sha256, bundle.baseline.artifact.sha256 if bundle.baseline else "")]


def _lineage_table(bundle: ReportBundle) -> str:
    return ("<table><tr><th></th><th>candidate</th><th>production</th></tr>" + "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td><td>{html.escape(w)}</td></tr>"
        for k, v, w in _lineage_rows(bundle)) + "</table>")


def drift_html(report: DriftReport) -> str:
    title = f"Drift: {report.current or 'current'} vs {report.reference or 'reference'} — {report.severity}"
    rows = "".join(f"<tr><td>{html.escape(f.name)}</td><td>{f.kind}</td><td>{f.method}</td><td>{_f(f.statistic)}</td>"
                   f"<td>{_f(f.p_value)}</td><td>{_f(f.extra.get('psi'))}</td>"
                   f"<td style='color:{SEVERITY_COLOURS.get(f.severity)}'>{f.severity}</td></tr>" for f in report.features)
    body = (f"<h1>{html.escape(title)}</h1><p>drift share {report.drift_share:.0%} · dataset drift "
            f"{'yes' if report.dataset_drift else 'no'} · {report.reference_rows} reference rows · "
            f"{report.current_rows} current rows</p>"
            + _figures_html([_fig_drift(report), _fig_overlays(report)])
            + "<h2>Features</h2><table><tr><th>column</th><th>kind</th><th>method</th><th>statistic</th><th>p</th>"
              f"<th>PSI</th><th>severity</th></tr>{rows}</table>")
    return _page(title, body)


def render_markdown(bundle: ReportBundle) -> str:
    gate = bundle.evaluation.report
    icon = "✅" if gate.passed else "❌"
    out = [f"## {icon} `{bundle.model}` version {bundle.version} vs production {gate.baseline or '(none)'}: "
           f"gates {'passed' if gate.passed else 'FAILED'}", "",
           f"{_count_line(gate)} · policy `{gate.policy_sha256[:12]}`", ""]
    if gate.failed_checks:
        out += ["### Failed checks", "", "| check | value | threshold | baseline | why |", "|---|---|---|---|---|"]
        out += [f"| `{c.name}` | {_md(c.value)} | {_md(c.threshold)} | {_md(c.baseline_value)} | {_md_text(c.detail)} |"
                for c in gate.failed_checks]
        out.append("")
    if gate.not_run:
        out += ["### Checks not run", ""] + [f"- `{c.name}`: {_md_text(c.detail)}" for c in gate.not_run] + [""]
    heading = (f"### Metrics ({bundle.evaluation.task}, test set, candidate − production; paired tests in the checks)"
               if bundle.evaluation.has_data and bundle.evaluation.task != "binary" else
               "### Metrics (test set, candidate − production, 95% paired-bootstrap CI)"
               if bundle.evaluation.has_data else "### Metrics (recorded, candidate − production; no test set)")
    out += [heading, "",
            "| metric | candidate | production | Δ | CI |", "|---|---|---|---|---|"]
    for d in bundle.metric_diffs:
        ci = f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]" if d.get("ci_low") is not None and _finite(d["ci_low"]) else "–"
        delta = f"{d['delta']:+.4f}" if d.get("delta") is not None and _finite(d["delta"]) else "–"
        out.append(f"| {d['metric']} | {_md(d['candidate'])} | {_md(d.get('baseline'))} | {delta} | {ci} |")
    out.append("")
    if bundle.drift:
        drifted = [f for f in bundle.drift.features if f.severity != "none"]
        out += [f"### Data drift: **{bundle.drift.severity}** ({len(drifted)}/{len(bundle.drift.features)} columns, "
                f"`{bundle.drift.current}` vs `{bundle.drift.reference}`)", ""]
        if drifted:
            out += ["| column | method | PSI | p (BH) | severity |", "|---|---|---|---|---|"]
            out += [f"| {f.name} | {f.method} | {_md(f.extra.get('psi'))} | {_md(f.extra.get('p_adjusted'))} | {f.severity} |"
                    for f in drifted]
            out.append("")
    elif bundle.drift_note:
        out += [f"### Data drift: not computed ({_md_text(bundle.drift_note)})", ""]
    out += ["<details><summary>All checks</summary>", "", "| | check | value | threshold | why |", "|---|---|---|---|---|"]
    out += [f"| {'➖' if c.status == 'not_run' else '✅' if c.passed else '❌'} | `{c.name}` | {_md(c.value)} | {_md(c.threshold)} | {_md_text(c.detail)} |"
            for c in gate.checks]
    out += ["", "</details>", "", "### Lineage", "", "| | candidate | production |", "|---|---|---|"]
    out += [f"| {k} | `{v}` | `{w}` |" if v or w else f"| {k} | | |" for k, v, w in _lineage_rows(bundle)]
    return "\n".join(out) + "\n"


def _md(x) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return "NaN" if math.isnan(x) else f"{x:.4g}"
    return str(x)


def _md_text(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
