"""Issue 13 item 1: the local router and model servers take control calls only from the
workspace's key holder, through their own Host, with JSON bodies; /control/backends only
points at servers this workspace started.

Each attack of the issue is made with raw HTTP against real processes (the demo workspace's
versions 2 and 5 served by `LocalTraffic.ensure_serving`), and production traffic is checked
to be unchanged afterwards; mrc's own client (LocalTraffic) still works and its calls are
journaled.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

MODEL = "breast-cancer"
ROW = None  # one row of the test set, in the model's feature order (set by the fixture)


@pytest.fixture(scope="module")
def served(demo_template, tmp_path_factory):
    from backends.local.traffic import LocalTraffic

    ws = tmp_path_factory.mktemp("ctl") / "ws"
    shutil.copytree(demo_template, ws)
    traffic = LocalTraffic(ws)
    try:
        traffic.ensure_serving(MODEL, ["2", "5"])
        yield ws, traffic
    finally:
        traffic.stop_serving(MODEL)


def ports(ws: Path) -> tuple[int, dict[str, int]]:
    procs = json.loads((ws / "serving" / MODEL / "processes.json").read_text())
    return int(procs["router"]["port"]), {v: int(s["port"]) for v, s in procs["servers"].items()}


def key(ws: Path) -> str:
    return (ws / "serving" / "control.key").read_text().strip()


def call(port: int, method: str, path: str, body=None, *, headers: dict | None = None, raw: bytes | None = None,
         host: str | None = None, content_type: str | None = "application/json") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        sent = {}
        if content_type:
            sent["Content-Type"] = content_type
        if host is not None:
            sent["Host"] = host
        sent.update(headers or {})
        conn.putrequest(method, path, skip_host=host is not None)
        for name, value in sent.items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(data or b"")))
        conn.endheaders(data)
        resp = conn.getresponse()
        text = resp.read()
        return resp.status, (json.loads(text) if text.strip() else {})
    finally:
        conn.close()


def bearer(ws: Path) -> dict[str, str]:
    return {"Authorization": f"Bearer {key(ws)}"}


def production_state(ws: Path) -> dict:
    """What production traffic looks like now: the split, the backends, the faults, the labels."""
    router, servers = ports(ws)
    status, split = call(router, "GET", "/control/split", headers=bearer(ws))
    assert status == 200, split
    _, health = call(router, "GET", "/health")
    faults = {v: call(p, "GET", "/health")[1]["fault"] for v, p in servers.items()}
    log = (ws / "serving" / MODEL / "requests.jsonl").read_text().splitlines()
    return {"split": split, "backends": health["backends"], "router_faults": health["faults"], "faults": faults,
            "labels": sum('"type":"label"' in line for line in log)}


def predict_version(ws: Path, row) -> str:
    router, _ = ports(ws)
    status, body = call(router, "POST", "/predict", {"rows": [row], "key": "patient-1"})
    assert status == 200, body
    return body["version"]


@pytest.fixture(scope="module")
def row(served):
    ws, _ = served
    from backends.local.loadgen import holdout

    rows, _ = holdout(str(ws), MODEL)
    return rows[0]


def attacks(ws: Path, router: int, servers: dict[str, int], attacker_url: str) -> list[tuple[str, int, str, dict]]:
    """(name, port, "METHOD path", body) for every control call of the issue."""
    split = {"weights": [["5", 50], ["2", 50]], "expected_revision": production_state(ws)["split"]["revision"]}
    return [
        ("split 50/50", router, "PUT /control/split", split),
        ("rollback to an unserved version", router, "POST /control/rollback", {"stable": "3"}),
        ("backends to an attacker", router, "PUT /control/backends", {"2": attacker_url}),
        ("fault at the router", router, "POST /control/fault", {"version": "2", "error_rate": 1.0}),
        ("fault at the model server", servers["2"], "POST /control/fault", {"error_rate": 1.0, "shift": 0.5}),
        ("label", router, "POST /label", {"id": "x", "label": 1}),
        ("read the split", router, "GET /control/split", None),
    ]


@pytest.fixture
def attacker():
    """A server that records whatever production traffic reaches it."""
    received: list[bytes] = []

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            data = b'{"predictions": [0.99]}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


WAYS = {
    "no key": lambda ws, port: {},
    "wrong key": lambda ws, port: {"headers": {"Authorization": "Bearer " + "0" * 64}},
    "key as text/plain (a browser's preflight-free fetch)": lambda ws, port: {
        "headers": bearer(ws), "content_type": "text/plain"},
    "key with a foreign Host (DNS rebinding)": lambda ws, port: {"headers": bearer(ws), "host": f"evil.example:{port}"},
}
EXPECTED = {"no key": 401, "wrong key": 401, "key as text/plain (a browser's preflight-free fetch)": 415,
            "key with a foreign Host (DNS rebinding)": 403}


@pytest.mark.parametrize("way", list(WAYS))
def test_every_control_call_is_refused_without_key_json_and_own_host(served, row, attacker, way):
    ws, _ = served
    router, servers = ports(ws)
    attacker_url, received = attacker
    before = production_state(ws)
    journal = ws / "serving" / MODEL / "control.jsonl"
    journaled = journal.read_text() if journal.exists() else ""
    for name, port, route, body in attacks(ws, router, servers, attacker_url):
        method, path = route.split(" ", 1)
        if method == "GET" and way == "key as text/plain (a browser's preflight-free fetch)":
            continue  # a read has no body to type
        status, reply = call(port, method, path, body, **WAYS[way](ws, port))
        assert status == EXPECTED[way], (name, status, reply)
        assert "error" in reply and key(ws) not in json.dumps(reply)
    assert production_state(ws) == before
    assert predict_version(ws, row) == before["split"]["order"][0] == "2"
    assert received == []  # not one patient row reached the attacker
    assert (journal.read_text() if journal.exists() else "") == journaled  # refused calls change nothing


def test_backends_only_point_at_servers_this_workspace_started(served, row, attacker):
    """Even the key holder cannot send production rows off to another server."""
    ws, _ = served
    router, servers = ports(ws)
    attacker_url, received = attacker
    before = production_state(ws)
    for target in (attacker_url, "http://10.0.0.1:80", f"http://localhost:{servers['2']}",
                   f"https://127.0.0.1:{servers['2']}", f"http://user@127.0.0.1:{servers['2']}"):
        status, reply = call(router, "PUT", "/control/backends", {"2": target}, headers=bearer(ws))
        assert status == 403 and "not a model server this workspace started" in reply["error"], (target, reply)
    assert production_state(ws) == before
    assert predict_version(ws, row) == "2" and received == []
    # the servers it did start are accepted (this is what serve-models sends)
    status, _ = call(router, "PUT", "/control/backends", {"2": f"http://127.0.0.1:{servers['2']}"}, headers=bearer(ws))
    assert status == 200


def test_a_refused_request_on_a_kept_alive_connection_does_not_smuggle_its_body(served):
    """The refused request's body is never parsed as the next request on the same connection."""
    ws, _ = served
    router, _ = ports(ws)
    before = production_state(ws)
    smuggled = (b"PUT /control/split HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                b"Content-Length: 60\r\n\r\n" % router) + b'{"weights": [["5", 100]], "expected_revision": 0}'.ljust(60)
    conn = http.client.HTTPConnection("127.0.0.1", router, timeout=30)
    try:
        conn.request("POST", "/control/rollback", smuggled, {"Content-Type": "text/plain"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 401 and resp.getheader("Connection") == "close"
    finally:
        conn.close()
    assert production_state(ws) == before


def test_mrc_own_client_still_works_and_is_journaled(served, row, monkeypatch):
    from backends.local.traffic import LocalTraffic

    monkeypatch.setenv("MRC_ACTOR", "carol")
    ws, _ = served
    traffic = LocalTraffic(ws)
    split = traffic.get_split(MODEL)
    moved = traffic.set_split(MODEL, {"5": 10, "2": 90}, expected_revision=split.revision)
    assert moved.weights == {"5": 10, "2": 90}
    traffic.fault(MODEL, "5", latency_ms=1.0)
    traffic.fault(MODEL, "5")  # healthy again
    back = traffic.rollback(MODEL, "2")
    assert back.weights == {"2": 100}
    assert predict_version(ws, row) == "2"
    lines = [json.loads(x) for x in (ws / "serving" / MODEL / "control.jsonl").read_text().splitlines()]
    routes = [x["route"] for x in lines[-4:]]
    assert routes == ["PUT /control/split", "POST /control/fault", "POST /control/fault", "POST /control/rollback"]
    assert lines[-4]["body"]["weights"] == [["5", 10], ["2", 90]] and lines[-4]["actor"] == "carol"


def test_the_key_is_private_created_once_and_never_on_a_command_line(served):
    from backends.local.serving.controlkey import ensure_key

    ws, _ = served
    path = ws / "serving" / "control.key"
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o600, oct(mode)
    secret = key(ws)
    assert len(secret) == 64 and int(secret, 16) >= 0
    assert ensure_key(ws) == path and key(ws) == secret  # O_EXCL: never replaced
    router, servers = ports(ws)
    procs = json.loads((ws / "serving" / MODEL / "processes.json").read_text())
    for pid in [procs["router"]["pid"], *[s["pid"] for s in procs["servers"].values()]]:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
        assert "--key-file" in cmdline and secret not in cmdline


def test_a_key_others_can_read_is_refused(tmp_path):
    from backends.base import BackendError
    from backends.local.serving.controlkey import ensure_key, read_key

    path = ensure_key(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o644)
    with pytest.raises(BackendError, match="readable by others"):
        read_key(path)


def test_predict_takes_json_through_its_own_host_only(served, row):
    """A page cannot fill the request log the canary judges: text/plain and foreign Hosts are refused."""
    ws, _ = served
    router, servers = ports(ws)
    log = ws / "serving" / MODEL / "requests.jsonl"
    before = log.read_text()
    body = {"rows": [row], "key": "page"}
    assert call(router, "POST", "/predict", body, content_type="text/plain")[0] == 415
    assert call(router, "POST", "/predict", body, host=f"attacker.example:{router}")[0] == 403
    assert call(servers["2"], "POST", "/predict", body, content_type="text/plain")[0] == 415
    assert log.read_text() == before
    assert call(router, "POST", "/predict", body, host=f"localhost:{router}")[0] == 200
