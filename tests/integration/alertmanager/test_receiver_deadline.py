"""The 3 AM path: a receiver that accepts the connection and never answers does not hold
`mrc rollback`; every receiver is tried at once under one overall deadline, what did not go out
stays pending behind its cursor, and a later flush delivers it (real Alertmanager)."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.support.alerts import Alertmanager  # noqa: F401  (the session fixture's type)
from tests.support.alerts import SECRET_ENV, audit, configure, set_alertmanager_url
from tests.support.canary import CANDIDATE, MODEL, STABLE
from tests.support.cli import run_mrc

pytestmark = pytest.mark.integration


class SilentReceiver:
    """Accepts every TCP connection and never reads or answers: a receiver hung at 3 AM."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.accepted = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed at teardown
                return
            self.held.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()
        self.thread.join(timeout=10)


@pytest.fixture
def silent():
    receiver = SilentReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


def _production(ws) -> str:
    from backends.base import PRODUCTION
    from backends.local.registry import LocalRegistry

    return LocalRegistry(ws).get_pointers(MODEL).get(PRODUCTION)


def test_a_receiver_that_never_answers_does_not_hold_the_rollback_and_a_later_flush_delivers(
        demo_ws, silent, webhook, alertmanager):
    approve = run_mrc("approve", MODEL, CANDIDATE, "--reason", "t", "--no-gates", "--override", "--workspace", str(demo_ws))
    assert approve.returncode == 0, approve.stderr
    promote = run_mrc("promote", MODEL, CANDIDATE, "--reason", "t", "--workspace", str(demo_ws))
    assert promote.returncode == 0, promote.stderr
    assert _production(demo_ws) == CANDIDATE
    # A per-request timeout far past the hang guard: only the overall deadline can end the wait.
    run = configure(demo_ws, silent.url, webhook.url)
    text = (demo_ws / "mrc.toml").read_text().replace("timeout_s = 2", "timeout_s = 3600")
    (demo_ws / "mrc.toml").write_text(text)

    rollback = run_mrc("rollback", MODEL, "--reason", "paged at 3 AM", "--workspace", str(demo_ws),
                       env=SECRET_ENV, timeout=180)  # a hang guard only
    assert rollback.returncode == 0, rollback.stderr
    assert _production(demo_ws) == STABLE
    assert silent.accepted.is_set()  # it was tried: the connection was made, no answer came
    events = audit(demo_ws)
    [rolled] = [e for e in events if e["action"] == "rollback"]
    [failed] = [e for e in events if e["action"] == "alert.failed"]
    assert failed["details"]["receiver"] == "alertmanager" and failed["seq"] > rolled["seq"]
    assert "no answer within" in failed["details"]["error"]
    # the other receiver was not held up by the silent one
    [delivered] = [e for e in events if e["action"] == "alert.delivered"]
    assert delivered["details"]["receiver"] == "chat" and len(webhook.received) == 1
    view = run_mrc("alerts", "--json", "--workspace", str(demo_ws)).json()
    cursors = {r["name"]: r["cursor"] for r in view["receivers"]}
    assert cursors["alertmanager"] is None and cursors["chat"] >= rolled["seq"]
    [row] = [a for a in view["alerts"] if a["alertname"] == "RollbackDone"]
    assert row["state"] == "pending" and row["pending_for"] == ["alertmanager"]

    # Alertmanager answers again: a flush gives it what it missed, and only it.
    set_alertmanager_url(demo_ws, alertmanager.url)
    flush = run_mrc("alerts", "flush", "--json", "--workspace", str(demo_ws), env=SECRET_ENV, timeout=180)
    assert flush.returncode == 0, flush.stderr
    assert [(d["receiver"], d["ok"], d["alerts"]) for d in flush.json()["deliveries"]] == [("alertmanager", True, 1)]
    [alert] = alertmanager.alerts(run=run)
    assert (alert["labels"]["alertname"], alert["labels"]["version"]) == ("RollbackDone", STABLE)
    assert len(webhook.received) == 1


def test_a_write_without_an_alerts_table_imports_no_delivery_code(demo_ws):
    """No [alerts] in mrc.toml: the write path never imports console.notify.delivery (urllib.request, ssl)."""
    import json
    import subprocess
    import sys

    from tests.support.cli import REPO, mrc_env

    assert run_mrc("approve", MODEL, CANDIDATE, "--reason", "t", "--no-gates", "--override",
                   "--workspace", str(demo_ws)).returncode == 0
    assert "[alerts]" not in (demo_ws / "mrc.toml").read_text()
    code = (
        "import json, sys\n"
        "from console import cli\n"
        f"code = cli.main(['promote', {MODEL!r}, {CANDIDATE!r}, '--reason', 't', '--workspace', {str(demo_ws)!r}])\n"
        "print(json.dumps({'code': code, 'loaded': [m for m in ('console.notify.delivery',) if m in sys.modules]}),"
        " file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), env=mrc_env(), capture_output=True, text=True,
                          timeout=180)
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, proc.stderr
    assert _production(demo_ws) == CANDIDATE
    assert "console.notify.delivery" not in report["loaded"]
