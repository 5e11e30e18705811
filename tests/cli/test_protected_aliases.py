"""The review's findings on protected aliases, each through real `mrc` processes on a local workspace."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import tree_digest
from tests.support.policy import MODEL, protect, ws_args, production_of, NO_GATES
from tests.support.remote import _remote_credentials  # noqa: F401  (autouse: sentinel credentials, as in its old folder)


def _approve(mrc, root: Path, actor: str, version: str):
    return mrc("approve", MODEL, version, "--reason", f"reviewed by {actor}", *NO_GATES, "--json", *ws_args(root, actor))


def _events(mrc, root: Path) -> list[dict]:
    return mrc("audit", "--json", *ws_args(root, "auditor")).json()["events"]


def test_rollback_to_a_never_production_version_must_meet_the_count(local_ws, mrc):
    protect(local_ws, "required_approvals = 2")
    for actor in ("bob", "carol"):
        assert _approve(mrc, local_ws, actor, "1").returncode == 0
    assert mrc("promote", MODEL, "1", *ws_args(local_ws, "bob")).returncode == 0
    assert _approve(mrc, local_ws, "bob", "2").returncode == 0  # 1 of 2: promote refuses it
    assert mrc("promote", MODEL, "2", *ws_args(local_ws, "bob")).returncode == 1

    before = tree_digest(local_ws)
    refused = mrc("rollback", MODEL, "--to", "2", "--reason", "pager", *ws_args(local_ws, "bob"))
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert "never served production" in refused.stderr and "1 of 2 approvals" in refused.stderr
    assert tree_digest(local_ws) == before and production_of(local_ws) == "1"

    forced = mrc("rollback", MODEL, "--to", "2", "--override", "--reason", "sev1 fix", "--json", *ws_args(local_ws, "bob"))
    assert forced.returncode == 0, forced.stderr
    assert production_of(local_ws) == "2"
    event = [e for e in _events(mrc, local_ws) if e["action"] == "rollback"][-1]
    assert event["details"]["override"] is True
    assert event["details"]["policy"]["approvals"] == 1 and event["details"]["policy"]["overridden"] is True


def test_rollback_to_an_earlier_production_version_stays_one_key(local_ws, mrc):
    # 1 served production before the rule was added, on one approval: rolling back to it is one key
    assert _approve(mrc, local_ws, "bob", "1").returncode == 0
    assert mrc("promote", MODEL, "1", *ws_args(local_ws, "bob")).returncode == 0
    protect(local_ws, "required_approvals = 2")
    for actor in ("bob", "carol"):
        assert _approve(mrc, local_ws, actor, "2").returncode == 0
    assert mrc("promote", MODEL, "2", *ws_args(local_ws, "bob")).returncode == 0
    back = mrc("rollback", MODEL, "--to", "1", "--reason", "pager", *ws_args(local_ws, "night-oncall"))
    assert back.returncode == 0, back.stderr
    assert production_of(local_ws) == "1"


def _os_user() -> str:
    import os
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def test_local_identity_ignores_user_and_logname(local_ws, mrc):
    protect(local_ws, 'required_approvals = 1\nidentity = "require"')
    spoof = {"USER": "mallory", "LOGNAME": "mallory", "USERNAME": "mallory", "LNAME": "mallory"}
    assert _os_user() != "mallory"
    refused = mrc("approve", MODEL, "2", "--reason", "me", *NO_GATES, *ws_args(local_ws, "mallory"), env=spoof)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert f"knows this caller as {_os_user()!r}, not 'mallory'" in refused.stderr


def test_under_require_trained_by_is_the_backend_identity_not_the_claimed_actor(demo_ws, mrc):
    protect(demo_ws, 'required_approvals = 2\nidentity = "require"')
    trained = mrc("train", "breast-cancer", "--param", "epochs=2", "--no-candidate", "--json",
                  *["--workspace", str(demo_ws), "--actor", "someone-else"], timeout=600)
    assert trained.returncode == 0, trained.stderr
    version = trained.json()["version"]
    from backends.local.registry import LocalRegistry

    mv = LocalRegistry(demo_ws).get_version("breast-cancer", version)
    assert mv.lineage.trained_by == _os_user()
    assert mv.description.startswith(f"trained by {_os_user()} from ")


def test_approval_requested_alert_says_the_tally_once():
    from console.notify import alerts as rules
    from console.domain import AuditEvent

    cfg = rules.parse_config({"alertmanager_url": "http://127.0.0.1:9093"})
    line = "1 of 2 approvals: needs 1 more, not alice (trainer), not bob (approved)"
    for reason in (line, f"gates passed; {line}"):  # as cosign/decide and request_after_gate write them
        event = AuditEvent(4, "2026-01-01T00:00:00.000000Z", "bob", "approval.requested", MODEL, "2",
                           {"alias": "production", "needs": 1, "required": 2, "summary": line, "reason": reason}, "", "")
        summary = rules.fired_by(event, cfg).annotations["summary"]
        assert summary.count(line) == 1, summary  # the tally once, even where the reason repeats it
        assert summary.startswith(f"{MODEL} 2: approval requested by bob: ") and summary.endswith(line), summary


def test_home_shows_one_of_two_approvals_not_approved(local_ws, mrc):
    from console.workspace import Workspace
    from screens.loaders import load_home

    protect(local_ws, "required_approvals = 2")
    assert mrc("alias", MODEL, "candidate", "2", *ws_args(local_ws, "bob")).returncode == 0
    assert _approve(mrc, local_ws, "bob", "2").returncode == 0
    [row] = load_home(Workspace.open(local_ws), {}).rows
    assert row.candidate == "2" and row.approvals_short == "1/2"
    assert row.cells()[3][0] == "1/2"
    assert _approve(mrc, local_ws, "carol", "2").returncode == 0
    [row] = load_home(Workspace.open(local_ws), {}).rows
    assert row.approvals_short is None and row.cells()[3][0] != "1/2"


def test_revoke_under_require_checks_the_backend_identity(local_ws, mrc):
    protect(local_ws, 'required_approvals = 2\nidentity = "require"')
    me = _os_user()
    assert mrc("approve", MODEL, "2", "--reason", "ok", *NO_GATES, *ws_args(local_ws, me)).returncode == 0
    before = tree_digest(local_ws)
    spoof = mrc("revoke", MODEL, "2", "--reason", "not me", *ws_args(local_ws, "mallory"))
    assert spoof.returncode == 1 and spoof.stderr.count("\n") == 1, spoof.stderr
    assert f"knows this caller as {me!r}, not 'mallory'" in spoof.stderr
    assert tree_digest(local_ws) == before
