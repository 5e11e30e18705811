"""`mrc`: the command line. Global options work before or after the subcommand, like kubectl's.

Exit codes: 0 ok / gate passed, 1 gate failed, drift critical or refused by policy, 2 bad input
or usage (one line on stderr, nothing written), 3 conflict (someone moved the pointer first),
4 a backend unavailable after its retries.

Each subcommand lives in a module of console/commands/ that exposes `register(sub, common)`;
those modules import nothing heavy at the top, so `mrc --help` and `mrc rollback` stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import sqlite3
import sys

from backends.base import BackendError, BadInputError, ConflictError

# Order is the order of `mrc --help`.
COMMAND_MODULES = [
    "console.commands.registry_cmds",
    "console.commands.workspace_cmds",
    "console.commands.audit_cmds",
    "console.commands.train_cmds",
    "console.commands.gate_cmds",
    "console.commands.canary_cmds",
    "console.commands.serve_cmds",
]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CONFLICT, EXIT_BACKEND = 0, 1, 2, 3, 4


class OneLineParser(argparse.ArgumentParser):
    """Usage errors are one clear line and exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"mrc: error: {message} (see `{self.prog} --help`)\n")


def add_global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # In subparsers the defaults are SUPPRESS so an option given before the subcommand survives.
    default = (lambda value: value) if top else (lambda value: argparse.SUPPRESS)
    group = parser.add_argument_group("global options")
    group.add_argument("--workspace", metavar="DIR", default=default(None),
                       help="workspace folder (default: $MRC_WORKSPACE, else the embedded default)")
    group.add_argument("--json", action="store_true", default=default(False), help="machine-readable output on stdout")
    group.add_argument("--actor", metavar="NAME", default=default(None), help="who acts (default: $MRC_ACTOR, else the OS user)")
    group.add_argument("--read-only", action="store_true", default=default(False), help="refuse every write")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="mrc", description="Model Release Console: approve, canary and roll back models.")
    add_global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        add_global_options(p, top=False)
        return p

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    from console.commands.common import Context, PolicyRefusal

    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        if args.command is None:
            return _open_console(args)
        parser.error(f"{args.command}: missing subcommand")
    ctx = Context(args)
    try:
        return int(handler(ctx) or 0)
    except BadInputError as exc:
        print(f"mrc: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ConflictError as exc:
        print(f"mrc: conflict: {exc}", file=sys.stderr)
        return EXIT_CONFLICT
    except PolicyRefusal as exc:
        print(f"mrc: refused: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BackendError as exc:
        print(f"mrc: backend error: {exc}", file=sys.stderr)
        return EXIT_BACKEND
    except sqlite3.DatabaseError as exc:  # a damaged or foreign mrc.db: bad input, not a traceback
        print(f"mrc: error: {ctx.db_path_hint()}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # `mrc audit | head`: the reader left, nothing is wrong
        sys.stdout = None  # type: ignore[assignment]
        return EXIT_OK
    except KeyboardInterrupt:
        print("mrc: interrupted", file=sys.stderr)
        return 130
    finally:
        ctx.close()


def _open_console(args) -> int:
    try:
        app_module = importlib.import_module("console.app")
    except ImportError:
        print("mrc: the console is not built yet; see `mrc --help` for the commands", file=sys.stderr)
        return EXIT_BAD_INPUT
    return int(app_module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
