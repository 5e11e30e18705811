"""`mrc rollback` / `mrc promote` build only their own module's parsers (console/cli.py
COMMAND_HOME): the fast path must parse exactly what the full parser parses."""

from __future__ import annotations

import pytest

from console.cli import COMMAND_HOME, COMMAND_MODULES, build_parser, command_named

LINES = [
    ["rollback", "m"],
    ["--json", "rollback", "m", "--to", "3", "--override", "--reason", "bad"],
    ["--workspace", "/tmp/ws", "--actor", "alice", "rollback", "m", "--expect", "5"],
    ["--workspace=/tmp/ws", "promote", "m", "7", "--reason", "ok", "--read-only"],
    ["promote", "m", "7", "--json"],
]


@pytest.mark.parametrize("argv", LINES)
def test_the_fast_path_parses_as_the_full_parser_does(argv):
    command = command_named(argv)
    assert command in COMMAND_HOME and COMMAND_HOME[command] in COMMAND_MODULES
    fast = vars(build_parser(COMMAND_HOME[command]).parse_args(argv))
    full = vars(build_parser().parse_args(argv))
    assert fast.keys() == full.keys() and all(fast[k] == full[k] for k in full if k != "handler")
    assert fast["handler"] is full["handler"]


@pytest.mark.parametrize("argv, named", [
    (["-h"], None), (["--help", "rollback"], None), (["--workspace"], None), (["--verbose", "rollback"], None),
    (["--actor", "rollback", "promote", "m", "1"], "promote"), ([], None), (["audit", "verify"], "audit"),
])
def test_only_a_command_line_read_for_sure_takes_the_fast_path(argv, named):
    assert command_named(argv) == named


def test_every_fast_command_is_registered_by_its_home_module():
    for command, module in COMMAND_HOME.items():
        parser = build_parser(module)
        choices = next(a for a in parser._actions if a.dest == "command").choices
        assert command in choices, (command, module)
