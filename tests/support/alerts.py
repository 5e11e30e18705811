"""A real Alertmanager (Debian's prometheus-alertmanager) on 127.0.0.1, started once per test
session, and a local webhook receiver (an http.server thread) that records what it is sent.

Missing binary: the tests fail, they do not skip. Stopped at the end of the session, also when
a test fails (the fixture's finally, and atexit for an interrupted run)."""

from __future__ import annotations

import atexit
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.canary import controllers, load, served_ws  # noqa: F401  (fixtures used here)
from tests.support.cli import run_mrc

AM_CONFIG = """\
route:
  receiver: "null"
receivers:
  - name: "null"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alertmanager_binary() -> str:
    for name in ("prometheus-alertmanager", "alertmanager"):
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError("prometheus-alertmanager is not installed (tests/run.sh installs Debian's package); "
                         "the alert tests need a real Alertmanager")


class Alertmanager:
    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        (workdir / "alertmanager.yml").write_text(AM_CONFIG)
        self.log = open(workdir / "alertmanager.log", "wb")
        self.proc = subprocess.Popen(
            [alertmanager_binary(), f"--config.file={workdir / 'alertmanager.yml'}",
             f"--storage.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--cluster.listen-address="],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"alertmanager exited {self.proc.returncode}: "
                                     f"{(workdir / 'alertmanager.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError("alertmanager did not become ready within 60 s")

    def alerts(self, **filters: str) -> list[dict]:
        """GET /api/v2/alerts: the alerts it holds as active (a resolved one is no longer listed)."""
        query = "&".join(f"filter={k}%3D%22{v}%22" for k, v in filters.items())
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts" + (f"?{query}" if query else ""), timeout=10) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory):
    am = Alertmanager(tmp_path_factory.mktemp("alertmanager"))
    atexit.register(am.stop)
    try:
        yield am
    finally:
        am.stop()


class WebhookReceiver:
    """Records every POST: its headers and raw body, as the receiver saw them."""

    def __init__(self):
        received = self.received = []
        self.status = 200

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append({"headers": dict(self.headers), "body": body})
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


def wait_for(condition, timeout: float = 60.0, what: str = "condition"):
    """Poll until condition() returns something truthy (generous timeout; never decides by time)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


SECRET = "SENTINEL-webhook-secret-7d1e09c4"


SECRET_ENV = {"MRC_TEST_HOOK_SECRET": SECRET}


RUNBOOK = "https://runbooks.example/mrc/canary-rolled-back"


def configure(ws, alertmanager_url: str, hook_url: str | None = None, **extra) -> str:
    """[alerts] appended to the workspace's mrc.toml; returns the test's own label value, which
    keeps this test's alerts apart in the session's one Alertmanager."""
    run = uuid.uuid4().hex[:10]
    lines = ["", "[alerts]", f'alertmanager_url = "{alertmanager_url}"', f'runbook_url = "{RUNBOOK}"',
             "timeout_s = 2", f'labels = {{ run = "{run}" }}']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    if hook_url:
        lines += ["", "[[alerts.webhooks]]", 'name = "chat"', f'url = "{hook_url}"', 'secret_env = "MRC_TEST_HOOK_SECRET"']
    with open(ws / "mrc.toml", "a") as fh:
        fh.write("\n".join(lines) + "\n")
    return run


def set_alertmanager_url(ws, url: str) -> None:
    text = (ws / "mrc.toml").read_text()
    start = text.index("alertmanager_url = ")
    end = text.index("\n", start)
    (ws / "mrc.toml").write_text(text[:start] + f'alertmanager_url = "{url}"' + text[end:])


def audit(ws) -> list[dict]:
    result = run_mrc("audit", "--json", "--workspace", str(ws))
    assert result.returncode == 0, result.stderr
    return result.json()["events"]


def verified(delivery: dict) -> dict:
    """The webhook body, after checking its signature the way a receiver must (constant-time)."""
    expected = "sha256=" + hmac.new(SECRET.encode(), delivery["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(delivery["headers"]["X-Mrc-Signature"], expected)
    return json.loads(delivery["body"])
