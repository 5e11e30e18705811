"""Names are matched whole (no trailing newline slips through `$`); actors and reasons are stored
exactly as given but printed with their control characters escaped, so an `--actor` holding an
ESC sequence and a newline cannot repaint the terminal or forge a row in `mrc audit`."""

from __future__ import annotations

import json

import pytest

from backends.base import BadInputError, check_name

FORGED = "eve\x1b[2K\r\n2026-01-01T00:00:00  alice  promote  breast-cancer  5  {}\x1b[31m"


@pytest.mark.parametrize("name", ["bc\n", "bc\r", "bc\n\n", "\nbc", "bc\x00", "b\u202ec"])
def test_check_name_matches_the_whole_name(name):
    with pytest.raises(BadInputError) as err:
        check_name(name, "model")
    assert "\n" not in str(err.value).replace("\\n", "")


def test_long_name_is_clipped_in_the_message():
    with pytest.raises(BadInputError) as err:
        check_name("a" * 100_000, "model")
    assert len(str(err.value)) < 300 and "100000 characters" in str(err.value)


def test_trailing_newline_name_creates_nothing(demo_ws, mrc):
    result = mrc("serve-models", "bc\n", "--workspace", str(demo_ws))
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert not (demo_ws / "serving").exists() or not any((demo_ws / "serving").iterdir())


def test_forged_actor_and_reason_are_stored_as_given_and_printed_escaped(demo_ws, mrc):
    ws = ["--workspace", str(demo_ws)]
    before = mrc("audit", "--json", *ws).json()["events"]
    moved = mrc("reject", "breast-cancer", "5", "--reason", "tidy\nup\x1b]0;pwned\x07", "--actor", FORGED, *ws)
    assert moved.returncode == 0, moved.stderr
    events = mrc("audit", "--json", *ws).json()["events"]
    assert len(events) == len(before) + 1
    assert events[-1]["actor"] == FORGED  # stored as given: the audit is evidence
    assert events[-1]["details"]["reason"] == "tidy\nup\x1b]0;pwned\x07"
    text = mrc("audit", *ws).stdout
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    lines = text.splitlines()
    assert len(lines) == 1 + len(events), "a row was forged"
    assert lines[-1].split()[2].startswith("eve\\x1b[2K\\r\\n2026-01-01T00:00:00")
    assert "alice" not in "\n".join(lines[:-1])


def test_audit_presenter_escapes_every_cell():
    from console.domain import AuditEvent
    from screens.presenters import audit_cells

    event = AuditEvent(1, "2026-01-01T00:00:00.000000Z", FORGED, "alias", "m", "1",
                       {"reason": "a\nb\x1b[5m"}, "0" * 64, "f" * 64)
    cells = audit_cells(event)
    assert all("\x1b" not in text and "\n" not in text and "\r" not in text for text, _ in cells)
    assert cells[2][0].startswith("eve\\x1b[2K\\r\\n")
    assert cells[6][0] == "a\\nb\\x1b[5m"


def test_error_lines_escape_control_characters(demo_ws, mrc):
    result = mrc("versions", "bc\x1b[2J\nforged line", "--workspace", str(demo_ws))
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "\x1b" not in result.stderr
    assert json.dumps(result.stderr)  # printable
