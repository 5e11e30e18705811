"""On a remote registry (S3 on SeaweedFS) the rule is counted again right before the compare-and-swap:
a co-signature revoked while the promote holds between its first count and its move refuses it."""

from __future__ import annotations

from pathlib import Path

from tests.support.policy import MODEL, ws_args
from tests.support.policy import policy_s3_ws
from tests.support.policy import stalled_promote, wait_for_stall

# bob and carol are played with one S3 access key: the team trusts claimed names (#23's default counts
# verified identities, which tests/integration/s3/test_identity.py covers)
CLAIMS_TWO = 'required_approvals = 2\nidentity = "claims"'


def _approved_by_two(tmp_path, s3_server, mrc) -> tuple[Path, str]:
    """An S3 workspace under required_approvals = 2 whose newest version bob and carol approved."""
    root = policy_s3_ws(tmp_path, s3_server, CLAIMS_TWO)
    version = mrc("versions", MODEL, "--json", *ws_args(root, "x")).json()["versions"][0]["version"]
    approve = ("approve", MODEL, version, "--reason", "reviewed", "--no-gates", "--override")
    assert mrc(*approve, *ws_args(root, "bob")).returncode == 0
    assert mrc(*approve, *ws_args(root, "carol")).returncode == 0
    return root, version


def test_revoke_during_a_remote_promote_refuses_it(tmp_path, s3_server, mrc):
    root, version = _approved_by_two(tmp_path, s3_server, mrc)

    stall = tmp_path / "release"
    proc = stalled_promote(root, "dave", stall, version=version)
    try:
        wait_for_stall(Path(str(stall) + ".reached"), proc)
        revoked = mrc("revoke", MODEL, version, "--reason", "found a bug", *ws_args(root, "carol"))
        assert revoked.returncode == 0, revoked.stderr
    finally:
        stall.write_text("go")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "1 of 2 approvals" in err and "production not moved" in err, err
    assert mrc("models", "--json", *ws_args(root, "x")).json()["models"][0]["production"] is None
    events = mrc("audit", "--json", *ws_args(root, "x")).json()["events"]
    assert not [e for e in events if e["action"] == "promote"]


def test_a_revoke_cannot_land_between_the_remote_count_and_the_swap(tmp_path, s3_server, mrc):
    """The promote counts two approvals and holds right before the S3 swap; carol's revoke is
    started then. It must wait for mrc.db's lock, so it lands after the promotion: the audit never
    shows a promote counted on an approval that was already revoked when production moved."""
    import subprocess
    import sys
    import time

    from tests.support.cli import REPO, mrc_env

    root, version = _approved_by_two(tmp_path, s3_server, mrc)

    stall = tmp_path / "release"
    env = mrc_env({"MRC_STALL_AT": "promote:counted", "MRC_STALL_FILE": str(stall)})
    promote = subprocess.Popen([sys.executable, "-m", "console.cli", "promote", MODEL, version, "--reason", "ship",
                                *ws_args(root, "dave")], cwd=str(REPO), env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    revoke = None
    try:
        wait_for_stall(Path(str(stall) + ".reached"), promote)
        revoke = subprocess.Popen([sys.executable, "-m", "console.cli", "revoke", MODEL, version, "--reason", "bug",
                                   *ws_args(root, "carol")], cwd=str(REPO), env=mrc_env({"MRC_LOCK_TIMEOUT": "300"}),
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        # give an unlocked revoke every chance to land inside the window (a locked one waits it out);
        # the outcome below is decided by the order of the audit events, not by this wait
        deadline = time.monotonic() + 20
        while revoke.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stall.write_text("go")
    _, err = promote.communicate(timeout=180)
    assert revoke is not None
    _, revoke_err = revoke.communicate(timeout=180)
    assert revoke.returncode == 0, revoke_err
    events = mrc("audit", "--json", *ws_args(root, "x")).json()["events"]
    seq = {e["action"]: e["seq"] for e in events if e["action"] in ("promote", "revoke-approval")}
    if promote.returncode == 0:  # it moved on two approvals: the revoke must come after the move
        assert seq["revoke-approval"] > seq["promote"], (seq, err)
    else:
        assert "promote" not in seq and "1 of 2 approvals" in err, err
