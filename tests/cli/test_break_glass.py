"""`mrc break-glass` / `mrc restore` refusals, in process: each is one line on stderr, exit 2, and
nothing written (the audit log unchanged). The served path is tests/integration/serving/test_break_glass.py."""

from __future__ import annotations

import pytest

from console.release.audit import AuditLog

MODEL = "breast-cancer"


def _events(ws) -> int:
    return len(AuditLog(str(ws / "mrc.db")).events())


@pytest.mark.parametrize("argv, said", [
    (["break-glass", MODEL], "break-glass: a --reason is required"),
    (["break-glass", MODEL, "--reason", "  "], "break-glass: a --reason is required"),
    (["restore", MODEL], "restore: a --reason is required"),
    (["break-glass", MODEL, "--to", "../2", "--reason", "x"], "--to version"),
    (["break-glass", MODEL, "--to", "5", "--reason", "x"], "--to 5: breast-cancer 5 is pending"),
    (["break-glass", MODEL, "--to", "99", "--reason", "x"], "99"),
    (["restore", MODEL, "--reason", "x"], "breast-cancer: no break glass in effect; nothing to restore"),
    (["break-glass", MODEL, "--reason", "x", "--read-only"], "--read-only"),
])
def test_refusals_are_one_line_exit_2_and_write_nothing(mrc, synthetic_ws, argv, said):
    (synthetic_ws / "serving" / MODEL).mkdir(parents=True)  # served here (no router needed: refused before)
    before = _events(synthetic_ws)
    result = mrc(*argv, "--workspace", str(synthetic_ws))
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], result.stderr
    assert result.stdout == ""
    assert _events(synthetic_ws) == before


def test_a_model_not_served_here_is_one_line_exit_2(mrc, synthetic_ws):
    result = mrc("break-glass", MODEL, "--reason", "x", "--workspace", str(synthetic_ws))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"mrc: error: {MODEL}: not served (run `mrc serve-models {MODEL}`); "
                                     "break glass moves served traffic")


def test_break_glass_alerts_and_restore_resolves():
    from console.notify.alerts import AlertsConfig, fold, mapped_actions
    from console.release.audit import AuditEvent

    def event(seq, action, version, details):
        return AuditEvent(seq, f"2026-12-08T01:0{seq}:00Z", "oncall", action, MODEL, version, details, "", "")

    assert {"break_glass", "restore"} <= set(mapped_actions())
    broken = fold([event(1, "break_glass", "2", {"reason": "garbage answers"})], AlertsConfig())
    (alert,) = broken.values()
    assert (alert.labels["alertname"], alert.labels["severity"], alert.status) == ("BreakGlass", "critical", "firing")
    assert alert.annotations["summary"] == (f"{MODEL}: glass broken by oncall: 100% of traffic to 2: garbage answers")
    restored = fold([event(1, "break_glass", "2", {"reason": "r"}), event(2, "restore", "2", {})], AlertsConfig())
    assert [a.status for a in restored.values()] == ["resolved"]
