"""`mrc serve` on 127.0.0.1, opened by a real headless Chromium: the page runs the console, the
console reaches its home screen, the screenshot shows it, and stopping `mrc serve` stops every
console process it started."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from console.commands.serve_cmds import descendants
from tests.support.cli import REPO, mrc_env

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wait_file_line(path: Path, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return path.read_text()
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never logged in {path}: {path.read_text() if path.exists() else 'no log'}")


async def screenshot_over_cdp(chromium: str, url: str, out: Path, profile: Path, ready, while_open,
                              timeout: float = 60.0) -> None:
    """Open url in headless Chromium, wait until ready() is true (the console logged its home
    screen) plus a moment to paint, and save a PNG through the DevTools protocol."""
    import aiohttp  # textual-serve's own dependency

    proc = await asyncio.create_subprocess_exec(
        chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
        "--remote-debugging-address=127.0.0.1", "--window-size=1280,860", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            assert time.monotonic() < deadline, "chromium never opened its DevTools port"
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                pages = [t for t in await response.json() if t["type"] == "page"]
            async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                ids = iter(range(1, 10_000))

                async def call(method: str, **params):
                    msg_id = next(ids)
                    await ws.send_str(json.dumps({"id": msg_id, "method": method, "params": params}))
                    while True:
                        msg = json.loads((await ws.receive()).data)
                        if msg.get("id") == msg_id:
                            return msg.get("result", {})

                await call("Page.enable")
                await call("Page.navigate", url=url)
                deadline = time.monotonic() + timeout
                while not ready():
                    assert time.monotonic() < deadline, "the console never reached its home screen"
                    await asyncio.sleep(0.25)
                await asyncio.sleep(2.5)  # the terminal in the page paints what the console sent
                shot = await call("Page.captureScreenshot", format="png")
                out.write_bytes(base64.b64decode(shot["data"]))
                await asyncio.to_thread(while_open)  # the page is still connected
    finally:
        proc.terminate()
        await proc.wait()


def test_mrc_serve_shows_the_home_screen_in_chromium_and_stops_its_tree(release_ws, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed (apt-get install chromium)")
    port = free_port()
    log = tmp_path / "console.log"
    token = "browser-test-serve-token-0123456789"
    env = mrc_env({"MRC_CONSOLE_LOG": str(log), "MRC_ACTOR": "browser", "MRC_SERVE_TOKEN": token})
    server = subprocess.Popen([sys.executable, "-m", "console.cli", "serve", "--workspace", str(release_ws),
                               "--port", str(port)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    shot = tmp_path / "home.png"
    consoles: list[int] = []

    def stop_server_while_the_page_is_open() -> None:
        consoles.extend(pid for pid in descendants(server.pid)
                        if b"console.cli" in Path(f"/proc/{pid}/cmdline").read_bytes())
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    try:
        page = wait_http(f"http://127.0.0.1:{port}/?token={token}")
        assert "xterm" in page  # the textual-serve page, served on loopback
        profile = tmp_path / "chromium-profile"
        profile.mkdir()
        asyncio.run(screenshot_over_cdp(chromium, f"http://127.0.0.1:{port}/?token={token}", shot, profile,
                                        lambda: log.exists() and "home loaded: 2 models" in log.read_text(),
                                        stop_server_while_the_page_is_open))
        text = wait_file_line(log, "home loaded", 1)
        assert "home loaded: 2 models, 6 versions" in text
        assert consoles, "no console process was running under mrc serve while the page was open"
        keep = os.environ.get("MRC_KEEP_SCREENSHOT")
        if keep:
            shutil.copyfile(shot, keep)
        from PIL import Image

        image = Image.open(shot).convert("RGB")
        assert image.size[0] >= 1000
        colours = image.getcolors(maxcolors=1 << 20) or []
        assert len(colours) > 20, "the page is blank: the console never painted"
        # the home screen: a production cell is painted in the production colour (bold reverse green)
        greens = sum(n for n, (r, g, b) in colours if g > 150 and g > r + 30 and g > b + 60)
        assert greens > 200, "no production highlight on the page"
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                raise
    assert server.returncode == 0, server.stdout.read()
    time.sleep(0.5)
    alive = [pid for pid in consoles if Path(f"/proc/{pid}").exists()
             and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    assert alive == [], f"console processes left behind by mrc serve: {alive}"
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
