"""Open a page in a real headless Chromium over the DevTools protocol: console errors, requests
that left the machine, a DOM probe and a screenshot. Chromium is Debian's `chromium` package."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageVisit:
    errors: list[str] = field(default_factory=list)
    remote_requests: list[str] = field(default_factory=list)
    probe: object = None
    screenshot: Path | None = None


async def _visit(ws_url: str, url: str, probe_js: str, screenshot: Path, settle_s: float) -> PageVisit:
    import aiohttp

    visit = PageVisit()
    counter = iter(range(1, 10_000))
    pending: dict[int, asyncio.Future] = {}
    loaded = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url, max_msg_size=0) as ws:
            async def reader():
                async for msg in ws:
                    data = json.loads(msg.data)
                    if "id" in data and data["id"] in pending:
                        pending.pop(data["id"]).set_result(data)
                        continue
                    method, params = data.get("method"), data.get("params", {})
                    if method == "Runtime.exceptionThrown":
                        d = params["exceptionDetails"]
                        visit.errors.append(f"exception: {d.get('text')} {d.get('exception', {}).get('description', '')}")
                    elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                        visit.errors.append("console.error: " + " ".join(str(a.get("value", a.get("description")))
                                                                         for a in params.get("args", [])))
                    elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                        visit.errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
                    elif method == "Network.requestWillBeSent":
                        req_url = params["request"]["url"]
                        if not req_url.startswith(("file:", "data:", "about:", "blob:")):
                            visit.remote_requests.append(req_url)
                    elif method == "Page.loadEventFired":
                        loaded.set()

            task = asyncio.create_task(reader())

            async def call(method, **params):
                msg_id = next(counter)
                fut = asyncio.get_running_loop().create_future()
                pending[msg_id] = fut
                await ws.send_str(json.dumps({"id": msg_id, "method": method, "params": params}))
                reply = await asyncio.wait_for(fut, 60)
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

            for domain in ("Runtime", "Log", "Network", "Page"):
                await call(f"{domain}.enable")
            await call("Emulation.setDeviceMetricsOverride", width=1280, height=2400, deviceScaleFactor=1, mobile=False)
            await call("Page.navigate", url=url)
            await asyncio.wait_for(loaded.wait(), 60)
            await asyncio.sleep(settle_s)  # plotly draws after load
            result = await call("Runtime.evaluate", expression=probe_js, returnByValue=True)
            visit.probe = result.get("result", {}).get("value")
            shot = await call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            visit.screenshot = screenshot
            task.cancel()
    return visit


def visit_page(path: Path, probe_js: str, screenshot: Path, settle_s: float = 2.0) -> PageVisit:
    binary = chromium_binary()
    if binary is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    profile = Path(tempfile.mkdtemp(prefix="mrc-chromium-"))
    proc = subprocess.Popen(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        import urllib.request

        for _ in range(100):
            try:
                targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5).read())
                page = next(t for t in targets if t.get("type") == "page")
                break
            except (OSError, StopIteration):
                time.sleep(0.1)
        else:
            raise RuntimeError("chromium has no page target")
        return asyncio.run(_visit(page["webSocketDebuggerUrl"], path.resolve().as_uri(), probe_js, screenshot, settle_s))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
