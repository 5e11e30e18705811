"""One contract for every registry: local (SQLite), MLflow (real server), S3 (real SeaweedFS).

Each test gets a fresh model name (and, for S3, a fresh prefix), so the shared servers need no
cleaning between tests.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from backends.base import (
    CANDIDATE,
    PRODUCTION,
    Approval,
    BadInputError,
    ConflictError,
    Lineage,
    NotFoundError,
    Registry,
)
from tests.support.remote import BUCKET, unique

BACKENDS = ["local", "mlflow", "s3"]


@pytest.fixture(params=BACKENDS)
def registry(request, tmp_path):
    kind = request.param
    if kind == "local":
        from backends.local.registry import LocalRegistry

        reg = LocalRegistry(tmp_path / "local")
        (tmp_path / "local").mkdir()
        reg.ensure_schema()
    elif kind == "mlflow":
        from backends.mlflow.registry import MlflowRegistry

        reg = MlflowRegistry(request.getfixturevalue("mlflow_server").url, retries=2, backoff=1)
    else:
        from backends.s3.registry import S3Registry

        server = request.getfixturevalue("s3_server")
        reg = S3Registry(BUCKET, prefix=unique("contract"), endpoint_url=server.endpoint, retries=3, retry_base_s=0.05)
    yield reg
    close = getattr(reg, "close", None)
    if close:
        close()


@pytest.fixture
def model() -> str:
    return unique("contract-model")


def _register(registry, model: str, tmp_path: Path, n: int, **lineage):
    artifact = tmp_path / f"model-{n}.pt"
    artifact.write_bytes(f"weights of version {n}".encode() * 10)
    data = dict(code_commit=f"{n:040x}", code_repo="https://example.invalid/repo.git", data_version=f"bc@v{n}",
                data_sha256=hashlib.sha256(f"data{n}".encode()).hexdigest(), training_run=f"run-{n}",
                params={"lr": 0.01 * n, "epochs": 10 + n})
    data.update(lineage)
    return registry.register_version(model, str(artifact), metrics={"auc_roc": 0.9 + n / 100, "f1": 0.8},
                                     lineage=Lineage(**data), description=f"version {n}")


def test_implements_the_protocol(registry):
    assert isinstance(registry, Registry)


def test_registered_versions_are_listed_with_metrics_and_lineage(registry, model, tmp_path):
    first = _register(registry, model, tmp_path, 1)
    second = _register(registry, model, tmp_path, 2)
    assert first.version != second.version
    versions = registry.list_versions(model)
    assert [v.version for v in versions] == [first.version, second.version]
    got = registry.get_version(model, second.version)
    assert got.metrics["auc_roc"] == pytest.approx(0.92)
    assert got.lineage.code_commit == f"{2:040x}"
    assert got.lineage.data_version == "bc@v2"
    assert got.lineage.training_run == "run-2"
    assert got.lineage.is_complete()
    assert got.artifact.sha256 == hashlib.sha256(b"weights of version 2" * 10).hexdigest()
    assert got.approval.status == "pending"
    summary = {m.name: m for m in registry.list_models()}[model]
    assert summary.versions == 2


def test_unknown_model_and_version_are_not_found(registry, model, tmp_path):
    with pytest.raises(NotFoundError):
        registry.list_versions(model)
    with pytest.raises(NotFoundError):
        registry.get_pointers(model)
    _register(registry, model, tmp_path, 1)
    with pytest.raises(NotFoundError):
        registry.get_version(model, "999")
    with pytest.raises(NotFoundError):
        registry.move_pointer(model, PRODUCTION, expected=None, new="999", actor="a")


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", "x" * 200])
def test_names_that_could_escape_are_refused(registry, bad):
    with pytest.raises(BadInputError):
        registry.get_version(bad, "1")


def test_move_pointer_is_compare_and_swap_with_history(registry, model, tmp_path):
    v1 = _register(registry, model, tmp_path, 1).version
    v2 = _register(registry, model, tmp_path, 2).version
    move = registry.move_pointer(model, PRODUCTION, expected=None, new=v1, actor="alice", reason="first")
    assert (move.from_version, move.to_version, move.actor) == (None, v1, "alice")
    # A caller who saw "no production" lost the race: conflict, and the winner stays.
    with pytest.raises(ConflictError) as err:
        registry.move_pointer(model, PRODUCTION, expected=None, new=v2, actor="bob")
    assert err.value.actual == v1
    assert registry.get_pointers(model)[PRODUCTION] == v1
    registry.move_pointer(model, PRODUCTION, expected=v1, new=v2, actor="carol", reason="better")
    assert registry.get_pointers(model)[PRODUCTION] == v2
    assert PRODUCTION in registry.get_version(model, v2).aliases
    assert PRODUCTION not in registry.get_version(model, v1).aliases
    history = registry.pointer_history(model, PRODUCTION)
    assert [(h.from_version, h.to_version, h.actor, h.reason) for h in history] == [
        (None, v1, "alice", "first"), (v1, v2, "carol", "better")]


def test_aliases_are_independent_and_removable(registry, model, tmp_path):
    v1 = _register(registry, model, tmp_path, 1).version
    registry.move_pointer(model, CANDIDATE, expected=None, new=v1, actor="a")
    registry.move_pointer(model, "canary", expected=None, new=v1, actor="a")
    assert registry.get_pointers(model) == {CANDIDATE: v1, "canary": v1}
    registry.move_pointer(model, CANDIDATE, expected=v1, new=None, actor="a", reason="promoted")
    assert registry.get_pointers(model) == {"canary": v1}
    with pytest.raises(ConflictError):
        registry.move_pointer(model, "canary", expected=None, new=None, actor="a")
    assert [h.to_version for h in registry.pointer_history(model, CANDIDATE)] == [v1, None]


def test_approval_is_compare_and_swap_on_status(registry, model, tmp_path):
    v1 = _register(registry, model, tmp_path, 1).version
    stored = registry.set_approval(model, v1, Approval("approved", "alice", "", "gates pass", "ab" * 32),
                                   expected_status="pending")
    assert stored.status == "approved"
    with pytest.raises(ConflictError):
        registry.set_approval(model, v1, Approval("rejected", "bob", "", "no"), expected_status="pending")
    got = registry.get_version(model, v1).approval
    assert (got.status, got.by, got.reason, got.gate_report_sha256) == ("approved", "alice", "gates pass", "ab" * 32)


def test_fetch_artifact_returns_the_registered_bytes(registry, model, tmp_path):
    v1 = _register(registry, model, tmp_path, 1).version
    dest = tmp_path / "fetched"
    dest.mkdir()
    path = registry.fetch_artifact(model, v1, str(dest))
    assert Path(path).read_bytes() == b"weights of version 1" * 10
    assert registry.verify_artifact(model, v1).sha256 == hashlib.sha256(b"weights of version 1" * 10).hexdigest()


def test_release_promote_and_rollback_through_any_registry(registry, model, tmp_path):
    from console.release.audit import AuditLog
    from console.release.actions import promote, rollback

    audit = AuditLog(str(tmp_path / "audit.db"))
    audit.ensure_schema()
    v1 = _register(registry, model, tmp_path, 1).version
    v2 = _register(registry, model, tmp_path, 2).version
    for v in (v1, v2):
        registry.set_approval(model, v, Approval("approved", "a", "", "ok"), expected_status="pending")
    promote(registry, audit, model, v1, actor="a")
    promote(registry, audit, model, v2, actor="a")
    outcome = rollback(registry, audit, model, actor="oncall")
    assert (outcome.detail["from"], outcome.version) == (v2, v1)
    assert registry.get_pointers(model)[PRODUCTION] == v1
    assert [e.action for e in audit.events()] == ["promote", "promote", "rollback"]
    assert audit.verify().ok
