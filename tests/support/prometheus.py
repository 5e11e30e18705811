"""A real Prometheus (Debian's `prometheus` binary) on 127.0.0.1, one per test that asks.

Two ways to fill it:
- `preloaded_prometheus(openmetrics_text)`: `promtool tsdb create-blocks-from openmetrics` writes
  TSDB blocks into a fresh storage folder before Prometheus starts: exact numbers, no waiting.
- `scraping_prometheus(target)`: Prometheus scrapes a prometheus-client endpoint in this test
  process every second: the live path, as in a cluster.
Every process started here is stopped by the fixture, even when the test fails.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:  # a test that needs a server starts it, or fails: never skipped
        pytest.fail(f"`{name}` is not installed: apt-get install -y --no-install-recommends prometheus")
    return path


@contextmanager
def run_prometheus(workdir: Path, scrape_configs: str = ""):
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                      + (f"scrape_configs:\n{scrape_configs}" if scrape_configs else ""))
    storage = workdir / "tsdb"
    storage.mkdir(exist_ok=True)
    log = open(workdir / "prometheus.log", "wb")
    proc = subprocess.Popen(
        [_binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={storage}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=30d"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(workdir))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited {proc.returncode}: {(workdir / 'prometheus.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("prometheus did not become ready in 30 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def preloaded_prometheus(tmp_path):
    """preloaded_prometheus(openmetrics_text) -> URL of a Prometheus holding exactly those samples."""
    stack = []

    def start(openmetrics: str) -> str:
        workdir = tmp_path / f"prom{len(stack)}"
        (workdir / "tsdb").mkdir(parents=True)
        source = workdir / "samples.om"
        source.write_text(openmetrics)
        subprocess.run([_binary("promtool"), "tsdb", "create-blocks-from", "openmetrics", "-q",
                        str(source), str(workdir / "tsdb")], check=True, capture_output=True, timeout=120)
        ctx = run_prometheus(workdir)
        url = ctx.__enter__()
        stack.append(ctx)
        return url

    yield start
    for ctx in reversed(stack):
        ctx.__exit__(None, None, None)


@pytest.fixture
def scraping_prometheus(tmp_path):
    """scraping_prometheus("127.0.0.1:PORT") -> URL of a Prometheus scraping that target every second."""
    stack = []

    def start(target: str) -> str:
        workdir = tmp_path / f"prom{len(stack)}"
        workdir.mkdir()
        ctx = run_prometheus(workdir, f"  - job_name: queue-proxy\n    static_configs:\n      - targets: ['{target}']\n")
        url = ctx.__enter__()
        stack.append(ctx)
        return url

    yield start
    for ctx in reversed(stack):
        ctx.__exit__(None, None, None)
