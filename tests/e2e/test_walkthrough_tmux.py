"""A new user's walk-through in a real terminal (tmux): `mrc demo` opens the console; approve the
candidate, roll production back, quit — pressing only keys that the footer or `?` shows, and
checking that each one is shown before pressing it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid

import pytest

from console.workspace import Workspace
from tests.support.cli import REPO, mrc_env


class Terminal:
    def __init__(self, command: list[str], env: dict[str, str], width: int = 160, height: int = 48):
        if shutil.which("tmux") is None:
            pytest.fail("tmux is not installed (apt-get install tmux)")
        self.socket = f"mrc-walk-{uuid.uuid4().hex[:8]}"
        self.env = env
        shell_command = " ".join(_quote(part) for part in command)
        self.tmux("new-session", "-d", "-s", "walk", "-x", str(width), "-y", str(height),
                  f"cd {_quote(str(REPO))} && {shell_command}; echo EXITED-$?; sleep 30")

    def tmux(self, *args: str) -> str:
        proc = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, env=self.env,
                              timeout=30)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "walk")

    def footer(self) -> str:
        lines = [line for line in self.screen().splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the screen was:\n{screen}")

    def wait_gone(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text not in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never went away; the screen was:\n{screen}")

    def press(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "walk", *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "walk", "-l", text)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def test_new_user_approves_rolls_back_and_quits(demo_template, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(demo_template, ws)  # prebuilt: `mrc demo` finds it ready and opens at once
    env = mrc_env({"MRC_ACTOR": "walker", "TERM": "xterm-256color"})
    term = Terminal([sys.executable, "-m", "console.cli", "demo", "--workspace", str(ws)], env)
    try:
        term.wait_for("breast-cancer", timeout=60)
        term.wait_for("Rollback → 1")
        footer = term.footer()
        assert "⏎ Review" in footer or "Review" in footer, footer

        term.press("?")  # what a new user does first
        help_text = term.wait_for("binding id")
        assert "home.review" in help_text and "home.rollback" in help_text
        term.press("Escape")  # a lone ESC: the next key must not follow at once (ESC+key reads as alt+key)
        term.wait_gone("binding id")
        term.wait_for("R rolls production 2 back to 1")

        term.press("Enter")  # footer: ⏎ Review
        screen = term.wait_for("ALL GATES PASSED", timeout=120)
        assert "a Approve" in term.footer(), term.footer()
        assert "version 5" in screen

        term.press("a")  # footer: a Approve
        dialog = term.wait_for("Confirm approval")
        assert "artifact   sha256" in dialog and "gate digest sha256" in dialog
        time.sleep(0.5)  # a person reads the dialog before typing
        term.type("gates pass; auc within noise of production")
        term.press("C-y")  # the dialog's footer: ctrl+y Confirm approval
        term.wait_for("approved by walker")

        term.press("Escape")  # footer: esc Back
        term.wait_gone("Re-run gates")
        term.wait_for("R rolls production 2 back to 1")
        assert "R Rollback → 1" in term.footer(), term.footer()
        term.press("R")  # footer: R Rollback → 1
        term.wait_for("production 2 → 1")

        assert "q Quit" in term.footer()
        term.press("q")
        term.wait_for("EXITED-0", timeout=30)
    finally:
        term.close()

    ws_handle = Workspace.open(ws)
    registry = ws_handle.registry()
    assert registry.get_version("breast-cancer", "5").approval.status == "approved"
    assert registry.get_version("breast-cancer", "5").approval.by == "walker"
    assert registry.get_pointers("breast-cancer")["production"] == "1"
    actions = [(e.action, e.actor) for e in ws_handle.audit().events()[-2:]]
    assert actions == [("approve", "walker"), ("rollback", "walker")]
    assert ws_handle.audit().verify().ok
