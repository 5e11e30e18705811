"""Sentinel secrets in the environment and in mrc.toml appear in no output, log, file or exception."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest

from backends.base import PRODUCTION, Approval, BackendError, Lineage
from tests.support import servers
from tests.support.remote import mlflow_toml, remote_env, s3_toml, unique, write_workspace

pytestmark = pytest.mark.integration  # starts real servers on 127.0.0.1

SESSION_TOKEN = "SENTINEL-aws-session-token-0c4b7d2e"
MLFLOW_PASSWORD = "SENTINEL-mlflow-password-5e8a1f3c"
CONFIG_SECRET = "SENTINEL-config-secret-9d2b6a40"
ALL = (*servers.SENTINELS, SESSION_TOKEN, MLFLOW_PASSWORD, CONFIG_SECRET)


def _clean(text: str | bytes, where: str) -> None:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for secret in ALL:
        assert secret not in text, f"a sentinel secret leaked into {where}"


def _clean_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            _clean(path.read_bytes(), str(path))


def _run(mrc, where, *args, env=None):
    result = mrc(*args, env=env or remote_env())
    _clean(result.stdout, f"stdout of mrc {' '.join(args)}")
    _clean(result.stderr, f"stderr of mrc {' '.join(args)}")
    return result


def test_s3_secrets_never_leak(s3_server, s3_workspace, tmp_path, mrc):
    root, registry = s3_workspace
    artifact = tmp_path / "m.pt"
    artifact.write_bytes(b"weights")
    for v in ("v1", "v2"):
        registry.register_version("m", str(artifact), metrics={"auc_roc": 0.9}, lineage=Lineage(), version=v)
        registry.set_approval("m", v, Approval("approved", "a", "", "ok"), expected_status="pending")
    registry.move_pointer("m", PRODUCTION, expected=None, new="v1", actor="a")
    ws = ["--workspace", str(root)]
    for args in (["models"], ["versions", "m", "--json"], ["versions", "m"], ["promote", "m", "v2"],
                 ["rollback", "m", "--json"], ["audit", "--json"], ["promote", "m", "v2", "--expect", "v2"]):
        result = _run(mrc, root, *args, *ws)
        assert result.returncode in (0, 3), result.stderr
    # Unreachable endpoint, with a session token in the chain too: exit 4, and still nothing leaks.
    dead = write_workspace(tmp_path / "dead", s3_toml("http://127.0.0.1:9", unique("dead")))
    result = _run(mrc, dead, "rollback", "m", "--to", "v1", "--workspace", str(dead),
                  env=remote_env({"AWS_SESSION_TOKEN": SESSION_TOKEN}))
    assert result.returncode == 4
    _clean_tree(root)
    _clean((s3_server.root / "weed.log").read_bytes(), "the SeaweedFS log")


def test_mlflow_secrets_never_leak(mlflow_server, mlflow_workspace, tmp_path, mrc):
    root, registry = mlflow_workspace
    artifact = tmp_path / "m.pt"
    artifact.write_bytes(b"weights")
    model = unique("secret")
    version = registry.register_version(model, str(artifact), metrics={"auc_roc": 0.9}, lineage=Lineage()).version
    for args in (["versions", model, "--json"], ["models", "--json"], ["promote", model, version, "--override",
                                                                        "--reason", "test"]):
        result = _run(mrc, root, *args, "--workspace", str(root))
        assert result.returncode == 0, result.stderr
    dead = write_workspace(tmp_path / "dead", mlflow_toml("http://127.0.0.1:9"))
    result = _run(mrc, dead, "versions", model, "--workspace", str(dead),
                  env=remote_env({"MLFLOW_TRACKING_USERNAME": "someone", "MLFLOW_TRACKING_PASSWORD": MLFLOW_PASSWORD}))
    assert result.returncode == 4
    _clean_tree(root)
    _clean((mlflow_server.root / "mlflow.log").read_bytes(), "the MLflow server log")


@pytest.mark.parametrize("toml", [
    '[registry]\nbackend = "s3"\nbucket = "b"\naws_secret_access_key = "{s}"\n',
    '[registry]\nbackend = "mlflow"\ntracking_uri = "http://127.0.0.1:9"\ntoken = "{s}"\n',
    '[registry]\nbackend = "mlflow"\ntracking_uri = "http://user:{s}@127.0.0.1:9"\n',
])
def test_a_secret_in_mrc_toml_is_refused_without_being_echoed(tmp_path, mrc, toml):
    root = write_workspace(tmp_path / "ws", toml.replace("{s}", CONFIG_SECRET))
    result = _run(mrc, root, "versions", "m", "--workspace", str(root))
    assert result.returncode == 2
    assert "mrc.toml: registry." in result.stderr and result.stderr.count("\n") == 1


def test_exceptions_carry_no_secret(tmp_path, monkeypatch):
    from backends.mlflow.registry import MlflowRegistry
    from backends.s3.registry import S3Registry

    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "someone")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", MLFLOW_PASSWORD)
    for registry in (S3Registry("b", endpoint_url="http://127.0.0.1:9", retries=2, retry_base_s=0.01),
                     MlflowRegistry("http://127.0.0.1:9", retries=1, backoff=0)):
        with pytest.raises(BackendError) as err:
            registry.get_pointers("m")
        text = "".join(traceback.format_exception(err.value)) + repr(err.value)
        _clean(text, f"the exception of {type(registry).__name__}")
