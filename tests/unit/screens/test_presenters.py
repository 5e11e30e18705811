"""The pure presentation layer: labels, plots, filters, diffs, commands — no terminal needed."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from backends.base import Approval, Artifact, Lineage, ModelVersion
from screens import presenters as p
from console.domain import GateCheck


def version(v: str, auc: float, aliases=(), params=None, data="d@v1") -> ModelVersion:
    return ModelVersion("m", v, "2026-01-01T00:00:00Z", Artifact("file:///a", "ab" * 32, 10),
                        metrics={"auc_roc": auc, "log_loss": 0.2}, lineage=Lineage(data_version=data, params=params or {}),
                        aliases=list(aliases), approval=Approval("pending"))


def test_status_labels_say_words_not_only_colours():
    assert p.gate_label("failed")[0] == "✘ FAIL"
    assert p.gate_label(None)[0] == "· not run"
    assert p.approval_label("approved", override=True) == ("✔ approved (override)", "bold yellow")
    assert p.drift_label("critical")[0] == "✘ CRITICAL"
    assert p.canary_label("progressing", 25)[0] == "▶ 25%"


def test_production_looks_different_from_every_other_alias():
    styles = {p.alias_style([a]) for a in ("candidate", "canary", "archived")} | {p.alias_style([])}
    assert p.alias_style(["production"]) not in styles
    assert "reverse" in p.alias_style(["production", "archived"])


def test_sparkline_scales_and_gaps():
    assert p.sparkline([0, 0.5, 1]) == "▁▅█"
    assert p.sparkline([1, None, 1]) == "▅ ▅"
    assert p.sparkline([]) == ""


def test_bar_has_eighth_resolution_and_fixed_width():
    assert p.bar(1, 1, 4) == "████"
    assert p.bar(0.5, 1, 4) == "██  "
    assert p.bar(1 / 16, 1, 4) == "▎   "  # a quarter of one cell
    assert p.bar(None, 1, 3) == "   "


def test_overlay_uses_one_scale_for_both_distributions():
    ref, cur = p.overlay([10, 0, 0, 0], [0, 0, 0, 10])
    assert ref == "█▁▁▁" and cur == "▁▁▁█"


def test_filter_matches_every_word_case_insensitively():
    keys = ["breast-cancer 5 candidate pending", "breast-cancer 2 production approved", "churn 1 production"]
    assert p.filter_indices(keys, "PRODUCTION breast") == [1]
    assert p.filter_indices(keys, "") == [0, 1, 2]
    assert p.filter_indices(keys, "nothing") == []
    narrowed = p.filter_indices(keys, "production")
    assert p.filter_indices(keys, "production ch", within=narrowed) == [2]


def test_relative_time():
    now = datetime(2026, 1, 1, 1, 0, tzinfo=timezone.utc)
    assert p.relative_time("2026-01-01T00:55:00Z", now) == "5m ago"
    assert p.relative_time("2025-12-30T01:00:00Z", now) == "2d ago"
    assert p.relative_time("", now) == "—"


def test_diff_marks_changed_params_data_and_metrics():
    rows = p.diff_versions(version("1", 0.9, params={"hidden": 16}), version("2", 0.95, params={"hidden": 32}, data="d@v2"))
    changed = {(r.section, r.key) for r in rows if r.changed}
    assert ("params", "hidden") in changed and ("data", "version") in changed and ("metrics", "auc_roc") in changed
    assert ("metrics", "log_loss") not in changed


def test_metric_deltas_pick_up_intervals_from_gate_checks():
    check = GateCheck("relative:auc_roc", "relative", True, 0.95, -0.02, 0.9,
                      extra={"metric": "auc_roc", "ci": [0.01, 0.08]})
    deltas = {d.metric: d for d in p.metric_deltas({"auc_roc": 0.95}, {"auc_roc": 0.9}, [check])}
    assert deltas["auc_roc"].ci == (0.01, 0.08)
    assert deltas["auc_roc"].delta == pytest.approx(0.05)
    assert p.confidence_interval({"ci_low": -1, "ci_high": 2}) == (-1.0, 2.0)
    named = GateCheck("significance_auc_roc", "significance", True, extra={"ci": [-0.01, 0.02]})
    assert p.check_metric(named) == "auc_roc"
    assert p.metric_deltas({"auc_roc": 1.0}, {"auc_roc": 0.99}, [named])[0].ci == (-0.01, 0.02)
    assert p.confidence_interval({"nothing": 1}) is None


def test_interval_plot_marks_zero_and_the_point():
    plot = p.interval_plot(-0.01, 0.03, 0.01, 0.03, width=21)
    assert plot.index("●") > plot.index("┼") and "├" in plot and "┤" in plot


def test_delta_style_knows_lower_is_better():
    assert p.delta_style("log_loss", -0.1) == "green"
    assert p.delta_style("p99_latency_ms", 3.0) == "red"
    assert p.delta_style("auc_roc", 0.01) == "green"


def test_approval_statement_names_everything_approved():
    lines = p.approval_statement("m", "5", "ab" * 32, "cd" * 32, False, ["hard:auc_roc"])
    text = "\n".join(lines)
    assert "ab" * 32 in text and "cd" * 32 in text and "FAILED — hard:auc_roc" in text


def test_rollback_hint_names_the_target():
    assert p.rollback_hint("m", "5", "2") == "m: R rolls production 5 back to 2"
    assert "nothing earlier" in p.rollback_hint("m", "1", None)


def test_parse_command_and_params():
    assert p.parse_command(":review m 5") == p.Command("review", ["m", "5"])
    assert p.parse_command("hist m").name == "history"
    assert p.parse_command("au").name == "audit"
    with pytest.raises(ValueError):
        p.parse_command(":nope")
    assert p.parse_params("epochs=5 lr=0.1 opt=adam") == {"epochs": 5, "lr": 0.1, "opt": "adam"}
    with pytest.raises(ValueError):
        p.parse_params("epochs")


def test_drift_hist_reads_known_shapes():
    assert p.drift_hist({"reference_hist": [1, 2], "current_hist": [2, 1]}) == ([1.0, 2.0], [2.0, 1.0])
    assert p.drift_hist({"histogram": {"reference": [1], "current": [3]}}) == ([1.0], [3.0])
    assert p.drift_hist({}) is None
