"""On a remote registry (S3 on SeaweedFS) the rule is counted again right before the compare-and-swap:
a co-signature revoked while the promote holds between its first count and its move refuses it."""

from __future__ import annotations

from pathlib import Path

from tests.policy.conftest import MODEL
from tests.policy.test_identity_s3 import _s3_ws, _ws
from tests.policy.test_two_person import _stalled_promote, _wait_for


def test_revoke_during_a_remote_promote_refuses_it(tmp_path, s3_server, mrc):
    root = _s3_ws(tmp_path, s3_server, "required_approvals = 2")
    version = mrc("versions", MODEL, "--json", *_ws(root, "x")).json()["versions"][0]["version"]
    approve = ("approve", MODEL, version, "--reason", "reviewed", "--no-gates", "--override")
    assert mrc(*approve, *_ws(root, "bob")).returncode == 0
    assert mrc(*approve, *_ws(root, "carol")).returncode == 0

    stall = tmp_path / "release"
    proc = _stalled_promote(root, "dave", stall, version=version)
    try:
        _wait_for(Path(str(stall) + ".reached"), proc)
        revoked = mrc("revoke", MODEL, version, "--reason", "found a bug", *_ws(root, "carol"))
        assert revoked.returncode == 0, revoked.stderr
    finally:
        stall.write_text("go")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "1 of 2 approvals" in err and "production not moved" in err, err
    assert mrc("models", "--json", *_ws(root, "x")).json()["models"][0]["production"] is None
    events = mrc("audit", "--json", *_ws(root, "x")).json()["events"]
    assert not [e for e in events if e["action"] == "promote"]
