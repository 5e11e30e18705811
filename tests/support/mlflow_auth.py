"""A real `mlflow server --app-name basic-auth` on 127.0.0.1 for the identity tests.

Its own temp dir: tracking store, artifacts, and the auth app's config (MLFLOW_AUTH_CONFIG_PATH)
with its own admin password and user database. Users alice, bob and carol are created through the
REST API as the admin; alice logs the models with the plain MLflow client (tests/support/
build_mlflow_auth.py), the admin grants bob and carol EDIT on them (approval tags, aliases).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tests.support.servers import VENV_BIN, MlflowServer

USERS = ("alice", "bob", "carol")
BUILDER = Path(__file__).with_name("build_mlflow_auth.py")


class MlflowAuthServer(MlflowServer):
    """tests/support/servers.py's MlflowServer (port, url, stop, cleanup) started as the basic-auth app."""

    def __init__(self):
        super().__init__(Path(tempfile.mkdtemp(prefix="mrc-mlflow-auth-")))
        self.admin_password = "admin-" + secrets.token_hex(8)
        self.passwords = {user: f"{user}-" + secrets.token_hex(8) for user in USERS}
        self.ready_s = 0.0

    def start(self, timeout: float = 300.0) -> "MlflowAuthServer":
        config = self.root / "basic_auth.ini"
        config.write_text("[mlflow]\ndefault_permission = READ\n"
                          f"database_uri = sqlite:///{self.root / 'auth.db'}\n"
                          f"admin_username = admin\nadmin_password = {self.admin_password}\n"
                          "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(config)
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = secrets.token_hex(16)  # the auth app's CSRF needs one
        self.log = open(self.root / "mlflow.log", "ab")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "mlflow"), "server", "--app-name", "basic-auth",
             "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
             "--artifacts-destination", str(self.root / "artifacts"), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=self.root, env=env, start_new_session=True)
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server --app-name basic-auth exited with {self.proc.returncode}: "
                                   f"{self._log_tail()}")
            try:
                if self.call("GET", "/api/2.0/mlflow/users/current")["user"]["username"] == "admin":
                    self.ready_s = time.monotonic() - started
                    return self
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server --app-name basic-auth not ready after {timeout}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        return (self.root / "mlflow.log").read_text(errors="replace")[-2000:]

    def call(self, method: str, path: str, body: dict | None = None, *, user: str = "admin",
             password: str | None = None) -> dict:
        """One REST call as `user` (the admin by default); HTTPError on a non-2xx answer."""
        password = password if password is not None else (
            self.admin_password if user == "admin" else self.passwords[user])
        url = self.url + path
        data = None
        if method == "GET" and body:
            url += "?" + urllib.parse.urlencode(body)
        elif body is not None:
            data = json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def create_users(self) -> None:
        for user, password in self.passwords.items():
            self.call("POST", "/api/2.0/mlflow/users/create", {"username": user, "password": password})

    def grant(self, user: str, model: str, permission: str = "EDIT") -> None:
        self.call("POST", "/api/3.0/mlflow/users/permissions/grant",
                  {"username": user, "resource_type": "registered_model", "resource_id": model,
                   "permission": permission})

    def build_models(self, names: list[str], as_user: str = "alice") -> dict:
        """Two sklearn versions of each name, logged by `as_user` with the plain MLflow client."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env.update(MLFLOW_TRACKING_USERNAME=as_user, MLFLOW_TRACKING_PASSWORD=self.passwords[as_user])
        proc = subprocess.run([sys.executable, str(BUILDER), self.url, *names], capture_output=True, text=True,
                              env=env, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"building the MLflow models failed: {proc.stderr[-2000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def aliases(self, model: str) -> dict[str, str]:
        """The registered model's aliases as the server holds them (read as the admin, not through mrc)."""
        rm = self.call("GET", "/api/2.0/mlflow/registered-models/get", {"name": model})["registered_model"]
        return {a["alias"]: str(a["version"]) for a in rm.get("aliases") or []}

    def version_tags(self, model: str, version: str) -> dict[str, str]:
        mv = self.call("GET", "/api/2.0/mlflow/model-versions/get", {"name": model, "version": version})
        return {t["key"]: t.get("value", "") for t in mv["model_version"].get("tags") or []}

