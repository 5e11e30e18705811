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
import os
import sqlite3
import sys
import warnings

from backends.base import BackendError, BadInputError, ConflictError, NotFoundError
from backends.support.dbfile import writable_folder
from backends.support.redact import safe_line
from console.commands.common import Context
from console.errors import LockTimeout, PolicyRefusal

# mrc's modules that this file's handlers run (release, rollout, evaluate …) are imported inside
# them: every command module is imported to build `mrc --help` and `mrc rollback`'s parser, which
# must not pay for them (--help: ~70 ms of CPU as is, ~300 ms with them at the top). Light modules
# that --help loads anyway are imported above.

# Order is the order of `mrc --help`.
COMMAND_MODULES = [
    "console.commands.registry_cmds",
    "console.commands.workspace_cmds",
    "console.commands.audit_cmds",
    "console.commands.train_cmds",
    "console.commands.gate_cmds",
    "console.commands.canary_cmds",
    "console.commands.serve_cmds",
    "console.commands.alerts_cmds",
    "console.commands.shadow_cmds",
    "console.commands.watch_cmds",
    "console.commands.monitor_cmds",
    "console.commands.break_glass_cmds",
]

# The 3 AM commands and the module that registers each: `mrc rollback` imports and builds that
# module's parsers alone (~0.1 s less than all of them). Any other command, and any command line
# this cannot read without a parser (`-h` first, an unknown option), builds them all.
COMMAND_HOME = {"rollback": "console.commands.registry_cmds", "promote": "console.commands.registry_cmds",
                "break-glass": "console.commands.break_glass_cmds", "restore": "console.commands.break_glass_cmds"}

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CONFLICT, EXIT_BACKEND = 0, 1, 2, 3, 4


class OneLineParser(argparse.ArgumentParser):
    """Usage errors are one clear line and exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"mrc: error: {safe_line(message)}{_choice_hint(message)} (see `{self.prog} --help`)\n")


def _choice_hint(message: str) -> str:
    """"; did you mean 'rollback'?" for a mistyped command or choice argparse refused."""
    import re

    found = re.search(r"invalid choice: '(.*?)' \(choose from (.*)\)", message)
    if not found:
        return ""
    choices = [c.strip().strip("'") for c in found.group(2).split(",")]
    return did_you_mean(found.group(1), choices)


def did_you_mean(wanted: str, names: list[str]) -> str:
    """"; did you mean 'x'?" for the closest name (spelling, case, `_` for `-`), else ""."""
    import difflib

    def folded(name: str) -> str:
        return name.casefold().replace("_", "-").replace(" ", "-")

    by_fold = {folded(n): n for n in names}
    if folded(wanted) in by_fold and by_fold[folded(wanted)] != wanted:
        return f"; did you mean {by_fold[folded(wanted)]!r}?"
    near = difflib.get_close_matches(folded(wanted), list(by_fold), n=1, cutoff=0.6)
    return f"; did you mean {by_fold[near[0]]!r}?" if near else ""


# What writes, for the one --read-only rule and the lock wait: a command, a (command, action)
# pair, or (command, option) where only that option writes (a file outside the workspace).
WRITE_COMMANDS = {"init", "demo", "promote", "rollback", "approve", "reject", "alias", "train", "drill", "load",
                  "serve-models", "canary", "watch"}
READ_ACTIONS = {("canary", "status"), ("canary", "plan")}
WRITE_COMMANDS.add("revoke")  # withdraws an approval (protected aliases)
WRITE_COMMANDS.add("shadow")  # shadow start / stop move the router's mirror; status reads
READ_ACTIONS.add(("shadow", "status"))
WRITE_OPTIONS = {("validate", "write_baseline"), ("drift", "html"), ("report", "html"), ("report", "md")}
# a subcommand that writes under a command that otherwise reads
WRITE_SUBCOMMANDS = {("datasets", "add")}
# writes that need the workspace database's write lock (init and demo create it)
LOCKING_COMMANDS = WRITE_COMMANDS - {"init", "demo"}


def writes(args) -> str | None:
    """How this invocation writes (`mrc promote`, `mrc validate --write-baseline`), or None."""
    command = getattr(args, "command", None)
    action = getattr(args, "canary_command", None) or getattr(args, "shadow_command", None)
    if command in WRITE_COMMANDS and (command, action) not in READ_ACTIONS:
        return f"mrc {command}" + (f" {action}" if action else "")
    if command == "alerts" and getattr(args, "alerts_action", None) in ("flush", "run"):
        return f"mrc alerts {args.alerts_action}"  # audits health changes and deliveries
    if command == "monitor" and (getattr(args, "words", None) or [""])[0] == "run":
        return "mrc monitor run"  # audits tier changes, may halt a canary or roll back
    if (command, getattr(args, "datasets_command", None)) in WRITE_SUBCOMMANDS:
        return f"mrc {command} {args.datasets_command}"
    for cmd, option in WRITE_OPTIONS:
        if command == cmd and getattr(args, option, None):
            return f"mrc {command} --{option.replace('_', '-')}"
    return None


def add_global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # In subparsers the defaults are SUPPRESS so an option given before the subcommand survives.
    default = (lambda value: value) if top else (lambda value: argparse.SUPPRESS)
    group = parser.add_argument_group("global options")
    group.add_argument("--workspace", metavar="DIR", default=default(None),
                       help="workspace folder (default: $MRC_WORKSPACE, else the embedded default)")
    group.add_argument("--json", action="store_true", default=default(False), help="machine-readable output on stdout")
    group.add_argument("--actor", metavar="NAME", default=default(None), help="who acts (default: $MRC_ACTOR, else the OS user)")
    group.add_argument("--read-only", action="store_true", default=default(False), help="refuse every write")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Every subcommand's parser; with `only` (a module of COMMAND_MODULES), that module's alone."""
    parser = OneLineParser(prog="mrc", description="Model Release Console: approve, canary and roll back models.")
    add_global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        add_global_options(p, top=False)
        return p

    for name in [only] if only else COMMAND_MODULES:
        importlib.import_module(name).register(sub, common)
    return parser


def command_named(argv: list[str]) -> str | None:
    """The subcommand on the command line where it can be told without a parser, else None."""
    takes_value = False
    for token in argv:
        if takes_value:
            takes_value = False
        elif token in ("--workspace", "--actor"):
            takes_value = True
        elif token in ("--json", "--read-only") or token.startswith(("--workspace=", "--actor=")):
            continue
        elif token.startswith("-"):
            return None  # -h, --help, anything else: the full parser answers
        else:
            return token
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # MLflow warns on stderr while loading a team's PythonModel ("Add type hints to predict …"):
    # mrc's contract is one line there, so a library's advice must not come before it
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\.|$)")
    parser = build_parser(COMMAND_HOME.get(command_named(argv) or ""))
    args = parser.parse_args(argv)
    actor = getattr(args, "actor", None)
    if not actor:
        return _main(parser, args)
    # The servers this command calls (router, model servers) record who acted from MRC_ACTOR
    # (backends/local/serving/controlkey.auth_headers), so --actor travels to their audit rows;
    # put back afterwards (tests call main() in one process).
    before = os.environ.get("MRC_ACTOR")
    os.environ["MRC_ACTOR"] = actor
    try:
        return _main(parser, args)
    finally:
        if before is None:
            os.environ.pop("MRC_ACTOR", None)
        else:
            os.environ["MRC_ACTOR"] = before


def _main(parser, args) -> int:
    handler = getattr(args, "handler", None)
    if getattr(args, "workspace", None) == "":
        parser.error("--workspace: empty path (leave the option out for the default workspace)")
    if handler is None:
        if args.command is None:
            return _open_console(args)
        parser.error(f"{args.command}: missing subcommand")
    ctx = Context(args)
    # Every line below goes through safe_line: one line, credentials masked, controls escaped.
    try:
        how = writes(args)
        if how and getattr(args, "read_only", False):
            raise BadInputError(f"--read-only: `{how}` writes, refused")
        if how and (args.command in LOCKING_COMMANDS
                    or (args.command, getattr(args, "datasets_command", None)) in WRITE_SUBCOMMANDS):
            wait_for_write_lock(ctx)
        code = int(handler(ctx) or 0)
        if (how or args.command in AUDITING_READS) and args.command != "alerts" and not getattr(args, "read_only", False):
            deliver_alerts(ctx)
        return code
    except BadInputError as exc:
        print(f"mrc: error: {safe_line(exc)}{_unknown_name_hint(ctx, exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ConflictError as exc:
        print(f"mrc: conflict: {safe_line(exc)}", file=sys.stderr)
        return EXIT_CONFLICT
    except PolicyRefusal as exc:
        print(f"mrc: refused: {safe_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except LockTimeout as exc:
        print(f"mrc: busy: {safe_line(exc)}", file=sys.stderr)
        return EXIT_BACKEND
    except BackendError as exc:
        print(f"mrc: backend error: {safe_line(exc)}", file=sys.stderr)
        return EXIT_BACKEND
    except sqlite3.OperationalError as exc:
        if _locked(exc):  # another process kept the write lock past every busy timeout
            print(f"mrc: busy: {ctx.db_path_hint()}: {safe_line(exc)} (held by another process)", file=sys.stderr)
            return EXIT_BACKEND
        print(f"mrc: error: {ctx.db_path_hint()}: {safe_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except sqlite3.DatabaseError as exc:  # a damaged or foreign mrc.db: bad input, not a traceback
        print(f"mrc: error: {ctx.db_path_hint()}: {safe_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # `mrc audit | head`: the reader left, nothing is wrong
        # (before `except Exception`, which would re-raise it as a traceback); stdout goes to
        # /dev/null so the interpreter's final flush does not raise it again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        if type(exc).__name__ == "OperationalError" and _locked(exc):  # the same, through SQLAlchemy
            print(f"mrc: busy: {ctx.db_path_hint()}: database is locked (held by another process)", file=sys.stderr)
            return EXIT_BACKEND
        # A bug or an error nobody foresaw: never exit 1, which CI reads as "gate failed" or
        # "drift beyond critical". The traceback is for the bug report; the last line says what.
        import traceback

        traceback.print_exc(file=sys.stderr)
        print(f"mrc: internal error: {type(exc).__name__}: {safe_line(exc)}", file=sys.stderr)
        return EXIT_BACKEND
    except KeyboardInterrupt:
        print("mrc: interrupted", file=sys.stderr)
        return 130
    finally:
        ctx.close()


def _unknown_name_hint(ctx, exc: BaseException) -> str:
    """For "unknown model 'breast_cancer'" or "unknown version '7' of model 'm'": the closest name
    the registry has, asked only on this error path. Never fails the error it explains."""
    import re

    if not isinstance(exc, NotFoundError):
        return ""
    text = str(exc)
    try:
        model = re.match(r"unknown model '(.*?)'", text)
        if model:
            return did_you_mean(model.group(1), [m.name for m in ctx.registry.list_models()])
        version = re.match(r"unknown version '(.*?)' of model '(.*?)'", text)
        if version:
            return did_you_mean(version.group(1), [v.version for v in ctx.registry.list_versions(version.group(2))])
    except Exception:  # noqa: BLE001  (a hint, never a second error)
        return ""
    return ""


# reads that may append to the audit log (a passed gate asks for approvals: `approval.requested`)
AUDITING_READS = {"gate"}


def deliver_alerts(ctx) -> None:
    """After the command's write committed: pending alerts out, best effort, short timeouts."""
    try:
        ws = ctx.workspace
        configured = isinstance(ws.config.get("alerts"), dict)
    except Exception:  # noqa: BLE001  (no workspace to read alerts from: nothing to deliver)
        return
    if not configured:  # no [alerts]: not even the import (urllib.request, ssl) on the 3 AM path
        return
    from console.notify.delivery import after_write

    after_write(ws, actor=ctx.actor)


def _locked(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database is busy" in text


def lock_timeout_s(ctx) -> float:
    """MRC_LOCK_TIMEOUT, else [workspace] lock_timeout_s of mrc.toml, else 10 s."""
    import os

    raw = os.environ.get("MRC_LOCK_TIMEOUT")
    if raw is not None and raw.strip():
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not 0 <= value <= 86400:
            raise BadInputError(f"MRC_LOCK_TIMEOUT: must be a number of seconds within [0, 86400], not {raw!r}")
        return value
    return ctx.workspace.lock_timeout_s()


def wait_for_write_lock(ctx, *, poll_s: float = 0.1, say_every_s: float = 2.0, quiet_s: float = 2.0) -> None:
    """Wait, saying so on stderr, until the workspace database's write lock is free.

    SQLite's own busy timeout waits in silence; this takes the lock and lets it go at once
    (BEGIN IMMEDIATE, ROLLBACK: nothing is written), so a held lock is met here, with progress
    and a bounded wait, rather than deep inside a write. Exit 4 when the wait runs out.
    """
    import time

    db = ctx.workspace.db_path
    if not db.is_file():
        return
    if not writable_folder(db):
        raise BadInputError(f"{db.parent}: the workspace folder is not writable, and `mrc {ctx.args.command}` writes")
    timeout = lock_timeout_s(ctx)
    deadline = time.monotonic() + timeout
    # Ordinary contention (another write that commits in milliseconds) stays silent: the line
    # is for a lock that is really held, and a racing loser must still say exactly one thing.
    next_say = time.monotonic() + min(quiet_s, timeout / 2)
    conn = sqlite3.connect(str(db), timeout=0, isolation_level=None)
    try:
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
                return
            except sqlite3.OperationalError as exc:
                if not _locked(exc):
                    raise
            now = time.monotonic()
            if now >= deadline:
                raise LockTimeout(f"{db}: the workspace lock is held by {lock_holder(db)}; gave up after {timeout:g} s "
                                  "(MRC_LOCK_TIMEOUT or [workspace] lock_timeout_s sets the wait)")
            if now >= next_say:
                ctx.progress(f"waiting for the workspace lock held by {lock_holder(db)} "
                             f"({max(deadline - now, 0):.0f} s left)")
                next_say = now + say_every_s
            time.sleep(min(poll_s, max(deadline - now, 0.001)))
    finally:
        conn.close()


def lock_holder(db) -> str:
    """'pid 123 (python -m …)' of the process holding a write lock on the database, when Linux says."""
    import os

    inodes = set()
    for path in (str(db), f"{db}-shm", f"{db}-wal"):
        try:
            st = os.stat(path)
        except OSError:
            continue
        inodes.add((os.major(st.st_dev), os.minor(st.st_dev), st.st_ino))
    pids = []
    try:
        with open("/proc/locks") as fh:
            for line in fh:
                parts = line.split()
                # "1: POSIX  ADVISORY  WRITE 4242 08:01:1234 0 EOF"
                if len(parts) < 6 or parts[1] != "POSIX" or parts[3] != "WRITE":
                    continue
                try:
                    major, minor, inode = parts[5].split(":")
                    key = (int(major, 16), int(minor, 16), int(inode))
                    pid = int(parts[4])
                except ValueError:
                    continue
                if key in inodes and pid != os.getpid() and pid not in pids:
                    pids.append(pid)
    except OSError:
        pass
    if not pids:
        return "another process"
    described = []
    for pid in pids[:3]:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            cmd = ""
        described.append(f"pid {pid}" + (f" ({cmd[:60]})" if cmd else ""))
    return ", ".join(described)


def _open_console(args) -> int:
    try:
        app_module = importlib.import_module("console.app")
    except ImportError:
        print("mrc: the console is not built yet; see `mrc --help` for the commands", file=sys.stderr)
        return EXIT_BAD_INPUT
    return int(app_module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
