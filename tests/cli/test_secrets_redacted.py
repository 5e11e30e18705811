"""Credentials in a URL are refused at config load (one line that names the field, never the
secret) or masked wherever mrc prints or audits them; a git remote with an access token in a
version's lineage never reaches stdout, stderr or an audit row."""

from __future__ import annotations

import json
import sqlite3

import pytest

from backends.support.redact import credential_in_url, escape_control, redact, redact_obj

SENTINEL = "SENTINEL-credential-7f3a9c"

CONFIGS = {
    "s3-userinfo": f'[registry]\nbackend = "s3"\nbucket = "b"\nendpoint_url = "http://AKIA:{SENTINEL}@127.0.0.1:8333"\n',
    "s3-query": f'[registry]\nbackend = "s3"\nbucket = "b"\nendpoint_url = "http://127.0.0.1:8333/?X-Amz-Security-Token={SENTINEL}"\n',
    "mlflow-token": f'[registry]\nbackend = "mlflow"\ntracking_uri = "http://127.0.0.1:5000/?token={SENTINEL}"\n',
    "mlflow-userinfo": f'[registry]\nbackend = "mlflow"\ntracking_uri = "https://ml:{SENTINEL}@mlflow.example"\n',
    "mlflow-token-user": f'[registry]\nbackend = "mlflow"\ntracking_uri = "https://{SENTINEL}@mlflow.example"\n',
    "prometheus-token": f'[metrics]\nbackend = "prometheus"\nurl = "http://127.0.0.1:9090/?access_token={SENTINEL}"\n',
    "prometheus-userinfo": f'[metrics]\nbackend = "prometheus"\nurl = "http://ops:{SENTINEL}@127.0.0.1:9090"\n',
    "model-data-sig": f'[models.m]\ntest_data = "https://b.example/t.csv?sig={SENTINEL}"\n',
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("command", [["models"], ["rollback", "m"], ["versions", "m", "--json"]], ids=" ".join)
def test_credentials_in_config_urls_are_refused_without_echo(tmp_path, mrc, name, command):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "mrc.toml").write_text(CONFIGS[name])
    result = mrc(*command, "--workspace", str(ws))
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "credentials" in result.stderr, result.stderr
    assert SENTINEL not in result.stdout + result.stderr
    assert sorted(p.name for p in ws.iterdir()) == ["mrc.toml"]


def test_credentials_from_the_environment_are_masked_in_errors(tmp_path, mrc):
    """MLFLOW_TRACKING_URI is the user's to set; an unreachable server's error line masks its token."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "mrc.toml").write_text('[registry]\nbackend = "mlflow"\nretries = 1\ntimeout_s = 2\n')
    result = mrc("versions", "m", "--workspace", str(ws),
                 env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:9/?token={SENTINEL}"})
    assert result.returncode == 4, result.stderr
    assert "token=***" in result.stderr
    assert SENTINEL not in result.stdout + result.stderr


def _poison_lineage(ws, versions: dict[str, str]) -> None:
    """What a registry holds when training ran from a clone whose remote carries a token."""
    conn = sqlite3.connect(ws / "mrc.db")
    try:
        for version, repo in versions.items():
            (raw,) = conn.execute("SELECT lineage_json FROM versions WHERE version = ?", (version,)).fetchone()
            lineage = json.loads(raw)
            lineage["code_repo"] = repo
            conn.execute("UPDATE versions SET lineage_json = ? WHERE version = ?", (json.dumps(lineage), version))
        conn.commit()
    finally:
        conn.close()


def test_git_remote_token_in_lineage_never_printed_nor_audited(demo_ws, mrc):
    _poison_lineage(demo_ws, {"5": f"https://x-access-token:{SENTINEL}@github.com/org/repo.git",
                              "2": f"https://ghp{SENTINEL}@github.com/org/repo.git"})
    ws = ["--workspace", str(demo_ws)]
    outputs = []
    for args in (["versions", "breast-cancer", "--json"], ["versions", "breast-cancer"], ["models", "--json"],
                 ["approve", "breast-cancer", "5", "--reason", f"tested, see https://ci:{SENTINEL}@ci.example/run"],
                 ["promote", "breast-cancer", "5", "--reason", "release"],
                 ["rollback", "breast-cancer", "--json"],
                 ["audit"], ["audit", "--json"]):
        result = mrc(*args, *ws)
        assert result.returncode == 0, (args, result.stderr)
        outputs.append(result.stdout + result.stderr)
    printed = "\n".join(outputs)
    assert SENTINEL not in printed
    data = json.loads(mrc("versions", "breast-cancer", "--json", *ws).stdout)
    repos = {v["version"]: v["lineage"]["code_repo"] for v in data["versions"]}
    assert repos["5"] == "https://***@github.com/org/repo.git"
    conn = sqlite3.connect(demo_ws / "mrc.db")
    try:
        rows = conn.execute("SELECT actor, action, details FROM audit_events").fetchall()
    finally:
        conn.close()
    assert rows and not [row for row in rows if SENTINEL in json.dumps(row)]


def test_lineage_presenters_mask_the_remote():
    from backends.base import Artifact, Lineage, ModelVersion
    from screens.presenters import lineage_outline

    mv = ModelVersion("m", "1", "2026-01-01T00:00:00.000000Z", Artifact("file:///m.pt", "0" * 64, 1),
                      lineage=Lineage(code_repo=f"https://oauth2:{SENTINEL}@gitlab.example/g/r.git"))
    leaves = [leaf for _, group in lineage_outline(mv) for leaf in group]
    assert "repo https://***@gitlab.example/g/r.git" in leaves
    assert SENTINEL not in repr(leaves)


@pytest.mark.parametrize("text,expected", [
    ("http://u:p@h:1/x", "http://***@h:1/x"),
    ("git fetch https://ghp_abcdefghijklmnop@github.com/o/r", "git fetch https://***@github.com/o/r"),
    ("ssh://git@github.com/o/r", "ssh://git@github.com/o/r"),
    ("http://h/q?token=abc&page=2", "http://h/q?token=***&page=2"),
    ("https://b/k?X-Amz-Signature=ff&X-Amz-Credential=AK%2F1", "https://b/k?X-Amz-Signature=***&X-Amz-Credential=***"),
    ("http://h/?monkey=1&key=", "http://h/?monkey=1&key="),
    ("no url here key=value", "no url here key=value"),
    ("s3://bucket/k?password=pw", "s3://bucket/k?password=***"),
])
def test_redact(text, expected):
    assert redact(text) == expected


def test_redact_obj_and_credential_in_url():
    assert redact_obj({"u": ["http://a:b@h"], 3: None}) == {"u": ["http://***@h"], 3: None}
    assert credential_in_url("http://a:b@h") and credential_in_url("http://h/?sig=x")
    assert credential_in_url("http://h/?page=1") is None and credential_in_url("ssh://git@h/r") is None
    assert credential_in_url("not a url") is None


def test_escape_control():
    assert escape_control("eve\x1b[2K\r\nmallory\u202e") == "eve\\x1b[2K\\r\\nmallory\\u202e"
    assert escape_control("plain — ünïcode") == "plain — ünïcode"
