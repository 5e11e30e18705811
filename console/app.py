"""The Textual console: `mrc`, `mrc demo`, `mrc serve` all open this app.

Start-up imports Textual and the screens only; every backend call runs in a worker and the
heavy engines (gates, drift, training) are imported inside those workers.
"""

from __future__ import annotations

import getpass
import os
import sys
import threading
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from textual import events
from textual.app import App
from textual.binding import Binding
from textual.message import Message

from backends.base import BadInputError
from console.workspace import Workspace
from screens.messages import (
    OpenAudit,
    OpenCanary,
    OpenCheckDetail,
    OpenDiff,
    OpenHistory,
    OpenRetrainOnNewestData,
    OpenReview,
    OpenShadow,
    OpenTraining,
)
from screens.presenters import WRITE_ACTIONS, Command, parse_command

STARTED = time.perf_counter()


ASSETS = Path(__file__).resolve().parents[1] / "assets"


class PriorityKeysFirst:
    """Priority keys that act as they are posted, before the app's queue. Mix in before App:
    class MyApp(PriorityKeysFirst, App).

    Textual reads a key only when the event loop gets to the app's message queue, which, when the
    key is pressed as the screen repaints a new state, is after that whole repaint (layout, styles,
    footer rebuild: tens to hundreds of ms on a loaded box). A screen that can act on a priority
    binding without the event loop (the canary screen's `R` wakes a standby thread) offers
    `run_key_first(action) -> bool`; this mixin resolves the key exactly as Textual's priority pass
    does (same binding chain, keymap applied, modal screens hide the screens below) and calls it at
    post time. True: the key was acted on and is not queued; otherwise the key takes the usual path.
    """

    def post_message(self, message: Message) -> bool:
        # Keys are posted on the event loop's thread (driver and Pilot alike); anything posted from
        # another thread takes the usual path, as the binding chain may only be read on the loop.
        # A key nobody handled bubbles back up to the app through here: check each key once.
        if (isinstance(message, events.Key) and threading.get_ident() == self._thread_id
                and not getattr(message, "_priority_checked", False)):
            message._priority_checked = True
            try:
                if self._run_key_first(message.key):
                    return True
            except Exception:  # noqa: BLE001  (never lose a key: the usual path handles it)
                pass
        return super().post_message(message)

    def _run_key_first(self, key: str) -> bool:
        if self._closing or self._closed or not self.is_running:
            return False
        for namespace, bindings in reversed(self.screen._binding_chain):  # as App._check_bindings(priority=True)
            for binding in bindings.key_to_bindings.get(key, ()):
                if binding.priority:
                    run_first = getattr(namespace, "run_key_first", None)
                    return bool(run_first is not None and run_first(binding.action))
        return False


class ReleaseConsole(PriorityKeysFirst, App):
    """Model Release Console."""

    TITLE = "mrc"
    CSS_PATH = str(ASSETS / "console.tcss")
    ENABLE_COMMAND_PALETTE = False  # `:` is our command mode (k9s), see screens/command_screen.py
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
        Binding("colon", "command", "Command", key_display=":", id="app.command"),
        Binding("at", "action_log", "Action log", key_display="@", show=False, id="app.action_log"),
    ]

    def __init__(self, workspace, *, read_only: bool = False, actor: str = "", poll_s: float = 5.0,
                 keymap: dict[str, str] | None = None, clock=None) -> None:
        super().__init__()
        self.workspace = workspace
        self.read_only = bool(read_only)
        self.actor = actor or default_actor()
        self.poll_s = poll_s
        self.gate_reports: dict[tuple[str, str], Any] = {}  # (model, version) -> GateReport seen here
        self.drift_reports: dict[tuple[str, str], Any] = {}  # (model, version) -> DriftReport seen here
        self.clock = clock or (lambda: datetime.now(timezone.utc))  # "4m ago" is relative to this
        self.startup_s: float | None = None
        self.calls: deque[tuple[str, str]] = deque(maxlen=500)  # (at, backend call): the `@` log
        self._keymap = dict(keymap or {})
        self.sub_title = self._sub_title()

    def _sub_title(self) -> str:
        mode = "🔒 READ-ONLY" if self.read_only else f"actor {self.actor}"
        return f"{self.workspace.root} · {mode}"

    def on_mount(self) -> None:
        keys = self._keymap or _configured_keymap(self.workspace)
        if keys:
            self.set_keymap(keys)
        if self.read_only:
            self.add_class("-read-only")
        # each screen module is imported when it first opens: the first screen pays for home only
        from screens.home_screen import HomeScreen

        self.push_screen(HomeScreen())

    def on_ready(self) -> None:
        self.startup_s = time.perf_counter() - STARTED
        self.trace(f"ready in {self.startup_s * 1000:.0f} ms")

    def trace(self, line: str) -> None:
        """Start-up and load times to Textual's log, and to $MRC_CONSOLE_LOG when set (a file:
        what a browser session under `mrc serve` did, which no terminal shows)."""
        self.log.info(f"mrc console: {line}")
        path = os.environ.get("MRC_CONSOLE_LOG")
        if path:
            with open(path, "a") as fh:
                fh.write(f"{time.time():.3f} pid {os.getpid()} {line}\n")

    # -- shared helpers for the screens --------------------------------------------------
    def record_call(self, call: str) -> None:
        """The exact backend call behind a key (lazygit's command log); thread-safe."""
        self.calls.append((datetime.now(timezone.utc).strftime("%H:%M:%S"), call))

    def action_action_log(self) -> None:
        from screens.action_log_screen import ActionLogScreen

        if not isinstance(self.screen, ActionLogScreen):
            self.push_screen(ActionLogScreen())

    def can_write(self, what: str) -> bool:
        if self.read_only:
            self.notify(f"read-only: {what} is disabled", severity="warning")
            return False
        return True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.read_only and action in WRITE_ACTIONS:
            return False
        return True

    # -- global actions --------------------------------------------------------------------
    def action_help(self) -> None:
        from screens.help_screen import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen))

    def action_command(self) -> None:
        from screens.command_screen import CommandScreen

        if isinstance(self.screen, CommandScreen):
            return
        self.push_screen(CommandScreen(), self.run_command)

    def run_command(self, text: str | None) -> None:
        if not text:
            return
        try:
            command = parse_command(text)
        except ValueError as exc:
            self.notify(str(exc), severity="error")
            return
        self.open(command)

    def open(self, command: Command) -> None:
        """Open the screen a command names (`:review m`, `:history m`, `:audit` …)."""
        args = command.args
        name = command.name
        if name == "quit":
            self.exit()
            return
        if name == "help":
            self.action_help()
            return
        if name == "home":
            from screens.home_screen import HomeScreen

            while len(self.screen_stack) > 2 and not isinstance(self.screen, HomeScreen):
                self.pop_screen()
            return
        if name == "audit":
            self.on_open_audit(OpenAudit())
            return
        model = args[0] if args else self.selected_model()
        if not model:
            self.notify(f":{name} needs a model name", severity="error")
            return
        if name == "review":
            self.on_open_review(OpenReview(model, args[1] if len(args) > 1 else None))
        elif name == "history":
            self.on_open_history(OpenHistory(model))
        elif name == "train":
            if not self.can_write("training"):
                return
            self.on_open_training(OpenTraining(model))
        elif name == "canary":
            self.open_canary(model)
        elif name == "monitor":
            from screens.monitor_screen import MonitorScreen

            self.push_screen(MonitorScreen(model))

    # -- navigation: screens post screens/messages.py, the app opens the screen ----------------
    # Each screen module is imported when it first opens (the first screen pays for home only).
    def on_open_review(self, message: OpenReview) -> None:
        from screens.review_screen import ReviewScreen

        self.push_screen(ReviewScreen(message.model, message.version))

    def on_open_history(self, message: OpenHistory) -> None:
        from screens.history_screen import HistoryScreen

        self.push_screen(HistoryScreen(message.model))

    def on_open_training(self, message: OpenTraining) -> None:
        from screens.training_screen import TrainingScreen

        self.push_screen(TrainingScreen(message.model, data=message.data, reason=message.reason))

    def on_open_retrain_on_newest_data(self, message: OpenRetrainOnNewestData) -> None:
        from screens.training_screen import open_with_newest_data

        open_with_newest_data(self.screen, message.model)

    def on_open_audit(self, message: OpenAudit) -> None:
        from screens.audit_screen import AuditScreen

        self.push_screen(AuditScreen())

    def on_open_canary(self, message: OpenCanary) -> None:
        self.open_canary(message.model)

    def on_open_shadow(self, message: OpenShadow) -> None:
        from screens.shadow_screen import ShadowScreen

        self.push_screen(ShadowScreen(message.model))

    def on_open_diff(self, message: OpenDiff) -> None:
        from screens.diff_screen import DiffScreen

        self.push_screen(DiffScreen(message.left, message.right))

    def on_open_check_detail(self, message: OpenCheckDetail) -> None:
        from screens.check_detail_screen import CheckDetailScreen

        self.push_screen(CheckDetailScreen(message.check, message.title))

    def open_canary(self, model: str) -> None:
        canary_screen = canary_screen_class()
        if canary_screen is None:
            self.notify("canary view is not available in this build", severity="warning")
            return
        self.push_screen(canary_screen(model))

    def selected_model(self) -> str | None:
        for screen in reversed(self.screen_stack):
            model = getattr(screen, "selected_model", None)
            if callable(model):
                model = model()
            if model:
                return model
        return None


def canary_screen_class():
    """CanaryScreen when screens/canary_screen.py is there; the console runs without it."""
    try:
        from screens.canary_screen import CanaryScreen
    except ImportError:
        return None
    return CanaryScreen


def default_actor() -> str:
    actor = os.environ.get("MRC_ACTOR")
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


def _configured_keymap(workspace) -> dict[str, str]:
    """[console.keys] in mrc.toml: binding id -> keys, e.g. "home.rollback" = "ctrl+r"."""
    console = workspace.config.get("console", {}) if isinstance(workspace.config, dict) else {}
    keys = console.get("keys", {}) if isinstance(console, dict) else {}
    return {str(k): str(v) for k, v in keys.items()} if isinstance(keys, dict) else {}


def build_app(args) -> ReleaseConsole:
    # lenient: a typo in [policy] must not keep on-call out of the console's rollback key
    # (approve/promote there still refuse the bad table)
    ws = Workspace.open(getattr(args, "workspace", None), lenient_policy=True)
    return ReleaseConsole(ws, read_only=bool(getattr(args, "read_only", False)),
                          actor=getattr(args, "actor", None) or default_actor())


def run(args) -> int:
    """Entry point of console/cli.py: open the workspace and run the console until `q`."""
    if getattr(args, "json", False):
        print("mrc: --json has no meaning for the console; use a subcommand (`mrc models --json`)", file=sys.stderr)
        return 2
    try:
        app = build_app(args)
    except BadInputError as exc:
        print(f"mrc: error: {exc}", file=sys.stderr)
        return 2
    app.run()
    return int(app.return_code or 0)
