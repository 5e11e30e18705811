"""A server stopped mid-operation, or answering 500: retries with backoff, then a clear error,
and the pointer and its history stay consistent (no half-written move).

500s come from FaultProxy (servers.py), a loopback proxy in front of the real server: either it
answers 500 without forwarding (the write never lands) or after forwarding (the write landed,
the client hears a failure). "Stopped" is a real SeaweedFS killed with SIGKILL mid-move, and for
MLflow the proxy closing its socket (the client sees connection refused, as from a stopped server;
the shared MLflow server is not restarted because it takes 10-20 s to come back).
"""

from __future__ import annotations

import time

import pytest

from backends.base import PRODUCTION, BackendError, Lineage
from backends.s3.registry import S3Registry
from tests.support.remote import BUCKET, mlflow_toml, remote_env, s3_toml, unique, write_workspace
from tests.support.servers import FaultProxy, SeaweedServer

pytestmark = pytest.mark.integration  # starts real servers on 127.0.0.1


def _s3(endpoint: str, prefix: str) -> S3Registry:
    return S3Registry(BUCKET, prefix=prefix, endpoint_url=endpoint, retries=3, retry_base_s=0.05, timeout_s=5)


def _seed(registry, tmp_path, model: str) -> None:
    for n in (1, 2):
        artifact = tmp_path / f"m{n}.pt"
        artifact.write_bytes(f"weights {n}".encode())
        registry.register_version(model, str(artifact), metrics={"auc_roc": 0.9}, lineage=Lineage(), version=f"v{n}")
    registry.move_pointer(model, PRODUCTION, expected=None, new="v1", actor="setup")


def _moves(registry, model):
    return [(h.from_version, h.to_version) for h in registry.pointer_history(model, PRODUCTION)]


def _bucket_pointer(client, prefix, model):
    return client.get_object(Bucket=BUCKET, Key=f"{prefix}/models/{model}/production/version.txt")["Body"].read().decode()


def test_s3_500_on_every_write_retries_with_backoff_then_changes_nothing(s3_server, tmp_path):
    armed = {"on": False}
    proxy = FaultProxy(s3_server.endpoint, rule=lambda method, path: "500" if armed["on"] and method == "PUT" else None)
    try:
        prefix, model = unique("f500"), "m"
        registry = _s3(proxy.url, prefix)
        _seed(registry, tmp_path, model)
        armed["on"] = True
        started = time.monotonic()
        with pytest.raises(BackendError) as err:
            registry.move_pointer(model, PRODUCTION, expected="v1", new="v2", actor="a")
        elapsed = time.monotonic() - started
        armed["on"] = False
        assert "failed after 3 attempts (HTTP 500" in str(err.value)
        assert proxy.count("PUT", "/history/production/", 500) == 3
        assert elapsed >= 0.05 * 0.5 * (1 + 2)  # it backed off between attempts
        assert registry.get_pointers(model)[PRODUCTION] == "v1"
        assert _moves(registry, model) == [(None, "v1")]
        assert _bucket_pointer(s3_server.client(), prefix, model) == "v1"
    finally:
        proxy.stop()


def test_s3_500_between_the_event_and_the_pointer_write_is_completed_not_lost(s3_server, tmp_path):
    armed = {"on": False}
    proxy = FaultProxy(s3_server.endpoint, rule=lambda method, path: "500" if armed["on"] and method == "PUT"
                       and path.split("?")[0].endswith("production/version.txt") else None)
    try:
        prefix, model = unique("fptr"), "m"
        registry = _s3(proxy.url, prefix)
        _seed(registry, tmp_path, model)
        armed["on"] = True
        with pytest.raises(BackendError) as err:
            registry.move_pointer(model, PRODUCTION, expected="v1", new="v2", actor="a")
        assert "recorded as event 2" in str(err.value) and "completes it" in str(err.value)
        # The move is committed (its event exists): mrc reports it, and history agrees with the pointer.
        assert _bucket_pointer(s3_server.client(), prefix, model) == "v1"
        assert registry.get_pointers(model)[PRODUCTION] == "v2"
        assert _moves(registry, model) == [(None, "v1"), ("v1", "v2")]
        armed["on"] = False
        # The next move completes the pending write first, then makes its own.
        registry.move_pointer(model, PRODUCTION, expected="v2", new="v1", actor="b", reason="rollback")
        assert _bucket_pointer(s3_server.client(), prefix, model) == "v1"
        assert _moves(registry, model) == [(None, "v1"), ("v1", "v2"), ("v2", "v1")]
    finally:
        proxy.stop()


def test_s3_500_after_the_event_landed_is_recognised_as_our_own(s3_server, tmp_path):
    fired = {"n": 0}

    def rule(method, path):
        if method == "PUT" and "/history/production/0000000002" in path and fired["n"] == 0:
            fired["n"] += 1
            return "500-after"
        return None

    proxy = FaultProxy(s3_server.endpoint, rule=rule)
    try:
        prefix, model = unique("fafter"), "m"
        registry = _s3(proxy.url, prefix)
        _seed(registry, tmp_path, model)
        move = registry.move_pointer(model, PRODUCTION, expected="v1", new="v2", actor="a")
        assert (move.to_version, move.seq) == ("v2", 2)
        assert fired["n"] == 1
        assert _moves(registry, model) == [(None, "v1"), ("v1", "v2")]
        assert _bucket_pointer(s3_server.client(), prefix, model) == "v2"
    finally:
        proxy.stop()


def test_s3_server_killed_mid_move_then_restarted(tmp_path, mrc):
    """A real SeaweedFS dies right after the move's event is written; mrc fails cleanly, and after
    the restart the pointer, its history and the bucket agree.

    Deterministic under load: the proxy answers the event's PUT before its `after` hook kills the
    server, so the client's next request could otherwise reach the still-living server first. Every
    request that arrives once the event's PUT was seen waits (an Event, no clock) until the kill is
    done, so the pointer write always meets a dead server.
    """
    import threading

    server = SeaweedServer(tmp_path / "weed").start(timeout=600)
    armed = {"on": False, "event_seen": False}
    killed = threading.Event()

    def is_event_put(method, path):
        return method == "PUT" and "/history/production/" in path

    def rule(method, path):
        if armed["event_seen"]:
            killed.wait()  # the kill below happens before anything after the event is forwarded
        elif armed["on"] and is_event_put(method, path):
            armed["event_seen"] = True
        return None

    def after(method, path, status):
        if armed["on"] and is_event_put(method, path):
            armed["on"] = False
            server.kill()
            killed.set()

    proxy = FaultProxy(server.endpoint, rule=rule, after=after)
    try:
        server.create_bucket(BUCKET)
        prefix, model = unique("fkill"), "m"
        registry = _s3(proxy.url, prefix)
        _seed(registry, tmp_path, model)
        armed["on"] = True
        with pytest.raises(BackendError) as err:
            registry.move_pointer(model, PRODUCTION, expected="v1", new="v2", actor="a")
        assert killed.is_set() and "failed after 3 attempts" in str(err.value)
        # While it is down: the CLI says so in one line and exits 4.
        root = write_workspace(tmp_path / "ws", s3_toml(proxy.url, prefix))
        result = mrc("rollback", model, "--to", "v1", "--workspace", str(root), env=remote_env())
        assert result.returncode == 4, result.stderr
        assert result.stderr.count("\n") == 1 and "failed after 3 attempts" in result.stderr
        server.start(timeout=600)
        # `start` returns once the S3 gateway lists buckets; the volume holding the objects may
        # register a little later on a loaded machine: wait for the data itself to be served.
        _wait_for(lambda: _bucket_pointer(server.client(), prefix, model))
        assert registry.get_pointers(model)[PRODUCTION] == "v2"
        assert _moves(registry, model) == [(None, "v1"), ("v1", "v2")]
        assert _bucket_pointer(server.client(), prefix, model) == "v1"  # the write the crash cut off
        result = mrc("rollback", model, "--json", "--workspace", str(root), env=remote_env())
        assert result.returncode == 0, result.stderr
        assert result.json()["version"] == "v1"
        assert _moves(registry, model) == [(None, "v1"), ("v1", "v2"), ("v2", "v1")]
        assert _bucket_pointer(server.client(), prefix, model) == "v1"
    finally:
        killed.set()
        proxy.stop()
        server.cleanup()


def _wait_for(read, timeout: float = 600.0):
    """read() once it stops raising: a condition polled with a generous bound, not a timing guard."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return read()
        except Exception:  # noqa: BLE001  (not served yet)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _mlflow_model(url: str, versions: int = 2) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(url)
    model = unique("fail")
    client.create_registered_model(model)
    for _ in range(versions):
        client.create_model_version(model, "s3://elsewhere/model", tags={"mrc.approval.status": "approved"})
    return model


def test_mlflow_500_on_the_alias_write_is_recorded_and_completed(mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    from backends.mlflow.registry import MlflowRegistry

    armed = {"on": False}
    proxy = FaultProxy(mlflow_server.url, rule=lambda method, path: "500" if armed["on"] and method == "POST"
                       and "registered-models/alias" in path else None)
    try:
        model = _mlflow_model(mlflow_server.url)
        registry = MlflowRegistry(proxy.url, retries=2, backoff=1)
        registry.move_pointer(model, PRODUCTION, expected=None, new="1", actor="setup")
        armed["on"] = True
        with pytest.raises(BackendError) as err:
            registry.move_pointer(model, PRODUCTION, expected="1", new="2", actor="a")
        assert "recorded as ledger entry 2" in str(err.value)
        assert proxy.count("POST", "registered-models/alias", 500) == 3  # first try and 2 retries
        direct = MlflowClient(mlflow_server.url)
        assert direct.get_registered_model(model).aliases == {"champion": "1"}
        assert registry.get_pointers(model)[PRODUCTION] == "2"
        assert _moves(registry, model) == [(None, "1"), ("1", "2")]
        armed["on"] = False
        registry.move_pointer(model, PRODUCTION, expected="2", new="1", actor="b")
        assert direct.get_registered_model(model).aliases == {"champion": "1"}
        assert _moves(registry, model) == [(None, "1"), ("1", "2"), ("2", "1")]
    finally:
        proxy.stop()


def test_mlflow_unreachable_fails_cleanly_and_writes_nothing(mlflow_server, tmp_path, mrc):
    from backends.mlflow.registry import MlflowRegistry

    proxy = FaultProxy(mlflow_server.url)
    model = _mlflow_model(mlflow_server.url)
    direct = MlflowRegistry(mlflow_server.url)
    direct.move_pointer(model, PRODUCTION, expected=None, new="1", actor="setup")
    root = write_workspace(tmp_path / "ws", mlflow_toml(proxy.url))
    proxy.stop()  # nothing listens there any more: connection refused, as from a stopped server
    started = time.monotonic()
    result = mrc("promote", model, "2", "--workspace", str(root), env=remote_env())
    assert result.returncode == 4, result.stderr
    assert result.stderr.startswith("mrc: backend error: MLflow at http://127.0.0.1:") and result.stderr.count("\n") == 1
    assert time.monotonic() - started < 60
    assert direct.get_pointers(model) == {PRODUCTION: "1"}
    assert _moves(direct, model) == [(None, "1")]
