"""The approval dialog: states exactly what will be approved, asks why, confirms with ctrl+y.

`a` opens it; a different key confirms, so a held or doubled `a` cannot approve, and the
reason box drops the opening key while it keeps auto-repeating, so it is not typed into it.
Refused while gates fail, while checks were not run (no test set) or when the gates could not be
evaluated, unless "override" is ticked (ctrl+o) — and an override needs a reason like any approval.
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
from textual.widgets import Checkbox, Footer, Input, Static

from screens.presenters import approval_needs_override, approval_statement

CONFIRM_GUARD_S = 0.5  # a confirm this soon after opening is a held key, not a decision
# The opening key arriving again within this gap is auto-repeat: dropped. Keyboards wait
# 250-600 ms before the first repeat, so the gap must exceed that.
REPEAT_GAP_S = 0.8


def clock() -> float:
    """The guards' clock: module-level so a test can step time instead of sleeping on a loaded machine."""
    return time.monotonic()


class ReasonInput(Input):
    """An Input that swallows the key that opened its dialog while that key is still held."""

    def __init__(self, guard_key: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.guard_key = guard_key
        self._last_guarded = clock()

    def on_mount(self) -> None:
        # count from when the box can receive keys, not from when it was built (slow machines)
        self._last_guarded = clock()

    async def _on_key(self, event) -> None:
        if self.guard_key and event.key == self.guard_key and clock() - self._last_guarded < REPEAT_GAP_S:
            self._last_guarded = clock()
            event.stop()
            event.prevent_default()
            return
        self.guard_key = ""  # another key, or a pause: the user is typing now
        await super()._on_key(event)


@dataclass
class Decision:
    reason: str
    override: bool = False


class ApproveDialog(ModalScreen[Decision | None]):
    AUTO_FOCUS = "#reason"
    BINDINGS = [
        Binding("ctrl+y", "confirm", "Confirm approval", key_display="ctrl+y", id="approve.confirm"),
        Binding("ctrl+o", "toggle_override", "Override failed gates", key_display="ctrl+o", id="approve.override"),
        Binding("escape", "cancel", "Cancel", id="approve.cancel"),
    ]

    def __init__(self, model: str, version: str, artifact_sha256: str, gate_digest: str | None,
                 gate_passed: bool | None, failed_checks: list[str] | None = None, opened_by: str = "a", *,
                 not_run: list[str] | None = None, not_run_why: str = "", gate_error: str = "",
                 policy_refusal: str = "") -> None:
        super().__init__(id="approve-dialog")
        self.model = model
        self.version = version
        self.artifact_sha256 = artifact_sha256
        self.gate_digest = gate_digest
        self.gate_passed = gate_passed
        self.failed_checks = list(failed_checks or [])
        self.not_run = list(not_run or [])
        self.not_run_why = not_run_why
        self.gate_error = gate_error
        self.policy_refusal = policy_refusal  # [policy.production] cannot count this approver: no override for it
        self.needs_override = approval_needs_override(gate_passed, self.not_run, gate_error)
        self.opened_at = clock()
        self.opened_by = opened_by

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-box", classes="dialog"):
            yield Static(Text(f"Approve {self.model} version {self.version}?", style="bold"), classes="dialog-title")
            lines = approval_statement(self.model, self.version, self.artifact_sha256, self.gate_digest,
                                       self.gate_passed, self.failed_checks, self.not_run, self.not_run_why,
                                       self.gate_error)
            statement = Text("\n".join(lines))
            statement.highlight_words(["FAILED", "NOT EVALUATED"], style="bold red")
            statement.highlight_regex(r"\d+ checks not run", style="bold yellow")
            yield Static(statement, id="approve-statement")
            if self.policy_refusal:
                yield Static(Text(f"refused: {self.policy_refusal}", style="bold red"), id="approve-policy")
            yield ReasonInput(self.opened_by, placeholder="reason (required): why is this safe to ship?", id="reason")
            if self.needs_override:
                yield Checkbox(f"{self._override_what()} (recorded as an override in the audit log)", id="override")
            yield Static("", id="dialog-error")
            yield Footer()

    def _override_what(self) -> str:
        if self.gate_error or self.gate_passed is None:
            return "override: approve without a gate verdict"
        if self.gate_passed is False:
            return "override the failed gates"
        return f"override: approve with {len(self.not_run)} checks not run"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_override":
            return self.needs_override
        return True

    def action_toggle_override(self) -> None:
        if self.needs_override:
            box = self.query_one("#override", Checkbox)
            box.value = not box.value

    @property
    def override(self) -> bool:
        boxes = self.query("#override")
        return bool(boxes and boxes.first(Checkbox).value)

    def _error(self, text: str) -> None:
        self.query_one("#dialog-error", Static).update(Text(text, style="bold red"))

    def on_mount(self) -> None:
        self.query_one("#reason").focus()  # before the first paint: keys typed at once land in the reason

    def action_confirm(self) -> None:
        if clock() - self.opened_at < CONFIRM_GUARD_S:
            return
        reason = self.query_one("#reason", Input).value.strip()
        if self.policy_refusal:
            self._error(f"refused: {self.policy_refusal}")
            return
        if self.needs_override and not self.override:
            if self.gate_error or self.gate_passed is None:
                why = "the gates could not be evaluated"
            elif self.gate_passed is False:
                why = "gates failed (" + ", ".join(self.failed_checks) + ")"
            else:
                why = f"{len(self.not_run)} checks not run ({self.not_run_why or 'no test set'})"
            self._error(f"refused: {why}. Tick override (ctrl+o) and give a reason to approve anyway.")
            return
        if not reason:
            self._error("a reason is required")
            return
        self.dismiss(Decision(reason, self.override))

    @on(Input.Submitted, "#reason")
    def _enter_does_not_confirm(self) -> None:
        self._error("press ctrl+y to confirm (enter does not approve)")

    def action_cancel(self) -> None:
        self.dismiss(None)
