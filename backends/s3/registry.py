"""Registry on the seed article's bucket layout, with conditional writes and an event log.

    <prefix>models/<name>/versions/<v>/{model.pt, metrics.json, metadata.json, requirements.txt}
    <prefix>models/<name>/production/{version.txt, metrics.json}
    <prefix>models/<name>/candidates/latest
    <prefix>models/<name>/aliases/<alias>                     other pointers (canary, archived …)
    <prefix>models/<name>/history/<alias>/<seq>.json          one immutable object per move
    <prefix>models/<name>/versions/<v>/approvals/<seq>.json   one immutable object per decision

A move is committed by *creating* the next history object with `If-None-Match: *`: of any
number of racing movers exactly one creates seq N+1, the others get 412 and a ConflictError.
The pointer file is then written with `If-Match` on the ETag read before the claim. The event
object is the commit record (write-ahead): if the pointer write does not land (crash, 500s),
the next mrc command completes it, and every read through mrc already reports the committed
value. Pointer files written outside mrc are detected (the file no longer matches the log) and
shown in the history as moves "outside mrc". docs/registries.md says exactly what holds.

Why not `If-Match` on version.txt alone: an ETag is the MD5 of the bytes, so after v1 -> v2 -> v1
the pointer has its first ETag again and a writer who read it before both moves still wins (ABA);
it also records nothing. Racing writers with distinct bytes do get exactly one winner on
SeaweedFS 4.x for both `If-Match` and `If-None-Match: *` (tests/bench/bench_s3_rollback.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
from backends.support.timeutil import now_iso

OUTSIDE_MRC = "(outside mrc)"
# Model files a version folder may hold, in the order they are looked for.
MODEL_FILES = ("model.pt", "model.onnx", "model.pth", "model.ts")
SEQ_WIDTH = 10
# User metadata on a pointer file (x-amz-meta-mrc-seq): the seq of the event whose move wrote it.
# Not in the body (version.txt stays the seed's one line); only a hint where to start listing.
SEQ_META = "mrc-seq"
# Config keys that would put a secret in mrc.toml: refused, credentials come from the AWS chain.
SECRET_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "secret_key", "access_key",
               "password", "token")


def _now() -> str:
    return now_iso()


class _PreconditionFailed(Exception):
    """412, or 404 on a conditional write to a missing key: someone else wrote first."""


@dataclass
class _Pointer:
    value: str | None  # what the pointer file says ("" and missing both mean no pointer)
    etag: str | None  # None: the file does not exist
    modified: float  # server-side LastModified, epoch seconds
    seq_hint: int = 0  # the event that wrote it (user metadata SEQ_META), 0 when not said


@dataclass
class _Event:
    seq: int
    key: str
    body: dict[str, Any]
    modified: float


class S3Registry:
    # pointer_history(model, alias) ends with the move that put the alias where it points now
    # (a move outside mrc, or a committed move whose pointer write is pending, included): the
    # rollback reads production from it instead of from get_pointers (console/release/actions.py).
    history_shows_pointer = True
    # capabilities.ReadsHistoryWindow and SkipsAliases: pointer_history(..., limit=N) GETs only the
    # newest N events; get_version(..., aliases=False) skips the listing of the pointers
    reads_history_window = True
    skips_aliases = True

    def __init__(self, bucket: str, *, prefix: str = "", endpoint_url: str | None = None, region: str | None = None,
                 profile: str | None = None, retries: int = 5, retry_base_s: float = 0.2, timeout_s: float = 10.0):
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.region = region
        self.profile = profile
        self.retries = max(1, int(retries))
        self.retry_base_s = float(retry_base_s)
        self.timeout_s = float(timeout_s)
        self._client = None
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any], where: str = "mrc.toml") -> "S3Registry":
        for key in config:
            if key.lower() in SECRET_KEYS:
                # Name the field, never echo its value.
                raise BadInputError(f"{where}: registry.{key}: secrets do not belong in mrc.toml; "
                                    "use the AWS credential chain (env, ~/.aws, instance role)")
        bucket = config.get("bucket")
        if not isinstance(bucket, str) or not bucket:
            raise BadInputError(f"{where}: registry.bucket: the S3 bucket name is required")
        for key in ("prefix", "endpoint_url", "region", "profile"):
            if key in config and not isinstance(config[key], str):
                raise BadInputError(f"{where}: registry.{key}: must be a string")
        for key in ("retries", "retry_base_s", "timeout_s"):
            if key in config and not isinstance(config[key], (int, float)):
                raise BadInputError(f"{where}: registry.{key}: must be a number")
        return cls(bucket, prefix=config.get("prefix", ""), endpoint_url=config.get("endpoint_url") or None,
                   region=config.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                   or "us-east-1", profile=config.get("profile") or None, retries=config.get("retries", 5),
                   retry_base_s=config.get("retry_base_s", 0.2), timeout_s=config.get("timeout_s", 10.0))

    # -- plumbing --------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            import boto3  # boto3: ~0.15 s
            from botocore.config import Config

            session = boto3.session.Session(profile_name=self.profile) if self.profile else boto3.session.Session()
            config = Config(
                retries={"total_max_attempts": 1, "mode": "standard"},  # we retry ourselves, with our own message
                connect_timeout=self.timeout_s, read_timeout=self.timeout_s, max_pool_connections=16,
                s3={"addressing_style": "path"} if self.endpoint_url else {},
            )
            self._client = session.client("s3", endpoint_url=self.endpoint_url, region_name=self.region, config=config)
        return self._client

    def close(self) -> None:
        self._client = None
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def _each(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        """fn over items, one request each, at once: on one pool kept for the registry's life
        (a fresh pool per read started threads on every read). Only for leaf work: a task run
        here never waits on this pool itself, so it cannot deadlock."""
        if len(items) <= 1:
            return [fn(item) for item in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="mrc-s3")
        return list(self._pool.map(fn, items))

    def caller_identity(self) -> str | None:
        """Who AWS knows these credentials as (STS GetCallerIdentity's ARN); on another S3 API
        (SeaweedFS, MinIO: no STS), the access key id the requests are signed with."""
        import boto3  # boto3: ~0.15 s

        session = boto3.session.Session(profile_name=self.profile) if self.profile else boto3.session.Session()
        if self.endpoint_url is None:
            try:
                return str(session.client("sts", region_name=self.region).get_caller_identity()["Arn"])
            except Exception:  # noqa: BLE001  (no STS permission, no network: fall back to the key id)
                pass
        credentials = session.get_credentials()
        return credentials.access_key if credentials is not None and credentials.access_key else None

    def _where(self) -> str:
        return f"s3://{self.bucket}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")

    def _call(self, what: str, key: str, fn: Callable[[], Any]) -> Any:
        """Run one S3 call, retrying network errors and 5xx with exponential backoff.

        4xx answers are returned to the caller as they are (a 404 is an answer, not a failure).
        """
        from botocore.exceptions import BotoCoreError, ClientError  # botocore: ~0.12 s

        last = ""
        for attempt in range(self.retries):
            try:
                return fn()
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                code = exc.response.get("Error", {}).get("Code", "")
                if status < 500 and code not in ("SlowDown", "RequestTimeout", "InternalError"):
                    raise
                last = f"HTTP {status} {code}".strip()
            except BotoCoreError as exc:
                if "credential" in type(exc).__name__.lower():
                    raise BackendError(f"{self._where()}: no AWS credentials found ({type(exc).__name__})") from None
                last = type(exc).__name__
            if attempt + 1 < self.retries:
                time.sleep(self.retry_base_s * (2 ** attempt) * (0.5 + random.random()))
        raise BackendError(f"{self._where()}: {what} {key} failed after {self.retries} attempts ({last})")

    @staticmethod
    def _status(exc) -> tuple[int, str]:
        return (exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0),
                exc.response.get("Error", {}).get("Code", ""))

    def _get(self, key: str, *, meta: dict[str, str] | None = None) -> tuple[bytes, str, float] | None:
        """(body, ETag, LastModified) or None when missing; `meta` is filled with the user metadata."""
        from botocore.exceptions import ClientError  # botocore: ~0.12 s

        def call():
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            if meta is not None:
                meta.update(response.get("Metadata") or {})
            return response["Body"].read(), response["ETag"], response["LastModified"].timestamp()

        try:
            return self._call("GetObject", key, call)
        except ClientError as exc:
            status, code = self._status(exc)
            if status == 404 or code in ("NoSuchKey", "404"):
                return None
            if code == "NoSuchBucket":
                raise BackendError(f"{self._where()}: bucket does not exist") from None
            raise BackendError(f"{self._where()}: GetObject {key}: HTTP {status} {code}") from None

    def _head(self, key: str) -> bool:
        """Whether the object exists (HEAD: no body, no listing)."""
        from botocore.exceptions import ClientError  # botocore: ~0.12 s

        try:
            self._call("HeadObject", key, lambda: self.client.head_object(Bucket=self.bucket, Key=key))
            return True
        except ClientError as exc:
            status, code = self._status(exc)
            if status == 404 or code in ("NoSuchKey", "404", "NotFound"):
                return False
            raise BackendError(f"{self._where()}: HeadObject {key}: HTTP {status} {code}") from None

    def _get_json(self, key: str) -> dict[str, Any] | None:
        found = self._get(key)
        if found is None:
            return None
        try:
            data = json.loads(found[0])
        except ValueError:
            raise BadInputError(f"{self._uri(key)}: not valid JSON") from None
        if not isinstance(data, dict):
            raise BadInputError(f"{self._uri(key)}: must hold a JSON object")
        return data

    def _put(self, key: str, body: bytes, *, if_match: str | None = None, if_none_match: bool = False,
             metadata: dict[str, str] | None = None) -> str:
        """Write one object; a conditional write that loses raises _PreconditionFailed."""
        from botocore.exceptions import ClientError  # botocore: ~0.12 s

        extra: dict[str, str] = {}
        if if_match is not None:
            extra["IfMatch"] = if_match
        if if_none_match:
            extra["IfNoneMatch"] = "*"

        def call():
            more = {"Metadata": metadata} if metadata else {}
            return self.client.put_object(Bucket=self.bucket, Key=key, Body=body, **extra, **more)["ETag"]

        try:
            return self._call("PutObject", key, call)
        except ClientError as exc:
            status, code = self._status(exc)
            # A 404 on an If-Match write to a key that is gone is a failed precondition too.
            if extra and (status in (404, 409, 412) or code in ("PreconditionFailed", "NoSuchKey",
                                                                 "ConditionalRequestConflict")):
                raise _PreconditionFailed(key) from None
            raise BackendError(f"{self._where()}: PutObject {key}: HTTP {status} {code}") from None

    def _list(self, prefix: str, *, delimiter: str | None = None,
              start_after: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
        from botocore.exceptions import ClientError  # botocore: ~0.12 s

        objects: list[dict[str, Any]] = []
        prefixes: list[str] = []
        token = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if delimiter:
                kwargs["Delimiter"] = delimiter
            if start_after:
                kwargs["StartAfter"] = start_after
            if token:
                kwargs["ContinuationToken"] = token
            try:
                page = self._call("ListObjectsV2", prefix, lambda: self.client.list_objects_v2(**kwargs))
            except ClientError as exc:
                status, code = self._status(exc)
                if code == "NoSuchBucket":
                    raise BackendError(f"{self._where()}: bucket does not exist") from None
                raise BackendError(f"{self._where()}: ListObjectsV2 {prefix}: HTTP {status} {code}") from None
            objects += page.get("Contents", [])
            prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            if not page.get("IsTruncated"):
                return objects, prefixes
            token = page["NextContinuationToken"]

    def _uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    # -- keys ------------------------------------------------------------------------------
    def _model_key(self, model: str) -> str:
        return f"{self.prefix}models/{check_name(model, 'model')}/"

    def _version_key(self, model: str, version: str) -> str:
        return f"{self._model_key(model)}versions/{check_name(version, 'version')}/"

    def _pointer_key(self, model: str, alias: str) -> str:
        check_name(alias, "alias")
        if alias == PRODUCTION:
            return self._model_key(model) + "production/version.txt"
        if alias == CANDIDATE:
            return self._model_key(model) + "candidates/latest"
        return self._model_key(model) + f"aliases/{alias}"

    def _history_prefix(self, model: str, alias: str | None = None) -> str:
        return self._model_key(model) + "history/" + (f"{check_name(alias, 'alias')}/" if alias else "")

    def _require_model(self, model: str) -> None:
        objects, prefixes = self._list(self._model_key(model), delimiter="/")
        if not objects and not prefixes:
            raise NotFoundError(f"unknown model {model!r} in {self._where()}")

    def _version_exists(self, model: str, version: str) -> bool:
        base = self._version_key(model, version)
        if self._head(base + "metadata.json"):  # what mrc writes: one HEAD instead of a listing
            return True
        objects, _ = self._list(base)  # recursive: an MLflow model may sit in a sub-folder
        present = {o["Key"][len(base):]: o for o in objects if not o["Key"][len(base):].startswith("approvals/")}
        return bool({"metadata.json", "metrics.json"} & present.keys()) or _locate_artifact(present, {}) is not None

    # -- models and versions ---------------------------------------------------------------
    def list_models(self) -> list[ModelSummary]:
        _, prefixes = self._list(f"{self.prefix}models/", delimiter="/")
        names = [p[len(self.prefix) + len("models/"):].rstrip("/") for p in prefixes]
        summaries = []
        for name in sorted(n for n in names if _valid(n)):
            _, versions = self._list(self._model_key(name) + "versions/", delimiter="/")
            history, _ = self._list(self._history_prefix(name))
            updated = max((o["LastModified"] for o in history), default=None)
            summaries.append(ModelSummary(name, len(versions), self.get_pointers(name),
                                          updated.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if updated else ""))
        return summaries

    def list_versions(self, model: str) -> list[ModelVersion]:
        self._require_model(model)
        _, prefixes = self._list(self._model_key(model) + "versions/", delimiter="/")
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in prefixes]
        names = [n for n in names if _valid(n)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            versions = list(pool.map(lambda v: self._read_version(model, v), names))
        versions = [v for v in versions if v is not None]
        aliases = self._aliases_by_version(model)
        for v in versions:
            v.aliases = aliases.get(v.version, [])
        return sorted(versions, key=lambda v: (v.created_at, _natural(v.version)))

    def get_version(self, model: str, version: str, *, aliases: bool = True) -> ModelVersion:
        """`aliases=False`: without the pointers (they cost every alias's reads); the rollback's
        fitness check does not look at them."""
        mv = self._read_version(model, version)
        if mv is None:
            self._require_model(model)  # only to say which of the two is unknown
            raise NotFoundError(f"unknown version {version!r} of model {model!r}")
        if aliases:
            mv.aliases = self._aliases_by_version(model).get(version, [])
        return mv

    def _aliases_by_version(self, model: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for alias, version in self.get_pointers(model).items():
            out.setdefault(version, []).append(alias)
        return out

    def _read_version(self, model: str, version: str) -> ModelVersion | None:
        base = self._version_key(model, version)
        objects, _ = self._list(base)  # the whole version folder: a model may be a sub-folder (MLflow)
        present = {o["Key"][len(base):]: o for o in objects if not o["Key"][len(base):].startswith("approvals/")}
        approvals = [o for o in objects if o["Key"][len(base):].startswith("approvals/")]
        if not present:
            return None
        # metadata, metrics and the newest decision are independent objects: read them at once
        metadata, metrics_raw, approval = self._each(lambda read: read(), [
            lambda: (self._get_json(base + "metadata.json") if "metadata.json" in present else None) or {},
            lambda: (self._get_json(base + "metrics.json") if "metrics.json" in present else None) or {},
            lambda: self._approval_from(approvals)])
        located = _locate_artifact(present, metadata)
        if located is None and not ({"metadata.json", "metrics.json"} & present.keys()):
            return None
        metrics = {}
        for key, value in metrics_raw.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[key] = float(value)
        artifact_meta = metadata.get("artifact") if isinstance(metadata.get("artifact"), dict) else {}
        name, fmt = located or (MODEL_FILES[0], "")
        if name == "" or name.endswith("/"):  # an MLflow model folder
            model_obj = None
            size = sum(int(o["Size"]) for k, o in present.items() if k.startswith(name))
        else:
            model_obj = present.get(name)
            size = int(model_obj["Size"]) if model_obj else int(artifact_meta.get("size_bytes", 0) or 0)
        artifact = Artifact(uri=self._uri(base + name), size_bytes=size, format=fmt,
                            sha256=str(artifact_meta.get("sha256") or metadata.get("model_sha256") or ""))
        created = metadata.get("created_at") or metadata.get("trained_at") or metadata.get("timestamp")
        if not created and present:
            newest = model_obj or max(present.values(), key=lambda o: o["LastModified"])
            created = newest["LastModified"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        mv = ModelVersion(model=model, version=version, created_at=str(created or ""), artifact=artifact,
                          metrics=metrics, lineage=_lineage_from_metadata(metadata, version),
                          approval=approval, description=str(metadata.get("description", "")))
        # not a field (never serialised): what verify_artifact(read=mv) judges the bytes by
        mv._s3_read = (self.bucket, base, present, metadata)
        return mv

    def register_version(self, model: str, artifact_path: str, *, metrics: dict[str, float], lineage: Lineage,
                         version: str | None = None, description: str = "", artifact_format: str = "torch-mlp-v1",
                         requirements: str | None = None) -> ModelVersion:
        check_name(model, "model")
        path = Path(artifact_path)
        if not path.is_file():
            raise BadInputError(f"{artifact_path}: artifact file does not exist")
        for key, value in metrics.items():
            if not isinstance(value, (int, float)) or value != value:
                raise BadInputError(f"metrics.{key}: must be a number, got {value!r}")
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        now = _now()
        if version is None:
            version = f"v{now[:10].replace('-', '')}-{sha[:8]}"  # the seed's naming: date + content
        check_name(version, "version")
        base = self._version_key(model, version)
        try:  # creating model.pt claims the version: versions are immutable
            etag = self._put(base + "model.pt", data, if_none_match=True)
        except _PreconditionFailed:
            raise BadInputError(f"version {version!r} of model {model!r} already exists (versions are immutable)") from None
        self._put(base + "metrics.json", _dumps({k: float(v) for k, v in metrics.items()}))
        self._put(base + "requirements.txt", (requirements if requirements is not None else _requirements(lineage)).encode())
        metadata = {
            "model": model, "version": version, "created_at": now, "description": description,
            "artifact": {"sha256": sha, "size_bytes": len(data), "format": artifact_format,
                         # what the store answered for these bytes: verify_artifact's no-download check
                         "md5": hashlib.md5(data).hexdigest(), "etag": etag.strip('"')},
            "lineage": lineage.to_dict(),
            "features": lineage.params.get("features", []) if isinstance(lineage.params, dict) else [],
        }
        self._put(base + "metadata.json", _dumps(metadata))
        return self.get_version(model, version)

    def fetch_artifact(self, model: str, version: str, dest_dir: str | None = None) -> str:
        """The artifact as a local path, its sha256 checked when one is recorded: model.pt /
        model.onnx (with metadata.json beside it, where the formats find the feature list), or
        the MLflow model folder."""
        mv = self.get_version(model, version)
        dest = Path(dest_dir) if dest_dir else Path(os.environ.get("TMPDIR", "/tmp"))
        folder = dest / f"{model}-{version}"
        folder.mkdir(parents=True, exist_ok=True)
        base = self._version_key(model, version)
        name = mv.artifact.uri.rsplit(base, 1)[-1] if base in mv.artifact.uri else MODEL_FILES[0]
        if name == "" or name.endswith("/"):
            out = folder / (name.rstrip("/").rsplit("/", 1)[-1] or "model")
            objects, _ = self._list(base + name)
            for obj in objects:
                relative = obj["Key"][len(base + name):]
                if not relative or ".." in relative.split("/") or relative.startswith("approvals/"):
                    continue
                found = self._get(obj["Key"])
                if found is None:
                    raise NotFoundError(f"{self._uri(obj['Key'])}: artifact file is missing")
                (out / relative).parent.mkdir(parents=True, exist_ok=True)
                (out / relative).write_bytes(found[0])
            self._check_sha(mv, out, self._uri(base + name))
            return str(out)
        data = self._artifact_bytes(mv, name)
        out = folder / name
        out.write_bytes(data)
        metadata = self._get(base + "metadata.json")
        if metadata is not None:
            (folder / "metadata.json").write_bytes(metadata[0])
        return str(out)

    def verify_artifact(self, model: str, version: str, *, read: ModelVersion | None = None) -> Artifact:
        """The artifact, its bytes shown to be the registered ones; IntegrityError when not.

        `read`: the version as get_version just returned it. Its listing and metadata are then
        the ones judged (no second listing): the approval the caller judged and the bytes come
        from the same read of the version folder."""
        base = self._version_key(model, version)
        seen = getattr(read, "_s3_read", None)
        if seen is not None and seen[:2] == (self.bucket, base):
            present, metadata = seen[2], seen[3]
        else:
            objects, _ = self._list(base)
            present = {o["Key"][len(base):]: o for o in objects if not o["Key"][len(base):].startswith("approvals/")}
            metadata = (self._get_json(base + "metadata.json") if "metadata.json" in present else None) or {}
        verified = _verified_by_etag(present, metadata)
        if verified is not None:
            name, size, fmt, sha = verified
            return Artifact(uri=self._uri(base + name), size_bytes=size, format=fmt, sha256=sha)
        mv = self._read_version(model, version)  # not get_version: its aliases cost every pointer's reads
        if mv is None:
            self._require_model(model)
            raise NotFoundError(f"unknown version {version!r} of model {model!r}")
        name = mv.artifact.uri.rsplit(base, 1)[-1] if base in mv.artifact.uri else MODEL_FILES[0]
        if name == "" or name.endswith("/"):
            import tempfile

            with tempfile.TemporaryDirectory(prefix="mrc-verify-") as tmp:
                self.fetch_artifact(model, version, tmp)
        else:
            self._artifact_bytes(mv, name)
        return mv.artifact

    def _check_sha(self, mv: ModelVersion, path: Path, uri: str) -> None:
        if mv.artifact.sha256:
            if artifact_sha256(path)[0] != mv.artifact.sha256:
                raise IntegrityError(f"{uri}: bytes do not match the recorded sha256 {mv.artifact.sha256[:12]}…")

    def _artifact_bytes(self, mv: ModelVersion, name: str = "model.pt") -> bytes:
        key = self._version_key(mv.model, mv.version) + name
        found = self._get(key)
        if found is None:
            raise NotFoundError(f"{self._uri(key)}: artifact is missing")
        data = found[0]
        if mv.artifact.sha256 and hashlib.sha256(data).hexdigest() != mv.artifact.sha256:
            raise IntegrityError(f"{self._uri(key)}: bytes do not match the recorded sha256 {mv.artifact.sha256[:12]}…")
        return data

    # -- approvals: one immutable object per decision, created If-None-Match -------------------
    def _approval_events(self, model: str, version: str) -> list[dict[str, Any]]:
        objects, _ = self._list(self._version_key(model, version) + "approvals/")
        return objects

    def _read_approval(self, model: str, version: str) -> Approval:
        return self._approval_from(self._approval_events(model, version))

    def _approval_from(self, objects: list[dict[str, Any]]) -> Approval:
        """The newest decision of a listed approvals/ folder."""
        if not objects:
            return Approval()
        latest = max(objects, key=lambda o: o["Key"])
        data = self._get_json(latest["Key"]) or {}
        known = {"status", "by", "at", "reason", "gate_report_sha256", "override"}
        return Approval(**{k: v for k, v in data.items() if k in known})

    def set_approval(self, model: str, version: str, approval: Approval, *, expected_status: str | None) -> Approval:
        self._require_model(model)
        if not self._version_exists(model, version):
            raise NotFoundError(f"unknown version {version!r} of model {model!r}")
        objects = self._approval_events(model, version)
        seq = max((_seq_of(o["Key"]) for o in objects), default=0)
        current = self._read_approval(model, version)
        if expected_status is not None and current.status != expected_status:
            raise ConflictError(f"{model} {version}: approval is {current.status!r} now, not {expected_status!r}",
                                expected=expected_status, actual=current.status)
        stored = Approval(approval.status, approval.by, approval.at or _now(), approval.reason,
                          approval.gate_report_sha256, approval.override)
        key = self._version_key(model, version) + f"approvals/{seq + 1:0{SEQ_WIDTH}d}.json"
        try:
            self._put(key, _dumps(stored.to_dict()), if_none_match=True)
        except _PreconditionFailed:
            actual = self._read_approval(model, version)
            raise ConflictError(f"{model} {version}: someone else recorded an approval first ({actual.status})",
                                expected=expected_status, actual=actual.status) from None
        return stored

    def _claim_approval(self, model: str, version: str, seen: Approval, alias: str) -> None:
        """Pin the approval the caller judged before moving a pointer to the version.

        The approval log takes one more object, a copy of the current decision marked as the
        move's claim, created `If-None-Match: *` as the next seq: a decision recorded after the
        caller's read makes the check or this write fail (ConflictError), and a decision racing
        this write gets the 412 itself. A decision recorded after the claim is ordered after
        the move, as a reject after a finished promotion is.
        """
        objects = self._approval_events(model, version)
        seq = max((_seq_of(o["Key"]) for o in objects), default=0)
        current = self._read_approval(model, version)
        if _approval_key(current) != _approval_key(seen):
            raise ConflictError(f"{model} {version}: approval changed since it was read ({seen.status} -> "
                                f"{current.status} by {current.by or '?'}); the move was not made",
                                expected=seen.status, actual=current.status)
        claim = {**current.to_dict(), "claimed_by_move": {"alias": alias, "at": _now(), "id": uuid.uuid4().hex}}
        key = self._version_key(model, version) + f"approvals/{seq + 1:0{SEQ_WIDTH}d}.json"
        try:
            self._put(key, _dumps(claim), if_none_match=True)
        except _PreconditionFailed:
            actual = self._read_approval(model, version)
            raise ConflictError(f"{model} {version}: {actual.by or 'someone'} recorded {actual.status} while the "
                                "move was checking the approval; the move was not made",
                                expected=seen.status, actual=actual.status) from None

    # -- co-signatures of the two-person rule: in the bucket, so approvers on any machine see them --
    def _cosign_prefix(self, model: str, version: str) -> str:
        return self._model_key(model) + f"cosignatures/{check_name(version, 'version')}/"

    def read_cosignatures(self, model: str, version: str) -> list[dict[str, Any]]:
        """Every co-signature record of the version (revoked ones carry `revoked_at`), oldest first."""
        objects, _ = self._list(self._cosign_prefix(model, version))
        records = [r for r in self._each(lambda o: self._get_json(o["Key"]), objects) if isinstance(r, dict)]
        return sorted(records, key=lambda r: (str(r.get("at", "")), str(r.get("approver", ""))))

    def add_cosignature(self, model: str, version: str, record: dict[str, Any]) -> bool:
        """One object per approver and approval epoch, created If-None-Match: False when that
        approver co-signed this approval already (here or on another machine)."""
        name = hashlib.sha256(f"{record['epoch']}\0{record['approver']}".encode()).hexdigest()[:32]
        try:
            self._put(self._cosign_prefix(model, version) + f"{name}.json", _dumps(record), if_none_match=True)
        except _PreconditionFailed:
            return False
        return True

    def revoke_cosignature(self, model: str, version: str, approver: str, at: str) -> int:
        """Mark the approver's live co-signatures revoked, each If-Match its ETag (a racing write
        makes this one re-read and try again)."""
        count = 0
        objects, _ = self._list(self._cosign_prefix(model, version))
        for obj in objects:
            for _ in range(5):
                got = self._get(obj["Key"])
                if got is None:
                    break
                record = json.loads(got[0])
                if record.get("approver") != approver or record.get("revoked_at"):
                    break
                try:
                    self._put(obj["Key"], _dumps({**record, "revoked_at": at}), if_match=got[1])
                except _PreconditionFailed:
                    continue
                count += 1
                break
        return count

    # -- pointers ----------------------------------------------------------------------------
    def _read_pointer(self, model: str, alias: str) -> _Pointer:
        return self._pointer_at(self._pointer_key(model, alias))

    def _pointer_at(self, key: str) -> _Pointer:
        meta: dict[str, str] = {}
        found = self._get(key, meta=meta)
        if found is None:
            return _Pointer(None, None, 0.0)
        body, etag, modified = found
        value = body.decode("utf-8", "replace").strip()
        hint = str(meta.get(SEQ_META, ""))
        return _Pointer(value or None, etag, modified, int(hint) if hint.isdigit() else 0)

    def _events(self, model: str, alias: str | None = None, *, last_only: bool = False,
                limit: int | None = None, hint: int = 0) -> list[_Event]:
        """The event objects, oldest first: one LIST, then a GET per event read. `limit` (with an
        alias: keys sort by sequence) reads only the newest `limit` of them.

        `hint` (an alias's pointer names the event that wrote it, see _write_pointer): the LIST
        starts just before the newest events instead of at the first of thousands. A hint is
        only a place to start: every key after it is listed, so the newest event is always seen;
        a hint whose own event is not there (a pointer written outside mrc, events deleted) is
        ignored and the whole log is listed."""
        prefix = self._history_prefix(model, alias)
        objects = None
        if alias is not None and hint > 0 and (limit is not None or last_only):
            start = max(0, hint - (1 if last_only else max(1, limit or 1)))
            listed, _ = self._list(prefix, start_after=f"{prefix}{start:0{SEQ_WIDTH}d}.json")
            if any(o["Key"] == f"{prefix}{hint:0{SEQ_WIDTH}d}.json" for o in listed):
                objects = listed
        if objects is None:
            objects, _ = self._list(prefix)
        objects = [o for o in objects if o["Key"].endswith(".json") and _seq_of(o["Key"]) > 0]
        if limit is not None and alias is not None:
            objects = sorted(objects, key=lambda o: o["Key"])[-max(1, limit):]
        if last_only:
            by_alias: dict[str, dict[str, Any]] = {}
            for o in objects:
                name = o["Key"].rsplit("/", 2)[-2]
                if name not in by_alias or o["Key"] > by_alias[name]["Key"]:
                    by_alias[name] = o
            objects = list(by_alias.values())

        def load(o):
            return _Event(_seq_of(o["Key"]), o["Key"], self._get_json(o["Key"]) or {}, o["LastModified"].timestamp())

        return sorted(self._each(load, objects), key=lambda e: e.key)

    @staticmethod
    def _pending(pointer: _Pointer, last: _Event | None) -> bool:
        """The last recorded move was committed but its pointer write has not landed yet."""
        if last is None:
            return False
        body = last.body
        return (body.get("to") != pointer.value and body.get("from") == pointer.value
                and pointer.modified <= last.modified + 1.0)

    def get_pointers(self, model: str) -> dict[str, str]:
        aliases = {PRODUCTION, CANDIDATE}
        objects, _ = self._list(self._model_key(model) + "aliases/")
        aliases |= {o["Key"].rsplit("/", 1)[-1] for o in objects}
        last_by_alias = {e.key.rsplit("/", 2)[-2]: e for e in self._events(model, last_only=True)}
        aliases |= set(last_by_alias)
        names = sorted(a for a in aliases if _valid(a))
        read = dict(zip(names, self._each(lambda alias: self._read_pointer(model, alias), names)))
        pointers = {}
        for alias in names:
            pointer, last = read[alias], last_by_alias.get(alias)
            value = last.body.get("to") if self._pending(pointer, last) else pointer.value
            if value:
                pointers[alias] = value
        if not pointers and not objects and not last_by_alias:
            self._require_model(model)  # nothing points anywhere: say so when the model is unknown
        return pointers

    def move_pointer(self, model: str, alias: str, *, expected: str | None, new: str | None, actor: str,
                     reason: str = "", approval: Approval | None = None) -> PointerMove:
        check_name(alias, "alias")
        key = self._pointer_key(model, alias)
        if new is None:
            self._require_model(model)
        else:  # the version's objects prove the model exists: no separate listing for it
            check_name(new, "version")
            if approval is None:  # nothing to claim in between: check the version while reading the pointer
                exists, pointer = self._each(lambda read: read(), [lambda: self._version_exists(model, new),
                                                                   lambda: self._read_pointer(model, alias)])
            else:
                exists, pointer = self._version_exists(model, new), None
            if not exists:
                raise NotFoundError(f"unknown version {new!r} of model {model!r}")
            if approval is not None:
                self._claim_approval(model, new, approval, alias)
        # Read the pointer before the log: a claim made after our read shows up in the log.
        if new is None or approval is not None:
            pointer = self._read_pointer(model, alias)
        history = self._events(model, alias, last_only=True, hint=pointer.seq_hint)
        last = history[-1] if history else None
        if self._pending(pointer, last):
            pointer = self._complete(key, pointer, last)
        outside = None
        if pointer.value != (last.body.get("to") if last else None) and (last is not None or pointer.value):
            outside = {"recorded": last.body.get("to") if last else None, "found": pointer.value}
        if pointer.value != expected:
            raise ConflictError(
                f"{model}: {alias} points at {pointer.value or 'nothing'} now, not {expected or 'nothing'}"
                " (someone else moved it first)", expected=expected, actual=pointer.value)
        seq = (last.seq if last else 0) + 1
        at = _now()
        event = {"seq": seq, "model": model, "alias": alias, "from": pointer.value, "to": new, "actor": actor,
                 "at": at, "reason": reason, "move_id": uuid.uuid4().hex, "pointer_etag": pointer.etag}
        if outside:
            event["outside_mrc_before"] = outside
        event_key = self._history_prefix(model, alias) + f"{seq:0{SEQ_WIDTH}d}.json"
        try:
            self._put(event_key, _dumps(event), if_none_match=True)  # the commit point
        except _PreconditionFailed:
            winner = self._get_json(event_key) or {}
            if winner.get("move_id") != event["move_id"]:  # not our own write answered late
                raise ConflictError(
                    f"{model}: {alias} was moved by {winner.get('actor', 'someone else')} to "
                    f"{winner.get('to') or 'nothing'} first", expected=expected, actual=winner.get("to")) from None
        try:
            self._write_pointer(key, pointer, new, seq)
        except _PreconditionFailed:
            now = self._read_pointer(model, alias)
            if now.value != new:  # written outside mrc between our read and our write
                raise ConflictError(f"{model}: {alias} was changed outside mrc to {now.value or 'nothing'} "
                                    f"while moving it (move {seq} recorded)", expected=expected, actual=now.value) from None
        except BackendError as exc:
            raise BackendError(f"{exc}; the move {pointer.value or 'none'} -> {new or 'none'} is recorded as "
                               f"event {seq} and the next mrc command completes it") from None
        if alias == PRODUCTION and new is not None:
            self._copy_production_metrics(model, new)
        return PointerMove(model, alias, pointer.value, new, actor, at, reason, seq)

    def _write_pointer(self, key: str, pointer: _Pointer, new: str | None, seq: int) -> None:
        body = (new or "").encode()
        metadata = {SEQ_META: str(seq)}
        if pointer.etag is None:
            self._put(key, body, if_none_match=True, metadata=metadata)
        else:
            self._put(key, body, if_match=pointer.etag, metadata=metadata)

    def _complete(self, key: str, pointer: _Pointer, last: _Event) -> _Pointer:
        """Finish a committed move whose pointer write never landed (roll forward)."""
        target = last.body.get("to")
        try:
            self._write_pointer(key, pointer, target, last.seq)
        except _PreconditionFailed:
            pass  # someone completed it (or wrote it) meanwhile: re-read below
        return self._pointer_at(key)

    def _copy_production_metrics(self, model: str, version: str) -> None:
        """production/metrics.json: the seed's "current production baseline". A server-side
        copy: one request, the bytes never travel (a version without metrics.json copies nothing)."""
        from botocore.exceptions import ClientError  # botocore: ~0.12 s

        source = self._version_key(model, version) + "metrics.json"
        target = self._model_key(model) + "production/metrics.json"
        try:
            self._call("CopyObject", target, lambda: self.client.copy_object(
                Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": source}))
        except ClientError as exc:
            status, code = self._status(exc)
            if status == 404 or code in ("NoSuchKey", "404"):
                return
            raise BackendError(f"{self._where()}: CopyObject {source} -> {target}: HTTP {status} {code}") from None

    def pointer_history(self, model: str, alias: str | None = None, *, limit: int | None = None) -> list[PointerMove]:
        """Every recorded move, oldest first. With an alias and `limit`, only the moves of its newest
        `limit` events (plus a trailing move outside mrc): the rollback path reads no more than it needs.

        The last move of an alias always says where it points now (see `history_shows_pointer`)."""
        if alias is not None:
            check_name(alias, "alias")
        moves: list[PointerMove] = []
        # One alias: its pointer first, then its log (as move_pointer reads them). A move landing
        # in between then shows as committed-but-pending, never as a write "outside mrc".
        read_first = {alias: self._read_pointer(model, alias)} if alias else {}
        events = self._events(model, alias, limit=limit, hint=read_first[alias].seq_hint if alias else 0)
        if not events:
            self._require_model(model)  # no moves recorded: an unknown model must still say so
        for event in events:
            body = event.body
            outside = body.get("outside_mrc_before")
            if isinstance(outside, dict):
                moves.append(PointerMove(model, body.get("alias", ""), outside.get("recorded"), outside.get("found"),
                                         OUTSIDE_MRC, "", "pointer file changed outside mrc", 0))
            moves.append(PointerMove(model, body.get("alias", ""), body.get("from"), body.get("to"),
                                     body.get("actor", ""), body.get("at", ""), body.get("reason", ""), event.seq))
        # A pointer file that no longer matches the log was written outside mrc after the last move.
        aliases = [alias] if alias else sorted({e.body.get("alias") for e in events if e.body.get("alias")}
                                               | {PRODUCTION, CANDIDATE})
        for name in aliases:
            mine = [e for e in events if e.body.get("alias") == name]
            last = mine[-1] if mine else None
            pointer = read_first.get(name) or self._read_pointer(model, name)
            recorded = last.body.get("to") if last else None
            if pointer.value != recorded and not self._pending(pointer, last):
                at = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(pointer.modified)) if pointer.modified else ""
                moves.append(PointerMove(model, name, recorded, pointer.value, OUTSIDE_MRC, at,
                                         "pointer file changed outside mrc", 0))
        return moves


# ---------------------------------------------------------------------------------------------


def _valid(name: str) -> bool:
    try:
        check_name(name)
        return True
    except BadInputError:
        return False


def _natural(version: str) -> tuple:
    return (0, int(version), "") if version.isdigit() else (1, 0, version)


def _seq_of(key: str) -> int:
    stem = key.rsplit("/", 1)[-1].split(".", 1)[0]
    return int(stem) if stem.isdigit() else 0


def _dumps(data: Any) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True, default=str).encode()


def _requirements(lineage: Lineage) -> str:
    return "".join(f"{name}=={version}\n" for name, version in sorted(lineage.environment.frameworks.items()))


def _locate_artifact(present: dict[str, Any], metadata: dict[str, Any]) -> tuple[str, str] | None:
    """(name inside the version folder, declared format) of the model: the file metadata.json
    names, model.pt, model.onnx …, or a folder holding MLmodel ("name/", mlflow-pyfunc).
    The format is what metadata.json declares ("" when it does not: the file's bytes decide)."""
    artifact_meta = metadata.get("artifact") if isinstance(metadata.get("artifact"), dict) else {}
    declared = ""
    for value in (artifact_meta.get("format"), metadata.get("format"), metadata.get("model_format"),
                  metadata.get("framework")):
        if isinstance(value, str) and value.strip():
            declared = value.strip().lower()
            break
    named = artifact_meta.get("file") or artifact_meta.get("path") or metadata.get("model_file")
    if isinstance(named, str) and named.strip("/") in present and ".." not in named:
        return named.strip("/"), declared
    for name in MODEL_FILES:
        if name in present:
            return name, declared or ("onnx" if name.endswith(".onnx") else "")
    mlmodels = sorted((k for k in present if k == "MLmodel" or k.endswith("/MLmodel")), key=lambda k: k.count("/"))
    if mlmodels:
        folder = mlmodels[0][: -len("MLmodel")]
        return folder or "", "mlflow-pyfunc"
    return None


_MD5 = re.compile(r"^[0-9a-f]{32}$")


def _verified_by_etag(present: dict[str, Any], metadata: dict[str, Any]) -> tuple[str, int, str, str] | None:
    """(name, size, format, sha256) of the artifact when the listing alone proves its bytes are
    the ones registered, else None (the caller downloads and hashes them).

    Why this is enough: register_version hashed the bytes itself (sha256 and MD5) and recorded
    the ETag the store answered for that PUT. When that ETag was the MD5 of the bytes (single-part
    PUT, no SSE-KMS: AWS, SeaweedFS, MinIO), the store names content by its MD5, so any rewrite of
    the object with other bytes lists another ETag, unless someone found an MD5 second preimage of
    bytes mrc chose (collision attacks need both files crafted up front; mrc hashed the first).
    Size is compared too. Anything else (no recorded MD5, a multipart or encrypted ETag, a folder
    artifact, any mismatch) is not trusted here and falls back to the full sha256 check, which is
    also where a tampered artifact gets its IntegrityError message. metadata.json is the reference
    in both cases, so neither check is weaker than the other against a rewritten metadata.json."""
    artifact_meta = metadata.get("artifact") if isinstance(metadata.get("artifact"), dict) else {}
    md5 = str(artifact_meta.get("md5") or "")
    sha = str(artifact_meta.get("sha256") or "")
    located = _locate_artifact(present, metadata)
    if not (_MD5.match(md5) and sha and located) or located[0] == "" or located[0].endswith("/"):
        return None  # nothing recorded to compare with, or an MLflow folder (many objects)
    name, fmt = located
    listed = present[name]
    etag = str(listed.get("ETag", "")).strip('"').lower()
    if etag != md5 or str(artifact_meta.get("etag", "")).lower() != md5:
        return None  # the store's ETag is not (or no longer) the MD5 mrc computed: hash the bytes
    if int(listed.get("Size", -1)) != int(artifact_meta.get("size_bytes", -2) or -2):
        return None
    return name, int(listed["Size"]), fmt, sha


_SEED_VERSION = re.compile(r"^v\d{8}-([0-9a-f]{7,40})$")  # the seed's v$(date +%Y%m%d)-${GITHUB_SHA::8}


def _lineage_from_metadata(metadata: dict[str, Any], version: str = "") -> Lineage:
    """mrc writes a `lineage` object; a bucket filled by hand or by a pipeline may use flat keys,
    or nest them under "training", "git", "source" or "data"."""
    if isinstance(metadata.get("lineage"), dict):
        flat = dict(metadata["lineage"])
    else:
        flat = {}
    nested = {k: metadata[k] for k in ("training", "git", "source", "code", "data", "dataset")
              if isinstance(metadata.get(k), dict)}

    def pick(*names: str, within: tuple[str, ...] = (), generic: tuple[str, ...] = ()) -> str:
        """The first non-empty value of `names` (in lineage, at the top, in any nested object), else
        of `generic` words ("version", "path" …) only inside the nested objects named by `within`."""
        sources = [(name, (flat, metadata, *nested.values())) for name in names]
        sources += [(name, tuple(nested[k] for k in within if k in nested)) for name in generic]
        for name, where in sources:
            for source in where:
                value = source.get(name)
                if isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "":
                    return str(value)
        return ""

    params = next((p for p in (flat.get("params"), metadata.get("params"), metadata.get("hyperparameters"),
                               metadata.get("training_params"), *(n.get("params") or n.get("hyperparameters")
                                                                  for n in nested.values())) if p), None)
    lineage = Lineage.from_dict({k: v for k, v in flat.items() if k != "environment"} | {
        "environment": flat.get("environment") if isinstance(flat.get("environment"), dict) else {}})
    code, data = ("git", "source", "code"), ("data", "dataset")
    lineage.code_commit = pick("code_commit", "git_commit", "commit_sha", "git_sha", "github_sha", "commit",
                               "code_version", within=code, generic=("sha", "revision"))
    if not lineage.code_commit:  # a seed pipeline that wrote no metadata: the version names the commit
        seed = _SEED_VERSION.match(version or "")
        lineage.code_commit = seed.group(1) if seed else ""
    lineage.code_repo = pick("code_repo", "git_repo", "repo", "repository", "repo_url", within=code, generic=("url",))
    lineage.data_version = pick("data_version", "dataset_version", "data_hash", "dvc_hash", "dataset",
                                within=data, generic=("version", "hash", "name"))
    lineage.data_sha256 = pick("data_sha256", "dataset_sha256", within=data, generic=("sha256",))
    lineage.data_uri = pick("data_uri", "data_path", "dataset_uri", "train_data", "training_data",
                            within=data, generic=("uri", "path"))
    lineage.training_run = pick("training_run", "run_id", "training_job", "job_id")
    lineage.params = params if isinstance(params, dict) else {}
    lineage.trained_by = lineage.trained_by or pick("trained_by", "created_by", "author", within=("training",))
    return lineage


def _approval_key(a: Approval) -> tuple:
    return (a.status, a.by, a.at, a.gate_report_sha256, bool(a.override))
