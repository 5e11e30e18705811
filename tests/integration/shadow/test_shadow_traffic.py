"""Shadow traffic end to end: `mrc shadow start|status|stop` against mrc's real router and model
servers serving two TorchScript classifiers trained here with plain torch.

Users are served by production only; a mirrored copy reaches the candidate (its answers equal
the candidate's own torch output); `mrc shadow status` agrees with a comparison recomputed here
with numpy from the shadow log; a slow or dead candidate never fails a served request (shown by
the mirror's queue and drop counters, not by a clock).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.support.shadow import (CANDIDATE, MODEL, PRODUCTION, kill_group, mrc_ws, own_predictions, post, read_log,
                                   wait_for)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def status(root) -> dict:
    result = mrc_ws(root, "shadow", "status", MODEL, "--json")
    assert result.returncode in (0, 1), result.stderr
    return result.json()


def send(port: int, X, start: int, count: int, prefix: str, threads: int = 1) -> list[tuple[list, dict]]:
    """count requests of 3 rows each through the router; (rows, answer) of each, all answered 200."""
    def one(i):
        rows = X[(start + 3 * i) % 560:(start + 3 * i) % 560 + 3].tolist()
        code, body = post(port, "/predict", {"rows": rows, "key": f"{prefix}-{i}", "id": f"{prefix}-{i}"})
        assert code == 200, body
        return rows, body

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(count)))


def settled(root, offered: int) -> dict | None:
    """The status once the router has offered `offered` copies (it offers each after its answer
    is out, so a client can see the answer first) and every queued one was answered or failed."""
    report = status(root)
    c = report["counters"]
    return report if c["offered"] == offered and c["completed"] + c["failed"] == c["queued"] else None


def test_mirrored_copy_reaches_the_candidate_and_users_get_production_only(served, models, cancer):
    root, port = served
    X, _ = cancer
    result = mrc_ws(root, "shadow", "start", MODEL, CANDIDATE, "--json")
    assert result.returncode == 0, result.stderr
    assert result.json()["shadow"]["version"] == CANDIDATE
    answers = send(port, X, 400, 40, "a")
    for rows, body in answers:  # served by production alone, with production's own predictions
        assert body["version"] == PRODUCTION
        np.testing.assert_allclose(body["predictions"], own_predictions(models[PRODUCTION][0], rows), rtol=1e-5, atol=1e-6)
    report = wait_for(lambda: settled(root, 40), "every mirrored copy answered")
    assert report["counters"]["queued"] == 40 and report["counters"]["completed"] == 40
    assert report["counters"]["dropped"] == 0

    records = {r["id"]: r for r in read_log(root / "serving" / MODEL / "shadow.jsonl") if r["id"].startswith("a-")}
    assert len(records) == 40
    for rows, body in answers:
        record = records[body["id"]]
        assert (record["v"], record["sv"], record["status"], record["sstatus"]) == (PRODUCTION, CANDIDATE, 200, 200)
        assert record["p"] == body["predictions"]  # the served answer, logged as production's
        np.testing.assert_allclose(record["sp"], own_predictions(models[CANDIDATE][0], rows), rtol=1e-5, atol=1e-6)
        assert record["ms"] > 0 and record["sms"] > 0
    served_log = [r for r in read_log(root / "serving" / MODEL / "requests.jsonl") if r.get("type") == "request"]
    assert served_log and {r["v"] for r in served_log} == {PRODUCTION}

    from console.workspace import Workspace

    events = [e for e in Workspace.open(root).audit().events(model=MODEL) if e.action == "shadow-start"]
    assert events and events[-1].version == CANDIDATE and events[-1].details["sample"] == 1.0


def test_status_matches_the_comparison_recomputed_from_the_log(served, cancer):
    root, port = served
    X, _ = cancer
    assert mrc_ws(root, "shadow", "stop", MODEL).returncode == 0
    result = mrc_ws(root, "shadow", "start", MODEL, CANDIDATE, "--sample", "0.5", "--json")
    assert result.returncode == 0, result.stderr
    started_at = result.json()["shadow"]["started_at"]
    send(port, X, 0, 160, "b", threads=4)
    report = wait_for(lambda: settled(root, 160), "every mirrored copy answered")
    c = report["counters"]
    assert c["offered"] == 160 and c["queued"] + c["sampled_out"] == 160 and 0 < c["sampled_out"] < 160

    log = [r for r in read_log(root / "serving" / MODEL / "shadow.jsonl") if r["sv"] == CANDIDATE and r["t"] >= started_at]
    assert len(log) == c["queued"] and all(r["id"].startswith("b-") for r in log)
    p = np.array([x for r in log for x in r["p"]])
    s = np.array([x for r in log for x in r["sp"]])
    got = report["comparison"]
    assert got["requests"] == len(log) and got["rows"] == len(p)
    assert got["agreement"] == pytest.approx(np.mean((p >= 0.5) == (s >= 0.5)))
    edges = np.linspace(0, 1, 11)
    pc = np.bincount(np.searchsorted(edges[1:-1], p, side="right"), minlength=10) / len(p)
    sc = np.bincount(np.searchsorted(edges[1:-1], s, side="right"), minlength=10) / len(s)
    pc, sc = np.maximum(pc, 1e-4), np.maximum(sc, 1e-4)
    assert got["psi"] == pytest.approx(float(np.sum((sc - pc) * np.log(sc / pc))), rel=1e-9, abs=1e-12)
    diff = s - p
    for key, q in (("p01", 1), ("p05", 5), ("p50", 50), ("p95", 95), ("p99", 99)):
        assert got["diff_quantiles"][key] == pytest.approx(np.percentile(diff, q), abs=1e-12)
    assert got["diff_mean"] == pytest.approx(diff.mean(), abs=1e-12)
    assert sum(got["diff_histogram"]["counts"]) == len(diff)
    ms, sms = np.array([r["ms"] for r in log]), np.array([r["sms"] for r in log])
    assert got["latency"]["production"]["p99"] == pytest.approx(np.percentile(ms, 99))
    assert got["latency"]["shadow"]["p50"] == pytest.approx(np.percentile(sms, 50))
    # the judge: the disagreement band's estimate is the recomputed disagreement
    tests = {t["metric"]: t for t in got["tests"]}
    assert tests["disagreement"]["estimate"] == pytest.approx(1 - np.mean((p >= 0.5) == (s >= 0.5)))
    assert got["verdict"] in ("pass", "fail", "continue")


def test_a_slow_then_dead_candidate_never_fails_a_served_request(served, cancer):
    root, port = served
    X, _ = cancer
    mrc_ws(root, "shadow", "stop", MODEL)
    assert mrc_ws(root, "shadow", "start", MODEL, CANDIDATE).returncode == 0
    slow = mrc_ws(root, "drill", MODEL, CANDIDATE, "--latency-ms", "3000")
    assert slow.returncode == 0, slow.stderr
    answers = send(port, X, 0, 400, "c", threads=4)  # every one answered 200 (asserted in send)
    assert {body["version"] for _, body in answers} == {PRODUCTION}
    c = wait_for(lambda: (lambda c: c if c["offered"] == 400 else None)(status(root)["counters"]), "400 copies offered")
    # the queue (256) filled behind a candidate that takes 3 s per copy: copies dropped, not waited for
    assert c["offered"] == 400 and c["queued"] + c["dropped"] == 400 and c["dropped"] > 0
    assert mrc_ws(root, "drill", MODEL, CANDIDATE, "--off").returncode == 0
    wait_for(lambda: settled(root, 400), "the queue drained")

    # the candidate dies: copies fail, users still get production
    procs = json.loads((root / "serving" / MODEL / "processes.json").read_text())
    kill_group(procs["servers"][CANDIDATE]["pid"])
    answers = send(port, X, 0, 60, "d", threads=2)
    assert {body["version"] for _, body in answers} == {PRODUCTION}
    report = wait_for(lambda: settled(root, 460), "copies to the dead candidate failed")
    assert report["counters"]["failed"] >= 60
    result = mrc_ws(root, "shadow", "status", MODEL, "--json")
    assert result.returncode == 1  # the judge: the shadow fails far more often than production
    assert result.json()["comparison"]["verdict"] == "fail"
    assert "error_rate" in result.json()["comparison"]["reason"]


def test_bad_input_is_one_line_and_writes_nothing(served):
    root, _ = served
    before = (root / "serving" / MODEL / "shadow.json").read_text() if (root / "serving" / MODEL / "shadow.json").exists() else None
    for args, word in ((("shadow", "start", MODEL, "9"), "9"), (("shadow", "start", MODEL, CANDIDATE, "--sample", "1.5"),
                                                                "--sample"),
                       (("shadow", "start", MODEL, PRODUCTION), PRODUCTION), (("shadow", "status", "nomodel"), "nomodel")):
        result = mrc_ws(root, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and word in result.stderr
    after = (root / "serving" / MODEL / "shadow.json").read_text() if (root / "serving" / MODEL / "shadow.json").exists() else None
    assert before == after


def test_the_console_shows_the_shadow_run_from_the_canary_screen(served, cancer):
    """`:canary MODEL`, then `s`: the shadow screen draws what `mrc shadow status` reports."""
    from backends.local.traffic import LocalTraffic
    from screens.shadow_screen import ShadowScreen
    from tests.support.pilot import make_app, run, settle

    root, port = served
    X, _ = cancer
    LocalTraffic(root).ensure_serving(MODEL, [CANDIDATE])  # a test before may have stopped it
    mrc_ws(root, "shadow", "stop", MODEL)
    assert mrc_ws(root, "shadow", "start", MODEL, CANDIDATE).returncode == 0
    send(port, X, 30, 50, "e", threads=2)
    report = wait_for(lambda: settled(root, 50), "every mirrored copy answered")
    comparison = report["comparison"]
    assert comparison["rows"] == 150

    async def scenario():
        app = make_app(root)
        async with app.run_test(size=(140, 50)) as pilot:
            await settle(app, pilot)
            app.open_canary(MODEL)
            await settle(app, pilot)
            await pilot.press("s")
            await settle(app, pilot)
            screen = app.screen
            assert isinstance(screen, ShadowScreen) and screen.loads >= 1 and not screen.error
            texts = {part: str(screen.query_one(f"#shadow-{part}").render())
                     for part in ("title", "counters", "limits", "diff", "latency", "judge")}
            await pilot.press("escape")
            await settle(app, pilot)
            return texts, screen.report

    texts, shown = run(scenario())
    assert f"candidate {CANDIDATE} vs production {PRODUCTION}" in texts["title"] and "MIRRORING" in texts["title"]
    assert f"verdict {comparison['verdict'].upper()}" in texts["title"]
    assert "50 mirrored requests, 150 rows compared" in texts["counters"] and "completed 50" in texts["counters"]
    assert f"{comparison['agreement']:.2%}" in texts["limits"] and f"{comparison['psi']:.4f}" in texts["limits"]
    assert f"p50 {comparison['diff_quantiles']['p50']:+.4f}" in texts["diff"]
    assert any(ch in texts["diff"] for ch in "▁▂▃▄▅▆▇█")  # the histogram is drawn, not only listed
    assert f"{comparison['latency']['shadow']['p99']:.2f} ms" in texts["latency"]
    assert texts["judge"].startswith(f"judge: {comparison['verdict'].upper()}")
    assert shown["comparison"]["rows"] == comparison["rows"]


def test_the_shadow_setting_is_compare_and_swap_needs_the_key_and_survives_a_router_restart(served):
    import http.client

    from backends.base import ConflictError
    from backends.local.traffic import LocalTraffic

    root, _ = served
    traffic = LocalTraffic(root)
    traffic.ensure_serving(MODEL, [CANDIDATE])  # a test before may have stopped it
    before = traffic.get_shadow(MODEL)
    with pytest.raises(ConflictError):
        traffic.set_shadow(MODEL, CANDIDATE, sample=0.3, expected_revision=before["revision"] + 7)
    port = traffic.router_port(MODEL)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("PUT", "/control/shadow", json.dumps({"version": None, "expected_revision": before["revision"]}),
                 {"Content-Type": "application/json"})  # no key
    assert conn.getresponse().status == 401
    conn.close()
    assert traffic.get_shadow(MODEL)["revision"] == before["revision"]  # nothing moved

    set_now = traffic.set_shadow(MODEL, CANDIDATE, sample=0.3, expected_revision=before["revision"])
    router_pid = json.loads((root / "serving" / MODEL / "processes.json").read_text())["router"]["pid"]
    kill_group(router_pid)
    traffic.ensure_serving(MODEL, [PRODUCTION, CANDIDATE])  # a new router, from the saved split and shadow
    after = traffic.get_shadow(MODEL)
    assert after["live"] and json.loads((root / "serving" / MODEL / "processes.json").read_text())["router"]["pid"] != router_pid
    assert after["shadow"] == set_now["shadow"] and after["revision"] == set_now["revision"]
    assert traffic.get_split(MODEL).weights == {PRODUCTION: 100}
