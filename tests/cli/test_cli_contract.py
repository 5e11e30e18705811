"""The foundation's CLI contract, through real `mrc` processes on a real demo workspace."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import REPO, mrc_env, tree_digest


def test_versions_json_lists_every_version_with_lineage_and_artifact(demo_ws, mrc):
    result = mrc("versions", "breast-cancer", "--json", "--workspace", str(demo_ws))
    assert result.returncode == 0, result.stderr
    data = result.json()
    assert data["model"] == "breast-cancer"
    versions = {v["version"]: v for v in data["versions"]}
    assert sorted(versions) == ["1", "2", "3", "4", "5"]
    for v in versions.values():
        for metric in ("auc_roc", "precision", "recall", "f1", "p99_latency_ms", "model_size_mb", "golden_auc_roc"):
            assert isinstance(v["metrics"][metric], float)
        lineage = v["lineage"]
        assert lineage["code_commit"] and lineage["training_run"]
        assert lineage["data_version"].startswith("breast_cancer@")
        assert len(lineage["data_sha256"]) == 64
        assert lineage["params"]["epochs"] >= 1 and "seed" in lineage["params"]
        assert lineage["environment"]["python"] and "torch" in lineage["environment"]["frameworks"]
        assert lineage["environment"]["packages_digest"].startswith("sha256:")
        artifact = v["artifact"]
        assert len(artifact["sha256"]) == 64 and artifact["size_bytes"] > 0
        # the artifact really is what the registry says
        path = Path(artifact["uri"].removeprefix("file://"))
        import hashlib

        assert hashlib.sha256(path.read_bytes()).hexdigest() == artifact["sha256"]
    assert versions["2"]["aliases"] == ["production"]
    assert versions["5"]["aliases"] == ["candidate"]
    assert versions["5"]["lineage"]["parent_version"] == "2"
    # the genuinely worse versions are worse on the held-out set
    assert versions["3"]["metrics"]["auc_roc"] < versions["2"]["metrics"]["auc_roc"] - 0.1
    assert versions["4"]["metrics"]["auc_roc"] < versions["2"]["metrics"]["auc_roc"] - 0.1
    assert versions["4"]["lineage"]["data_version"] == "breast_cancer@v3-drifted"


def test_global_options_before_or_after_the_subcommand(demo_ws, mrc):
    before = mrc("--json", "--workspace", str(demo_ws), "models")
    after = mrc("models", "--json", "--workspace", str(demo_ws))
    assert before.returncode == after.returncode == 0
    assert before.json() == after.json()
    (model,) = before.json()["models"]
    assert (model["name"], model["production"], model["candidate"]) == ("breast-cancer", "2", "5")


def test_promote_rollback_and_history_are_audited(demo_ws, mrc):
    ws = ["--workspace", str(demo_ws), "--actor", "alice"]
    refused = mrc("promote", "breast-cancer", "5", *ws)
    assert refused.returncode == 1 and "approve it first" in refused.stderr
    assert mrc("approve", "breast-cancer", "5", "--reason", "looks good", "--no-gates", "--override", *ws).returncode == 0
    assert mrc("promote", "breast-cancer", "5", "--reason", "ship it", *ws).returncode == 0
    models = mrc("models", "--json", *ws).json()["models"][0]
    assert models["production"] == "5" and models["candidate"] is None  # a promoted candidate is no longer one
    back = mrc("rollback", "breast-cancer", "--reason", "p99 up", "--json", *ws)
    assert back.returncode == 0, back.stderr
    assert back.json()["from"] == "5" and back.json()["to"] == "2"
    events = mrc("audit", "--json", *ws).json()["events"]
    actions = [(e["action"], e["version"], e["actor"]) for e in events[-4:]]
    assert actions == [("approve", "5", "alice"), ("promote", "5", "alice"), ("clear-candidate", "5", "alice"),
                       ("rollback", "2", "alice")]
    assert mrc("audit", "verify", *ws).returncode == 0


def test_read_only_refuses_every_write_and_writes_nothing(demo_ws, mrc):
    before = tree_digest(demo_ws)
    for args in (["promote", "breast-cancer", "5"], ["rollback", "breast-cancer"],
                 ["approve", "breast-cancer", "5", "--reason", "x"], ["alias", "breast-cancer", "canary", "5"]):
        result = mrc(*args, "--read-only", "--workspace", str(demo_ws))
        assert result.returncode == 2 and "read-only" in result.stderr
    assert tree_digest(demo_ws) == before


def _race(demo_ws: Path, n: int) -> list[subprocess.Popen]:
    procs = []
    for i in range(n):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "console.cli", "promote", "race", str(i + 2), "--expect", "1",
             "--workspace", str(demo_ws), "--actor", f"racer-{i}", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=mrc_env(), cwd=str(REPO)))
    return procs


def test_twenty_racing_promotions_exactly_one_wins(demo_ws, mrc, tmp_path):
    from backends.base import Approval, Lineage
    from backends.local.registry import LocalRegistry
    from console.release.audit import AuditLog
    from console.release.actions import promote

    registry = LocalRegistry(demo_ws)
    artifact = tmp_path / "a.bin"
    for i in range(1, 22):
        artifact.write_bytes(f"artifact {i}".encode())
        registry.register_version("race", str(artifact), metrics={"auc_roc": 0.9}, lineage=Lineage())
        registry.set_approval("race", str(i), Approval("approved", "t", "", "ok"), expected_status="pending")
    promote(registry, AuditLog(str(demo_ws / "mrc.db")), "race", "1", actor="setup")
    registry.close()

    procs = _race(demo_ws, 20)
    codes = [p.wait(timeout=120) for p in procs]
    errors = [p.stderr.read() for p in procs]
    assert sorted(codes) == [0] + [3] * 19, errors
    losers = [e for c, e in zip(codes, errors) if c == 3]
    assert all("conflict" in e and e.count("\n") == 1 for e in losers), losers
    history = mrc("audit", "--json", "--model", "race", "--workspace", str(demo_ws)).json()["events"]
    promotions = [e for e in history if e["action"] == "promote"]
    assert len(promotions) == 2  # the setup move and exactly one winner
    conn = sqlite3.connect(demo_ws / "mrc.db")
    moves = conn.execute("SELECT from_version, to_version FROM pointer_moves WHERE model='race'").fetchall()
    conn.close()
    assert len(moves) == 2 and moves[1][0] == "1"
    winner = codes.index(0) + 2
    assert moves[1][1] == str(winner)


def test_audit_verify_names_the_first_tampered_event(demo_ws, mrc):
    assert mrc("audit", "verify", "--workspace", str(demo_ws)).returncode == 0
    conn = sqlite3.connect(demo_ws / "mrc.db")
    conn.execute("UPDATE audit_events SET details = ? WHERE seq = 7", (json.dumps({"reason": "nothing to see"}),))
    conn.commit()
    conn.close()
    result = mrc("audit", "verify", "--json", "--workspace", str(demo_ws))
    assert result.returncode == 1
    assert result.json()["first_broken"] == 7
    assert "event 7" in mrc("audit", "verify", "--workspace", str(demo_ws)).stdout


@pytest.mark.parametrize("column", ["actor", "action", "version", "at"])
def test_audit_verify_catches_any_changed_column(demo_ws, mrc, column):
    conn = sqlite3.connect(demo_ws / "mrc.db")
    conn.execute(f"UPDATE audit_events SET {column} = {column} || 'x' WHERE seq = 3")
    conn.commit()
    conn.close()
    result = mrc("audit", "verify", "--json", "--workspace", str(demo_ws))
    assert result.returncode == 1 and result.json()["first_broken"] == 3


def test_audit_verify_catches_a_deleted_row(demo_ws, mrc):
    conn = sqlite3.connect(demo_ws / "mrc.db")
    conn.execute("DELETE FROM audit_events WHERE seq = 4")
    conn.commit()
    conn.close()
    result = mrc("audit", "verify", "--json", "--workspace", str(demo_ws))
    assert result.returncode == 1 and result.json()["first_broken"] == 5


BAD_INPUTS = [
    (["versions", "no-such-model"], "unknown model"),
    (["promote", "breast-cancer", "99"], "unknown version"),
    (["promote", "../etc", "1"], "not valid"),
    (["promote", "breast-cancer", "a/b"], "not valid"),
    (["versions", ".."], "not valid"),
    (["rollback", "breast-cancer", "--to", "x/../y"], "not valid"),
    (["approve", "breast-cancer", "5", "--reason", "  ", "--no-gates", "--override"], "reason"),
    (["promote", "breast-cancer", "5", "--expect", "../2"], "not valid"),
    (["train", "breast-cancer", "--param", "oops"], "KEY=VALUE"),
]


@pytest.mark.parametrize("args,needle", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_nothing_written(demo_ws, mrc, args, needle):
    before = tree_digest(demo_ws)
    result = mrc(*args, "--workspace", str(demo_ws))
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert tree_digest(demo_ws) == before


def test_corrupted_artifact_is_refused_on_promote(demo_ws, mrc):
    data = mrc("versions", "breast-cancer", "--json", "--workspace", str(demo_ws)).json()
    artifact = Path(next(v for v in data["versions"] if v["version"] == "1")["artifact"]["uri"].removeprefix("file://"))
    artifact.chmod(0o644)
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the zip
    artifact.write_bytes(bytes(data))
    before = tree_digest(demo_ws)
    result = mrc("promote", "breast-cancer", "1", "--workspace", str(demo_ws))
    assert result.returncode == 2
    assert "corrupted" in result.stderr and str(artifact) in result.stderr
    assert result.stderr.count("\n") == 1
    assert tree_digest(demo_ws) == before
    assert mrc("models", "--json", "--workspace", str(demo_ws)).json()["models"][0]["production"] == "2"


def test_unreadable_workspaces_are_bad_input(tmp_path, mrc):
    missing = tmp_path / "nowhere"
    result = mrc("models", "--workspace", str(missing))
    assert result.returncode == 2 and "does not exist" in result.stderr and not missing.exists()

    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = mrc("models", "--workspace", str(a_file))
    assert result.returncode == 2 and "not a folder" in result.stderr

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "mrc.db").write_bytes(b"this is not sqlite" * 100)
    before = tree_digest(garbage)
    for args in (["models"], ["rollback", "m"], ["audit", "verify"]):
        result = mrc(*args, "--workspace", str(garbage))
        assert result.returncode == 2, result.stderr
        assert "mrc.db" in result.stderr and result.stderr.count("\n") == 1
    assert tree_digest(garbage) == before

    bad_toml = tmp_path / "badtoml"
    bad_toml.mkdir()
    (bad_toml / "mrc.toml").write_text("[registry\nbackend = 1")
    result = mrc("models", "--workspace", str(bad_toml))
    assert result.returncode == 2 and "mrc.toml" in result.stderr

    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "mrc.toml").write_text('[registry]\nbackend = "oracle"\n')
    result = mrc("models", "--workspace", str(unknown))
    assert result.returncode == 2 and "registry" not in result.stdout and "oracle" in result.stderr


def test_usage_errors_are_one_line(mrc):
    result = mrc("promote")
    assert result.returncode == 2 and result.stderr.count("\n") == 1


HEAVY = ("torch", "pandas", "plotly", "mlflow", "boto3", "kubernetes", "lightkube", "scipy", "sklearn")


@pytest.mark.parametrize("argv", [["--help"], ["rollback", "breast-cancer", "--reason", "3am"]])
def test_help_and_rollback_import_nothing_heavy(demo_ws, argv):
    probe = (
        "import sys, runpy\n"
        f"sys.argv = ['mrc', *{argv!r}, '--workspace', {str(demo_ws)!r}]\n"
        "try:\n    runpy.run_module('console.cli', run_name='__main__')\n"
        "except SystemExit as e:\n    code = e.code\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('HEAVY', heavy, 'CODE', code)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=mrc_env(), cwd=str(REPO))
    assert "HEAVY [] CODE 0" in out.stdout, out.stdout + out.stderr


def test_a_reader_that_leaves_early_is_not_an_error(demo_ws):
    """`mrc audit | head`: the pipe's reader is gone before mrc writes; exit 0, no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # closed before the child starts: its first write meets EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "console.cli", "versions", "breast-cancer", "--workspace",
                               str(demo_ws)], stdout=write_end, stderr=subprocess.PIPE, text=True, cwd=REPO,
                              env=mrc_env(), timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_an_error_nobody_foresaw_never_exits_1(monkeypatch, capsys, tmp_path):
    """Exit 1 is a verdict (gate failed, drift beyond critical): a crash must not read as one."""
    from console import cli
    from console.commands import gate_cmds

    def crash(ctx):
        raise RuntimeError("an unforeseen state")

    monkeypatch.setattr(gate_cmds, "cmd_drift", crash)
    code = cli.main(["drift", "--reference", str(tmp_path / "a.csv"), "--current", str(tmp_path / "b.csv")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_BACKEND, err
    assert err.strip().splitlines()[-1] == "mrc: internal error: RuntimeError: an unforeseen state"
