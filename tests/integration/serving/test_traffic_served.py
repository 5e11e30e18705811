"""A promotion or rollback never sends traffic to a version with no healthy server: the target's
server is started (cold) or found (warm) and health-checked before the pointer and the split move.
Real model servers and router on 127.0.0.1."""

from __future__ import annotations

import http.client
import json

import pytest

from tests.support.canary import stop_everything

MODEL = "breast-cancer"
pytestmark = pytest.mark.integration


def _predict(port: int, row: list[float]) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/predict", json.dumps({"rows": [row]}), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def test_promote_starts_the_target_server_first_and_rollback_finds_it_warm(demo_ws, mrc):
    from backends.local.loadgen import holdout
    from backends.support.procs import alive
    from backends.local.traffic import LocalTraffic

    ws = ["--workspace", str(demo_ws), "--json"]
    assert mrc("approve", MODEL, "5", "--reason", "ok", "--no-gates", "--override", *ws).returncode == 0
    traffic = LocalTraffic(demo_ws)
    try:
        traffic.ensure_serving(MODEL, ["2"])  # production served; 5 has no server yet
        assert set(traffic.served_versions(MODEL)) == {"2"}
        rows, _ = holdout(str(demo_ws), MODEL)

        promoted = mrc("promote", MODEL, "5", *ws)
        assert promoted.returncode == 0, promoted.stderr
        out = promoted.json()
        server = out["server"]
        assert server["started"] is True and alive(server["pid"])  # cold: started before anything moved
        assert out["traffic"] == {"5": 100}
        assert f"traffic 100 % to 5 (server pid {server['pid']}, answers /health, started in" in out["message"]
        assert traffic.served_versions(MODEL)["5"] == server["port"]
        status, body = _predict(traffic.router_port(MODEL), rows[0])
        assert status == 200, body  # served, not "503 no backend for 5"

        back = mrc("rollback", MODEL, "--reason", "5 is bad", *ws)
        assert back.returncode == 0, back.stderr
        out = back.json()
        assert (out["from"], out["to"], out["traffic"]) == ("5", "2", {"2": 100})
        assert out["server"]["started"] is False and out["server"]["pid"] is not None  # warm
        assert out["message"].startswith(f"{MODEL}: production 5 → 2; traffic 100 % to 2 (server pid")
        status, _ = _predict(traffic.router_port(MODEL), rows[0])
        assert status == 200
        print(f"\nserver ready: cold {server['ready_s']:.3f} s (promote to 5), warm {out['server']['ready_s'] * 1000:.1f} ms"
              " (rollback to 2)")
        events = mrc("audit", "--json", "--workspace", str(demo_ws)).json()["events"]
        own = [e for e in events if e["action"] not in ("router-control", "server-control")]
        actions = [e["action"] for e in own]
        assert actions[-5:] == ["promote", "clear-candidate", "promote-traffic", "rollback", "rollback-traffic"]
        assert own[-3]["details"]["server"]["pid"] == server["pid"]
        # the router's own trace of the same calls, ingested from its control journal by `mrc audit`
        routed = [(e["details"]["entry"]["route"], e["version"]) for e in events if e["action"] == "router-control"]
        assert ("POST /control/rollback", "2") in routed

        # issue 23: after `serve-models --stop`, a rollback that has to start the router again says so
        assert mrc("serve-models", MODEL, "--stop", "--workspace", str(demo_ws)).returncode == 0
        further = mrc("rollback", MODEL, "--expect", "2", "--reason", "2 too", *ws)
        assert further.returncode == 0, further.stderr
        out = further.json()
        new_port = traffic.router_port(MODEL)
        assert out["server"]["router_restarted"]["port"] == new_port and new_port is not None
        assert f"the router was not running (stopped): started again on 127.0.0.1:{new_port}" in out["message"]
    finally:
        stop_everything(demo_ws)


def test_without_a_live_split_the_message_says_traffic_is_not_served(demo_ws, mrc):
    result = mrc("rollback", MODEL, "--workspace", str(demo_ws))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{MODEL}: production 2 → 1; registry moved; traffic not served locally"
