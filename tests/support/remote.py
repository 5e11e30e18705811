"""Fixtures of the remote registries (MLflow, SeaweedFS), imported by the folder conftests that need them.

The servers behind them are reference-counted in servers.py, so one MLflow server and one
SeaweedFS run per test session whichever folders are collected.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.support import servers

BUCKET = "mrc-registry-test"


def remote_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Credentials the usual way (environment), sentinel values; nothing read from ~/.aws."""
    env = {
        "AWS_ACCESS_KEY_ID": servers.ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": servers.SECRET_KEY,
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/nonexistent/mrc-test-aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/mrc-test-aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
        "MLFLOW_TRACKING_TOKEN": servers.MLFLOW_TOKEN,
    }
    env.update(extra or {})
    return env


@pytest.fixture(autouse=True)
def _remote_credentials(monkeypatch):
    for key, value in remote_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def s3_server():
    server = servers.shared_seaweed()
    server.create_bucket(BUCKET)
    yield server
    servers.release("seaweed")


@pytest.fixture(scope="session")
def mlflow_server():
    server = servers.shared_mlflow()
    yield server
    servers.release("mlflow")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def write_workspace(root: Path, registry_toml: str) -> Path:
    from console.release.audit import AuditLog

    root.mkdir(parents=True, exist_ok=True)
    (root / "mrc.toml").write_text(registry_toml)
    AuditLog(str(root / "mrc.db")).ensure_schema()  # the audit log stays in the workspace
    return root


def s3_toml(endpoint: str, prefix: str, **extra) -> str:
    lines = ["[registry]", 'backend = "s3"', f'bucket = "{BUCKET}"', f'endpoint_url = "{endpoint}"',
             f'prefix = "{prefix}"', 'region = "us-east-1"', "retries = 3", "retry_base_s = 0.05"]
    lines += [f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in extra.items()]
    return "\n".join(lines).replace("'", '"') + "\n"


def mlflow_toml(url: str, **extra) -> str:
    lines = ["[registry]", 'backend = "mlflow"', f'tracking_uri = "{url}"', "retries = 2", "backoff = 1"]
    lines += [f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in extra.items()]
    return "\n".join(lines).replace("'", '"') + "\n"


@pytest.fixture
def s3_workspace(tmp_path, s3_server):
    """(workspace dir, registry) on a fresh prefix of the shared bucket."""
    from console.workspace import Workspace

    root = write_workspace(tmp_path / "ws-s3", s3_toml(s3_server.endpoint, unique("t")))
    return root, Workspace.open(root).registry()


@pytest.fixture
def mlflow_workspace(tmp_path, mlflow_server):
    from console.workspace import Workspace

    root = write_workspace(tmp_path / "ws-mlflow", mlflow_toml(mlflow_server.url))
    return root, Workspace.open(root).registry()


def make_artifact(path: Path, content: bytes | None = None) -> Path:
    path.write_bytes(content if content is not None else os.urandom(256))
    return path
