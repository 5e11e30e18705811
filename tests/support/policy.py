"""Protected aliases ([policy.production]) through real `mrc` processes on real workspaces: a local
one built here with plain sklearn models, the demo (real trainer), and SeaweedFS for identity."""

from __future__ import annotations

import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.remote import _remote_credentials, s3_server  # noqa: F401  (fixtures)
from tests.support.cli import REPO, mrc_env
from tests.support.remote import s3_toml, unique, write_workspace

MODEL = "fraud"
TRAINER = "alice"


# Shared by the policy tests: `--workspace/--actor` arguments, approvals without a test set, and
# production as the workspace's own SQLite file says it (not through mrc).
NO_GATES = ("--no-gates", "--override")


def ws_args(root: Path, actor: str) -> list[str]:
    return ["--workspace", str(root), "--actor", actor]


def production_of(root: Path) -> str | None:
    import sqlite3

    conn = sqlite3.connect(root / "mrc.db")
    try:
        row = conn.execute("SELECT version FROM pointers WHERE model = ? AND alias = 'production'", (MODEL,)).fetchone()
    finally:
        conn.close()
    return row[0] if row else None


def two_versions(root: Path, *, trainer: str = TRAINER) -> Path:
    """A local workspace holding two sklearn versions of MODEL, both trained by `trainer`."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from backends.base import Lineage
    from console.workspace import Workspace

    Workspace.init(root)
    ws = Workspace.open(root)
    registry = ws.registry()
    registry.ensure_schema()
    ws.audit().ensure_schema()
    rng = np.random.RandomState(7)
    X = rng.rand(200, 3)
    y = (X[:, 0] + 0.1 * rng.rand(200) > 0.55).astype(int)
    for i, c in ((1, 0.5), (2, 2.0)):
        path = root / f"model-{i}.pkl"
        path.write_bytes(pickle.dumps(LogisticRegression(C=c).fit(X, y)))
        registry.register_version(MODEL, str(path), metrics={"auc_roc": 0.9}, artifact_format="sklearn",
                                  lineage=Lineage(code_commit="c0ffee", data_version="tx@1", training_run=f"run-{i}",
                                                  trained_by=trainer))
        path.unlink()
    return root


def protect(root: Path, body: str) -> None:
    """Append a [policy.production] table to the workspace's mrc.toml. These tests play several
    approvers from one OS user, so unless the body says otherwise the team trusts claimed names
    (identity = "claims"); the default, counting verified identities, is tests/cli/test_approvers_are_people.py's."""
    if "identity" not in body:
        body = body.strip() + '\nidentity = "claims"'
    with open(root / "mrc.toml", "a") as fh:
        fh.write("\n[policy.production]\n" + body.strip() + "\n")


@pytest.fixture
def local_ws(tmp_path) -> Path:
    return two_versions(tmp_path / "ws")


# -- a real `mlflow server --app-name basic-auth` (tests/integration/mlflow/test_identity_basic_auth.py) ---------------

MLFLOW_AUTH_MODELS = {"fraud-require": 1, "fraud-two": 1, "fraud-record": 1, "fraud-rollback": 2}  # versions


@pytest.fixture(scope="session")
def mlflow_auth_server():
    """Started once; alice/bob/carol exist, alice logged the versions of MLFLOW_AUTH_MODELS and bob and
    carol may edit them. A server that does not come up fails the tests (never a skip)."""
    import atexit
    import sys
    import time

    from tests.support.mlflow_auth import MlflowAuthServer

    server = MlflowAuthServer()
    atexit.register(server.cleanup)  # also on Ctrl-C or a crash of the test run
    try:
        server.start()
        server.create_users()
        started = time.monotonic()
        server.models = server.build_models([f"{name}:{count}" for name, count in MLFLOW_AUTH_MODELS.items()])
        print(f"mlflow basic-auth server ready in {server.ready_s:.1f} s; models logged by alice in "
              f"{time.monotonic() - started:.1f} s", file=sys.stderr)
        for model in MLFLOW_AUTH_MODELS:
            for user in ("bob", "carol"):
                server.grant(user, model)
        yield server
    finally:
        server.cleanup()


def policy_s3_ws(tmp_path: Path, s3_server, policy: str) -> Path:
    import numpy as np
    from sklearn.tree import DecisionTreeClassifier

    from backends.base import Lineage
    from console.workspace import Workspace

    root = write_workspace(tmp_path / "ws-s3", s3_toml(s3_server.endpoint, unique("policy"))
                           + "\n[policy.production]\n" + policy + "\n")
    registry = Workspace.open(root).registry()
    rng = np.random.RandomState(3)
    X, y = rng.rand(100, 4), rng.randint(0, 2, 100)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(DecisionTreeClassifier(max_depth=3).fit(X, y)))
    registry.register_version(MODEL, str(path), metrics={"auc_roc": 0.8},
                              lineage=Lineage(code_commit="c0ffee", data_version="tx@1", training_run="run-1",
                                              trained_by=TRAINER))
    return root


def stalled_promote(root: Path, actor: str, stall: Path, version: str = "2") -> subprocess.Popen:
    env = mrc_env({"MRC_STALL_AT": "promote:approval-read", "MRC_STALL_FILE": str(stall)})
    return subprocess.Popen([sys.executable, "-m", "console.cli", "promote", MODEL, version, "--reason", "ship",
                             *ws_args(root, actor)], cwd=str(REPO), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_stall(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the promote never reached its stall point"
        time.sleep(0.05)
