"""The controller's lease (issue 23): a live canary whose controller is gone (--max-seconds, a
kill -9 mid-promote) is UNJUDGED in `mrc canary status` and `mrc models`, fires CanaryUnjudged
through the alert path, and the next `mrc alerts run` round resumes it (a new controller
finishes what the dead one left: after a kill at promote:split the pointer follows the router)
or rolls it back under [canary] orphaned = "rollback". Real model servers, router, load and
controller processes; a real webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support.alerts import WebhookReceiver, wait_for
from tests.support.canary import CANDIDATE, MODEL, STABLE
from tests.support.cli import run_mrc
from tests.support.one_truth import world
from tests.support.processes import kill_group

pytestmark = pytest.mark.integration


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


def configure_alerts(ws, webhook, extra: str = "") -> dict[str, str]:
    with open(ws / "mrc.toml", "a") as fh:
        fh.write(f'\n[alerts]\nhold_s = 600\n\n[[alerts.webhooks]]\nname = "oncall"\nurl = "{webhook.url}"\n'
                 f'secret_env = "MRC_TEST_HOOK_SECRET"\n{extra}')
    return {"MRC_TEST_HOOK_SECRET": "s3cret"}


def alert_names(webhook) -> list[str]:
    names = []
    for request in webhook.received:
        body = json.loads(request["body"])
        for alert in body if isinstance(body, list) else body.get("alerts", []):
            names.append(alert.get("labels", {}).get("alertname"))
    return names


def test_a_canary_left_by_max_seconds_is_unjudged_alerted_and_rolled_back_by_policy(served_ws, webhook):
    ws = ["--workspace", str(served_ws)]
    plan = ["--plan", "25,50,100", "--hold", "600", "--interval", "0.4", "--min-requests", "10", "--min-detectable", "off"]
    started = run_mrc("canary", "start", MODEL, CANDIDATE, *plan, "--max-seconds", "0.5", *ws)
    assert started.returncode == 0, started.stderr
    assert world(served_ws) == (STABLE, {CANDIDATE: 25, STABLE: 75}, "progressing")  # live, nobody judging

    status = run_mrc("canary", "status", MODEL, "--json", *ws)
    assert "is gone" in (status.json()["unjudged"] or ""), status.stdout
    text = run_mrc("canary", "status", MODEL, *ws).stdout
    assert text.startswith("UNJUDGED: its controller")
    models = run_mrc("models", *ws).stdout
    assert f"{CANDIDATE} UNJUDGED" in models and f"UNJUDGED: {MODEL} canary" in models, models

    env = configure_alerts(served_ws, webhook, '\n[canary]\norphaned = "rollback"\n')
    rounds = run_mrc("alerts", "run", "--once", *ws, env=env)
    assert rounds.returncode == 0, rounds.stderr
    assert "canary.unjudged" in rounds.stdout and "rolled back" in rounds.stdout, rounds.stdout
    assert world(served_ws) == (STABLE, {STABLE: 100}, "rolled_back")
    assert "CanaryUnjudged" in alert_names(webhook), webhook.received
    assert run_mrc("canary", "status", MODEL, "--json", *ws).json()["unjudged"] is None


def test_a_kill_at_promote_split_is_named_by_verify_and_reconciled_by_the_next_alerts_round(
        served_ws, load, controllers, webhook):
    ws = ["--workspace", str(served_ws)]
    crashed = controllers.start(env={"MRC_CANARY_CRASH": "promote:split"})
    crashed.communicate(timeout=300)
    assert crashed.returncode == -9, crashed.returncode
    # the router already sends everything to the candidate; the pointer still says stable
    assert world(served_ws) == (STABLE, {CANDIDATE: 100}, "progressing")

    verify = run_mrc("audit", "verify", "--json", *ws)
    assert verify.returncode == 1
    assert any(p.startswith(f"{MODEL}: the router sends 100% to {CANDIDATE}") for p in verify.json()["problems"]), \
        verify.stdout
    assert "is gone" in run_mrc("canary", "status", MODEL, "--json", *ws).json()["unjudged"]

    env = configure_alerts(served_ws, webhook)
    rounds = run_mrc("alerts", "run", "--once", *ws, env=env)
    assert rounds.returncode == 0, rounds.stderr
    assert "resumed by controller pid" in rounds.stdout, rounds.stdout
    pid = int(rounds.stdout.split("resumed by controller pid ")[1].split()[0])
    try:
        wait_for(lambda: world(served_ws)[2] != "progressing", timeout=300, what="the resumed controller to finish")
    finally:
        kill_group(pid)
    assert world(served_ws) == (CANDIDATE, {CANDIDATE: 100}, "promoted")
    assert "CanaryUnjudged" in alert_names(webhook), webhook.received
    assert run_mrc("audit", "verify", *ws).returncode == 0
