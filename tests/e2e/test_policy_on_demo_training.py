"""The rule on the demo workspace: versions from the real trainer (which records who trained them),
approvals bound to the real gate report's digest, `approval.requested` when a gate passes."""

from __future__ import annotations

from tests.support.policy import protect, ws_args
from tests.support.remote import _remote_credentials  # noqa: F401  (autouse: sentinel credentials, as in its old folder)

MODEL = "breast-cancer"


def test_gate_pass_requests_approvals_and_two_gate_bound_approvals_promote(demo_ws, mrc):
    protect(demo_ws, "required_approvals = 2")
    trained_by = mrc("versions", MODEL, "--json", *ws_args(demo_ws, "x")).json()["versions"][4]["lineage"]["trained_by"]
    assert trained_by == "tester"  # `mrc demo` trained as MRC_ACTOR=tester

    for _ in range(2):  # the same gates run twice ask once
        gate = mrc("gate", MODEL, "5", "--json", *ws_args(demo_ws, "ci"))
        assert gate.returncode == 0, gate.stderr
    events = mrc("audit", "--json", *ws_args(demo_ws, "x")).json()["events"]
    asked = [e for e in events if e["action"] == "approval.requested"]
    assert len(asked) == 1 and asked[0]["details"]["trigger"] == "gate passed"
    assert asked[0]["details"]["summary"] == "0 of 2 approvals: needs 2 more, not tester (trainer)"

    refused = mrc("approve", MODEL, "5", "--reason", "mine", *ws_args(demo_ws, "tester"))
    assert refused.returncode == 1 and "tester trained this version" in refused.stderr

    bob = mrc("approve", MODEL, "5", "--reason", "gates pass", "--json", *ws_args(demo_ws, "bob"))
    assert bob.returncode == 0, bob.stderr
    carol = mrc("approve", MODEL, "5", "--reason", "gates pass, drift fine", "--json", *ws_args(demo_ws, "carol"))
    assert carol.returncode == 0, carol.stderr
    digest = bob.json()["approval"]["gate_report_sha256"]
    assert len(digest) == 64 and carol.json()["co_signature"]["gate_report_sha256"] == digest
    assert carol.json()["policy"]["approved_by"] == ["bob", "carol"]

    promoted = mrc("promote", MODEL, "5", "--reason", "two approvals", "--json", *ws_args(demo_ws, "dave"))
    assert promoted.returncode == 0, promoted.stderr
    assert mrc("models", "--json", *ws_args(demo_ws, "x")).json()["models"][0]["production"] == "5"
