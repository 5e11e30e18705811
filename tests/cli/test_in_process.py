"""The in-process CLI (tests/support/cli.invoke) answers as a real `mrc` process does, and leaves
the test's process as it found it: environment, working folder, stdin, argv."""

from __future__ import annotations

import os
import sys

import pytest

from tests.support.cli import invoke, run_process

CASES = [
    ("--help",),
    ("versions", "--help"),
    ("no-such-command",),
    ("versions", "breast-cancer", "--json"),
    ("versions", "no-such-model"),
    ("promote", "breast-cancer", "../x"),
    ("audit", "verify", "--json"),
    ("alias", "breast-cancer", "production", "3"),
]


@pytest.mark.parametrize("argv", CASES, ids=" ".join)
def test_in_process_answers_as_a_process_does(synthetic_ws, argv):
    args = (*argv, "--workspace", str(synthetic_ws)) if "--help" not in argv else argv
    inside, outside = invoke(*args), run_process(*args)
    assert (inside.returncode, inside.stdout, inside.stderr) == (outside.returncode, outside.stdout, outside.stderr)


def test_the_callers_process_is_left_as_it_was(synthetic_ws, monkeypatch, tmp_path):
    monkeypatch.setenv("MRC_TEST_KEEP", "kept")
    monkeypatch.delenv("MRC_ACTOR", raising=False)
    monkeypatch.chdir(tmp_path)
    env, cwd, argv, stdin = dict(os.environ), os.getcwd(), list(sys.argv), sys.stdin
    result = invoke("promote", "breast-cancer", "5", "--override", "--reason", "r", "--workspace", str(synthetic_ws),
                    env={"MRC_ACTOR": "alice"})
    assert result.returncode == 0, result.stderr
    assert (dict(os.environ), os.getcwd(), list(sys.argv), sys.stdin) == (env, cwd, argv, stdin)
    audit = invoke("audit", "--json", "--workspace", str(synthetic_ws)).json()["events"]
    promoted = [e for e in audit if e["action"] == "promote" and e["version"] == "5"]
    assert [e["actor"] for e in promoted] == ["alice"]  # the environment reached the command


def test_stdin_is_what_the_caller_gives():
    result = invoke("versions", "--help", input="ignored\n")
    assert result.returncode == 0 and "usage:" in result.stdout
