"""Start a canary from the console: states model, candidate, stable and plan; ctrl+y confirms.

`C` on home opens it; a different key confirms (as in the approval dialog), so a held or doubled
`C` cannot start a rollout. An unapproved candidate needs a reason (recorded as an override).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Static

from backends.base import BadInputError
from console.assets import asset_path
from console.domain import CanaryPlan
from console.rollout.canary import parse_plan
from screens.dialogs.approve import CONFIRM_GUARD_S, ReasonInput
from screens.presenters import canary_start_statement

DEFAULT_PLAN = "5,25,50,100"


@dataclass
class CanaryStart:
    plan: str
    reason: str
    override: bool


class CanaryStartDialog(ModalScreen[CanaryStart | None]):
    CSS_PATH = str(asset_path("canary_dialogs.tcss"))
    AUTO_FOCUS = "#plan"  # the plan is what a person types first (a typed plan once landed in the reason)
    BINDINGS = [
        Binding("ctrl+y", "confirm", "Start canary", key_display="ctrl+y", id="canary_start.confirm"),
        Binding("escape", "cancel", "Cancel", id="canary_start.cancel"),
    ]

    def __init__(self, model: str, candidate: str, stable: str | None, approval: str | None,
                 opened_by: str = "C") -> None:
        super().__init__(id="canary-start-dialog")
        self.model, self.candidate, self.stable, self.approval = model, candidate, stable, approval
        self.opened_by = opened_by
        self.opened_at = time.monotonic()

    def compose(self) -> ComposeResult:
        plan = CanaryPlan()
        with Vertical(id="dialog-box", classes="dialog"):
            yield Static(Text(f"Start a canary of {self.model} version {self.candidate}?", style="bold"),
                         classes="dialog-title")
            statement = Text("\n".join(canary_start_statement(self.model, self.candidate, self.stable, plan.steps,
                                                              self.approval, plan.hold_s, plan.interval_s,
                                                              plan.consecutive_failures, plan=plan)))
            statement.highlight_words(["NOT APPROVED"], style="bold red")
            yield Static(statement, id="canary-start-statement")
            # guarded like the reason: the key that opened the dialog, still held, types nothing;
            # the default plan is selected, so typing replaces it
            yield ReasonInput(self.opened_by, value=DEFAULT_PLAN, select_on_focus=True,
                              placeholder="plan: canary weights in percent, the last one 100", id="plan")
            needs = "required: the candidate is not approved" if self.approval != "approved" else "optional"
            yield ReasonInput(self.opened_by, placeholder=f"reason ({needs})", id="reason")
            yield Static("", id="dialog-error")
            yield Footer()

    def on_mount(self) -> None:
        self.query_one("#plan").focus()

    def _error(self, text: str) -> None:
        self.query_one("#dialog-error", Static).update(Text(text, style="bold red"))

    def action_confirm(self) -> None:
        if time.monotonic() - self.opened_at < CONFIRM_GUARD_S:
            return  # a held key, not a decision

        plan = self.query_one("#plan", Input).value.strip()
        try:
            parse_plan(plan)
        except BadInputError as exc:
            self._error(str(exc))
            return
        if not self.stable:
            self._error(f"{self.model} has no production version to compare the canary with")
            return
        reason = self.query_one("#reason", Input).value.strip()
        override = self.approval != "approved"
        if override and not reason:
            self._error(f"{self.candidate} is {self.approval or 'not approved'}: a reason is required (recorded as an override)")
            return
        self.dismiss(CanaryStart(plan, reason, override))

    @on(Input.Submitted)
    def _enter_does_not_confirm(self) -> None:
        self._error("press ctrl+y to start the canary (enter does not start it)")

    def action_cancel(self) -> None:
        self.dismiss(None)
