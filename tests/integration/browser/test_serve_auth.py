"""`mrc serve` is a door to the engineer's console: a real server, a real WebSocket client.

A foreign Origin, a missing token or a foreign Host are refused; the printed URL's token and the
server's own Origin are let in, and the console behind it acts as "<actor> via mrc serve".
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.commands.serve_cmds import descendants
from tests.support.cli import REPO, mrc_env

TOKEN = "serve-token-for-tests-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(tmp_path, mrc):
    ws = tmp_path / "ws"
    assert mrc("init", "--workspace", str(ws)).returncode == 0
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "console.cli", "serve", "--workspace", str(ws), "--port", str(port)],
                              cwd=REPO, env=mrc_env({"MRC_SERVE_TOKEN": TOKEN, "MRC_ACTOR": "alice"}),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import urllib.request

    deadline = time.monotonic() + 60  # a generous bound on start-up; the outcome does not depend on it
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/static/js/textual.js", timeout=5).close()
            break
        except OSError:
            assert server.poll() is None, server.communicate()
            assert time.monotonic() < deadline, "mrc serve never answered"
            time.sleep(0.2)
    try:
        yield port, server
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


async def _status(url: str, **headers) -> int:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers) as response:
            return response.status


async def _ws(url: str, origin: str | None, cookie_from: str | None = None) -> int:
    """101 when the WebSocket opened (and the console behind it spoke), else the refusal's status."""
    import aiohttp

    jar = aiohttp.CookieJar(unsafe=True)  # unsafe: keep cookies of an IP address host
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        if cookie_from:
            async with http.get(cookie_from) as response:
                assert response.status == 200
        headers = {"Origin": origin} if origin else {}
        try:
            async with http.ws_connect(url, headers=headers) as ws:
                message = await ws.receive(timeout=120)  # the console's first bytes
                assert message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT), message
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


def test_websocket_needs_the_token_and_its_own_origin(served):
    port, server = served
    base = f"http://127.0.0.1:{port}"
    own = base
    ws = f"ws://127.0.0.1:{port}/ws"
    assert asyncio.run(_status(f"{base}/")) == 403
    assert asyncio.run(_status(f"{base}/?token=wrong-{TOKEN}")) == 403
    assert asyncio.run(_status(f"{base}/?token={TOKEN}")) == 200
    # DNS rebinding: the right token through a foreign name is still refused
    assert asyncio.run(_status(f"{base}/?token={TOKEN}", Host=f"evil.example:{port}")) == 403
    assert asyncio.run(_ws(f"{ws}?token={TOKEN}", "http://evil.example")) == 403
    assert asyncio.run(_ws(f"{ws}?token={TOKEN}", f"http://127.0.0.1:{port + 1}")) == 403
    assert asyncio.run(_ws(f"{ws}?token={TOKEN}", None)) == 403
    assert asyncio.run(_ws(ws, own)) == 403
    assert asyncio.run(_ws(f"{ws}?token=x{TOKEN[1:]}", own)) == 403
    # the page's own path: the token in the URL once, then its cookie on the WebSocket
    assert asyncio.run(_ws(f"{ws}?width=80&height=24", own, cookie_from=f"{base}/?token={TOKEN}")) == 101
    assert asyncio.run(_ws(f"{ws}?token={TOKEN}&width=80&height=24", f"http://localhost:{port}")) == 101


def test_console_behind_serve_acts_as_actor_via_mrc_serve(served):
    port, server = served
    seen: list[str] = []

    async def connect_and_look() -> None:
        import aiohttp

        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"ws://127.0.0.1:{port}/ws?token={TOKEN}",
                                       headers={"Origin": f"http://127.0.0.1:{port}"}) as ws:
                await ws.receive(timeout=120)
                for pid in descendants(server.pid):
                    try:
                        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                    except OSError:
                        continue
                    if b"console.cli" in cmdline:
                        seen.append(cmdline[cmdline.index(b"--actor") + 1].decode())

    asyncio.run(connect_and_look())
    assert seen == ["alice via mrc serve"]


def test_token_printed_once_in_the_url_and_random_when_not_given(tmp_path, mrc):
    ws = tmp_path / "ws"
    assert mrc("init", "--workspace", str(ws)).returncode == 0
    tokens = []
    for _ in range(2):
        port = free_port()
        env = mrc_env({"MRC_ACTOR": "alice"})
        env.pop("MRC_SERVE_TOKEN", None)
        server = subprocess.Popen([sys.executable, "-m", "console.cli", "serve", "--workspace", str(ws),
                                   "--port", str(port)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        try:
            lines = []
            while not any("?token=" in line for line in lines):
                line = server.stderr.readline()
                assert line, f"mrc serve ended without printing its URL: {lines}"
                lines.append(line)
        finally:
            server.send_signal(signal.SIGTERM)
            out, err = server.communicate(timeout=30)
        text = "".join(lines) + err
        assert text.count("?token=") == 1
        url = next(line.strip() for line in lines if "?token=" in line)
        assert url.startswith(f"http://127.0.0.1:{port}/?token=")
        tokens.append(url.split("?token=")[1])
    assert tokens[0] != tokens[1] and min(map(len, tokens)) >= 32


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::"])
def test_remote_host_needs_the_acknowledgement(tmp_path, mrc, host):
    ws = tmp_path / "ws"
    assert mrc("init", "--workspace", str(ws)).returncode == 0
    result = mrc("serve", "--workspace", str(ws), "--host", host, "--port", str(free_port()))
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "--i-understand-remote-access" in result.stderr


def test_short_serve_token_refused(tmp_path, mrc):
    ws = tmp_path / "ws"
    assert mrc("init", "--workspace", str(ws)).returncode == 0
    result = mrc("serve", "--workspace", str(ws), "--port", str(free_port()), env={"MRC_SERVE_TOKEN": "short"})
    assert result.returncode == 2 and "MRC_SERVE_TOKEN" in result.stderr
