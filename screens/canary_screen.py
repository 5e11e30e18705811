"""The canary screen: split, step plan, live health of both variants, the sequential band,
the consecutive-failure count and an event log; `R` rolls back now, naming the stable version.
`p` (next step) and `P` (promote) move toward the candidate, so each opens a confirmation that
shows the judge's current evidence; ctrl+y confirms.

All I/O runs in thread workers; the poll re-arms itself only after the last one finished, so
polls cannot pile up. `R` does not wait for a worker to start: a standby thread, started with
the screen, holds a warm controller and moves traffic the moment the key sets its event (no
worker start, no event-loop round trip between the key and the split). Under the console's app
(console.app.PriorityKeysFirst) `R` acts as it is posted, before the app's queue, so a key pressed while the
screen repaints a state that just landed does not wait for that repaint: `run_key_first` wakes
the standby and holds the loop (bounded) until the split moved. A poll that brings nothing new
repaints nothing, and a new state updates only the texts and charts that changed, with a layout
pass only when a text's height can change. The app provides `workspace`, `read_only` and `actor`.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from rich.cells import cell_len
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, RichLog, Sparkline, Static

from console.assets import asset_path
from console.domain import CanaryState
from console.rollout.controller import Controller, current_state
from screens.after_write import deliver_alerts
from screens.dialogs.promote import PromoteDialog
from screens.messages import OpenShadow
from screens.presenters import canary_evidence_lines, needs_more_lines, sequential_result_line

POLL_S = 0.5
STANDBY_WAKE_S = 1.0  # the standby rollback thread checks this often whether the screen is gone
RECEIPT_WAIT_S = 60.0  # a rollback's controller retries for seconds at most; never wait forever
ROLLBACK_SWITCH_INTERVAL_S = 0.0002  # the GIL switch interval while the standby thread rolls back
KEY_FIRST_HOLD_S = 0.25  # R at post time waits at most this long for the split to move
WRITE_ACTIONS = {"rollback", "next_step", "promote", "toggle_pause"}


# ---------------------------------------------------------------------------------------------
# Pure presenters (tested without a terminal).


def split_line(state: CanaryState | None, live: dict[str, int] | None) -> str:
    if state is None:
        return "no canary for this model"
    weights = live if live is not None else ({state.candidate: state.weight, state.stable: 100 - state.weight}
                                             if state.weight < 100 else {state.candidate: 100})
    parts = [f"{'canary' if v == state.candidate else 'stable'} {v}: {w}%"
             for v, w in sorted(weights.items(), key=lambda kv: kv[0] != state.candidate) if w]
    bar_width = 40
    filled = round(bar_width * weights.get(state.candidate, 0) / 100)
    return "split  " + " · ".join(parts) + "\n       [" + "█" * filled + "░" * (bar_width - filled) + "]"


def plan_line(state: CanaryState | None) -> str:
    if state is None:
        return ""
    marks = []
    for i, step in enumerate(state.plan.steps):
        if i < state.step or (i == state.step and state.status == "promoted"):
            marks.append(f"✓{step}%")
        elif i == state.step:
            marks.append(f"▶{step}%◀")
        else:
            marks.append(f"{step}%")
    held = max(0.0, time.time() - state.step_started_at) if state.step_started_at else 0.0
    return (f"plan   {' → '.join(marks)}   hold {state.plan.hold_s:g} s (held {held:.0f} s) · "
            f"interval {state.plan.interval_s:g} s · judge {state.plan.judge} · α {state.plan.alpha:g}")


def title_line(state: CanaryState | None, model: str, read_only: bool) -> str:
    lock = " 🔒 read-only" if read_only else ""
    if state is None:
        return f"canary · {model}{lock}"
    return f"canary · {model} · {state.candidate} vs stable {state.stable} · {state.status.upper()}{lock}"


def sequential_line(state: CanaryState | None) -> str:
    if state is None:
        return ""
    results = state.sequential.get("results") or []
    if not results:
        return "sequential  waiting for the first analysis"
    lines = [f"sequential  {sequential_result_line(r)}" for r in results]
    lines += [f"sequential  {line}" for line in needs_more_lines(state)]
    return "\n".join(lines) + f"\nalways-valid p (min so far) {state.sequential.get('min_p_value', 1.0):.4f}"


def failures_line(state: CanaryState | None) -> str:
    if state is None:
        return ""
    last = state.analyses[-1] if state.analyses else None
    verdict = last.get("window_verdict", "-") if last else "-"
    return (f"consecutive failing windows {state.failures}/{state.plan.consecutive_failures} · last window {verdict}"
            + (f" · reason: {state.reason}" if state.reason else ""))


def series(state: CanaryState | None, variant: str, key: str) -> list[float]:
    if state is None:
        return []
    return [float(a.get(variant, {}).get(key) or 0.0) for a in state.analyses]


def event_lines(state: CanaryState | None) -> list[str]:
    if state is None:
        return []
    return [f"{e['at'][11:19]} {e['actor']:<10} {e['kind']:<9} {e['text']}" for e in state.events]


# ---------------------------------------------------------------------------------------------


class _SignalsMove:
    """The standby controller's traffic backend: sets `moved` after each rollback call returns
    (or fails), so the key that asked for it knows when the split has moved."""

    def __init__(self, traffic, moved: threading.Event) -> None:
        self._traffic = traffic
        self._moved = moved

    def rollback(self, *args, **kwargs):
        try:
            return self._traffic.rollback(*args, **kwargs)
        finally:
            self._moved.set()

    def __getattr__(self, name: str):
        return getattr(self._traffic, name)


class CanaryScreen(Screen):
    """One model's canary. Construct as CanaryScreen(model)."""

    CSS_PATH = str(asset_path("canary.tcss"))

    BINDINGS = [
        Binding("R", "rollback", "Roll back", id="canary.rollback", priority=True),
        Binding("p", "next_step", "Next step", id="canary.next_step"),
        Binding("P", "promote", "Promote", id="canary.promote"),
        Binding("space", "toggle_pause", "Pause/resume", id="canary.pause"),
        Binding("s", "shadow", "Shadow", id="canary.shadow"),
        Binding("escape", "back", "Back", id="canary.back"),
    ]

    class Loaded(Message):
        def __init__(self, state: CanaryState | None, live: dict[str, int] | None) -> None:
            super().__init__()
            self.state = state
            self.live = live

    class Acted(Message):
        def __init__(self, action: str, state: CanaryState | None, error: str = "", seconds: float = 0.0) -> None:
            super().__init__()
            self.action = action
            self.state = state
            self.error = error
            self.seconds = seconds

    def __init__(self, model: str, *, name: str | None = None, id: str | None = None, classes: str | None = None):
        super().__init__(name=name, id=id, classes=classes)
        self.model = model
        self.state: CanaryState | None = None
        self.live_split: dict[str, int] | None = None
        self.last_action: dict[str, Any] = {}
        self._shown_events = 0
        self._shown_key: tuple | None = None  # ((canary id, revision, status), live split) last painted
        self._shown_status: str | None = None
        self._shown_text: dict[str, str] = {}  # selector -> text last given to that Static
        self._rollback_requested = threading.Event()
        self._rollback_lock = threading.Lock()
        self._rollback_receipts: list[threading.Event] = []  # set once the standby's rollback is done
        self._standby_ready = False  # the standby thread holds a warm controller
        self._traffic_moved = threading.Event()  # set once the standby's rollback moved the split
        self._closing = False

    # -- layout ------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        # markup=False: versions, reasons and bands are data, never markup.
        yield Static(title_line(None, self.model, self._read_only), id="canary-title", markup=False)
        yield Static("loading…", id="canary-split", markup=False)
        yield Static("", id="canary-plan", markup=False)
        yield Static("", id="canary-rollback-hint", markup=False)
        for key, label in (("error_rate", "error rate"), ("p99_ms", "p99 latency ms")):
            for variant in ("canary", "stable"):
                with Horizontal(classes="chart-row"):
                    yield Static(f"{label} · {variant}", classes="chart-label")
                    yield Sparkline([], id=f"chart-{key.replace('_', '-')}-{variant}", classes=variant)
        yield Static("", id="canary-sequential", markup=False)
        yield Static("", id="canary-failures", markup=False)
        yield RichLog(id="canary-events", max_lines=500, wrap=False)
        yield Footer()

    @property
    def _read_only(self) -> bool:
        return bool(getattr(self.app, "read_only", False))

    def on_mount(self) -> None:
        if self._read_only:
            self.add_class("read-only")
        self.load_state()
        if not self._read_only:
            self._rollback_standby()

    def on_unmount(self) -> None:
        self._closing = True
        self._rollback_requested.set()  # wakes the standby thread, which sees _closing and ends

    # -- keys --------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in WRITE_ACTIONS:
            if self._read_only:
                return False  # read-only: the write keys are absent
            if self.state is None or not self.state.active:
                return None  # shown, greyed: nothing to act on
        return True

    def action_rollback(self) -> None:
        if self._standby_ready:
            self._wake_standby()
        else:
            self.act("rollback", stable=self.state.stable if self.state is not None else None)

    def _wake_standby(self) -> None:
        done = threading.Event()
        with self._rollback_lock:
            self._rollback_receipts.append(done)
            self._rollback_requested.set()  # the standby thread moves traffic now
        self._rollback_receipt(done)

    def run_key_first(self, action: str) -> bool:
        """Called by the app (console.app.PriorityKeysFirst) as a priority key is posted, before the event loop
        reads it: `R` wakes the standby thread at once, even while the screen repaints a state that
        just landed. Only when the key would reach action_rollback now (this screen on top, not
        read-only, a live canary) and the standby is warm; otherwise the key takes the usual path."""
        if action != "rollback" or not self._standby_ready or self.app.screen is not self:
            return False
        if self.check_action("rollback", ()) is not True:
            return False
        self._traffic_moved.clear()
        self._wake_standby()
        # Hold the event loop (a bounded wait, which releases the GIL) until the split has moved:
        # a repaint running meanwhile would take the CPU the move needs; the screen has nothing
        # newer to show before the move anyway.
        self._traffic_moved.wait(KEY_FIRST_HOLD_S)
        return True

    def action_next_step(self) -> None:
        state = self.state
        if state is None or not state.active:
            return
        steps = state.plan.steps
        nxt = state.step + 1
        if nxt >= len(steps) - 1:
            title = f"Next step is the last: promote {state.candidate} to 100% and production?"
        else:
            title = f"Next step: canary {state.candidate} {state.weight}% → {steps[nxt]}%?"
        self._confirm("next", title, "p")

    def action_promote(self) -> None:
        state = self.state
        if state is None or not state.active:
            return
        self._confirm("promote", f"Promote canary {state.candidate} to 100% and production (stable {state.stable} "
                      "leaves production)?", "P")

    def _confirm(self, action: str, title: str, key: str) -> None:
        state = self.state
        verdict = state.sequential.get("verdict") if state is not None else None
        warning = "" if verdict == "safe" else ("the judge has not decided the canary is safe yet: confirming overrides "
                                                "it, recorded with your name in the audit log")

        def confirmed(reason: str | None) -> None:
            if reason is not None:
                self.act(action, reason=reason)

        self.app.push_screen(PromoteDialog(title, canary_evidence_lines(state), warning, opened_by=key), confirmed)

    def action_toggle_pause(self) -> None:
        self.act("resume" if self.state is not None and self.state.status == "paused" else "pause")

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def action_shadow(self) -> None:
        self.post_message(OpenShadow(self.model))

    # -- workers -----------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="canary-poll", exit_on_error=False)
    def load_state(self) -> None:
        ws = self.app.workspace
        state = current_state(ws, self.model)
        live = None
        if state is not None and state.active:
            try:
                live = ws.traffic().get_split(self.model).weights
            except Exception:  # noqa: BLE001  (the screen shows the recorded split instead)
                live = None
        self.post_message(self.Loaded(state, live))

    @work(thread=True, exclusive=True, group="canary-write", exit_on_error=False)
    def act(self, action: str, stable: str | None = None, reason: str = "") -> None:
        self._act(self._controller(), action, reason)

    def _controller(self, traffic=None):
        return Controller(self.app.workspace, self.model, actor=getattr(self.app, "actor", "console"), traffic=traffic)

    def _act(self, controller, action: str, reason: str = "") -> None:
        started = time.perf_counter()
        try:
            # act("rollback") moves traffic first, against the stored state, then records it
            state = controller.act(action, reason=reason)
            self.post_message(self.Acted(action, state, seconds=time.perf_counter() - started))
        except Exception as exc:  # noqa: BLE001  (shown to the user, never crashes the screen)
            self.post_message(self.Acted(action, None, f"{type(exc).__name__}: {exc}", time.perf_counter() - started))
            return

        deliver_alerts(self.app.workspace, getattr(self.app, "actor", "console"))  # after the move, never before

    def _rollback_standby(self) -> None:
        """The one thread here that is not a Textual worker: it lives as long as the screen, and
        anything that waits for the screen's workers to finish would wait for it forever."""
        threading.Thread(target=self._standby_loop, name=f"mrc-rollback-standby-{self.model}", daemon=True).start()

    def _standby_loop(self) -> None:
        """Waits for `R` with the controller built and its traffic backend resolved (imports
        done), so the key's cost is one event set: the move starts in this thread at once."""
        try:
            # the traffic backend resolved now (imports done), not after the key
            controller = self._controller(traffic=_SignalsMove(self.app.workspace.traffic(), self._traffic_moved))
        except Exception:  # noqa: BLE001  (R falls back to a worker of its own, which reports the error)
            return
        self._standby_ready = True
        try:
            while not self._closing:
                if not self._rollback_requested.wait(STANDBY_WAKE_S):
                    continue
                receipts = self._take_requests()
                if self._closing:
                    for done in receipts:
                        done.set()
                    break
                # The event loop may be repainting as the key lands, holding the GIL for the whole
                # switch interval (5 ms) each time this thread waits on a read or write of the move:
                # a short interval while the rollback runs hands it back after each of them.
                interval = sys.getswitchinterval()
                sys.setswitchinterval(ROLLBACK_SWITCH_INTERVAL_S)
                try:
                    self._act(controller, "rollback")
                finally:
                    sys.setswitchinterval(interval)
                receipts += self._take_requests()  # presses while it ran asked for the same rollback
                for done in receipts:
                    done.set()
        finally:
            self._standby_ready = False
            for done in self._take_requests():
                done.set()

    def _take_requests(self) -> list[threading.Event]:
        with self._rollback_lock:
            self._rollback_requested.clear()
            receipts, self._rollback_receipts = self._rollback_receipts, []
        return receipts

    @work(thread=True, group="canary-rollback-receipt", exit_on_error=False)
    def _rollback_receipt(self, done: threading.Event) -> None:
        """A worker that ends when the standby thread's rollback has: whoever waits for the
        screen's workers (a test, a shutdown) waits for the rollback too. It moves nothing."""
        done.wait(RECEIPT_WAIT_S)

    # -- results -----------------------------------------------------------------------------
    @on(Loaded)
    def _on_loaded(self, message: Loaded) -> None:
        state = message.state
        key = (state.id, state.revision, state.status) if state is not None else None
        if (key, message.live) != self._shown_key:  # nothing new: no repaint to hold the event loop
            self.live_split = message.live
            self._show(state)
        # Re-arm only now: one poll at a time.
        if self.is_attached:
            self.set_timer(POLL_S, self.load_state)

    @on(Acted)
    def _on_acted(self, message: Acted) -> None:
        self.last_action = {"action": message.action, "error": message.error, "seconds": message.seconds}
        if message.error:
            self.notify(message.error, title=f"canary {message.action} failed", severity="error")
            return
        state = message.state
        if state is not None:
            if message.action == "rollback":
                self.live_split = {state.stable: 100}
                self.notify(f"rolled back: stable {state.stable} at 100%", title="canary")
            self._show(state)

    def _set_text(self, selector: str, text: str) -> None:
        """Update one text widget only if its text changed, and ask for a layout pass only if its
        height can change (another line count, or a line that may wrap): a layout pass re-arranges
        the whole screen, which is what a key pressed as a new state lands waits behind."""
        shown = self._shown_text.get(selector)
        if shown == text:
            return
        self._shown_text[selector] = text
        widget = self.query_one(selector, Static)
        width = widget.content_region.width
        lines = text.split("\n")
        same_height = (bool(shown) and bool(text) and width > 0 and len(lines) == shown.count("\n") + 1
                       and max(cell_len(line) for line in lines) < width
                       and max(cell_len(line) for line in shown.split("\n")) < width)
        widget.update(text, layout=not same_height)

    def _show(self, state: CanaryState | None) -> None:
        self.state = state
        self._shown_key = ((state.id, state.revision, state.status) if state is not None else None, self.live_split)
        title = self.query_one("#canary-title", Static)
        for status in ("progressing", "paused", "promoted", "rolled_back", "aborted"):
            title.set_class(state is not None and state.status == status, f"status-{status}")
        hint = ""
        if state is not None and state.active and not self._read_only:
            hint = (f"R rolls back now to stable {state.stable} · p next step · P promote {state.candidate} (both "
                    "confirm with ctrl+y) · space pause/resume")
        self._set_text("#canary-title", title_line(state, self.model, self._read_only))
        self._set_text("#canary-split", split_line(state, self.live_split))
        self._set_text("#canary-plan", plan_line(state))
        self._set_text("#canary-rollback-hint", hint)
        for key in ("error_rate", "p99_ms"):
            for variant in ("canary", "stable"):
                data = series(state, variant, key)
                chart = self.query_one(f"#chart-{key.replace('_', '-')}-{variant}", Sparkline)
                if list(chart.data or []) != data:  # an unchanged chart is not re-rendered
                    chart.data = data
        self._set_text("#canary-sequential", sequential_line(state))
        self._set_text("#canary-failures", failures_line(state))
        lines = event_lines(state)
        log = self.query_one("#canary-events", RichLog)
        if len(lines) < self._shown_events:
            log.clear()
            self._shown_events = 0
        for line in lines[self._shown_events:]:
            log.write(line)
        self._shown_events = len(lines)
        status = state.status if state is not None else None
        if status != self._shown_status:  # the write keys' state follows the canary's status only
            self._shown_status = status
            self.refresh_bindings()
