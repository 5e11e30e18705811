"""Candidate review: the gate report, metric differences against production with their
intervals, drift per feature with terminal plots, and the lineage as a tree. `a` approves,
`x` rejects — each through a dialog that confirms with a different key."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static, Tree

from backends.support.redact import escape_control
from console.release.actions import decide, report_digest
from console.release.policy import approver_problem, workspace_policy
from screens.after_write import deliver_alerts
from screens.base import ConsoleScreen
from screens.dialogs.approve import ApproveDialog
from screens.dialogs.reject import RejectDialog
from screens.loaders import evaluate_drift, evaluate_gates_with_views, load_review
from screens.messages import OpenCheckDetail, OpenHistory, OpenRetrainOnNewestData
from screens.presenters import (
    approval_label,
    bar,
    check_cells,
    delta_style,
    drift_hist,
    drift_label,
    fmt_delta,
    fmt_number,
    interval_plot,
    lineage_outline,
    metric_deltas,
    overlay,
    short_sha,
)

UNAVAILABLE = "gate engine unavailable in this build: no gate report (approval records no gate digest)"


class ReviewScreen(ConsoleScreen):
    BINDINGS = [
        Binding("a", "approve", "Approve", id="review.approve"),
        Binding("x", "reject", "Reject", id="review.reject"),
        Binding("h", "history", "History", id="review.history"),
        Binding("g", "rerun_gates", "Re-run gates", id="review.gates"),
        Binding("w", "retrain_newest", "Retrain on newest data", id="review.retrain"),  # only when drift is critical
        Binding("enter", "check_detail", "Check detail", show=False, id="review.check"),  # footer unchanged; ? lists it
        Binding("escape", "back", "Back", id="review.back"),
    ]

    class Loaded(Message):
        def __init__(self, data: Any, error: str = "") -> None:
            super().__init__()
            self.data = data
            self.error = error

    class GatesDone(Message):
        def __init__(self, report: Any, error: str = "", views: list[str] | None = None) -> None:
            super().__init__()
            self.report = report
            self.error = error
            self.views = views or []  # a regression's residuals, a classifier's confusion matrix (text)

    class DriftDone(Message):
        def __init__(self, report: Any, error: str = "") -> None:
            super().__init__()
            self.report = report
            self.error = error

    class Decided(Message):
        def __init__(self, text: str, ok: bool) -> None:
            super().__init__()
            self.text = text
            self.ok = ok

    def __init__(self, model: str, version: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.version = version
        self.title = f"review {model} {version or 'candidate'}"
        self.data: Any = None
        self.gate_report: Any = None
        self.gate_state = "running"  # running | done | unavailable | error
        self.gate_error = ""  # why the gates could not be evaluated (approval then needs an override)
        self.drift_report: Any = None
        self._deciding = False

    def selected_model(self) -> str:
        return self.model

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="review-body"):
            yield Static(f"loading {self.model}…", id="review-header")
            yield Static("gate report", classes="pane-title")
            yield Static("", id="gates-status")
            yield DataTable(id="gates", cursor_type="row")
            yield Static("", id="task-view")
            yield Static("metrics vs production (Δ with 95% interval when the gate engine gives one)",
                         classes="pane-title", id="deltas-title")
            yield DataTable(id="deltas", cursor_type="row")
            yield Static("drift per feature: training data of this version vs production's", classes="pane-title")
            yield Static("", id="drift-status")
            yield DataTable(id="drift", cursor_type="row")
            yield Static("lineage", classes="pane-title")
            yield Tree("lineage", id="lineage")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#gates", DataTable).add_columns("verdict", "check", "kind", "value", "threshold", "baseline",
                                                       "detail")
        self.query_one("#deltas", DataTable).add_columns("metric", "candidate", "production", "Δ", "95% interval",
                                                        "interval around 0")
        self.query_one("#drift", DataTable).add_columns("feature", "method", "statistic", "p-value", "severity",
                                                       "statistic bar", "reference ▕ current")
        self.query_one("#task-view", Static).display = False  # shown for regression / multi-class models
        for widget in ("#gates", "#deltas", "#drift", "#lineage"):
            self.query_one(widget).loading = True
        self._load()

    # -- workers --------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="review-load", exit_on_error=False)
    def _load(self) -> None:
        try:
            data = load_review(self.app.workspace, self.model, self.version)
        except Exception as exc:
            self.post_message(self.Loaded(None, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(self.Loaded(data))

    @work(thread=True, exclusive=True, group="review-gates", exit_on_error=False)
    def _gates(self, version: str) -> None:
        self.app.record_call(f"console.evaluate.gates.evaluate_version(ws, {self.model!r}, {version!r})")
        try:
            report, views = evaluate_gates_with_views(self.app.workspace, self.model, version)
        except Exception as exc:
            self.post_message(self.GatesDone(None, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(self.GatesDone(report, views=views))

    @work(thread=True, exclusive=True, group="review-drift", exit_on_error=False)
    def _drift(self, version: str) -> None:
        self.app.record_call(f"console.evaluate.drift.version_drift(ws, {self.model!r}, {version!r}, "
                             f"record={not self.app.read_only})")
        try:
            report = evaluate_drift(self.app.workspace, self.model, version, record=not self.app.read_only)
        except Exception as exc:
            self.post_message(self.DriftDone(None, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(self.DriftDone(report))

    # -- results --------------------------------------------------------------------------
    @on(Loaded)
    def _on_loaded(self, message: Loaded) -> None:
        header = self.query_one("#review-header", Static)
        if message.error:
            header.update(Text(f"⚠ {message.error}", style="bold red"))
            for widget in ("#gates", "#deltas", "#drift", "#lineage"):
                self.query_one(widget).loading = False
            return
        first = self.data is None
        self.data = message.data
        self.version = self.data.candidate.version
        self.title = f"review {self.model} {self.version}"
        self._render_header()
        self._render_deltas()
        self._render_lineage()
        if first:  # the last report seen in this session paints first; `g` re-runs the gates
            key = (self.model, self.version)
            if key in self.app.gate_reports:
                self.post_message(self.GatesDone(self.app.gate_reports[key]))
            else:
                self._gates(self.version)
            if key in self.app.drift_reports:
                self.post_message(self.DriftDone(self.app.drift_reports[key]))
            else:
                self._drift(self.version)

    def _render_header(self) -> None:
        cand, prod = self.data.candidate, self.data.production
        label, style = approval_label(cand.approval.status, cand.approval.override)
        text = Text()
        text.append(f"{self.model} ", style="bold")
        text.append(f"version {cand.version}", style="bold yellow")
        text.append(f"  [{', '.join(cand.aliases) or 'no alias'}]  ")
        text.append(label, style=style)
        if cand.approval.by:
            text.append(f" by {escape_control(cand.approval.by)}: {escape_control(cand.approval.reason)}", style="dim")
        text.append("\n")
        text.append("production ", style="dim")
        text.append(f" {prod.version} " if prod else " none ", style="bold reverse green")
        text.append(f"   artifact sha256 {short_sha(cand.artifact.sha256, 16)}   data {cand.lineage.data_version}",
                    style="dim")
        approvals = getattr(self.data, "approvals", None)
        if approvals is not None:  # [policy.production]: the two-person rule's standing
            text.append("\n")
            text.append(f"🔐 {escape_control(approvals.line())}", style="bold green" if approvals.met else "bold yellow")
        if self.app.read_only:
            text.append("\n🔒 READ-ONLY: approve and reject are disabled", style="bold yellow")
        self.query_one("#review-header", Static).update(text)

    def _render_deltas(self) -> None:
        table = self.query_one("#deltas", DataTable)
        table.loading = False
        table.clear()
        cand, prod = self.data.candidate, self.data.production
        checks = self.gate_report.checks if self.gate_report is not None else []
        gated_vs = getattr(self.gate_report, "baseline", None) if self.gate_report is not None else None
        title = "metrics vs production (Δ with 95% interval when the gate engine gives one)"
        if prod is not None and gated_vs and gated_vs != prod.version:
            # one baseline: the deltas are against production now, so the gates' intervals (against
            # the version production was when they ran) are not shown beside them
            checks = []
            title = (f"metrics vs production {prod.version} (the gates ran against {gated_vs} before production "
                     f"moved: their intervals are hidden; g re-runs them against {prod.version})")
        self.query_one("#deltas-title", Static).update(title)
        deltas = metric_deltas(cand.metrics, prod.metrics if prod else None, checks)
        # one axis for every interval, scaled to the intervals only (a latency delta in ms must not flatten them)
        span = max([abs(v) for d in deltas if d.ci for v in (*d.ci, d.delta or 0.0)] + [1e-9])
        for d in deltas:
            ci_text = f"[{d.ci[0]:+.4f}, {d.ci[1]:+.4f}]" if d.ci else "—"
            plot = interval_plot(d.ci[0], d.ci[1], d.delta, span) if d.ci else ""
            style = delta_style(d.metric, d.delta)
            table.add_row(d.metric, fmt_number(d.candidate), fmt_number(d.production),
                          Text(fmt_delta(d.delta), style=style), ci_text, plot)

    def _render_lineage(self) -> None:
        tree = self.query_one("#lineage", Tree)
        tree.loading = False
        tree.clear()
        cand = self.data.candidate
        tree.root.set_label(f"{self.model} version {cand.version}")
        for branch, leaves in lineage_outline(cand):
            node = tree.root.add(branch, expand=True)
            for leaf in leaves:
                node.add_leaf(leaf)
        tree.root.expand()

    @on(GatesDone)
    def _on_gates(self, message: GatesDone) -> None:
        table = self.query_one("#gates", DataTable)
        table.loading = False
        table.clear()
        status = self.query_one("#gates-status", Static)
        if message.error:
            self.gate_state = "error"
            self.gate_report = None
            self.gate_error = message.error
            status.update(Text(f"⚠ gate evaluation failed: {message.error}", style="bold red"))
            return
        if message.report is None:
            self.gate_state = "unavailable"
            self.gate_report = None
            self.gate_error = "gate engine unavailable in this build"
            status.update(Text(UNAVAILABLE, style="yellow"))
            return
        self.gate_state = "done"
        self.gate_error = ""
        self.gate_report = report = message.report
        self.app.gate_reports[(self.model, self.version)] = report

        verdict = Text("✔ ALL GATES PASSED", style="bold green") if report.passed else Text(
            f"✘ GATES FAILED: {', '.join(c.name for c in report.failed_checks)}", style="bold red")
        not_run = getattr(report, "not_run", [])
        if not_run:
            why = not_run[0].detail.removeprefix("not run: ")
            verdict.append(f"   {len(not_run)} checks not run: {why}", style="bold yellow")
        verdict.append(f"   baseline {report.baseline or '—'} · report sha256 {short_sha(report_digest(report), 16)}",
                       style="dim")
        status.update(verdict)
        view = self.query_one("#task-view", Static)
        view.update("\n\n".join(message.views))
        view.display = bool(message.views)
        for check in report.checks:
            table.add_row(*[Text(text, style=style) for text, style in check_cells(check)])
        if self.data is not None:
            self._render_deltas()

    @on(DriftDone)
    def _on_drift(self, message: DriftDone) -> None:
        table = self.query_one("#drift", DataTable)
        table.loading = False
        table.clear()
        status = self.query_one("#drift-status", Static)
        if message.error:
            if message.error.startswith(("BadInputError: ", "NotFoundError: ")):  # no data to compare: a note
                status.update(Text(f"drift not computed: {message.error.split(': ', 1)[1]}", style="yellow"))
            else:
                status.update(Text(f"⚠ drift computation failed: {message.error}", style="bold red"))
            return
        if message.report is None:
            status.update(Text("drift engine unavailable in this build", style="yellow"))
            return
        report = self.drift_report = message.report
        self.app.drift_reports[(self.model, self.version)] = report
        self.refresh_bindings()  # w (retrain on the newest data) appears when drift is critical
        order = ("none", "warning", "critical")
        severities = [getattr(report, "severity", None) or "none"] + [f.severity for f in report.features]
        worst = max((s for s in severities if s in order), key=order.index, default="none")
        label, style = drift_label(worst)
        status.update(Text.assemble((f"drift {label}", style),
                                    (f"   {report.drift_share:.0%} of features drifted · "
                                     f"{report.reference_rows:,} reference rows vs {report.current_rows:,}"
                                     + (f" · {report.current} vs {report.reference}" if report.reference else ""),
                                     "dim")))
        top = max([abs(f.statistic) for f in report.features if f.statistic is not None] + [1e-9])
        for feature in sorted(report.features, key=lambda f: ("critical", "warning", "none").index(f.severity)
                              if f.severity in ("critical", "warning", "none") else 3):
            label, style = drift_label(feature.severity)
            hist = drift_hist(feature.extra)
            plot = ""
            if hist is not None:
                ref_line, cur_line = overlay(*hist, width=16)
                plot = Text.assemble((ref_line, "cyan"), " ▕ ", (cur_line, style or "magenta"))
            table.add_row(feature.name, feature.method, fmt_number(feature.statistic), fmt_number(feature.p_value),
                          Text(label, style=style), Text(bar(abs(feature.statistic or 0), top, 16), style=style or ""),
                          plot)

    # -- actions --------------------------------------------------------------------------
    @on(DataTable.RowSelected, "#gates")
    def action_check_detail(self) -> None:
        """The gate check under the cursor, in full (screens/check_detail_screen.py)."""
        checks = self.gate_report.checks if self.gate_report is not None else []
        row = self.query_one("#gates", DataTable).cursor_row
        if 0 <= row < len(checks):
            self.post_message(OpenCheckDetail(checks[row], f"{self.model} {self.version or 'candidate'}"))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "retrain_newest":  # present only where drift is critical
            report = self.drift_report
            return (not self.app.read_only and report is not None
                    and (getattr(report, "severity", None) == "critical"
                         or any(f.severity == "critical" for f in report.features)))  # as the drift line shows it
        return super().check_action(action, parameters)

    def action_retrain_newest(self) -> None:
        if not self.check_action("retrain_newest", ()) or not self.app.can_write("training"):
            return
        self.post_message(OpenRetrainOnNewestData(self.model))

    def action_history(self) -> None:
        self.post_message(OpenHistory(self.model))

    def action_rerun_gates(self) -> None:
        if self.data is None:
            return
        self.gate_state = "running"
        self.query_one("#gates", DataTable).loading = True
        self.query_one("#gates-status", Static).update("running gates…")
        self._gates(self.version)

    def _ready_to_decide(self) -> bool:
        if self.data is None:
            self.notify("still loading the version", severity="warning")
            return False
        if self.gate_state == "running":
            self.notify("gates are still running: decide on the evidence, not before it", severity="warning")
            return False
        return not self._deciding

    def action_approve(self) -> None:
        if not self.app.can_write("approve") or not self._ready_to_decide():
            return

        report = self.gate_report
        cand = self.data.candidate
        not_run = list(getattr(report, "not_run", [])) if report is not None else []
        dialog = ApproveDialog(self.model, cand.version, cand.artifact.sha256,
                               report_digest(report) if report is not None else None,
                               None if report is None else report.passed,
                               [c.name for c in report.failed_checks] if report is not None else [],
                               not_run=[c.name for c in not_run],
                               not_run_why=not_run[0].detail.removeprefix("not run: ") if not_run else "",
                               gate_error=self.gate_error or ("" if report is not None else "no gate report"),
                               policy_refusal=self._policy_refusal(cand))
        self.app.push_screen(dialog, lambda decision: self._decide("approved", decision))

    def _policy_refusal(self, cand: Any) -> str:
        """Why [policy.production] cannot count this actor's approval (the trainer's own, one off
        the allow-list): the dialog refuses it in one line. "" when it can."""
        approvals = getattr(self.data, "approvals", None)
        if approvals is None:
            return ""

        actor, policy = self.app.actor, approvals.policy
        problem = approver_problem(policy, actor, approvals.trainer)
        if problem == "trainer":
            return (f"{actor} trained {self.model} {cand.version} and cannot approve it "
                    f"(policy.{policy.alias}.distinct_from_trainer); ask another approver")
        if problem:
            return f"{actor} is not on policy.{policy.alias}.approvers ({', '.join(policy.approvers or ())})"
        return ""

    def action_reject(self) -> None:
        if not self.app.can_write("reject") or not self._ready_to_decide():
            return

        cand = self.data.candidate
        self.app.push_screen(RejectDialog(self.model, cand.version, cand.artifact.sha256),
                             lambda decision: self._decide("rejected", decision))

    def _decide(self, status: str, decision: Any) -> None:
        if decision is None:
            return
        self._deciding = True
        gate_error = ""
        if status == "approved" and self.gate_report is None:
            gate_error = self.gate_error or "no gate report"
        self._decide_worker(status, decision.reason, decision.override, self.data.candidate.approval.status, gate_error)

    @work(thread=True, exclusive=True, group="review-decide", exit_on_error=False)
    def _decide_worker(self, status: str, reason: str, override: bool, seen_status: str, gate_error: str = "") -> None:
        ws = self.app.workspace
        self.app.record_call(f"console.release.actions.decide(registry, audit, {self.model!r}, {self.version!r}, "
                             f"status={status!r}, reason={reason!r}, override={override}, "
                             f"expected_status={seen_status!r}, actor={self.app.actor!r})")
        try:
            outcome = decide(ws.registry(), ws.audit(), self.model, self.version, status=status, actor=self.app.actor,
                             reason=reason, gate_report=self.gate_report, override=override,
                             expected_status=seen_status, gate_error=gate_error,
                             policy=_production_policy(ws) if status == "approved" else None)
        except Exception as exc:
            self.post_message(self.Decided(f"{self.model} {self.version}: not {status}: {exc}", False))
            return
        note = " (override)" if outcome.detail.get("approval", {}).get("override") else ""
        standing = (outcome.detail.get("policy") or {}).get("summary")
        self.post_message(self.Decided(f"{self.model} {self.version}: {status}{note} by {self.app.actor}"
                                       + (f"; {standing}" if standing else ""), True))

        deliver_alerts(ws, self.app.actor)  # the decision has committed: its alert (or resolution) goes out now

    @on(Decided)
    def _on_decided(self, message: Decided) -> None:
        self._deciding = False
        self.notify(message.text, severity="information" if message.ok else "error", timeout=6)
        self._load()


def _production_policy(ws):
    return workspace_policy(ws)
