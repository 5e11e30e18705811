"""Every command fails cleanly (issue 23): one line, the documented exit code, nothing written,
and a hint where the user mistyped. In process through console.cli.main on workspaces made by
`mrc init` (the bad-input table, tests/security/test_bad_inputs.py, holds the one-line cases)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import socket

import pytest

from tests.support.cli import tree_digest


def mrc_in_process(*argv: str, env: dict[str, str] | None = None, monkeypatch=None) -> tuple[int, str, str]:
    from console.cli import main

    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.delenv("MRC_WORKSPACE", raising=False)
    root = tmp_path / "ws"
    assert mrc_in_process("init", "--workspace", str(root))[0] == 0
    return root


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("target,code,words", [
    ("not-a-url", 2, "checkpoints go to s3://BUCKET/PREFIX"),
    ("s3://audit-bucket/anchors", 4, "no AWS credentials"),
])
def test_checkpoint_target_is_checked_before_the_local_checkpoint(ws, monkeypatch, tmp_path, target, code, words):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    before = tree_digest(ws)
    got, _, err = mrc_in_process("audit", "checkpoint", "--to", target, "--workspace", str(ws))
    assert got == code and words in _one_line(err)
    assert tree_digest(ws) == before  # no audit-checkpoints.jsonl, no .mrc-key


def test_an_unreachable_s3_target_is_one_line_exit_4(ws, monkeypatch):
    with socket.socket() as holder:  # a port nothing answers on: bound, never listening
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        with open(ws / "mrc.toml", "a") as fh:
            fh.write(f'\n[audit]\nendpoint_url = "http://127.0.0.1:{port}"\n')
        before = tree_digest(ws)
        got, _, err = mrc_in_process("audit", "checkpoint", "--to", "s3://audit/anchors", "--workspace", str(ws),
                                     env={"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"},
                                     monkeypatch=monkeypatch)
    assert got == 4 and "cannot reach the bucket" in _one_line(err), err
    assert tree_digest(ws) == before


@pytest.mark.parametrize("table,key,line", [
    ("traffic", "shadow_log_kep = 3", "[traffic] shadow_log_kep: unknown key; did you mean 'shadow_log_keep'?"),
    ("registry", "buket = 'b'", "[registry] buket: unknown key"),
    ("workspace", "lock_timeout = 3", "[workspace] lock_timeout: unknown key; did you mean 'lock_timeout_s'?"),
])
def test_unknown_keys_are_refused_naming_table_and_key(ws, table, key, line):
    text = (ws / "mrc.toml").read_text()
    if f"[{table}]" in text:
        text = text.replace(f"[{table}]\n", f"[{table}]\n{key}\n")
    else:
        text += f"\n[{table}]\n{key}\n"
    (ws / "mrc.toml").write_text(text)
    got, _, err = mrc_in_process("models", "--workspace", str(ws))
    assert got == 2 and line in _one_line(err) and "mrc.toml" in err


def test_unknown_table_is_refused_with_a_hint(ws):
    with open(ws / "mrc.toml", "a") as fh:
        fh.write("\n[polcy.production]\nrequired_approvals = 2\n")
    got, _, err = mrc_in_process("models", "--workspace", str(ws))
    assert got == 2 and "[polcy]: unknown table; did you mean 'policy'?" in _one_line(err)


def test_mistyped_command_gets_a_suggestion(ws):
    got, _, err = mrc_in_process("rollbak", "m", "--workspace", str(ws))
    assert got == 2 and "did you mean 'rollback'?" in _one_line(err)


@pytest.mark.parametrize("bad", ["inf", "nan", "-inf"])
def test_datasets_add_refuses_non_finite_values(ws, tmp_path, bad):
    csv = tmp_path / "rows.csv"
    csv.write_text(f"a,b\n1,2\n3,{bad}\n")
    before = tree_digest(ws)
    got, _, err = mrc_in_process("datasets", "add", "rows@v1", str(csv), "--workspace", str(ws))
    assert got == 2 and "column 'b' row 2" in _one_line(err) and "not a finite number" in err
    assert tree_digest(ws) == before


def test_datasets_add_recovers_an_orphan_file(ws, tmp_path):
    (ws / "data" / "rows").mkdir(parents=True)
    (ws / "data" / "rows" / "v1.csv").write_text("half a file from a killed run")
    csv = tmp_path / "rows.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    got, out, err = mrc_in_process("datasets", "add", "rows@v1", str(csv), "--json", "--workspace", str(ws))
    assert got == 0, err
    assert (ws / "data" / "rows" / "v1.csv").read_text() == "a,b\n1,2\n3,4\n"
    got, _, err = mrc_in_process("datasets", "add", "rows@v1", str(csv), "--workspace", str(ws))
    assert got == 2 and "already exists" in _one_line(err)  # a recorded version stays immutable
    code, out, _ = mrc_in_process("audit", "--json", "--workspace", str(ws))
    assert [e["action"] for e in json.loads(out)["events"]] == ["dataset.add"]


def test_drill_needs_an_option_or_off(ws):
    got, _, err = mrc_in_process("drill", "m", "1", "--workspace", str(ws))
    assert got == 2 and "--off" in _one_line(err)


def test_serve_on_a_busy_port_prints_no_token(ws, monkeypatch):
    monkeypatch.setenv("MRC_SERVE_TOKEN", "a-long-enough-test-token-0123456789")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        got, out, err = mrc_in_process("serve", "--port", str(port), "--workspace", str(ws))
    assert got == 2 and f"--port {port}: cannot listen" in _one_line(err)
    assert "token" not in (out + err).lower()


def _options_without_help(parser: argparse.ArgumentParser, path: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                missing += _options_without_help(sub, f"{path} {name}")
        elif action.option_strings and not action.help:
            missing.append(f"{path} {'/'.join(action.option_strings)}")
    return missing


def test_every_option_has_help_and_reject_describes_rejecting(capsys):
    from console.cli import build_parser

    assert _options_without_help(build_parser(), "mrc") == []
    with pytest.raises(SystemExit):
        build_parser().parse_args(["reject", "--help"])
    text = capsys.readouterr().out
    assert "reject a version" in text and "approve although" not in text
    with pytest.raises(SystemExit):
        build_parser().parse_args(["drill", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "within [0, 1]" in text and "Drills add to each other" in text
