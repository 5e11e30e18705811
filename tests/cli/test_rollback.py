"""`mrc rollback` through real processes on the real demo workspace: the target is known-good,
a bad `--to` needs an override, and racing rollbacks away from the same version move it once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import REPO, mrc_env, tree_digest

MODEL = "breast-cancer"


def _ws(path: Path) -> list[str]:
    return ["--workspace", str(path), "--actor", "oncall"]


def _production_moves(ws: Path) -> list[tuple]:
    conn = sqlite3.connect(ws / "mrc.db")
    try:
        return conn.execute("SELECT from_version, to_version, reason FROM pointer_moves"
                            " WHERE model = ? AND alias = 'production' ORDER BY seq", (MODEL,)).fetchall()
    finally:
        conn.close()


def _artifact(ws: Path, version: str) -> Path:
    conn = sqlite3.connect(ws / "mrc.db")
    try:
        (uri,) = conn.execute("SELECT artifact_uri FROM versions WHERE model = ? AND version = ?",
                              (MODEL, version)).fetchone()
    finally:
        conn.close()
    return ws / uri


def _corrupt(ws: Path, version: str) -> None:
    path = _artifact(ws, version)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: same size, different hash
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("version,why", [("3", "rejected"), ("5", "pending"), ("1", "corrupt")])
def test_to_a_rejected_pending_or_corrupt_version_needs_override_and_reason(demo_ws, mrc, version, why):
    if why == "corrupt":
        _corrupt(demo_ws, "1")  # approved, but its bytes no longer match their hash
    before = tree_digest(demo_ws)
    refused = mrc("rollback", MODEL, "--to", version, *_ws(demo_ws))
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.count("\n") == 1 and f"{MODEL} {version} is {why}" in refused.stderr
    assert "--override" in refused.stderr
    no_reason = mrc("rollback", MODEL, "--to", version, "--override", *_ws(demo_ws))
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    assert tree_digest(demo_ws) == before  # nothing written

    forced = mrc("rollback", MODEL, "--to", version, "--override", "--reason", "vendor hotfix", "--json", *_ws(demo_ws))
    assert forced.returncode == 0, forced.stderr
    assert forced.json()["to"] == version and forced.json()["changed"]
    events = mrc("audit", "--json", *_ws(demo_ws)).json()["events"]
    assert events[-1]["action"] == "rollback" and events[-1]["details"]["override"] is True
    assert events[-1]["details"]["reason"] == "vendor hotfix"


@pytest.mark.parametrize("spoil", ["reject", "corrupt"])
def test_default_target_skips_a_rejected_or_corrupt_earlier_version(demo_ws, mrc, spoil):
    ws = _ws(demo_ws)
    assert mrc("approve", MODEL, "5", "--reason", "ok", "--no-gates", "--override", *ws).returncode == 0
    assert mrc("promote", MODEL, "5", "--reason", "ship", *ws).returncode == 0  # history: 1 -> 2 -> 5
    if spoil == "reject":
        assert mrc("reject", MODEL, "2", "--reason", "leaks labels", *ws).returncode == 0
    else:
        _corrupt(demo_ws, "2")
    result = mrc("rollback", MODEL, "--reason", "5 is bad", "--json", *ws)
    assert result.returncode == 0, result.stderr
    out = result.json()
    assert (out["from"], out["to"]) == ("5", "1")  # not 2
    assert [s["version"] for s in out["skipped"]] == ["2"]
    assert out["skipped"][0]["why"].startswith("rejected" if spoil == "reject" else "corrupt")
    assert _production_moves(demo_ws)[-1][:2] == ("5", "1")


def test_a_second_rollback_never_returns_to_the_version_rolled_away_from(demo_ws, mrc):
    ws = _ws(demo_ws)
    assert mrc("approve", MODEL, "5", "--reason", "ok", "--no-gates", "--override", *ws).returncode == 0
    assert mrc("promote", MODEL, "5", *ws).returncode == 0
    first = mrc("rollback", MODEL, "--json", *ws)
    assert first.returncode == 0 and (first.json()["from"], first.json()["to"]) == ("5", "2")
    # a bare rollback right after another reports it and moves nothing (a late duplicate, a double page)
    again = mrc("rollback", MODEL, "--json", *ws)
    assert again.returncode == 0, again.stderr
    assert again.json()["changed"] is False and again.json()["already_rolled_back"] is True
    assert "already rolled back from 5 to 2" in mrc("rollback", MODEL, *ws).stdout
    # further back is explicit: away from 2 it goes to 1, never "back" to 5
    further = mrc("rollback", MODEL, "--expect", "2", "--json", *ws)
    assert further.returncode == 0 and (further.json()["from"], further.json()["to"]) == ("2", "1")
    stuck = mrc("rollback", MODEL, "--expect", "1", *ws)
    assert stuck.returncode == 2 and "no earlier production version" in stuck.stderr
    assert [m[:2] for m in _production_moves(demo_ws)] == [(None, "1"), ("1", "2"), ("2", "5"), ("5", "2"), ("2", "1")]
    assert mrc("audit", "verify", *ws).returncode == 0


def test_twenty_concurrent_rollbacks_from_the_same_production_move_it_once(demo_ws, mrc, tmp_path):
    go = tmp_path / "go"
    env = mrc_env({"MRC_WAIT_AT": "rollback:before-move", "MRC_WAIT_FILE": str(go)})
    procs = [subprocess.Popen([sys.executable, "-m", "console.cli", "rollback", MODEL, "--reason", "page",
                               "--json", "--workspace", str(demo_ws), "--actor", f"oncall-{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO))
             for i in range(20)]
    try:
        deadline = time.monotonic() + 240  # every process has read production 2 and chosen 1 before any moves
        while len(list(tmp_path.glob("go.*.waiting"))) < 20:
            assert time.monotonic() < deadline, [p.poll() for p in procs]
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
            time.sleep(0.05)
        go.touch()
        results = [(p.wait(timeout=240), *p.communicate()) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    codes = [code for code, _, _ in results]
    assert set(codes) <= {0, 3}, [err for _, _, err in results]
    outs = [json.loads(out) for code, out, _ in results if code == 0]
    moved = [o for o in outs if o["changed"]]
    assert len(moved) == 1 and (moved[0]["from"], moved[0]["to"]) == ("2", "1")
    assert all(o.get("already_rolled_back") for o in outs if not o["changed"])
    assert [m[:2] for m in _production_moves(demo_ws)] == [(None, "1"), ("1", "2"), ("2", "1")]
    events = mrc("audit", "--json", "--workspace", str(demo_ws)).json()["events"]
    assert [e["action"] for e in events].count("rollback") == 1
    # a late one, after the race, sees the rollback from 2 and moves nothing either
    late = mrc("rollback", MODEL, "--json", "--workspace", str(demo_ws))
    assert late.returncode == 0 and late.json()["changed"] is False
    assert len(_production_moves(demo_ws)) == 3
    assert mrc("audit", "verify", "--workspace", str(demo_ws)).returncode == 0


def test_rollback_stays_light_with_its_new_checks(demo_ws):
    """Approval and artifact checks on the rollback path use stdlib sqlite3, not SQLAlchemy."""
    probe = (
        "import sys\n"
        "from console.cli import main\n"
        f"code = main(['rollback', {MODEL!r}, '--workspace', {str(demo_ws)!r}, '--reason', 'page'])\n"
        "heavy = sorted(m for m in ('sqlalchemy', 'sqlmodel', 'pydantic', 'torch', 'textual') if m in sys.modules)\n"
        "print('HEAVY', heavy, 'CODE', code)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=mrc_env(), cwd=str(REPO))
    assert "HEAVY [] CODE 0" in out.stdout, out.stdout + out.stderr
