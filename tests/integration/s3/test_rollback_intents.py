"""A rollback on the S3 registry (real SeaweedFS) killed -9 between the intent and the event:
the next `mrc audit verify` asks the bucket whether the write happened and settles the intent
(event appended and marked reconciled, or intent abandoned); the cross-check then agrees."""

from __future__ import annotations

import signal

import pytest

from backends.base import Lineage
from tests.support.cli import run_mrc
from tests.support.remote import _remote_credentials, make_artifact, remote_env, s3_server, s3_workspace  # noqa: F401

pytestmark = pytest.mark.integration
MODEL = "churn"


@pytest.mark.parametrize("point", ["intent:after-record", "remote:after-write"])
def test_s3_rollback_killed_midway_is_reconciled_by_the_next_verify(s3_workspace, tmp_path, point):
    from console.release.audit import AuditLog, intents
    from console.release.actions import decide, promote

    root, registry = s3_workspace
    audit = AuditLog(str(root / "mrc.db"))
    for i in (1, 2):
        registry.register_version(MODEL, str(make_artifact(tmp_path / f"a{i}.bin")), metrics={"auc_roc": 0.8},
                                  lineage=Lineage(), version=str(i))
        decide(registry, audit, MODEL, str(i), status="approved", actor="setup", reason="ok")
        promote(registry, audit, MODEL, str(i), actor="setup")  # through intents, committed
    assert [i.state for i in intents(audit)] == ["committed"] * 4

    env = remote_env({"MRC_CRASH_AT": point})
    killed = run_mrc("rollback", MODEL, "--reason", "page", "--workspace", str(root), "--actor", "oncall", env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    landed = point == "remote:after-write"
    assert registry.get_pointers(MODEL)["production"] == ("1" if landed else "2")
    assert [e.action for e in audit.events()][-1] == "promote"  # the rollback's event never made it
    assert intents(audit)[-1].state == "open"

    verify = run_mrc("audit", "verify", "--json", "--workspace", str(root), env=remote_env())
    assert verify.returncode == 0, verify.stdout + verify.stderr
    out = verify.json()
    assert [r["state"] for r in out["reconciled"]] == ["reconciled" if landed else "abandoned"]
    assert out["problems"] == [] and out["open_intents"] == []
    events = audit.events()
    if landed:
        assert events[-1].action == "rollback" and events[-1].details["reconciled"] is True
        assert (events[-1].details["from"], events[-1].details["to"]) == ("2", "1")
    else:
        assert [e.action for e in events] == ["approve", "promote"] * 2
    again = run_mrc("audit", "verify", "--json", "--workspace", str(root), env=remote_env())
    assert again.returncode == 0 and again.json()["reconciled"] == []
