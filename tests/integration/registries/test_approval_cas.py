"""Issue 13 item 2: the approval check and the pointer move are one compare-and-swap.

A reject that lands between promote's approval read and its pointer move makes the promotion
fail (exit 3, one line), in each registry: local SQLite, MLflow (real server), S3 (SeaweedFS).
The window is held open by the MRC_STALL_AT hook, which waits on a file: nothing here depends
on timing.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backends.base import PRODUCTION, Approval, ConflictError, Lineage
from tests.support.cli import REPO, mrc_env
from tests.support.remote import mlflow_toml, s3_toml, unique, write_workspace

POLL_LIMIT_S = 240  # generous: the machine is loaded; the outcome never depends on it


def _workspace(kind: str, tmp_path: Path, request, mrc) -> Path:
    if kind == "local":
        root = tmp_path / "ws-local"
        assert mrc("init", "--workspace", str(root)).returncode == 0
        return root
    if kind == "s3":
        server = request.getfixturevalue("s3_server")
        return write_workspace(tmp_path / "ws-s3", s3_toml(server.endpoint, unique("cas")))
    server = request.getfixturevalue("mlflow_server")
    return write_workspace(tmp_path / "ws-mlflow", mlflow_toml(server.url))


def _registry(root: Path):
    from console.workspace import Workspace

    return Workspace.open(root).registry()


def _register(registry, model: str, tmp_path: Path, n: int) -> str:
    artifact = tmp_path / f"model-{n}.pt"
    artifact.write_bytes(f"weights {n} ".encode() * 50)
    mv = registry.register_version(model, str(artifact), metrics={"auc_roc": 0.9}, lineage=Lineage(
        code_commit=f"{n:040x}", data_version=f"d@v{n}", data_sha256="0" * 64, training_run=f"r{n}"))
    return mv.version


def _audit_actions(root: Path, model: str) -> list[str]:
    conn = sqlite3.connect(root / "mrc.db")
    try:
        return [r[0] for r in conn.execute("SELECT action FROM audit_events WHERE model = ? ORDER BY seq", (model,))]
    finally:
        conn.close()


def _wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + POLL_LIMIT_S
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"promote ended before the stall point: rc={proc.returncode} {err}")
        assert time.monotonic() < deadline, "promote never reached the stall point"
        time.sleep(0.05)


@pytest.mark.parametrize("kind", ["local", "mlflow", "s3"])
def test_reject_landing_between_approval_read_and_move_stops_the_promotion(kind, tmp_path, request, mrc):
    root = _workspace(kind, tmp_path, request, mrc)
    registry = _registry(root)
    model = unique("cas")
    v1 = _register(registry, model, tmp_path, 1)
    v2 = _register(registry, model, tmp_path, 2)
    for v in (v1, v2):
        registry.set_approval(model, v, Approval("approved", "alice", "", "reviewed"), expected_status="pending")
    first = mrc("promote", model, v1, "--reason", "first", "--workspace", str(root))
    assert first.returncode == 0, first.stderr

    release = tmp_path / "release"
    promote = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "promote", model, v2, "--reason", "go", "--workspace", str(root)],
        cwd=REPO, env=mrc_env({"MRC_STALL_AT": "promote:approval-read", "MRC_STALL_FILE": str(release)}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(Path(str(release) + ".reached"), promote)  # it has read "approved" and judged it
        reject = mrc("reject", model, v2, "--reason", "found a leak in the training data", "--workspace", str(root),
                     env={"MRC_ACTOR": "bob"})
        assert reject.returncode == 0, reject.stderr
        release.touch()
        out, err = promote.communicate(timeout=POLL_LIMIT_S)
    finally:
        if promote.poll() is None:
            promote.kill()
            promote.wait()
    assert promote.returncode == 3, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "approval changed" in lines[0] and "rejected" in lines[0], err
    assert out == ""
    fresh = _registry(root)
    assert fresh.get_pointers(model)[PRODUCTION] == v1
    assert fresh.get_version(model, v2).approval.status == "rejected"
    assert [m.to_version for m in fresh.pointer_history(model, PRODUCTION)] == [v1]
    assert _audit_actions(root, model) == ["promote", "reject"]


@pytest.mark.parametrize("kind", ["local", "mlflow", "s3"])
def test_move_with_a_stale_approval_is_a_conflict_and_a_current_one_moves(kind, tmp_path, request, mrc):
    """The registry contract under the CLI: move_pointer(approval=seen) compares the whole decision
    (status, who, when, gate digest, override), not only the status."""
    root = _workspace(kind, tmp_path, request, mrc)
    registry = _registry(root)
    model = unique("cas")
    v1 = _register(registry, model, tmp_path, 1)
    seen = registry.set_approval(model, v1, Approval("approved", "alice", "", "ok", "a" * 64), expected_status="pending")
    # re-approved by someone else with another gate report: same status, another decision
    registry.set_approval(model, v1, Approval("approved", "mallory", "", "lax", "b" * 64, True), expected_status="approved")
    with pytest.raises(ConflictError) as err:
        registry.move_pointer(model, PRODUCTION, expected=None, new=v1, actor="alice", approval=seen)
    assert "approval changed" in str(err.value)
    assert PRODUCTION not in registry.get_pointers(model)
    current = registry.get_version(model, v1).approval
    move = registry.move_pointer(model, PRODUCTION, expected=None, new=v1, actor="alice", approval=current)
    assert move.to_version == v1 and registry.get_pointers(model)[PRODUCTION] == v1
    # the claim a remote move leaves in the approval log is not a new decision
    assert registry.get_version(model, v1).approval.to_dict() == current.to_dict()
    again = registry.set_approval(model, v1, Approval("rejected", "bob", "", "late"), expected_status="approved")
    assert again.status == "rejected"


@pytest.fixture
def demo_copy(demo_ws):
    return demo_ws


LAX_POLICY = {"metric_directions": {"auc_roc": "higher"}, "hard_gates": {"auc_roc": 0.0}, "relative_gates": {},
              "slices": False, "fairness": False, "significance": False, "robustness": False, "sanity": False}


def _last_audit(root: Path, action: str) -> dict:
    conn = sqlite3.connect(root / "mrc.db")
    try:
        row = conn.execute("SELECT details FROM audit_events WHERE action = ? ORDER BY seq DESC LIMIT 1",
                           (action,)).fetchone()
    finally:
        conn.close()
    return json.loads(row[0])


def test_approve_with_a_lax_custom_policy_is_an_override_and_audited_as_one(demo_copy, tmp_path, mrc):
    """The demo's version 3 is under-trained: the configured policy refuses it; a lax policy of
    the approver's choosing passes it, and that approval is now recorded as an override."""
    root = demo_copy
    refused = mrc("approve", "breast-cancer", "3", "--reason", "ship it", "--workspace", str(root))
    assert refused.returncode == 1, refused.stderr
    lax = tmp_path / "lax.json"
    lax.write_text(json.dumps(LAX_POLICY))
    approved = mrc("approve", "breast-cancer", "3", "--reason", "ship it", "--policy", str(lax),
                   "--workspace", str(root), "--json")
    assert approved.returncode == 0, approved.stderr
    assert approved.json()["approval"]["override"] is True
    details = _last_audit(root, "approve")
    import hashlib

    assert details["override"] is True
    assert details["policy_sha256"] == hashlib.sha256(lax.read_bytes()).hexdigest()
    assert str(lax) in details["custom_policy"]
    versions = mrc("versions", "breast-cancer", "--workspace", str(root), "--json").json()["versions"]
    assert {v["version"]: v["approval"]["override"] for v in versions}["3"] is True


def test_naming_the_configured_policy_is_not_an_override(demo_copy, mrc):
    root = demo_copy
    approved = mrc("approve", "breast-cancer", "5", "--reason", "reviewed", "--policy", str(root / "gate_policy.json"),
                   "--workspace", str(root), "--json")
    assert approved.returncode == 0, approved.stderr
    assert approved.json()["approval"]["override"] is False
    details = _last_audit(root, "approve")
    assert details["override"] is False and "custom_policy" not in details
