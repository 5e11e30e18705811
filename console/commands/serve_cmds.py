"""serve: the console in a browser through textual-serve, on 127.0.0.1 by default."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time

from console.commands.common import Context
from console.processes import alive


def register(sub, common) -> None:
    p = common(sub.add_parser("serve", help="serve the console in a browser (textual-serve)"))
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.set_defaults(handler=cmd_serve)


def console_command(args, workspace_root: str) -> str:
    """The shell command textual-serve runs for each browser session: this console, same options."""
    parts = [sys.executable, "-m", "console.cli", "--workspace", workspace_root]
    if getattr(args, "read_only", False):
        parts.append("--read-only")
    if getattr(args, "actor", None):
        parts += ["--actor", args.actor]
    return " ".join(shlex.quote(p) for p in parts)


def descendants(pid: int) -> list[int]:
    """Every process below pid (Linux /proc), children first found, grandchildren after."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def stop_tree(pid: int, grace_s: float = 3.0) -> None:
    """SIGTERM every descendant of pid, then SIGKILL what is left after grace_s."""
    victims = descendants(pid)
    for child in victims:
        try:
            os.kill(child, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        running = [p for p in victims if alive(p)]
        if not running:
            return
        time.sleep(0.05)
    for child in victims + descendants(pid):
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


def cmd_serve(ctx: Context) -> int:
    from backends.base import BadInputError

    try:
        from textual_serve.server import Server
    except ImportError:
        raise BadInputError("mrc serve needs textual-serve: pip install 'model-release-console[serve]'") from None
    root = str(ctx.workspace.root)  # validate the workspace before serving it
    command = console_command(ctx.args, root)
    server = Server(command, host=ctx.args.host, port=ctx.args.port, title="mrc — Model Release Console")
    print(f"mrc: serving the console for {root} on http://{ctx.args.host}:{ctx.args.port}", file=sys.stderr, flush=True)
    try:
        server.serve()
    finally:
        stop_tree(os.getpid())  # every console the browser sessions started, and their children
    return 0
