"""One writer per act: while a canary is live, `mrc promote` and `mrc rollback` settle it first
(through its controller) or are refused with the command that ends it, and a refused command
has changed nothing. Real model servers and router (tests/canary's fixtures); mrc in process (CLI), on real model servers and router."""

from __future__ import annotations

import pytest

from tests.support.canary import CANDIDATE, MODEL, STABLE
from tests.support.one_truth import live_canary_at_50, world

pytestmark = pytest.mark.integration


def mrc(capsys, ws, *args: str) -> tuple[int, str, str]:
    from console.cli import main

    capsys.readouterr()
    code = main([*args, "--workspace", str(ws), "--actor", "oncall"])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_promote_during_a_live_canary_is_refused_with_the_commands_that_end_it(served_ws, capsys):
    live_canary_at_50(served_ws)
    before = world(served_ws)
    assert before == (STABLE, {STABLE: 50, CANDIDATE: 50}, "progressing")

    code, _, err = mrc(capsys, served_ws, "promote", MODEL, CANDIDATE, "--reason", "ship it")
    assert code == 3, err
    assert f"mrc canary promote {MODEL}" in err and f"mrc canary abort {MODEL}" in err and "nothing moved" in err
    assert world(served_ws) == before  # refused: registry, router and canary untouched

    # the canary's own path still promotes: one writer, the controller
    code, _, err = mrc(capsys, served_ws, "canary", "promote", MODEL, "--reason", "judged by a person")
    assert code == 0, err
    assert world(served_ws) == (CANDIDATE, {CANDIDATE: 100}, "promoted")


def test_rollback_after_a_blocked_promote_leaves_registry_and_router_agreeing(served_ws, capsys):
    live_canary_at_50(served_ws)
    mrc(capsys, served_ws, "promote", MODEL, CANDIDATE, "--reason", "ship it")  # refused (above)
    code, _, err = mrc(capsys, served_ws, "rollback", MODEL, "--reason", "page")
    assert code == 0, err
    assert world(served_ws) == (STABLE, {STABLE: 100}, "rolled_back")


def test_a_refused_rollback_to_leaves_the_live_canary_live(served_ws, capsys):
    code, _, err = mrc(capsys, served_ws, "reject", MODEL, "1", "--reason", "bad calibration", "--no-gates")
    assert code == 0, err
    live_canary_at_50(served_ws)
    before = world(served_ws)

    code, _, err = mrc(capsys, served_ws, "rollback", MODEL, "--to", "1", "--reason", "page")
    assert code == 2, err
    assert "rejected" in err
    assert world(served_ws) == before  # today: exit 2 after the canary was already rolled back

    # allowed: every check passes first, then the canary ends through its controller, then the move
    code, _, err = mrc(capsys, served_ws, "rollback", MODEL, "--to", "1", "--override", "--reason", "page")
    assert code == 0, err
    assert world(served_ws) == ("1", {"1": 100}, "rolled_back")


def test_rollback_when_production_was_moved_outside_the_live_canary_moves_pointer_and_traffic(served_ws, capsys):
    """A registry moved by the team's own tools while the canary ran: traffic alone back to the
    canary's stable would leave the registry saying the candidate (the blocker's end state)."""
    from backends.local.registry import LocalRegistry

    live_canary_at_50(served_ws)
    registry = LocalRegistry(served_ws)
    registry.move_pointer(MODEL, "production", expected=STABLE, new=CANDIDATE, actor="someone", reason="by hand")
    registry.close()

    code, _, err = mrc(capsys, served_ws, "rollback", MODEL, "--reason", "page")
    assert code == 0, err
    assert world(served_ws) == (STABLE, {STABLE: 100}, "rolled_back")
