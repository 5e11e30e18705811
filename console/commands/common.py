"""What every subcommand shares: the workspace, the actor, read-only mode and output."""

from __future__ import annotations

import getpass
import json
import os
import sys
from typing import Any, Callable

from backends import capabilities
from backends.base import BadInputError
from backends.support.redact import escape_control, redact, redact_obj
from console.errors import PolicyRefusal  # noqa: F401  (re-exported for the command modules)

# mrc's modules that this file's handlers run (release, rollout, evaluate …) are imported inside
# them: every command module is imported to build `mrc --help` and `mrc rollback`'s parser, which
# must not pay for them (--help: ~70 ms of CPU as is, ~300 ms with them at the top). Light modules
# that --help loads anyway are imported above.


class Context:
    def __init__(self, args):
        self.args = args
        self._ws = None
        self._registry = None

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    @property
    def actor(self) -> str:
        actor = getattr(self.args, "actor", None) or os.environ.get("MRC_ACTOR")
        if not actor:
            try:
                actor = getpass.getuser()
            except (KeyError, OSError):
                actor = f"uid-{os.getuid()}"
        return actor

    @property
    def workspace(self):
        if self._ws is None:
            from console.workspace import Workspace

            # `mrc rollback` opens a workspace whose [policy] is malformed: it must not block on-call
            lenient = getattr(self.args, "command", None) == "rollback"
            self._ws = Workspace.open(getattr(self.args, "workspace", None), lenient_policy=lenient)
        return self._ws

    @property
    def registry(self):
        if self._registry is None:
            self._registry = self.workspace.registry()
        return self._registry

    def require_write(self, what: str) -> None:
        if getattr(self.args, "read_only", False):
            raise BadInputError(f"--read-only: `mrc {what}` writes, refused")

    def emit(self, data: Any, human: str | Callable[[], str] | None = None) -> None:
        """Output on stdout, with every URL credential masked (a git remote's token in lineage …)."""
        if self.json:
            # default=str first, so that values json cannot write are strings redact_obj sees
            data = redact_obj(json.loads(json.dumps(data, default=str)))
            json.dump(data, sys.stdout, indent=2, sort_keys=False)
            sys.stdout.write("\n")
        elif human is not None:
            text = human() if callable(human) else human
            if text:
                print(redact(text))

    def progress(self, message: str, fraction: float | None = None) -> None:
        """Progress goes to stderr so --json output stays clean."""
        bar = ""
        if fraction is not None:
            filled = int(round(fraction * 20))
            bar = "[" + "#" * filled + "." * (20 - filled) + f"] {fraction * 100:3.0f}% "
        message = escape_control(redact(message))
        end = "\n" if not sys.stderr.isatty() or (fraction is not None and fraction >= 1) else "\r"
        sys.stderr.write(f"\x1b[2K{bar}{message}{end}" if sys.stderr.isatty() else f"{bar}{message}{end}")
        sys.stderr.flush()

    def db_path_hint(self) -> str:
        return str(self._ws.db_path) if self._ws is not None else "workspace database"

    def close(self) -> None:
        capabilities.close(self._registry)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """Aligned columns; a cell's control characters are escaped, so a stored actor or reason
    holding an ESC or a newline cannot repaint the terminal or print a forged row."""
    cells = [[escape_control("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)
