"""`mrc canary plan MODEL VERSION --rate R` (issue 20): per-step durations at that traffic, what the
plan cannot see, --json, and bad input as one line with exit 2. In process; no workspace needed."""

from __future__ import annotations

import contextlib
import io
import json

import pytest


def mrc(argv: list[str], monkeypatch, tmp_path) -> tuple[int, str, str]:
    from console import cli

    monkeypatch.setenv("MRC_ACTOR", "tester")
    monkeypatch.delenv("MRC_WORKSPACE", raising=False)
    monkeypatch.chdir(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv + ["--workspace", str(tmp_path / "no-workspace")])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def test_the_plan_prints_each_step_and_what_it_cannot_see(monkeypatch, tmp_path):
    code, out, err = mrc(["canary", "plan", "churn", "2", "--rate", "3"], monkeypatch, tmp_path)
    assert code == 0, err
    assert "step 1: 5%" in out and "step 3: 50%" in out and "waits for error_rate x2" in out
    assert "cannot see:" in out and "evidence timeout" in out and "inconclusive" in out
    assert not (tmp_path / "no-workspace").exists()  # planning writes nothing


def test_the_plan_as_json_is_faster_at_more_traffic(monkeypatch, tmp_path):
    code, out, _ = mrc(["canary", "plan", "churn", "2", "--rate", "200", "--json"], monkeypatch, tmp_path)
    fast = json.loads(out)
    code2, out2, _ = mrc(["canary", "plan", "churn", "2", "--rate", "20", "--json"], monkeypatch, tmp_path)
    slow = json.loads(out2)
    assert code == code2 == 0
    assert [s["weight"] for s in fast["steps"]] == [5, 25, 50]
    assert fast["total_s"] < slow["total_s"]
    assert fast["steps"][0]["smallest_error_ratio"] < slow["steps"][0]["smallest_error_ratio"]
    last = fast["steps"][-1]["needs"][0]
    assert last["test"] == "error_rate" and last["seconds"] * 200 * 0.5 == pytest.approx(last["canary_requests"], rel=0.01)


@pytest.mark.parametrize("argv, words", [
    (["--rate", "0"], "--rate"), (["--rate", "nan"], "--rate"), (["--rate", "x"], "--rate"),
    (["--rate", "10", "--plan", "5,50"], "--plan"), (["--rate", "10", "--hold", "-1"], "--hold"),
    (["--rate", "10", "--base-error-rate", "1.5"], "--base-error-rate"),
])
def test_bad_input_is_one_line_exit_2(monkeypatch, tmp_path, argv, words):
    code, out, err = mrc(["canary", "plan", "churn", "2"] + argv, monkeypatch, tmp_path)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and words in err, (code, out, err)
