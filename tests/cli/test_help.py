"""`--help` works for every subcommand and every sub-subcommand, each as a real `mrc` process.

The walk reads the commands from the parser itself, so a command added later is covered too;
argparse only formats a help string when --help is asked for, so an unescaped `%` in one
(`"100%"`) passes every other test and crashes here.
"""

from __future__ import annotations

import argparse

import pytest

from tests.support.cli import run_mrc


def _commands() -> list[tuple[str, ...]]:
    from console.cli import build_parser

    def walk(parser: argparse.ArgumentParser, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
        found = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found.append(prefix + (name,))
                    found += walk(child, prefix + (name,))
        return found

    return walk(build_parser(), ())


COMMANDS = _commands()


def test_the_walk_finds_the_commands_and_their_actions():
    assert ("canary",) in COMMANDS and ("canary", "start") in COMMANDS and ("rollback",) in COMMANDS
    assert len(COMMANDS) > 20


@pytest.mark.parametrize("command", [()] + COMMANDS, ids=lambda c: " ".join(c) or "mrc")
def test_help_exits_0_with_usage(command):
    result = run_mrc(*command, "--help", timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:"), result.stdout[:200]
    assert " ".join(command) in result.stdout.splitlines()[0] + result.stdout
    assert "Traceback" not in result.stderr
