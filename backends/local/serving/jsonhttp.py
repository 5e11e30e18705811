"""The JSON-over-HTTP handler base the local model servers and the router share. stdlib only.

Admission (`_admit`), on every request: the `Host` must be this server's own
(`127.0.0.1:PORT` / `localhost:PORT`: a page whose DNS name rebinds to 127.0.0.1 is refused);
the control routes (`/control/*`, `/label`) need `Authorization: Bearer <control key>`,
compared in constant time; every POST/PUT needs `Content-Type: application/json`, which a
browser cannot send cross-origin without a CORS preflight (never answered here). A refused
request is answered and its connection closed, its body unread.
"""

from __future__ import annotations

import hmac
import json
import time
from http.server import BaseHTTPRequestHandler


def is_control(path: str) -> bool:
    return path.startswith("/control/") or path == "/label" or path.startswith("/label?")


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: with Nagle on, the body waits for the peer's
    # delayed ACK (≈ 40 ms per keep-alive request on Linux)
    disable_nagle_algorithm = True
    control_key: str = ""  # set by the server's main from --key-file; empty refuses every control call
    journal_path: str | None = None  # accepted state changes are appended here (JSON lines)

    def log_message(self, *args):  # the router keeps its own request log; no stderr noise
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, status: int, message: str) -> bool:
        self.close_connection = True  # the body is left unread: this connection cannot go on
        self._reply(status, {"error": message})
        return False

    def _admit(self) -> bool:
        port = self.server.server_address[1]
        host = (self.headers.get("Host") or "").strip().lower()
        if host not in (f"127.0.0.1:{port}", f"localhost:{port}"):
            return self._refuse(403, "Host must be this server's own (127.0.0.1:PORT or localhost:PORT)")
        if is_control(self.path):
            given = self.headers.get("Authorization") or ""
            scheme, _, token = given.partition(" ")
            expected = self.control_key
            if not expected or scheme.lower() != "bearer" or not hmac.compare_digest(
                    token.strip().encode(), expected.encode()):
                return self._refuse(401, "control routes need the workspace's key (Authorization: Bearer)")
        if self.command in ("POST", "PUT", "PATCH", "DELETE"):
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return self._refuse(415, "Content-Type must be application/json")
        return True

    def _journal(self, route: str, body: dict, result: dict) -> None:
        """Every accepted state change, with the caller's stated actor (mrc's clients audit
        what they asked themselves; this is the trace of any call, theirs or not)."""
        if not self.journal_path:
            return
        actor = (self.headers.get("X-MRC-Actor") or "")[:200]
        line = json.dumps({"t": time.time(), "route": f"{self.command} {route}", "actor": actor,
                           "client_port": self.client_address[1], "body": body, "result": result},
                          separators=(",", ":"), default=str) + "\n"
        with open(self.journal_path, "a") as fh:  # O_APPEND: whole lines from several servers
            fh.write(line)
