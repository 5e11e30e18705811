"""Registry on an MLflow tracking server: registered models, versions, aliases, tags, runs.

What the console needs and MLflow lacks, and how it is made up for (docs/registries.md):

- Compare-and-swap on an alias. `set_registered_model_alias` is a plain upsert. mrc serialises
  its own moves through a ledger: each move *creates* an experiment named
  `mrc-ledger/<model>/<alias>/<seq>` (tags: from, to, actor, at, reason, move id). Experiment
  names are unique in MLflow's store, so of any number of racing mrc movers exactly one creates
  seq N+1; the others get RESOURCE_ALREADY_EXISTS and a ConflictError. The winner then sets the
  alias and re-reads it. A ledger entry whose alias write never landed is completed by the next
  mrc move (roll forward); an alias moved outside mrc (UI, plain client) cannot be prevented,
  only detected: the alias no longer matches the ledger, and the history says so.
- Actor and alias history: the ledger above.
- Approvals: version tags `mrc.approval.*`, compare-and-swap through the same kind of ledger
  (`mrc-approvals/<model>/<version>/<seq>`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from backends.base import (
    CANDIDATE,
    PRODUCTION,
    Approval,
    Artifact,
    BackendError,
    BadInputError,
    ConflictError,
    IntegrityError,
    Lineage,
    ModelSummary,
    ModelVersion,
    NotFoundError,
    PointerMove,
    check_name,
)
from backends.formats.digest import artifact_sha256
from backends.mlflow.rest import RestClient, RestError
from backends.support.timeutil import now_iso

OUTSIDE_MRC = "(outside mrc)"
SEQ_WIDTH = 10
LEDGER = "mrc-ledger"
ABORTED = "mrc.aborted"  # on a ledger entry whose effect the server refused (401/403): never rolled forward
APPROVALS = "mrc-approvals"
VIEW_ALL = 3  # mlflow.entities.ViewType.ALL, without importing mlflow
SECRET_KEYS = ("token", "tracking_token", "password", "tracking_password", "api_key", "secret")


def _now() -> str:
    return now_iso()


def _iso_ms(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Refused(BackendError):
    """The server refused this caller (401/403): a definite no, never a write to complete later."""


class _AlreadyExists(Exception):
    pass


class MlflowRegistry:
    def __init__(self, tracking_uri: str, *, production_alias: str = "champion", candidate_alias: str = "challenger",
                 retries: int = 4, backoff: int = 1, timeout_s: float = 20.0):
        self.tracking_uri = tracking_uri
        self.alias_names = {PRODUCTION: production_alias, CANDIDATE: candidate_alias}
        self._alias_maps: dict[str, dict[str, str]] = {}  # model -> its own mapping, as last read (_alias_map)
        self.retries = retries
        self.backoff = backoff
        self.timeout_s = timeout_s
        self._client = None

    @classmethod
    def from_config(cls, config: dict[str, Any], where: str = "mrc.toml") -> "MlflowRegistry":
        for key in config:
            if key.lower() in SECRET_KEYS:
                raise BadInputError(f"{where}: registry.{key}: secrets do not belong in mrc.toml; "
                                    "set MLFLOW_TRACKING_TOKEN (or _USERNAME/_PASSWORD) in the environment")
        uri = config.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
        if not isinstance(uri, str) or not uri:
            raise BadInputError(f"{where}: registry.tracking_uri: required (or set MLFLOW_TRACKING_URI)")
        if "@" in uri.split("//", 1)[-1].split("/", 1)[0]:
            raise BadInputError(f"{where}: registry.tracking_uri: credentials in the URI are refused; "
                                "use MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN")
        aliases = {}
        for key, default in (("production_alias", "champion"), ("candidate_alias", "challenger")):
            value = config.get(key, default)
            if not isinstance(value, str):
                raise BadInputError(f"{where}: registry.{key}: must be a string")
            aliases[key] = check_name(value, f"{where}: registry.{key}")
        for key in ("retries", "backoff", "timeout_s"):
            if key in config and not isinstance(config[key], (int, float)):
                raise BadInputError(f"{where}: registry.{key}: must be a number")
        return cls(uri, **aliases, retries=int(config.get("retries", 4)), backoff=int(config.get("backoff", 1)),
                   timeout_s=float(config.get("timeout_s", 20.0)))

    # -- plumbing --------------------------------------------------------------------------
    @property
    def client(self):
        """The pointer, ledger and approval calls go over REST (backends/mlflow/rest.py: no mlflow
        import on the rollback path); every other call reaches a real MlflowClient made on first use."""
        if self._client is None:
            if self.tracking_uri.startswith(("http://", "https://")):
                self._client = RestClient(self.tracking_uri, retries=self.retries, backoff=self.backoff,
                                          timeout_s=self.timeout_s, fallback=self._mlflow_client)
            else:
                self._client = self._mlflow_client()
        return self._client

    def _mlflow_client(self):
        # MLflow's HTTP layer retries 5xx and connection errors with exponential backoff.
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(self.retries)
        os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = str(int(self.backoff))
        os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"] = "0.2"
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(int(self.timeout_s))
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"  # stdout is for --json
        import logging

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        from mlflow.tracking import MlflowClient  # mlflow: ~1.5 s

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def close(self) -> None:
        if self._client is not None and hasattr(type(self._client), "close"):
            self._client.close()
        self._client = None

    def _call(self, what: str, fn: Callable[[], Any], *, missing: str | None = None) -> Any:
        try:
            return fn()
        except _mlflow_errors() as exc:
            code = getattr(exc, "error_code", "")
            if code == "RESOURCE_DOES_NOT_EXIST" and missing:
                raise NotFoundError(missing) from None
            if code == "RESOURCE_ALREADY_EXISTS":
                raise _AlreadyExists(what) from None
            if code == "INVALID_PARAMETER_VALUE" and missing and "not found" in str(exc).lower():
                raise NotFoundError(missing) from None
            if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
                raise _Refused(self._auth_refusal(what, code)) from None
            raise BackendError(f"MLflow at {self.tracking_uri}: {what} failed ({_short(exc)})") from None
        except OSError as exc:  # requests' ConnectionError and friends
            raise BackendError(f"MLflow at {self.tracking_uri}: {what} failed ({type(exc).__name__})") from None

    def _mlflow_alias(self, alias: str, model: str | None = None) -> str:
        """The MLflow alias that holds `alias` on `model`: the one its last read found (_alias_map)."""
        return self._alias_maps.get(model or "", self.alias_names).get(alias, alias)

    def _alias_map(self, rm) -> dict[str, str]:
        """console alias -> the MLflow alias that holds it on this model. mrc maps production to
        `champion` by default, but a team whose alias is literally `production` already has an
        alias of that meaning: it is used, for reads and writes alike (never read one alias and
        write another). Both on one model is ambiguous: refused, one line, before anything moves."""
        present = set((rm.aliases or {}).keys())
        mapping = dict(self.alias_names)
        for console_name, mapped in self.alias_names.items():
            if mapped == console_name or console_name not in present:
                continue
            if mapped in present:
                key = "production_alias" if console_name == PRODUCTION else "candidate_alias"
                raise BadInputError(
                    f"{rm.name}: MLflow aliases {console_name!r} ({rm.aliases[console_name]}) and {mapped!r} "
                    f"({rm.aliases[mapped]}) both mean {console_name} (registry.{key} = {mapped!r}); delete one "
                    f"of them in MLflow, or set registry.{key} = {console_name!r} in mrc.toml")
            mapping[console_name] = console_name
        self._alias_maps[rm.name] = mapping
        return mapping

    def _registered(self, model: str):
        check_name(model, "model")
        return self._call("get registered model", lambda: self.client.get_registered_model(model),
                          missing=f"unknown model {model!r} in MLflow at {self.tracking_uri}")

    # -- models and versions ---------------------------------------------------------------
    def list_models(self) -> list[ModelSummary]:
        models = []
        token = None
        while True:
            page = self._call("search registered models",
                              lambda: self.client.search_registered_models(max_results=1000, page_token=token))
            models += list(page)
            token = page.token
            if not token:
                break
        out = []
        for rm in sorted(models, key=lambda m: m.name):
            try:
                check_name(rm.name)
            except BadInputError:
                continue  # a name mrc could not address safely: not listed
            count = len(self._search_versions(rm.name))
            out.append(ModelSummary(rm.name, count, self._pointers_of(rm), _iso_ms(rm.last_updated_timestamp)))
        return out

    def _search_versions(self, model: str) -> list:
        found = []
        token = None
        while True:
            page = self._call("search model versions", lambda: self.client.search_model_versions(
                f"name='{model}'", max_results=10000, page_token=token))
            found += list(page)
            token = page.token
            if not token:
                return found

    def list_versions(self, model: str) -> list[ModelVersion]:
        rm = self._registered(model)
        pointers = self._pointers_of(rm)  # search results carry no aliases: take them from the model
        by_version: dict[str, list[str]] = {}
        for alias, version in pointers.items():
            by_version.setdefault(version, []).append(alias)
        runs: dict[str, Any] = {}
        versions = [self._to_version(mv, runs, by_version) for mv in self._search_versions(model)]
        return sorted(versions, key=lambda v: int(v.version) if v.version.isdigit() else 0)

    def get_version(self, model: str, version: str) -> ModelVersion:
        rm = self._registered(model)
        check_name(version, "version")
        mv = self._call("get model version", lambda: self.client.get_model_version(model, str(version)),
                        missing=f"unknown version {version!r} of model {model!r}")
        by_version: dict[str, list[str]] = {}
        for alias, v in self._pointers_of(rm).items():
            by_version.setdefault(v, []).append(alias)
        return self._to_version(mv, {}, by_version)

    def _to_version(self, mv, runs: dict[str, Any], aliases: dict[str, list[str]]) -> ModelVersion:
        version = str(mv.version)  # REST answers strings, the Python store ints: one shape
        tags = dict(mv.tags or {})
        run = None
        if mv.run_id:
            if mv.run_id not in runs:
                try:
                    runs[mv.run_id] = self._call("get run", lambda: self.client.get_run(mv.run_id), missing="run")
                except NotFoundError:
                    runs[mv.run_id] = None
            run = runs[mv.run_id]
        metrics: dict[str, float] = {}
        if run is not None:
            metrics.update({k: float(v) for k, v in run.data.metrics.items()})
        model_id = getattr(mv, "model_id", None)
        if not model_id and (mv.source or "").startswith("models:/m-"):  # REST answers may omit model_id
            model_id = mv.source[len("models:/"):].split("/", 1)[0]
        if model_id:  # MLflow 3: metrics logged on the LoggedModel
            try:
                logged = self._call("get logged model", lambda: self.client.get_logged_model(model_id), missing="model")
                for metric in logged.metrics or []:
                    metrics[metric.key] = float(metric.value)
                if run is None and logged.source_run_id:
                    run = self._call("get run", lambda: self.client.get_run(logged.source_run_id), missing="run")
            except NotFoundError:
                pass
        lineage = self._lineage(tags, run)
        artifact = Artifact(uri=mv.source or "", sha256=tags.get("mrc.artifact.sha256", ""),
                            size_bytes=int(tags.get("mrc.artifact.size", "0") or 0),
                            format=tags.get("mrc.artifact.format", "mlflow-pyfunc"))
        approval = Approval(
            status=tags.get("mrc.approval.status", "pending"), by=tags.get("mrc.approval.by", ""),
            at=tags.get("mrc.approval.at", ""), reason=tags.get("mrc.approval.reason", ""),
            gate_report_sha256=tags.get("mrc.approval.gate_report_sha256", ""),
            override=tags.get("mrc.approval.override", "false") == "true")
        return ModelVersion(model=mv.name, version=version, created_at=_iso_ms(mv.creation_timestamp),
                            artifact=artifact, metrics=metrics, lineage=lineage,
                            aliases=sorted(aliases.get(version, [])), approval=approval,
                            description=mv.description or "")

    @staticmethod
    def _lineage(tags: dict[str, str], run) -> Lineage:
        if tags.get("mrc.lineage"):
            try:
                return Lineage.from_dict(json.loads(tags["mrc.lineage"]))
            except (ValueError, TypeError):
                pass
        lineage = Lineage()
        if run is None:
            return lineage
        run_tags = run.data.tags
        lineage.params = dict(run.data.params)
        lineage.code_commit = run_tags.get("mlflow.source.git.commit", "")
        lineage.code_repo = run_tags.get("mlflow.source.git.repoURL") or run_tags.get("mlflow.source.name", "")
        lineage.training_run = run.info.run_id
        lineage.trained_by = run_tags.get("mlflow.user") or getattr(run.info, "user_id", "") or ""
        inputs = getattr(run, "inputs", None)
        datasets = list(getattr(inputs, "dataset_inputs", None) or [])
        training = [d for d in datasets if any(t.key == "mlflow.data.context" and t.value == "training" for t in d.tags)]
        chosen = (training or datasets)[:1]
        if chosen:
            dataset = chosen[0].dataset
            lineage.data_version = dataset.name
            lineage.data_sha256 = dataset.digest
            lineage.data_uri = _dataset_uri(getattr(dataset, "source", "") or "")
        return lineage

    def dataset_uri(self, model: str, version: str, context: str) -> str:
        """Where the dataset that the version's run logged under `context` (the input tag
        mlflow.data.context: training, testing, evaluation …) can be read; "" when none."""
        check_name(model, "model")
        check_name(version, "version")
        mv = self._call("get model version", lambda: self.client.get_model_version(model, str(version)),
                        missing=f"unknown version {version!r} of model {model!r}")
        run_id = mv.run_id
        if not run_id:
            model_id = getattr(mv, "model_id", None) or (
                mv.source[len("models:/"):].split("/", 1)[0] if (mv.source or "").startswith("models:/m-") else None)
            if model_id:
                logged = self._call("get logged model", lambda: self.client.get_logged_model(model_id), missing="model")
                run_id = logged.source_run_id
        if not run_id:
            return ""
        run = self._call("get run", lambda: self.client.get_run(run_id), missing="run")
        for entry in list(getattr(getattr(run, "inputs", None), "dataset_inputs", None) or []):
            if any(t.key == "mlflow.data.context" and t.value == context for t in entry.tags):
                return _dataset_uri(getattr(entry.dataset, "source", "") or "")
        return ""

    def register_version(self, model: str, artifact_path: str, *, metrics: dict[str, float], lineage: Lineage,
                         version: str | None = None, description: str = "", artifact_format: str = "torch-mlp-v1",
                         ) -> ModelVersion:
        """Log the run to MLflow tracking (params, metrics, dataset input, git commit) and register it."""
        check_name(model, "model")
        if version is not None:
            raise BadInputError("version: MLflow numbers versions itself; leave it out")
        path = Path(artifact_path)
        if not path.is_file():
            raise BadInputError(f"{artifact_path}: artifact file does not exist")
        for key, value in metrics.items():
            if not isinstance(value, (int, float)) or value != value:
                raise BadInputError(f"metrics.{key}: must be a number, got {value!r}")
        from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param  # mlflow: ~1.5 s

        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        client = self.client
        experiment_id = self._experiment_id(f"mrc/{model}")
        tags = {"mlflow.source.git.commit": lineage.code_commit, "mlflow.source.git.repoURL": lineage.code_repo,
                "mrc.training_run": lineage.training_run, "mlflow.runName": lineage.training_run or f"{model}-register"}
        run = self._call("create run", lambda: client.create_run(experiment_id, tags={k: v for k, v in tags.items() if v}))
        run_id = run.info.run_id
        now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
        params = [Param(str(k)[:250], json.dumps(v) if not isinstance(v, str) else v)
                  for k, v in (lineage.params or {}).items()]
        params = [Param(p.key, p.value[:6000]) for p in params]
        self._call("log batch", lambda: client.log_batch(
            run_id, metrics=[Metric(k, float(v), now_ms, 0) for k, v in metrics.items()], params=params))
        if lineage.data_version:
            dataset = Dataset(name=lineage.data_version, digest=(lineage.data_sha256 or "")[:36] or "unknown",
                              source_type="mrc", source=json.dumps({"data_version": lineage.data_version}))
            self._call("log inputs", lambda: client.log_inputs(
                run_id, datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])]))
        self._call("log artifact", lambda: client.log_artifact(run_id, str(path), "model"))
        self._call("end run", lambda: client.set_terminated(run_id))
        try:
            self._call("create registered model", lambda: client.create_registered_model(model))
        except _AlreadyExists:
            pass
        mv = self._call("create model version", lambda: client.create_model_version(
            model, source=f"{run.info.artifact_uri}/model", run_id=run_id, description=description, tags={
                "mrc.artifact.sha256": sha, "mrc.artifact.size": str(path.stat().st_size),
                "mrc.artifact.format": artifact_format, "mrc.artifact.file": path.name,
                "mrc.lineage": json.dumps(lineage.to_dict(), sort_keys=True)[:5000],
                "mrc.approval.status": "pending"}))
        return self.get_version(model, str(mv.version))

    def _experiment_id(self, name: str) -> str:
        found = self._call("get experiment", lambda: self.client.get_experiment_by_name(name))
        if found is not None:
            return found.experiment_id
        try:
            return self._call("create experiment", lambda: self.client.create_experiment(name))
        except _AlreadyExists:
            return self._call("get experiment", lambda: self.client.get_experiment_by_name(name)).experiment_id

    def fetch_artifact(self, model: str, version: str, dest_dir: str | None = None) -> str:
        """The artifact as a local path: mrc's own single file, or the MLflow model FOLDER (the one
        holding MLmodel) of a model logged by plain MLflow — MLflow 3 logged models (`models:/m-…`),
        run artifacts (`runs:/…`, `mlflow-artifacts:/…`). Reads only; nothing is recorded."""
        mv = self.get_version(model, version)
        dest = dest_dir or tempfile.mkdtemp(prefix="mrc-artifact-")
        tags = self._call("get model version", lambda: self.client.get_model_version(model, version)).tags or {}
        file_name = tags.get("mrc.artifact.file")
        source = mv.artifact.uri
        if source.startswith("models:/"):
            # Resolved by this client: mlflow.artifacts.download_artifacts would ask the process's
            # default registry (a sqlite mlflow.db in the cwd) and not find the logged model.
            source = self._call("resolve model version source",
                                lambda: self.client.get_model_version_download_uri(model, version))
        uri = f"{source}/{file_name}" if file_name else source
        target = os.path.join(dest, "model")
        os.makedirs(target, exist_ok=True)
        local = self._download(uri, target)
        if not file_name and Path(local).is_dir():
            local = _model_folder(local) or local
        if mv.artifact.sha256:
            if artifact_sha256(local)[0] != mv.artifact.sha256:
                raise IntegrityError(f"{model} {version}: {uri}: bytes do not match the recorded sha256 "
                                     f"{mv.artifact.sha256[:12]}…")
        return local

    def _download(self, uri: str, target: str) -> str:
        if uri.startswith("runs:/"):
            run_id, _, path = uri[len("runs:/"):].partition("/")
            return self._call("download artifact", lambda: self.client.download_artifacts(run_id, path, target))
        from mlflow.artifacts import download_artifacts  # mlflow: ~1.5 s

        return self._call("download artifact", lambda: download_artifacts(artifact_uri=uri, dst_path=target,
                                                                           tracking_uri=self.tracking_uri))

    def verify_artifact(self, model: str, version: str) -> Artifact:
        mv = self.get_version(model, version)
        if mv.artifact.sha256:
            with tempfile.TemporaryDirectory(prefix="mrc-verify-") as tmp:
                self.fetch_artifact(model, version, tmp)
        return mv.artifact

    # -- the ledger: experiments whose unique names serialise mrc's moves -------------------
    def _ledger(self, prefix: str) -> list[tuple[int, dict[str, str]]]:
        """(seq, tags) of every ledger entry under prefix; tags carry mrc.experiment_id."""
        entries = []
        token = None
        while True:
            page = self._call("search ledger", lambda: self.client.search_experiments(
                view_type=VIEW_ALL, max_results=1000, filter_string=f"name LIKE '{prefix}%'",
                order_by=["name ASC"], page_token=token))
            for exp in page:
                seq = exp.name[len(prefix):].rsplit("/", 1)[-1]
                if exp.name.startswith(prefix) and seq.isdigit():  # LIKE's '_' matches any character
                    entries.append((int(seq), {**exp.tags, "mrc.experiment_id": exp.experiment_id}))
            token = page.token
            if not token:
                return sorted(entries, key=lambda e: e[0])

    def _claim(self, name: str, tags: dict[str, str]) -> tuple[str | None, dict[str, str] | None]:
        """Create the ledger entry: (its experiment id, None) if we did, else (None, the winner's tags)."""
        try:
            return self._call("record move", lambda: self.client.create_experiment(name, tags=tags)), None
        except _AlreadyExists:
            winner = self._call("read ledger", lambda: self.client.get_experiment_by_name(name))
            winner_tags = dict(winner.tags) if winner is not None else {}
            if winner_tags.get("mrc.move_id") == tags["mrc.move_id"]:  # our own create, answered late
                return winner.experiment_id, None
            return None, winner_tags

    def _abort(self, experiment_id: str | None, refusal: _Refused) -> str:
        """The server refused the effect of an entry we just claimed: mark the entry aborted, so no
        later mrc run (with someone else's permissions) rolls it forward. Returns what to add to
        the refusal's message."""
        if not experiment_id:
            return ""
        try:
            self._call("mark move aborted", lambda: self.client.set_experiment_tag(
                experiment_id, ABORTED, str(refusal)[:500]))
        except BackendError:
            return f"; its ledger entry {experiment_id} could not be marked aborted and may be completed later"
        return ""

    def _mark_applied(self, experiment_id: str | None) -> None:
        """The alias write of this entry landed: tells a later reader it is not pending (ABA)."""
        if not experiment_id:
            return
        mark = lambda: self.client.set_experiment_tag(experiment_id, "mrc.applied", "true")  # noqa: E731
        try:
            self._call("mark move applied", mark)
        except _Refused:
            raise
        except BackendError:
            # A racer rolling the same entry forward marks it too: MLflow's SQL store inserts the
            # tag twice and answers 400 (UNIQUE constraint) to one of us. The mark is idempotent:
            # once more finds the row and updates it.
            self._call("mark move applied", mark)

    # -- pointers ----------------------------------------------------------------------------
    def _pointers_of(self, rm) -> dict[str, str]:
        console_of = {mlflow: console for console, mlflow in self._alias_map(rm).items()}
        return {console_of.get(alias, alias): str(version) for alias, version in (rm.aliases or {}).items()}

    def caller_identity(self) -> str | None:
        """The user the tracking server authenticates these requests as. With MLflow's auth app
        (`mlflow server --app-name basic-auth`) the server says so itself (users/current), so a
        username the server does not accept never stands as an identity; a server without that
        endpoint (auth by a proxy in front) leaves MLFLOW_TRACKING_USERNAME when basic-auth
        credentials are set; a bearer token names nobody mrc can read, so None."""
        import os

        user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        asked = None
        if self.tracking_uri.startswith(("http://", "https://")) and (token or (user and password)):
            asked = self._call("ask who the caller is", lambda: self.client.current_user())
        if asked:
            return asked
        if user and password and not token:
            return user
        return None

    def _auth_refusal(self, what: str, code: str) -> str:
        """One line for a 401/403: who was refused and what to check (never the secret itself)."""
        import os

        user = os.environ.get("MLFLOW_TRACKING_USERNAME")
        if os.environ.get("MLFLOW_TRACKING_TOKEN"):
            who, check = "MLFLOW_TRACKING_TOKEN", "check MLFLOW_TRACKING_TOKEN"
        elif user:
            who, check = f"MLFLOW_TRACKING_USERNAME {user!r}", "check MLFLOW_TRACKING_PASSWORD"
        else:
            who, check = "no credentials", "set MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN"
        if code == "UNAUTHENTICATED":
            return (f"MLflow at {self.tracking_uri} does not accept {who} (401 unauthenticated; {check}); "
                    f"{what} not done")
        return (f"MLflow at {self.tracking_uri}: {who} lacks the permission to {what} (403 permission denied; "
                f"an MLflow admin grants it); {what} refused")

    def get_pointers(self, model: str) -> dict[str, str]:
        pointers = self._pointers_of(self._registered(model))
        last: dict[str, dict[str, str]] = {}
        for _, tags in _live(self._ledger(f"{LEDGER}/{model}/")):  # one search for every alias, in seq order
            last[tags.get("mrc.alias", "")] = tags
        for alias, tags in last.items():
            if _pending(pointers.get(alias), tags):
                if tags.get("mrc.to"):
                    pointers[alias] = tags["mrc.to"]
                else:
                    pointers.pop(alias, None)
        return pointers

    def _set_alias(self, model: str, alias: str, version: str | None) -> None:
        name = self._mlflow_alias(alias, model)
        if version is None:
            try:
                self._call("delete alias", lambda: self.client.delete_registered_model_alias(model, name),
                           missing="alias")
            except NotFoundError:
                pass
        else:
            self._call("set alias", lambda: self.client.set_registered_model_alias(model, name, version))

    def _current_alias(self, model: str, alias: str) -> str | None:
        return self._pointers_of(self._registered(model)).get(alias)

    def move_pointer(self, model: str, alias: str, *, expected: str | None, new: str | None, actor: str,
                     reason: str = "", approval: Approval | None = None) -> PointerMove:
        check_name(alias, "alias")
        if new is not None:
            check_name(new, "version")
            self._call("get model version", lambda: self.client.get_model_version(model, new),
                       missing=f"unknown version {new!r} of model {model!r}")
            if approval is not None:
                self._claim_approval(model, new, approval, alias)
        # Read the alias before the ledger: a move claimed after our read shows up in the ledger.
        current = self._current_alias(model, alias)
        entries = self._ledger(f"{LEDGER}/{model}/{alias}/")
        last_seq, last = _last(entries)
        if last is not None and _pending(current, last):
            self._set_alias(model, alias, last.get("mrc.to") or None)  # roll a committed move forward
            current = self._current_alias(model, alias)
            if current == (last.get("mrc.to") or None):
                self._mark_applied(last.get("mrc.experiment_id"))
                last = {**last, "mrc.applied": "true"}
        recorded = (last.get("mrc.to") or None) if last else None
        outside = current != recorded and (last is not None or current is not None)
        if current != expected:
            raise ConflictError(f"{model}: {alias} points at {current or 'nothing'} now, not {expected or 'nothing'}"
                                " (someone else moved it first)", expected=expected, actual=current)
        seq = last_seq + 1
        at = _now()
        tags = {"mrc.model": model, "mrc.alias": alias, "mrc.mlflow_alias": self._mlflow_alias(alias, model),
                "mrc.from": current or "", "mrc.to": new or "", "mrc.actor": actor, "mrc.at": at,
                "mrc.reason": reason[:4000], "mrc.move_id": uuid.uuid4().hex}
        if outside:
            tags["mrc.outside_before"] = json.dumps({"recorded": recorded, "found": current})
        experiment_id, winner = self._claim(f"{LEDGER}/{model}/{alias}/{seq:0{SEQ_WIDTH}d}", tags)
        if winner is not None:
            raise ConflictError(f"{model}: {alias} was moved by {winner.get('mrc.actor', 'someone else')} to "
                                f"{winner.get('mrc.to') or 'nothing'} first", expected=expected,
                                actual=winner.get("mrc.to") or None)
        try:
            self._set_alias(model, alias, new)
        except _Refused as exc:
            raise _Refused(f"{exc}{self._abort(experiment_id, exc)}") from None
        except BackendError as exc:
            raise BackendError(f"{exc}; the move {current or 'none'} -> {new or 'none'} is recorded as ledger "
                               f"entry {seq} and the next mrc move completes it") from None
        after = self._current_alias(model, alias)  # re-read: an upsert from outside may have landed after ours
        if after != new:
            raise ConflictError(f"{model}: {alias} was changed outside mrc to {after or 'nothing'} right after "
                                f"move {seq} set it to {new or 'nothing'}", expected=new, actual=after)
        self._mark_applied(experiment_id)
        return PointerMove(model, alias, current, new, actor, at, reason, seq)

    def pointer_history(self, model: str, alias: str | None = None) -> list[PointerMove]:
        rm = self._registered(model)
        if alias is not None:
            check_name(alias, "alias")
        entries = _live(self._ledger(f"{LEDGER}/{model}/" + (f"{alias}/" if alias else "")))
        moves: list[PointerMove] = []
        last_by_alias: dict[str, dict[str, str]] = {}
        for seq, tags in sorted(entries, key=lambda e: (e[1].get("mrc.at", ""), e[0])):
            name = tags.get("mrc.alias", "")
            if tags.get("mrc.outside_before"):
                outside = json.loads(tags["mrc.outside_before"])
                moves.append(PointerMove(model, name, outside.get("recorded"), outside.get("found"), OUTSIDE_MRC, "",
                                         "alias changed outside mrc", 0))
            moves.append(PointerMove(model, name, tags.get("mrc.from") or None, tags.get("mrc.to") or None,
                                     tags.get("mrc.actor", ""), tags.get("mrc.at", ""), tags.get("mrc.reason", ""), seq))
            last_by_alias[name] = tags
        pointers = self._pointers_of(rm)
        names = [alias] if alias else sorted(set(last_by_alias) | set(pointers))
        for name in names:
            last = last_by_alias.get(name)
            recorded = (last.get("mrc.to") or None) if last else None
            current = pointers.get(name)
            if current != recorded and not (last and _pending(current, last)):
                moves.append(PointerMove(model, name, recorded, current, OUTSIDE_MRC, "", "alias changed outside mrc", 0))
        return moves

    # -- approvals ---------------------------------------------------------------------------
    def set_approval(self, model: str, version: str, approval: Approval, *, expected_status: str | None) -> Approval:
        current = self.get_version(model, version).approval
        entries = self._ledger(f"{APPROVALS}/{model}/{version}/")
        last_seq, last = _last(entries)
        if last is not None and last.get("mrc.status") and last.get("mrc.status") != current.status \
                and last.get("mrc.previous") == current.status:
            self._write_approval_tags(model, version, last)  # roll a committed decision forward
            current = self.get_version(model, version).approval
        if expected_status is not None and current.status != expected_status:
            raise ConflictError(f"{model} {version}: approval is {current.status!r} now, not {expected_status!r}",
                                expected=expected_status, actual=current.status)
        stored = Approval(approval.status, approval.by, approval.at or _now(), approval.reason,
                          approval.gate_report_sha256, approval.override)
        tags = {"mrc.status": stored.status, "mrc.by": stored.by, "mrc.at": stored.at, "mrc.reason": stored.reason[:4000],
                "mrc.gate_report_sha256": stored.gate_report_sha256, "mrc.override": str(stored.override).lower(),
                "mrc.previous": current.status, "mrc.move_id": uuid.uuid4().hex}
        experiment_id, winner = self._claim(f"{APPROVALS}/{model}/{version}/{last_seq + 1:0{SEQ_WIDTH}d}", tags)
        if winner is not None:
            raise ConflictError(f"{model} {version}: {winner.get('mrc.by', 'someone else')} recorded "
                                f"{winner.get('mrc.status')} first", expected=expected_status,
                                actual=winner.get("mrc.status"))
        try:
            self._write_approval_tags(model, version, tags)
        except _Refused as exc:
            raise _Refused(f"{exc}{self._abort(experiment_id, exc)}") from None
        return stored

    def _claim_approval(self, model: str, version: str, seen: Approval, alias: str) -> None:
        """Pin the approval the caller judged before moving a pointer to the version.

        The approvals ledger takes the next entry, a copy of the current decision marked as the
        move's claim (a uniquely named experiment, so exactly one of racing writers creates it):
        a decision recorded after the caller's read makes the check or the claim fail
        (ConflictError); one recorded after the claim is ordered after the move.
        """
        entries = self._ledger(f"{APPROVALS}/{model}/{version}/")
        last_seq, last = _last(entries)
        current = self.get_version(model, version).approval
        if last is not None and last.get("mrc.status") and last.get("mrc.status") != current.status:
            current = Approval(last.get("mrc.status", ""), last.get("mrc.by", ""), last.get("mrc.at", ""),
                               last.get("mrc.reason", ""), last.get("mrc.gate_report_sha256", ""),
                               last.get("mrc.override") == "true")  # committed, its tags not written yet
        if _approval_key(current) != _approval_key(seen):
            raise ConflictError(f"{model} {version}: approval changed since it was read ({seen.status} -> "
                                f"{current.status} by {current.by or '?'}); the move was not made",
                                expected=seen.status, actual=current.status)
        tags = {"mrc.status": current.status, "mrc.by": current.by, "mrc.at": current.at,
                "mrc.reason": current.reason[:4000], "mrc.gate_report_sha256": current.gate_report_sha256,
                "mrc.override": str(current.override).lower(), "mrc.previous": current.status,
                "mrc.claimed_by_move": alias, "mrc.move_id": uuid.uuid4().hex}
        _, winner = self._claim(f"{APPROVALS}/{model}/{version}/{last_seq + 1:0{SEQ_WIDTH}d}", tags)
        if winner is not None:
            raise ConflictError(f"{model} {version}: {winner.get('mrc.by') or 'someone'} recorded "
                                f"{winner.get('mrc.status')} while the move was checking the approval; "
                                "the move was not made", expected=seen.status, actual=winner.get("mrc.status"))

    # -- co-signatures of the two-person rule: model-version tags, seen from every machine ----------
    @staticmethod
    def _cosign_tag(approver: str) -> str:
        """`mrc.cosign.<actor>`; a name MLflow's tag keys cannot hold goes by its hash."""
        if approver and all(c.isalnum() or c in "_-." for c in approver) and len(approver) <= 200:
            return f"mrc.cosign.{approver}"
        return "mrc.cosign.h-" + hashlib.sha256(approver.encode()).hexdigest()[:32]

    def _cosign_tags(self, model: str, version: str) -> dict[str, str]:
        mv = self._call("get version", lambda: self.client.get_model_version(model, str(version)),
                        missing=f"unknown version {version!r} of model {model!r}")
        return {k: v for k, v in (getattr(mv, "tags", None) or {}).items() if k.startswith("mrc.cosign.")}

    def read_cosignatures(self, model: str, version: str) -> list[dict[str, Any]]:
        records = []
        for value in self._cosign_tags(model, version).values():
            try:
                record = json.loads(value)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return sorted(records, key=lambda r: (str(r.get("at", "")), str(r.get("approver", ""))))

    def add_cosignature(self, model: str, version: str, record: dict[str, Any]) -> bool:
        """One tag per approver, holding the approval epoch it co-signs: False when that approver
        co-signed this approval already. MLflow has no conditional tag write; the key is the
        approver's own, so the only racing writer is the same person (the same record)."""
        key = self._cosign_tag(record["approver"])
        held = self._cosign_tags(model, version).get(key)
        if held:
            try:
                old = json.loads(held)
            except ValueError:
                old = {}
            if old.get("epoch") == record["epoch"] and not old.get("revoked_at"):
                return False
        value = json.dumps(record, sort_keys=True, separators=(",", ":"))
        self._call("set version tag", lambda: self.client.set_model_version_tag(model, version, key, value))
        return True

    def revoke_cosignature(self, model: str, version: str, approver: str, at: str) -> int:
        key = self._cosign_tag(approver)
        held = self._cosign_tags(model, version).get(key)
        try:
            record = json.loads(held) if held else None
        except ValueError:
            record = None
        if not isinstance(record, dict) or record.get("revoked_at"):
            return 0
        value = json.dumps({**record, "revoked_at": at}, sort_keys=True, separators=(",", ":"))
        self._call("set version tag", lambda: self.client.set_model_version_tag(model, version, key, value))
        return 1

    def _write_approval_tags(self, model: str, version: str, tags: dict[str, str]) -> None:
        for key in ("status", "by", "at", "reason", "gate_report_sha256", "override"):
            value = tags.get(f"mrc.{key}", "")
            self._call("set version tag", lambda: self.client.set_model_version_tag(
                model, version, f"mrc.approval.{key}", value))


def _mlflow_errors() -> tuple[type[BaseException], ...]:
    """The REST client's errors, and MlflowException only if mlflow is loaded (never import it here)."""
    if "mlflow.exceptions" in sys.modules:
        return (RestError, sys.modules["mlflow.exceptions"].MlflowException)
    return (RestError,)


def _live(entries: list[tuple[int, dict[str, str]]]) -> list[tuple[int, dict[str, str]]]:
    """The entries whose effect was not refused by the server (an aborted claim decided nothing)."""
    return [(seq, tags) for seq, tags in entries if not tags.get(ABORTED)]


def _last(entries: list[tuple[int, dict[str, str]]]) -> tuple[int, dict[str, str] | None]:
    """(the highest seq taken — the next claim goes after it —, the last live entry or None)."""
    live = _live(entries)
    return (entries[-1][0] if entries else 0), (live[-1][1] if live else None)


def _pending(current: str | None, last: dict[str, str]) -> bool:
    """The last ledger entry was committed but its alias write has not landed."""
    if last.get("mrc.applied") == "true":  # landed; a value equal to `from` now is a later move back
        return False
    to = last.get("mrc.to") or None
    source = last.get("mrc.from") or None
    return to != current and source == current


def _dataset_uri(source: str) -> str:
    """Where a run's dataset input can be read: its source's uri/path/… (MLflow writes JSON such
    as {"uri": "s3://…"}), or the source string itself when it is not JSON."""
    try:
        parsed = json.loads(source)
    except (ValueError, TypeError):
        return source.strip()
    if isinstance(parsed, str):
        return parsed
    if isinstance(parsed, dict):
        for key in ("uri", "url", "path", "location", "source", "table_name", "data_version"):
            value = parsed.get(key)
            if isinstance(value, str) and value:
                return value
    return ""


def _model_folder(root: str) -> str | None:
    """The folder holding MLmodel: root itself, or the shallowest one below it."""
    found = sorted(Path(root).rglob("MLmodel"), key=lambda p: (len(p.parts), str(p)))
    return str(found[0].parent) if found else None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def _approval_key(a: Approval) -> tuple:
    return (a.status, a.by, a.at, a.gate_report_sha256, bool(a.override))
