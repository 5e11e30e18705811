"""The JSON-over-HTTP handler base the local model servers and the router share. stdlib only."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: with Nagle on, the body waits for the peer's
    # delayed ACK (≈ 40 ms per keep-alive request on Linux)
    disable_nagle_algorithm = True

    def log_message(self, *args):  # the router keeps its own request log; no stderr noise
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
