"""A canary plan whose first step is `shadow`: the candidate answers a mirrored copy of
production's traffic (0 % of users) until the shadow judge passes it; a failing shadow ends the
canary before any user sees the candidate. Real router, model servers and load."""

from __future__ import annotations

import json

import pytest

from tests.support.shadow import MODEL, PRODUCTION, mrc_ws

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TWIN = "3"  # production's own TorchScript file registered again: a candidate that agrees
PLAN = ["--plan", "shadow,50,100", "--hold", "1", "--interval", "0.5", "--min-requests", "10",
        "--min-detectable", "off", "--json"]


def split_of(root) -> dict[str, int]:
    from backends.local.traffic import LocalTraffic

    return LocalTraffic(root).get_split(MODEL).weights


def events(root, action: str) -> list:
    from console.workspace import Workspace

    return [e for e in Workspace.open(root).audit().events(model=MODEL) if e.action == action]


def test_a_shadow_first_step_stops_a_failing_candidate_and_passes_a_faithful_one(served, models, cancer):
    from backends.base import Lineage
    from backends.local.serving.controlkey import auth_headers
    from backends.local.loadgen import LoadGenerator
    from backends.local.registry import LocalRegistry
    from backends.local.traffic import LocalTraffic
    from console.rollout.controller import current_state
    from console.workspace import Workspace

    root, port = served
    registry = LocalRegistry(root)
    try:
        registry.register_version(MODEL, str(models[PRODUCTION][1]), metrics={"auc_roc": 0.9}, lineage=Lineage(),
                                  version=TWIN, artifact_format="torchscript")
    finally:
        registry.close()
    for version in (PRODUCTION, TWIN):
        result = mrc_ws(root, "approve", MODEL, version, "--reason", "shadow step tests", "--no-gates", "--override")
        assert result.returncode == 0, result.stderr
    assert mrc_ws(root, "promote", MODEL, PRODUCTION, "--reason", "shadow step tests").returncode == 0
    LocalTraffic(root).ensure_serving(MODEL, [TWIN])
    assert mrc_ws(root, "drill", MODEL, TWIN, "--error-rate", "0.5").returncode == 0  # a bad twin first

    X, y = cancer
    gen = LoadGenerator(port, X[:300].tolist(), y[:300].tolist(), rate=80, label_delay_s=0.2,
                        headers=auth_headers(root)).start()
    try:
        failed = mrc_ws(root, "canary", "start", MODEL, TWIN, *PLAN)
        assert failed.returncode == 1, failed.stderr
        report = failed.json()
        assert report["outcome"] == "fail" and "error_rate" in report["comparison"]["reason"]
        assert split_of(root) == {PRODUCTION: 100}  # no user ever reached the candidate
        assert current_state(Workspace.open(root), MODEL) is None  # the canary never started
        stop = events(root, "shadow-stop")[-1]
        assert (stop.version, stop.details["canary_step"], stop.details["outcome"]) == (TWIN, True, "fail")
        assert LocalTraffic(root).get_shadow(MODEL)["shadow"] is None  # mirroring stopped

        assert mrc_ws(root, "drill", MODEL, TWIN, "--off").returncode == 0
        passed = mrc_ws(root, "canary", "start", MODEL, TWIN, *PLAN)
        assert passed.returncode == 0, passed.stderr
        assert json.loads(passed.stdout)["status"] == "promoted"
    finally:
        gen.stop()
    starts = [e.seq for e in events(root, "shadow-stop") if e.details.get("outcome") == "pass"]
    canary = events(root, "canary-start")
    assert starts and canary and starts[-1] < canary[-1].seq  # the shadow passed before any user moved
    assert LocalTraffic(root).get_shadow(MODEL)["shadow"] is None
