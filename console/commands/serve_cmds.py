"""serve: the console in a browser through textual-serve, on 127.0.0.1 by default.

Whoever reaches the WebSocket drives the console as the engineer who started it, so every
request needs the serve token (random, printed once in the URL like Jupyter's, or
MRC_SERVE_TOKEN): `?token=` on the first page load, then an HttpOnly SameSite=Strict cookie. The
WebSocket also needs an `Origin` of this server itself, and every request a `Host` of it, so a
web page the engineer happens to open cannot connect (cross-site WebSocket hijacking) nor
reach it through a rebinding DNS name. Other addresses than loopback need --host and
--i-understand-remote-access together.
"""

from __future__ import annotations

import errno
import hmac
import os
import secrets
import shlex
import signal
import sys
import time

from backends.base import BadInputError
from backends.support.procs import alive
from backends.support.redact import escape_control
from console.commands.common import Context


def register(sub, common) -> None:
    p = common(sub.add_parser("serve", help="serve the console in a browser (textual-serve)"))
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only; "
                   "any other needs --i-understand-remote-access)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--i-understand-remote-access", dest="remote_ack", action="store_true",
                   help="allow --host other than loopback: anyone who can reach it and holds the token acts as you, "
                        "over plain HTTP")
    p.set_defaults(handler=cmd_serve)


LOOPBACK = ("127.0.0.1", "localhost", "::1")
TOKEN_ENV = "MRC_SERVE_TOKEN"


def console_command(args, workspace_root: str, actor: str) -> str:
    """The shell command textual-serve runs for each browser session: this console, same options,
    acting as "<actor> via mrc serve" so the audit says through which door the act came."""
    parts = [sys.executable, "-m", "console.cli", "--workspace", workspace_root, "--actor", f"{actor} via mrc serve"]
    if getattr(args, "read_only", False):
        parts.append("--read-only")
    return " ".join(shlex.quote(p) for p in parts)


def serve_token() -> str:
    """MRC_SERVE_TOKEN when set (at least 16 characters), else a fresh random one."""
    given = os.environ.get(TOKEN_ENV)
    if given is None or given == "":
        return secrets.token_urlsafe(32)
    if len(given) < 16 or not given.isprintable() or any(c in given for c in " &#?/%+"):
        raise BadInputError(f"{TOKEN_ENV}: must be at least 16 printable characters without spaces, '&', '#', '?', "
                            "'/', '%' or '+'")
    return given


def allowed_hosts(host: str, port: int) -> set[str]:
    """The Host headers this server answers to: its own address and loopback names, with the port."""
    names = set(LOOPBACK) | {host}
    out = set()
    for name in names:
        shown = f"[{name}]" if ":" in name else name
        out.add(f"{shown}:{port}".lower())
        if port == 80:
            out.add(shown.lower())
    return out


def make_guard(token: str, hosts: set[str], cookie: str):
    """aiohttp middleware: token (query or cookie), Host, and the WebSocket's Origin."""
    from aiohttp import web  # aiohttp: ~0.2 s

    origins = {f"http://{h}" for h in hosts}

    @web.middleware
    async def guard(request, handler):
        if request.path.startswith("/static/"):  # textual-serve's own JS, CSS and fonts: nothing secret
            return await handler(request)
        if (request.host or "").lower() not in hosts:
            return web.Response(status=403, text="mrc serve: wrong Host\n")
        given = request.query.get("token") or request.cookies.get(cookie) or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            return web.Response(status=403, text="mrc serve: a token is required: open the URL `mrc serve` printed\n")
        if request.path == "/ws" and (request.headers.get("Origin") or "").lower() not in origins:
            return web.Response(status=403, text="mrc serve: WebSocket from a foreign Origin refused\n")
        response = await handler(request)
        if request.path == "/" and "token" in request.query:
            response.set_cookie(cookie, token, httponly=True, samesite="Strict", path="/")
        return response

    return guard


def guarded_server(command: str, *, host: str, port: int, token: str, title: str):
    """textual-serve's Server with the guard in front of every route."""
    from textual_serve.server import Server  # textual_serve: ~0.3 s

    class GuardedServer(Server):
        async def _make_app(self):
            app = await super()._make_app()
            app.middlewares.append(make_guard(token, allowed_hosts(host, port), f"mrc_serve_token_{port}"))
            return app

        async def on_startup(self, app) -> None:  # textual-serve prints the command and a URL without the token
            pass

    public = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    return GuardedServer(command, host=host, port=port, title=title, public_url=public)


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
    host, port = ctx.args.host, ctx.args.port
    if not host:
        raise BadInputError("--host: empty address")
    if host not in LOOPBACK and not ctx.args.remote_ack:
        raise BadInputError(f"--host {host[:80]}: serving beyond this machine lets anyone who reaches it and holds the "
                            "token act as you, over plain HTTP; add --i-understand-remote-access to mean it")
    if not 0 < port < 65536:
        raise BadInputError(f"--port {port}: must be within 1..65535")
    try:
        import textual_serve.server  # noqa: F401
    except ImportError:
        raise BadInputError("mrc serve needs textual-serve: pip install 'model-release-console[serve]'") from None
    root = str(ctx.workspace.root)  # validate the workspace before serving it
    _check_port_free(host, port)  # before the token is printed: a busy port is one line, no URL
    token = serve_token()
    command = console_command(ctx.args, root, ctx.actor)
    server = guarded_server(command, host=host, port=port, token=token, title="mrc — Model Release Console")
    shown = f"[{host}]" if ":" in host else host
    # printed once, like Jupyter: whoever holds this URL acts as you in the console

    print(f"mrc: serving the console for {escape_control(root)} as {escape_control(ctx.actor)} via mrc serve; open\n"
          f"    http://{shown}:{port}/?token={token}", file=sys.stderr, flush=True)
    if host not in LOOPBACK:
        print(f"mrc: warning: listening on {host}, not only this machine; the token travels in clear HTTP",
              file=sys.stderr, flush=True)
    try:
        server.serve()
    except OSError as exc:  # taken between the check and the bind: still one line
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            raise BadInputError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}); "
                                "pick another --port") from None
        raise
    finally:
        stop_tree(os.getpid())  # every console the browser sessions started, and their children
    return 0


def _check_port_free(host: str, port: int) -> None:
    """Bind the address once and let it go: a port another process holds is refused here."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is no refusal
        sock.bind((host, port))
    except OSError as exc:
        why = "already in use by another process" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise BadInputError(f"--port {port}: cannot listen on {host}:{port} ({why}); pick another --port") from None
    finally:
        sock.close()
