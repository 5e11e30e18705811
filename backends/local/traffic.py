"""LocalTraffic: the Traffic protocol over real processes on 127.0.0.1.

Per model, the folder <workspace>/serving/<model>/ holds processes.json (router and model
server pids and ports), split.json (written by the router), requests.jsonl (the request
log) and artifacts/<version>/ (the verified copy each server loaded). Servers run in their own
sessions so that they outlive the controller that started them (a kill -9 of the controller
must not take the traffic down); `stop_serving` ends them.

A version is served by its model format's server: serve_protocol "mrc" by our model server
(backends/local/serving/server.py, which loads any format through ModelFormat.load), and
"mlflow-invocations" by the format's own serve_argv (MLflow's scoring server) behind the
router, which speaks its protocol (by ours when serve_argv gives None for that artifact). The caller resolves formats (`resolve_format`, from
console/plugins.py): a backend never looks in console/.

The rollback path here is stdlib only: one POST to the router, retried with backoff; if the
router is down, split.json is rewritten so that a restarted router routes to stable.
"""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from backends.base import BackendError, BadInputError, ConflictError, TrafficSplit, check_name
from backends.local.loadgen import LoadGenerator, holdout_rows
from backends.local.registry import LocalRegistry
from backends.local.serving.controlkey import auth_headers, ensure_key
from backends.support.files import sha256_file
from backends.support.procs import alive, group_alive

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180.0  # MLflow's scoring server imports mlflow and pandas: slow on 2 loaded cores
MRC, MLFLOW = "mrc", "mlflow-invocations"


def free_port() -> int:
    """A port free on 127.0.0.1 now, for a server that cannot report the one it bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def last_line(path: Path) -> str:
    """The last non-empty line of a log: a failed server's own reason."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1][:500] if lines else "(its log is empty)"


def _format_by_entry_point(declared: str, path: str, options: dict[str, Any]):
    """For callers that pass no resolver (tests, benches on mrc's own workspace): the format the
    registry declared, through the `mrc.formats` entry points of the installed distribution."""
    from importlib.metadata import entry_points

    name = options.get("format") or declared
    for ep in entry_points(group="mrc.formats"):
        if ep.name == name:
            return ep.load()()
    raise BadInputError(f"{path}: format {name!r} is not an installed `mrc.formats` entry point")


def _request(port: int, method: str, path: str, body: Any = None, timeout: float = 5.0,
             raw: bool = False, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, data, {**({"Content-Type": "application/json"} if data else {}), **(headers or {})})
        resp = conn.getresponse()
        payload = resp.read()
        if raw:
            return resp.status, payload
        return resp.status, (json.loads(payload) if payload else {})
    finally:
        conn.close()


class LocalTraffic:
    def __init__(self, root: str | Path, config: dict[str, Any] | None = None):
        self.root = Path(root)
        self.config = config or {}
        self._children: dict[int, subprocess.Popen] = {}  # started here: their exit codes

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
    def _spawn(self, folder: Path, name: str, argv: list[str], *, cwd: Path = REPO) -> int:
        """Start argv in its own session, output to <name>.log; the pid."""
        log = open(folder / f"{name}.log", "ab")
        # the interpreter's bin folder first: MLflow's server execs `uvicorn` from it by name
        path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", os.defpath)])
        proc = subprocess.Popen(argv, cwd=str(cwd), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True,
                                env={**os.environ, "PATH": path,
                                     "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")})
        log.close()
        self._children[proc.pid] = proc
        return proc.pid

    def _spawn_ours(self, folder: Path, name: str, args: list[str]) -> int:
        (folder / f"{name}.ready").unlink(missing_ok=True)
        key_file = ensure_key(self.root)  # the path in argv, never the key
        return self._spawn(folder, name, [sys.executable, "-m", *args, "--ready-file", str(folder / f"{name}.ready"),
                                          "--key-file", str(key_file)])

    def _auth(self) -> dict[str, str]:
        """The control key and the acting user, for every call to a control route."""
        return auth_headers(self.root)

    @staticmethod
    def _probe(port: int) -> bool:
        """A foreign server is ready when its /ping (MLflow) or /health answers 200."""
        for path in ("/ping", "/health"):
            try:
                status, _ = _request(port, "GET", path, timeout=2.0, raw=True)
            except (OSError, http.client.HTTPException):
                return False
            if status == 200:
                return True
        return False

    def _wait_ready(self, folder: Path, starting: dict[str, dict[str, Any]]) -> dict[str, int]:
        """name -> port once each is ready. starting: name -> {"pid", "port"?} (a port means a
        foreign server probed over HTTP; none means ours, which writes <name>.ready)."""
        ports: dict[str, int] = {}
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(ports) < len(starting):
            for name, entry in starting.items():
                if name in ports:
                    continue
                ready = folder / f"{name}.ready"
                if entry.get("port") is None and ready.exists():
                    ports[name] = int(json.loads(ready.read_text())["port"])
                elif entry.get("port") is not None and alive(entry["pid"]) and self._probe(entry["port"]):
                    ports[name] = entry["port"]
                elif not alive(entry["pid"]):
                    child = self._children.get(entry["pid"])
                    code = child.wait() if child is not None else None
                    message = f"{name} exited before it listened: {last_line(folder / f'{name}.log')}"
                    # our model server exits 2 on an artifact it cannot load: the caller's input
                    raise (BadInputError if code == 2 and entry.get("port") is None else BackendError)(message)
            if time.monotonic() > deadline:
                late = [n for n in starting if n not in ports]
                raise BackendError(f"{', '.join(late)}: not ready in {START_TIMEOUT_S:.0f} s "
                                   f"({'; '.join(last_line(folder / f'{n}.log') for n in late)})")
            time.sleep(0.1)
        return ports

    def _start_version(self, folder: Path, model: str, version: str, registry, options: dict[str, Any],
                       resolve_format: Callable) -> dict[str, Any]:
        """Fetch the verified artifact and start its server; the server entry (pid, protocol …)."""
        dest = folder / "artifacts" / version
        shutil.rmtree(dest, ignore_errors=True)  # a stale copy of a server that is gone
        dest.mkdir(parents=True)
        mv = registry.get_version(model, version)
        path = registry.fetch_artifact(model, version, str(dest))  # verified against the registry's sha256
        fmt = resolve_format(mv.artifact.format, path, options)
        name = f"server-{version}"
        protocol, argv, port = fmt.serve_protocol, None, None
        if protocol == MLFLOW:
            port = free_port()
            argv = fmt.serve_argv(path, "127.0.0.1", port, options)
            # ModelFormat.serve_argv: None = mrc's own model server (e.g. an sklearn classifier
            # whose MLflow pyfunc would answer labels while the gates score P(y=1))
            protocol = MLFLOW if argv else MRC
        entry: dict[str, Any] = {"format": fmt.name, "protocol": protocol, "artifact": path}
        if protocol == MRC:
            cls = type(fmt)
            # a registry that records no sha256 (a seed bucket): the copy fetched now is the reference
            sha256 = mv.artifact.sha256 or (sha256_file(path)[0] if os.path.isfile(path) else "")
            entry["pid"] = self._spawn_ours(folder, name, [
                "backends.local.serving.server", "--artifact", path, "--sha256", sha256, "--version", version,
                "--format", fmt.name, "--format-class", f"{cls.__module__}:{cls.__qualname__}",
                "--options", json.dumps(options, default=str)])
        elif protocol == MLFLOW:
            entry["port"] = port
            (folder / f"{name}.log").write_bytes(b"")
            # cwd: the serving folder, so whatever the server writes stays in the workspace
            entry["pid"] = self._spawn(folder, name, argv, cwd=folder)
        else:
            raise BadInputError(f"{model} {version}: format {fmt.name} has serve_protocol "
                                f"{fmt.serve_protocol!r} (expected {MRC!r} or {MLFLOW!r})")
        return entry

    def ensure_serving(self, model: str, versions: list[str], *, registry=None, options: dict[str, Any] | None = None,
                       resolve_format: Callable | None = None) -> dict[str, Any]:
        """Start the router and a server per version unless already up; the first version
        takes 100% when the router has no split yet.

        registry: the workspace's registry (any backend); options: the model's [models.X]
        table; resolve_format(declared, path, options) -> ModelFormat. Without them (tests and
        benches on mrc's own workspace) the local registry and the declared format are used.
        """
        for v in versions:
            check_name(v, "version")
        router_flags = self._router_flags()  # a bad [traffic] value fails before anything starts
        options = dict(options or {})
        own_registry = registry is None
        if own_registry:
            registry = LocalRegistry(self.root)
        resolve_format = resolve_format or _format_by_entry_point
        with self._lock(model):
            folder = self.serving_dir(model)
            procs = self._processes(model)
            servers = {v: s for v, s in procs.get("servers", {}).items() if alive(s["pid"])}
            router = procs.get("router") if procs.get("router") and alive(procs["router"]["pid"]) else None
            starting: dict[str, dict[str, Any]] = {}
            try:
                for v in versions:
                    if v not in servers:
                        starting[f"server-{v}"] = self._start_version(folder, model, v, registry, options, resolve_format)
                if router is None:
                    starting["router"] = {"pid": self._spawn_ours(folder, "router", [
                        "backends.local.serving.router", "--dir", str(folder), "--model", model, *router_flags])}
                ports = self._wait_ready(folder, starting)
            except BaseException:
                for entry in starting.values():
                    self._kill(entry["pid"])
                raise
            finally:
                if own_registry:
                    registry.close()
            for name, entry in starting.items():
                entry["port"] = ports[name]
                if name == "router":
                    router = {"pid": entry["pid"], "port": entry["port"]}
                else:
                    servers[name.removeprefix("server-")] = entry
            self._save_processes(model, {"router": router, "servers": servers})
            status, body = _request(router["port"], "PUT", "/control/backends",
                                    {v: self._backend_entry(s, options) for v, s in servers.items()},
                                    headers=self._auth())
            if status != 200:
                raise BackendError(f"{model}: router refused the backends: {body}")
            split = self.get_split(model)
            if not split.weights and versions:
                self.set_split(model, {versions[0]: 100}, expected_revision=split.revision)
        return {"router": router, "servers": servers}

    ROUTER_SETTINGS = {"shadow_log_max_bytes": "--shadow-log-max-bytes", "shadow_log_keep": "--shadow-log-keep",
                       "request_log_max_bytes": "--request-log-max-bytes", "request_log_keep": "--request-log-keep"}
    # [monitor] keys the router's feature capture reads (number, flag, smallest allowed, largest)
    CAPTURE_SETTINGS = {"sample": ("--capture-sample", 0.0, 1.0), "segment_max_bytes": ("--capture-max-bytes", 1, None),
                        "segment_max_age_s": ("--capture-max-age-s", 1e-3, None),
                        "keep_bytes": ("--capture-keep-bytes", 1, None), "retain_s": ("--capture-retain-s", 1.0, None)}

    def _capture_flags(self) -> list[str]:
        """mrc.toml [monitor] (read here with tomllib: the traffic backend gets only [traffic]):
        without it the router captures nothing; with it, `sample` (default 0.1) of requests."""
        import tomllib

        path = self.root / "mrc.toml"
        try:
            with open(path, "rb") as fh:
                section = tomllib.load(fh).get("monitor")
        except (OSError, tomllib.TOMLDecodeError):
            return []
        if not isinstance(section, dict):
            return []
        flags = ["--capture-sample", str(section.get("sample", 0.1))]
        for key, (flag, low, high) in self.CAPTURE_SETTINGS.items():
            if key not in section:
                continue
            value = section[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low \
                    or (high is not None and value > high):
                bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
                raise BadInputError(f"{path}: monitor.{key} = {value!r} must be a number {bound}")
            if key == "sample":
                flags[1] = str(float(value))
            else:
                flags += [flag, str(value)]
        return flags

    def _router_flags(self) -> list[str]:
        """The [traffic] settings a router starts with (shadow.jsonl's rotation size and the
        generations kept), as its flags; the router's defaults where unset."""
        flags = []
        for key, flag in self.ROUTER_SETTINGS.items():
            if key not in self.config:
                continue
            value = self.config[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BadInputError(f"{self.root / 'mrc.toml'}: traffic.{key} = {value!r} must be a whole number >= 1")
            flags += [flag, str(value)]
        return flags + self._capture_flags()

    @staticmethod
    def _backend_entry(server: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        features = options.get("features")
        return {"url": f"http://127.0.0.1:{server['port']}", "protocol": server.get("protocol", MRC),
                "columns": list(features) if isinstance(features, list) else None,
                "task": str(options.get("task") or "binary")}

    @staticmethod
    def _kill(pid: int) -> None:
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and group_alive(pid):
            time.sleep(0.05)
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        # "stopped" means the whole group is gone, children included: SIGKILL is sent, not done
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and group_alive(pid):
            time.sleep(0.02)

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

    def _control_get(self, model: str, route: str) -> dict | None:
        """The running router's answer to a control GET; None when no router answers 200 (the
        caller falls back to what the router saved on disk)."""
        port = self.router_port(model)
        if port is None:
            return None
        try:
            status, body = _request(port, "GET", route, headers=self._auth())
        except OSError:
            return None
        return body if status == 200 else None

    def _control_put(self, model: str, route: str, body: dict[str, Any], *, expected_revision: int, what: str,
                     about: Any, gone: str | None = None) -> dict[str, Any]:
        """One compare-and-swap PUT to a router control route (the split, the shadow setting):
        the control key, expected_revision, and the router's answers as mrc's errors (409: the
        revision moved; 400: bad input, named by `what` and `about`; 404: `gone`, a router
        older than the route)."""
        port = self.router_port(model)
        if port is None:
            raise BackendError(f"{model}: router is not running (run `mrc serve-models {model}`)")
        try:
            status, reply = _request(port, "PUT", route, {**body, "expected_revision": expected_revision},
                                     headers=self._auth())
        except OSError as exc:
            raise BackendError(f"{model}: router unreachable: {exc}") from None
        if status == 409:
            raise ConflictError(f"{model}: {what} revision is {reply.get('revision')}, expected {expected_revision}",
                                expected=str(expected_revision), actual=str(reply.get("revision")))
        if status == 400:
            raise BadInputError(f"{model} {what} {about}: {reply.get('error')}")
        if status == 404 and gone is not None:
            raise BackendError(gone)
        if status != 200:
            raise BackendError(f"{model}: router answered {status}: {reply}")
        return reply

    def get_split(self, model: str) -> TrafficSplit:
        body = self._control_get(model, "/control/split")
        if body is not None:
            return self._split_from(model, body)
        split = self._split_on_disk(model)
        if split is None:
            raise BackendError(f"{model}: not served and no recorded split (run `mrc serve-models {model}`)")
        return split

    def set_split(self, model: str, weights: dict[str, int], *, expected_revision: int) -> TrafficSplit:
        items = [[str(v), int(w)] for v, w in weights.items()]
        body = self._control_put(model, "/control/split", {"weights": items}, expected_revision=expected_revision,
                                 what="split", about=weights)
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
                status, body = _request(port, "POST", "/control/rollback", {"stable": stable_version}, timeout=2.0,
                                        headers=self._auth())
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
    def fault(self, model: str, version: str, *, error_rate: float | None = 0.0, latency_ms: float | None = 0.0,
              shift: float | None = 0.0) -> dict[str, Any]:
        """A rehearsal fault: our model server takes it itself; for a server that is not ours
        (MLflow's) the router applies it to that version's requests. A value given as None keeps
        the one the version's fault has (drills add to each other)."""
        check_name(version, "version")
        server = {v: s for v, s in self._processes(model).get("servers", {}).items() if alive(s["pid"])}.get(version)
        if server is None:
            raise BadInputError(f"{model} {version}: not served here (run `mrc serve-models {model} --versions {version}`)")
        values = {k: v for k, v in (("error_rate", error_rate), ("latency_ms", latency_ms), ("shift", shift))
                  if v is not None}
        if server.get("protocol", MRC) == MRC:
            status, body = _request(int(server["port"]), "POST", "/control/fault", values, headers=self._auth())
        else:
            port = self.router_port(model)
            if port is None:
                raise BackendError(f"{model}: router is not running (run `mrc serve-models {model}`)")
            status, body = _request(port, "POST", "/control/fault", {"version": version, **values},
                                    headers=self._auth())
        if status != 200:
            raise BackendError(f"{model} {version}: server refused the fault: {body}")
        return body

    # -- shadow traffic -------------------------------------------------------------------------
    def shadow_log_path(self, model: str) -> Path:
        """Where the router logs each mirrored request: both predictions, both latencies. Past
        [traffic] shadow_log_max_bytes (64 MiB) it is rotated to <path>.1, <path>.2 … (up to
        shadow_log_keep, 1), whole lines only."""
        return self.serving_dir(model) / "shadow.jsonl"

    def get_shadow(self, model: str) -> dict[str, Any]:
        """{"shadow", "last", "revision", "counters", "queue", "capacity", "live"}: from the router
        when it runs, else the last setting it saved (no counters)."""
        body = self._control_get(model, "/control/shadow")
        if body is not None:
            return {**body, "live": True}
        try:
            data = json.loads((self.serving_dir(model) / "shadow.json").read_text())
        except (OSError, ValueError):
            data = {}
        return {"model": model, "shadow": data.get("shadow"), "last": data.get("last"),
                "revision": int(data.get("revision", 0)), "counters": {}, "live": False}

    def set_shadow(self, model: str, version: str | None, *, sample: float = 1.0,
                   expected_revision: int) -> dict[str, Any]:
        """Mirror a sampled copy of the model's traffic to `version` (None: stop); compare-and-swap
        on the shadow setting's revision."""
        if version is not None:
            check_name(version, "version")
        body = self._control_put(model, "/control/shadow", {"version": version, "sample": sample},
                                 expected_revision=expected_revision, what="shadow", about=version,
                                 gone=f"{model}: the running router predates shadow traffic (restart it: "
                                      f"`mrc serve-models {model} --stop`, then serve again)")
        return {**body, "live": True}

    # -- load ---------------------------------------------------------------------------------
    def load(self, model: str, rows: list[list[float]], labels: list[int] | None, *, columns: list[str] | None = None,
             rate: float = 50.0, duration: float = 60.0, label_delay_s: float = 0.5,
             on_start: Callable[[str], None] | None = None) -> dict[str, int]:
        """Replay rows through the model's router at `rate` for `duration` s, each label posted
        `label_delay_s` after its answer; the counts (sent, ok, errors, failed)."""
        port = self.router_port(model)
        if port is None:
            raise BadInputError(f"{model}: not served (run `mrc serve-models {model}` first)")
        gen = LoadGenerator(port, rows, labels, columns=columns, rate=rate, label_delay_s=label_delay_s,
                            headers=self._auth())
        if on_start is not None:
            on_start(f"{model}: {rate:g} req/s for {duration:g} s through 127.0.0.1:{port}")
        return gen.run(duration)

    def holdout(self, model: str, ref: str, label: str | None = None) -> tuple[list[str], list[list[float]], list[int]]:
        """mrc's own dataset store (name@version): (feature columns, rows, labels)."""
        return holdout_rows(self.root, ref, label)
