"""MLflow's REST API for the calls on the rollback path, without importing mlflow.

`import mlflow` costs seconds (it pulls in pandas, pydantic, sqlalchemy, …); a 3 AM `mrc rollback`
needs eight small JSON calls. `RestClient` answers the MlflowClient methods the registry's
pointer and ledger code uses (same names, same arguments, objects with the same attributes) over
http.client with one kept-alive connection; any other method is handed to a real MlflowClient,
created on first use. Errors are `RestError` with MLflow's `error_code`, so the registry's
compare-and-swap (RESOURCE_ALREADY_EXISTS on a ledger entry) reads them exactly as before.

Auth and retries follow the MlflowClient's environment: MLFLOW_TRACKING_TOKEN (bearer) or
MLFLOW_TRACKING_USERNAME/PASSWORD (basic), MLFLOW_TRACKING_INSECURE_TLS; 5xx, 429 and connection
errors are retried `retries` times with exponential backoff, as MLflow's HTTP layer does.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import time
from types import SimpleNamespace
from typing import Any, Callable
from urllib.parse import quote, urlencode, urlsplit

API = "/api/2.0/mlflow/"
RETRY_STATUS = {429, 500, 502, 503, 504}
AUTH_STATUS = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}


class RestError(Exception):
    """An MLflow error answer (error_code as MLflow names it) or a transport failure."""

    def __init__(self, message: str, error_code: str = "INTERNAL_ERROR", status: int = 0):
        super().__init__(message)
        self.error_code = error_code
        self.status = status


class PagedList(list):
    def __init__(self, items, token: str | None):
        super().__init__(items)
        self.token = token


def _tags(entries: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in entries or []}


def _experiment(raw: dict[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(experiment_id=str(raw.get("experiment_id", "")), name=raw.get("name", ""),
                           artifact_location=raw.get("artifact_location", ""),
                           lifecycle_stage=raw.get("lifecycle_stage", ""), tags=_tags(raw.get("tags")),
                           creation_time=raw.get("creation_time"), last_update_time=raw.get("last_update_time"))


def _registered_model(raw: dict[str, Any]) -> SimpleNamespace:
    # MlflowClient's RegisteredModel.aliases is {alias: version}
    return SimpleNamespace(name=raw.get("name", ""), description=raw.get("description", ""),
                           creation_timestamp=int(raw.get("creation_timestamp", 0) or 0),
                           last_updated_timestamp=int(raw.get("last_updated_timestamp", 0) or 0),
                           tags=_tags(raw.get("tags")),
                           aliases={a["alias"]: str(a["version"]) for a in raw.get("aliases") or []})


def _model_version(raw: dict[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(name=raw.get("name", ""), version=str(raw.get("version", "")),
                           creation_timestamp=int(raw.get("creation_timestamp", 0) or 0),
                           last_updated_timestamp=int(raw.get("last_updated_timestamp", 0) or 0),
                           description=raw.get("description", ""), source=raw.get("source", ""),
                           run_id=raw.get("run_id", ""), run_link=raw.get("run_link", ""),
                           status=raw.get("status", ""), current_stage=raw.get("current_stage", ""),
                           model_id=raw.get("model_id") or None, tags=_tags(raw.get("tags")),
                           aliases=list(raw.get("aliases") or []))


def _key_values(entries: list[dict[str, Any]] | None) -> list[SimpleNamespace]:
    return [SimpleNamespace(key=e.get("key", ""), value=e.get("value", "")) for e in entries or []]


def _run(raw: dict[str, Any]) -> SimpleNamespace:
    """runs/get's answer in MlflowClient's Run shape, as far as the registry reads it: info,
    data.metrics (latest value per key) / params / tags as dicts, inputs.dataset_inputs."""
    info, data = raw.get("info") or {}, raw.get("data") or {}
    inputs = []
    for entry in (raw.get("inputs") or {}).get("dataset_inputs") or []:
        dataset = entry.get("dataset") or {}
        inputs.append(SimpleNamespace(tags=_key_values(entry.get("tags")), dataset=SimpleNamespace(
            name=dataset.get("name", ""), digest=dataset.get("digest", ""), source=dataset.get("source", ""),
            source_type=dataset.get("source_type", ""))))
    return SimpleNamespace(
        info=SimpleNamespace(run_id=info.get("run_id") or info.get("run_uuid", ""), user_id=info.get("user_id", ""),
                             experiment_id=info.get("experiment_id", ""), status=info.get("status", ""),
                             start_time=info.get("start_time"), end_time=info.get("end_time")),
        data=SimpleNamespace(metrics={m["key"]: float(m["value"]) for m in data.get("metrics") or [] if "key" in m},
                             params={p["key"]: p.get("value", "") for p in data.get("params") or [] if "key" in p},
                             tags=_tags(data.get("tags"))),
        inputs=SimpleNamespace(dataset_inputs=inputs))


def _logged_model(raw: dict[str, Any]) -> SimpleNamespace:
    info, data = raw.get("info") or {}, raw.get("data") or {}
    return SimpleNamespace(model_id=info.get("model_id", ""), source_run_id=info.get("source_run_id") or None,
                           metrics=[SimpleNamespace(key=m.get("key", ""), value=float(m.get("value", "nan")))
                                    for m in data.get("metrics") or []])


class RestClient:
    def __init__(self, tracking_uri: str, *, retries: int = 4, backoff: float = 1.0, timeout_s: float = 20.0,
                 fallback: Callable[[], Any] | None = None):
        parts = urlsplit(tracking_uri)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) tracking URI: {tracking_uri}")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname or "", parts.port
        self.base = parts.path.rstrip("/") + API
        self.retries, self.backoff, self.timeout_s = retries, backoff, timeout_s
        self._fallback = fallback
        self._heavy = None
        self._conn: http.client.HTTPConnection | None = None
        self.headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "mrc"}
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        elif user and password:
            self.headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    # -- anything not on the fast path goes to the real client ------------------------------
    def __getattr__(self, name: str):
        if name.startswith("_") or self._fallback is None:
            raise AttributeError(name)
        if self._heavy is None:
            self._heavy = self._fallback()
        return getattr(self._heavy, name)

    # -- transport --------------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.scheme == "https":
                import ssl

                context = ssl.create_default_context()
                if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                self._conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout_s, context=context)
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _request(self, method: str, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        path = self.base + endpoint
        payload = None
        if method == "GET":
            path += "?" + urlencode({k: v for k, v in body.items() if v is not None})
        else:
            payload = json.dumps(body).encode()
        attempt = 0
        while True:
            try:
                conn = self._connection()
                conn.request(method, path, body=payload, headers=self.headers)
                response = conn.getresponse()
                status, raw = response.status, response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt < self.retries:
                    attempt += 1
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                    continue
                raise RestError(f"{type(exc).__name__} talking to MLflow", "TEMPORARILY_UNAVAILABLE") from None
            if status in RETRY_STATUS and attempt < self.retries:
                attempt += 1
                time.sleep(self.backoff * 2 ** (attempt - 1))
                continue
            try:
                answer = json.loads(raw or b"{}")
            except ValueError:
                answer = {}
            if status != 200:
                if not isinstance(answer, dict):
                    answer = {}
                # the basic-auth app answers 401/403 in plain text: name them as MLflow's client does
                code = answer.get("error_code") or AUTH_STATUS.get(status, "INTERNAL_ERROR")
                raise RestError(f"{answer.get('error_code', 'HTTP ' + str(status))}: "
                                f"{answer.get('message', raw[:200].decode(errors='replace'))}",
                                code, status)
            return answer if isinstance(answer, dict) else {}

    # -- registered models and versions ----------------------------------------------------
    def get_registered_model(self, name: str):
        return _registered_model(self._request("GET", "registered-models/get", {"name": name})["registered_model"])

    def get_model_version(self, name: str, version: str):
        return _model_version(self._request("GET", "model-versions/get",
                                            {"name": name, "version": str(version)})["model_version"])

    def get_run(self, run_id: str):
        """Over REST so that reading a version logged by a run (a team's log_model) stays off
        mlflow's import on the rollback path."""
        return _run(self._request("GET", "runs/get", {"run_id": run_id})["run"])

    def get_logged_model(self, model_id: str):
        """MLflow 3's LoggedModel (the metrics of a model logged with log_model); its REST path."""
        return _logged_model(self._request("GET", "logged-models/" + quote(model_id, safe=""), {})["model"])

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self._request("POST", "registered-models/alias", {"name": name, "alias": alias, "version": str(version)})

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self._request("DELETE", "registered-models/alias", {"name": name, "alias": alias})

    def set_model_version_tag(self, name: str, version: str, key: str, value: Any) -> None:
        self._request("POST", "model-versions/set-tag",
                      {"name": name, "version": str(version), "key": key, "value": str(value)})

    # -- experiments: the ledger -----------------------------------------------------------
    def search_experiments(self, view_type: Any = None, max_results: int = 1000, filter_string: str | None = None,
                           order_by: list[str] | None = None, page_token: str | None = None):
        # ViewType.ALL is 3 in MLflow's enum; the REST API wants its name
        views = {1: "ACTIVE_ONLY", 2: "DELETED_ONLY", 3: "ALL"}
        view = views.get(view_type, view_type) if view_type is not None else "ACTIVE_ONLY"
        body: dict[str, Any] = {"max_results": max_results, "view_type": view}
        if filter_string:
            body["filter"] = filter_string
        if order_by:
            body["order_by"] = order_by
        if page_token:
            body["page_token"] = page_token
        answer = self._request("POST", "experiments/search", body)
        return PagedList([_experiment(e) for e in answer.get("experiments") or []], answer.get("next_page_token") or None)

    def create_experiment(self, name: str, artifact_location: str | None = None,
                          tags: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {"name": name}
        if artifact_location:
            body["artifact_location"] = artifact_location
        if tags:
            body["tags"] = [{"key": k, "value": str(v)} for k, v in tags.items()]
        return str(self._request("POST", "experiments/create", body)["experiment_id"])

    def get_experiment_by_name(self, name: str):
        try:
            answer = self._request("GET", "experiments/get-by-name", {"experiment_name": name})
        except RestError as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None  # as MlflowClient does
            raise
        return _experiment(answer["experiment"])

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        self._request("POST", "experiments/set-experiment-tag",
                      {"experiment_id": str(experiment_id), "key": key, "value": str(value)})

    # -- who the server authenticates these requests as -----------------------------------
    def current_user(self) -> str | None:
        """The user name MLflow's auth app (`mlflow server --app-name basic-auth`) authenticated
        this request as; None when the server has no such endpoint (no auth app)."""
        try:
            answer = self._request("GET", "users/current", {})
        except RestError as exc:
            if exc.status == 404 or exc.error_code in ("ENDPOINT_NOT_FOUND", "RESOURCE_DOES_NOT_EXIST"):
                return None
            raise
        user = answer.get("user")
        name = user.get("username") if isinstance(user, dict) else None
        return str(name) if name else None
