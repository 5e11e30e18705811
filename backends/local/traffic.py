"""LocalTraffic: the Traffic protocol over real processes on 127.0.0.1.

Per model, the folder <workspace>/serving/<model>/ holds processes.json (router and model
server pids and ports), split.json (written by the router) and requests.jsonl (the request
log). Servers run in their own sessions so that they outlive the controller that started
them (a kill -9 of the controller must not take the traffic down); `stop_serving` ends them.

The rollback path here is stdlib only: one POST to the router, retried with backoff; if the
router is down, split.json is rewritten so that a restarted router routes to stable.
"""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from backends.base import BackendError, BadInputError, ConflictError, TrafficSplit, check_name
from backends.local.procs import alive

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90.0


def _request(port: int, method: str, path: str, body: Any = None, timeout: float = 5.0) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, data, {"Content-Type": "application/json"} if data else {})
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw else {})
    finally:
        conn.close()


class LocalTraffic:
    def __init__(self, root: str | Path, config: dict[str, Any] | None = None):
        self.root = Path(root)
        self.config = config or {}

    # -- folders -----------------------------------------------------------------------------
    def serving_dir(self, model: str) -> Path:
        return self.root / "serving" / check_name(model, "model")

    def _processes(self, model: str) -> dict[str, Any]:
        path = self.serving_dir(model) / "processes.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {"router": None, "servers": {}}

    def _save_processes(self, model: str, data: dict[str, Any]) -> None:
        path = self.serving_dir(model) / "processes.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, path)

    @contextmanager
    def _lock(self, model: str):
        folder = self.serving_dir(model)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def router_port(self, model: str) -> int | None:
        router = self._processes(model).get("router")
        if router and alive(router["pid"]):
            return int(router["port"])
        return None

    def router_url(self, model: str) -> str:
        port = self.router_port(model)
        if port is None:
            raise BackendError(f"{model}: not served (run `mrc serve-models {model}`)")
        return f"http://127.0.0.1:{port}"

    def served_versions(self, model: str) -> dict[str, int]:
        return {v: int(s["port"]) for v, s in self._processes(model).get("servers", {}).items() if alive(s["pid"])}

    # -- starting and stopping ---------------------------------------------------------------
    def _spawn(self, folder: Path, name: str, args: list[str]) -> tuple[int, int]:
        ready = folder / f"{name}.ready"
        ready.unlink(missing_ok=True)
        log = open(folder / f"{name}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", *args, "--ready-file", str(ready)], cwd=str(REPO),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")})
        log.close()
        return proc.pid, 0

    def _wait_ready(self, folder: Path, names: list[str], pids: dict[str, int]) -> dict[str, int]:
        ports: dict[str, int] = {}
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(ports) < len(names):
            for name in names:
                if name in ports:
                    continue
                ready = folder / f"{name}.ready"
                if ready.exists():
                    ports[name] = int(json.loads(ready.read_text())["port"])
                elif not alive(pids[name]):
                    tail = (folder / f"{name}.log").read_text(errors="replace")[-400:]
                    raise BackendError(f"{name} exited before it listened: {tail.strip()}")
            if time.monotonic() > deadline:
                raise BackendError(f"{', '.join(n for n in names if n not in ports)}: not ready in {START_TIMEOUT_S:.0f} s")
            time.sleep(0.05)
        return ports

    def ensure_serving(self, model: str, versions: list[str]) -> dict[str, Any]:
        """Start the router and a server per version unless already up; the first version
        takes 100% when the router has no split yet."""
        from backends.local.registry import LocalRegistry

        for v in versions:
            check_name(v, "version")
        with self._lock(model):
            folder = self.serving_dir(model)
            procs = self._processes(model)
            servers = {v: s for v, s in procs.get("servers", {}).items() if alive(s["pid"])}
            router = procs.get("router") if procs.get("router") and alive(procs["router"]["pid"]) else None
            registry = LocalRegistry(self.root)
            try:
                to_start = [v for v in versions if v not in servers]
                pids: dict[str, int] = {}
                artifacts = folder / "artifacts"
                artifacts.mkdir(exist_ok=True)
                for v in to_start:
                    mv = registry.get_version(model, v)
                    path = registry.fetch_artifact(model, v, str(artifacts))  # verified copy
                    pids[f"server-{v}"], _ = self._spawn(folder, f"server-{v}", [
                        "backends.local.serving", "--artifact", path, "--sha256", mv.artifact.sha256, "--version", v])
            finally:
                registry.close()
            if router is None:
                pids["router"], _ = self._spawn(folder, "router", ["backends.local.router", "--dir", str(folder),
                                                                    "--model", model])
            try:
                ports = self._wait_ready(folder, list(pids), pids)
            except BackendError:
                for pid in pids.values():
                    self._kill(pid)
                raise
            for v in to_start:
                servers[v] = {"pid": pids[f"server-{v}"], "port": ports[f"server-{v}"]}
            if router is None:
                router = {"pid": pids["router"], "port": ports["router"]}
            self._save_processes(model, {"router": router, "servers": servers})
            status, body = _request(router["port"], "PUT", "/control/backends",
                                    {v: f"http://127.0.0.1:{s['port']}" for v, s in servers.items()})
            if status != 200:
                raise BackendError(f"{model}: router refused the backends: {body}")
            split = self.get_split(model)
            if not split.weights and versions:
                self.set_split(model, {versions[0]: 100}, expected_revision=split.revision)
        return {"router": router, "servers": servers}

    @staticmethod
    def _kill(pid: int) -> None:
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.05)
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass

    def stop_serving(self, model: str, versions: list[str] | None = None) -> list[str]:
        """Stop the model's servers (all, or these versions) and, with all, its router."""
        stopped = []
        with self._lock(model):
            procs = self._processes(model)
            servers = procs.get("servers", {})
            for v in list(servers):
                if versions is None or v in versions:
                    self._kill(servers.pop(v)["pid"])
                    stopped.append(v)
            if versions is None and procs.get("router"):
                self._kill(procs["router"]["pid"])
                procs["router"] = None
                stopped.append("router")
            procs["servers"] = servers
            if self.serving_dir(model).exists():
                self._save_processes(model, procs)
        return stopped

    # -- the Traffic protocol ----------------------------------------------------------------
    def _split_from(self, model: str, body: dict) -> TrafficSplit:
        return TrafficSplit(model, {str(k): int(v) for k, v in body.get("weights", {}).items()}, int(body.get("revision", 0)))

    def _split_on_disk(self, model: str) -> TrafficSplit | None:
        path = self.serving_dir(model) / "split.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return TrafficSplit(model, {v: int(w) for v, w in data.get("weights", [])}, int(data.get("revision", 0)))

    def get_split(self, model: str) -> TrafficSplit:
        port = self.router_port(model)
        if port is not None:
            try:
                status, body = _request(port, "GET", "/control/split")
                if status == 200:
                    return self._split_from(model, body)
            except OSError:
                pass
        split = self._split_on_disk(model)
        if split is None:
            raise BackendError(f"{model}: not served and no recorded split (run `mrc serve-models {model}`)")
        return split

    def set_split(self, model: str, weights: dict[str, int], *, expected_revision: int) -> TrafficSplit:
        port = self.router_port(model)
        if port is None:
            raise BackendError(f"{model}: router is not running (run `mrc serve-models {model}`)")
        items = [[str(v), int(w)] for v, w in weights.items()]
        try:
            status, body = _request(port, "PUT", "/control/split", {"weights": items, "expected_revision": expected_revision})
        except OSError as exc:
            raise BackendError(f"{model}: router unreachable: {exc}") from None
        if status == 409:
            raise ConflictError(f"{model}: split revision is {body.get('revision')}, expected {expected_revision}",
                                expected=str(expected_revision), actual=str(body.get("revision")))
        if status == 400:
            raise BadInputError(f"{model} split {weights}: {body.get('error')}")
        if status != 200:
            raise BackendError(f"{model}: router answered {status}: {body}")
        return self._split_from(model, body)

    def rollback(self, model: str, stable_version: str) -> TrafficSplit:
        """Everything to stable, now: one write, retried with backoff."""
        check_name(stable_version, "version")
        delay = 0.05
        last_error: Exception | None = None
        for _ in range(4):
            port = self.router_port(model)
            if port is None:
                break
            try:
                status, body = _request(port, "POST", "/control/rollback", {"stable": stable_version}, timeout=2.0)
                if status == 200:
                    return self._split_from(model, body)
                last_error = BackendError(f"router answered {status}: {body}")
            except OSError as exc:
                last_error = exc
            time.sleep(delay)
            delay *= 2
        # No router answers: record the stable split so that a restarted router routes there.
        folder = self.serving_dir(model)
        folder.mkdir(parents=True, exist_ok=True)
        current = self._split_on_disk(model)
        revision = (current.revision if current else 0) + 1
        tmp = folder / "split.tmp"
        tmp.write_text(json.dumps({"weights": [[stable_version, 100]], "revision": revision, "at": time.time(),
                                   "note": f"written by rollback: router unreachable ({last_error})"}))
        os.replace(tmp, folder / "split.json")
        return TrafficSplit(model, {stable_version: 100}, revision)

    # -- rehearsals --------------------------------------------------------------------------
    def fault(self, model: str, version: str, *, error_rate: float = 0.0, latency_ms: float = 0.0,
              shift: float = 0.0) -> dict[str, Any]:
        port = self.served_versions(model).get(check_name(version, "version"))
        if port is None:
            raise BadInputError(f"{model} {version}: not served here (run `mrc serve-models {model} --versions {version}`)")
        status, body = _request(port, "POST", "/control/fault",
                                {"error_rate": error_rate, "latency_ms": latency_ms, "shift": shift})
        if status != 200:
            raise BackendError(f"{model} {version}: server refused the fault: {body}")
        return body
