"""Issue 21 item 6: `mrc break-glass` sends every request to the fallback through the real router,
and `mrc restore` puts back the split it replaced — refused when someone changed the split since.
Real router and model servers (the demo workspace's versions 2 and 5) on 127.0.0.1; the CLI as
real subprocesses."""

from __future__ import annotations

import http.client
import json
import shutil

import pytest

from tests.support.canary import stop_everything
from tests.support.cli import run_mrc

MODEL = "breast-cancer"
pytestmark = pytest.mark.integration


def _served_by(port: int, row: list[float], keys: range) -> dict[str, int]:
    """How many of these users' requests each version answered."""
    counts: dict[str, int] = {}
    for key in keys:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("POST", "/predict", json.dumps({"rows": [row], "key": f"user-{key}"}),
                         {"Content-Type": "application/json"})
            resp = conn.getresponse()
            body = json.loads(resp.read() or b"{}")
        finally:
            conn.close()
        assert resp.status == 200, body
        counts[body["version"]] = counts.get(body["version"], 0) + 1
    return counts


def test_break_glass_sends_all_traffic_to_the_fallback_and_restore_puts_the_split_back(demo_template, tmp_path):
    from backends.local.loadgen import holdout
    from backends.local.traffic import LocalTraffic
    from console.notify.alerts import AlertsConfig, fold
    from console.release.audit import AuditLog

    ws = tmp_path / "ws"
    shutil.copytree(demo_template, ws)
    args = ["--workspace", str(ws), "--json"]
    assert run_mrc("approve", MODEL, "5", "--reason", "ok", "--no-gates", "--override", *args).returncode == 0
    traffic = LocalTraffic(ws)
    try:
        traffic.ensure_serving(MODEL, ["2"])
        promoted = run_mrc("promote", MODEL, "5", *args)  # production 2 -> 5: 2 is the fit earlier version
        assert promoted.returncode == 0, promoted.stderr
        split = traffic.get_split(MODEL)
        before = traffic.set_split(MODEL, {"5": 30, "2": 70}, expected_revision=split.revision)  # a split in flight
        rows, _ = holdout(str(ws), MODEL)
        port = traffic.router_port(MODEL)
        users = range(200)
        mixed = _served_by(port, rows[0], users)
        assert set(mixed) == {"2", "5"}, mixed

        broken = run_mrc("break-glass", MODEL, "--reason", "garbage answers", *args)
        assert broken.returncode == 0, broken.stderr
        out = broken.json()
        assert (out["action"], out["version"], out["changed"]) == ("break_glass", "2", True)
        assert out["from_split"] == [["5", 30], ["2", 70]] and out["production"] == "5"
        assert traffic.get_split(MODEL).weights == {"2": 100}
        assert _served_by(port, rows[0], users) == {"2": len(users)}  # every user, the fallback

        alerts = fold(AuditLog(str(ws / "mrc.db")).events(), AlertsConfig())
        glass = [a for a in alerts.values() if a.labels["alertname"] == "BreakGlass"]
        assert [(a.status, a.labels["severity"], a.labels["version"]) for a in glass] == [("firing", "critical", "2")]
        assert "garbage answers" in glass[0].annotations["summary"]

        restored = run_mrc("restore", MODEL, "--reason", "fixed upstream", *args)
        assert restored.returncode == 0, restored.stderr
        assert restored.json()["split"] == [["5", 30], ["2", 70]]
        now = traffic.get_split(MODEL)
        assert list(now.weights.items()) == [("5", 30), ("2", 70)] and now.revision > before.revision
        assert _served_by(port, rows[0], users) == mixed  # the same users on the same versions as before
        alerts = fold(AuditLog(str(ws / "mrc.db")).events(), AlertsConfig())
        assert [a.status for a in alerts.values() if a.labels["alertname"] == "BreakGlass"] == ["resolved"]

        # broken again, then someone moves the split: restore must not undo their decision
        assert run_mrc("break-glass", MODEL, "--to", "2", "--reason", "again", *args).returncode == 0
        moved = traffic.get_split(MODEL)
        traffic.set_split(MODEL, {"5": 100}, expected_revision=moved.revision)
        refused = run_mrc("restore", MODEL, "--reason", "undo", "--workspace", str(ws))
        assert refused.returncode == 3, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and "split changed since" in refused.stderr
        assert traffic.get_split(MODEL).weights == {"5": 100}
        actions = [e.action for e in AuditLog(str(ws / "mrc.db")).events(model=MODEL)
                   if e.action in ("break_glass", "restore")]
        assert actions == ["break_glass", "restore", "break_glass"]
    finally:
        stop_everything(ws)
