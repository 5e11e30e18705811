"""A registry whose team reviews outside mrc (every version "pending" here, as in an MLflow or S3
registry filled by plain tools): the one-key rollback still returns to the earlier production
version, and says why it took a pending one. A version rejected in mrc is never taken."""

from __future__ import annotations

from backends.base import Lineage, PRODUCTION
from console.workspace import Workspace


def _registry_without_reviews(root):
    ws = Workspace.open(root, create=True)
    ws.local().create_tables()
    registry = ws.registry()
    for n in (1, 2, 3):
        artifact = root / f"weights-{n}.bin"
        artifact.write_bytes(f"weights of version {n}".encode())
        registry.register_version("fraud", str(artifact), metrics={"auc": 0.9}, lineage=Lineage(code_commit=f"{n:040x}"))
    previous = None
    for v in ("1", "2", "3"):  # production moved by the team's own pipeline: 1 -> 2 -> 3
        registry.move_pointer("fraud", PRODUCTION, expected=previous, new=v, actor="pipeline")
        previous = v
    return ws


def test_rollback_takes_the_earlier_production_when_the_model_has_no_mrc_reviews(tmp_path, mrc):
    _registry_without_reviews(tmp_path)
    result = mrc("rollback", "fraud", "--json", "--workspace", str(tmp_path))
    assert result.returncode == 0, result.stderr
    out = result.json()
    assert (out["from"], out["to"], out["unreviewed_target"]) == ("3", "2", True)
    text = mrc("rollback", "fraud", "--expect", "2", "--workspace", str(tmp_path))
    assert text.returncode == 0 and "never reviewed in mrc" in text.stdout, text.stderr


def test_a_version_rejected_in_mrc_is_skipped_and_an_unreviewed_earlier_one_taken(tmp_path, mrc):
    _registry_without_reviews(tmp_path)
    assert mrc("approve", "fraud", "3", "--reason", "shipped", "--override", "--no-gates",
               "--workspace", str(tmp_path)).returncode == 0  # the team starts reviewing in mrc
    assert mrc("reject", "fraud", "2", "--reason", "leaks labels", "--workspace", str(tmp_path)).returncode == 0
    result = mrc("rollback", "fraud", "--json", "--workspace", str(tmp_path))
    assert result.returncode == 0, result.stderr
    out = result.json()
    assert (out["from"], out["to"], out["unreviewed_target"]) == ("3", "1", True)
    assert [s["version"] for s in out["skipped"]] == ["2"] and out["skipped"][0]["why"] == "rejected"


def test_pending_with_a_reviewer_is_not_unreviewed_and_needs_an_override(tmp_path, mrc):
    ws = _registry_without_reviews(tmp_path)
    from backends.base import Approval

    registry = ws.registry()  # an approval withdrawn in mrc: pending again, but someone looked at it
    registry.set_approval("fraud", "2", Approval("pending", "alice", "2026-01-01T00:00:00Z", "withdrawn"),
                          expected_status="pending")
    registry.set_approval("fraud", "1", Approval("rejected", "alice", "2026-01-01T00:00:00Z", "bad"),
                          expected_status="pending")
    result = mrc("rollback", "fraud", "--workspace", str(tmp_path))
    assert result.returncode == 2 and "2 is pending" in result.stderr and "1 is rejected" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
