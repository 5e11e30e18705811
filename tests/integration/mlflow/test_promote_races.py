"""Twenty concurrent `mrc promote` processes against one pointer.

S3: exactly one wins, the others exit 3, the history shows one move.
MLflow: the guarantee of docs/registries.md: among mrc movers exactly one wins (the ledger claim
is unique); a move made outside mrc is not prevented but detected.
"""

from __future__ import annotations

import subprocess
import sys

from backends.base import PRODUCTION, Approval, Lineage
from console.release.audit import AuditLog
from tests.support.cli import REPO, mrc_env
from tests.support.remote import remote_env, unique
import pytest

pytestmark = pytest.mark.integration  # starts real servers on 127.0.0.1

RACERS = 20


def _race(root, model: str, versions: list[str], expect: str) -> list[subprocess.CompletedProcess]:
    env = mrc_env(remote_env())
    procs = [subprocess.Popen([sys.executable, "-m", "console.cli", "promote", model, version, "--expect", expect,
                               "--json", "--workspace", str(root), "--actor", f"racer-{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO))
             for i, version in enumerate(versions)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def _check_one_winner(results, registry, audit_db, model: str, start: str):
    codes = sorted(r.returncode for r in results)
    assert codes == [0] + [3] * (RACERS - 1), [(r.returncode, r.stderr[-300:]) for r in results if r.returncode not in (0, 3)]
    winner = next(r for r in results if r.returncode == 0)
    won_version = winner.args[5]
    for loser in (r for r in results if r.returncode == 3):
        assert "conflict" in loser.stderr and loser.stdout == ""
    assert registry.get_pointers(model)[PRODUCTION] == won_version
    history = registry.pointer_history(model, PRODUCTION)
    assert [(h.from_version, h.to_version) for h in history] == [(None, start), (start, won_version)]
    assert history[-1].actor == f"racer-{winner.args[winner.args.index('--actor') + 1].split('-')[1]}"
    promotions = [e for e in AuditLog(str(audit_db)).events(model=model) if e.action == "promote"]
    assert [(e.version, e.actor) for e in promotions] == [(won_version, history[-1].actor)]


def test_twenty_concurrent_promotions_on_s3_one_wins(s3_workspace, tmp_path):
    root, registry = s3_workspace
    model = unique("race")
    artifact = tmp_path / "model.pt"
    versions = []
    for i in range(RACERS + 1):
        artifact.write_bytes(f"weights {i}".encode())
        v = registry.register_version(model, str(artifact), metrics={"auc_roc": 0.9}, lineage=Lineage(),
                                      version=f"v{i:02d}").version
        registry.set_approval(model, v, Approval("approved", "lead", "", "ok"), expected_status="pending")
        versions.append(v)
    registry.move_pointer(model, PRODUCTION, expected=None, new=versions[0], actor="setup")
    results = _race(root, model, versions[1:], expect=versions[0])
    _check_one_winner(results, registry, root / "mrc.db", model, versions[0])


def test_twenty_concurrent_promotions_on_mlflow_one_mrc_mover_wins(mlflow_server, mlflow_workspace, mrc):
    from mlflow.tracking import MlflowClient

    root, registry = mlflow_workspace
    model = unique("race")
    client = MlflowClient(mlflow_server.url)
    client.create_registered_model(model)
    versions = []
    for _ in range(RACERS + 1):  # registered by the plain client: approval as a version tag
        mv = client.create_model_version(model, "s3://elsewhere/model", tags={"mrc.approval.status": "approved"})
        versions.append(str(mv.version))
    registry.move_pointer(model, PRODUCTION, expected=None, new=versions[0], actor="setup")
    results = _race(root, model, versions[1:], expect=versions[0])
    _check_one_winner(results, registry, root / "mrc.db", model, versions[0])

    # What MLflow cannot prevent: an alias upsert from outside mrc. mrc detects and shows it,
    # and a promotion based on what the engineer saw before it is refused (exit 3).
    won = registry.get_pointers(model)[PRODUCTION]
    client.set_registered_model_alias(model, "champion", versions[0])
    history = registry.pointer_history(model, PRODUCTION)
    assert (history[-1].from_version, history[-1].to_version, history[-1].actor) == (won, versions[0], "(outside mrc)")
    result = mrc("promote", model, versions[5], "--expect", won, "--workspace", str(root), env=remote_env())
    assert result.returncode == 3, result.stderr
    assert registry.get_pointers(model)[PRODUCTION] == versions[0]
    # A promotion that saw the outside move goes through and records it in the ledger.
    result = mrc("promote", model, versions[5], "--expect", versions[0], "--workspace", str(root), env=remote_env())
    assert result.returncode == 0, result.stderr
    history = registry.pointer_history(model, PRODUCTION)
    assert [(h.from_version, h.to_version, h.actor == "(outside mrc)") for h in history[-2:]] == [
        (won, versions[0], True), (versions[0], versions[5], False)]
