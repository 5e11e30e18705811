"""The four backend protocols of the release console, and the records they exchange.

Everything here is stdlib only: the rollback path imports this module, so it must stay light.
A backend implements one or more protocols; the domain in `console/` talks only to these.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, runtime_checkable

# ---------------------------------------------------------------------------------------------
# Errors: each maps to one exit code in the CLI (see console/cli.py).


class BackendError(Exception):
    """A backend failed after its retries (network down, server answering 500 …)."""


class BadInputError(ValueError):
    """The caller's input is wrong: exit code 2, nothing written."""


class NotFoundError(BadInputError):
    """A model, version, dataset or pointer that does not exist."""


class ConflictError(Exception):
    """A compare-and-swap lost its race: someone else moved the pointer first (exit code 3)."""

    def __init__(self, message: str, *, expected: str | None = None, actual: str | None = None):
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class IntegrityError(BadInputError):
    """Stored bytes no longer match their recorded sha256."""


# ---------------------------------------------------------------------------------------------
# Names that reach a path or a key are validated here, once, for every backend.

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # fullmatch: `$` would let a trailing newline in


def check_name(value: str, what: str = "name") -> str:
    """Refuse names that could escape a folder or a bucket prefix."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        shown = repr(value) if not isinstance(value, str) or len(value) <= 80 else f"{value[:60]!r}… ({len(value)} characters)"
        raise BadInputError(
            f"{what} {shown} is not valid: use letters, digits, '.', '_' and '-' "
            "(no '/', no '..', at most 128 characters)"
        )
    return value


# ---------------------------------------------------------------------------------------------
# Records.


def _clean(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _clean(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


class Record:
    """Mixin: a dataclass that turns into plain JSON-able dicts."""

    def to_dict(self) -> dict[str, Any]:
        return _clean(self)


@functools.lru_cache(maxsize=None)
def _field_names(cls) -> frozenset[str]:
    """A dataclass's field names, computed once: a registry of 10,000 versions asks per row."""
    return frozenset(f.name for f in dataclasses.fields(cls))


@dataclass
class Artifact(Record):
    uri: str
    sha256: str
    size_bytes: int
    format: str = "torch-mlp-v1"


@dataclass
class Environment(Record):
    python: str = ""
    frameworks: dict[str, str] = field(default_factory=dict)
    packages_digest: str = ""
    device: str = ""


@dataclass
class Lineage(Record):
    code_commit: str = ""
    code_repo: str = ""
    data_version: str = ""
    data_sha256: str = ""
    # Where the training data can be read (a path, s3://…, name@version), when the registry
    # knows: an MLflow run's dataset input source, an S3 metadata.json "data_uri"/"data_path".
    data_uri: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    environment: Environment = field(default_factory=Environment)
    training_run: str = ""
    parent_version: str | None = None
    # Who trained it (the actor of `mrc train`, MLflow's run user, an S3 metadata.json
    # "trained_by"): a protected alias's rule refuses that person's own approval.
    trained_by: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Lineage":
        data = dict(data or {})
        env = data.pop("environment", None) or {}
        known = _field_names(cls)
        env_known = _field_names(Environment)
        return cls(
            **{k: v for k, v in data.items() if k in known},
            environment=Environment(**{k: v for k, v in env.items() if k in env_known}),
        )

    def is_complete(self) -> bool:
        """A version is the tuple (code, data, run): all three must be known."""
        return bool(self.code_commit and self.data_version and self.training_run)


APPROVAL_STATUSES = ("pending", "approved", "rejected")


@dataclass
class Approval(Record):
    status: str = "pending"
    by: str = ""
    at: str = ""
    reason: str = ""
    gate_report_sha256: str = ""
    override: bool = False


@dataclass
class ModelVersion(Record):
    model: str
    version: str
    created_at: str
    artifact: Artifact
    metrics: dict[str, float] = field(default_factory=dict)
    lineage: Lineage = field(default_factory=Lineage)
    aliases: list[str] = field(default_factory=list)
    approval: Approval = field(default_factory=Approval)
    description: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelVersion":
        return cls(
            model=data["model"],
            version=str(data["version"]),
            created_at=data.get("created_at", ""),
            artifact=Artifact(**data["artifact"]),
            metrics={k: float(v) for k, v in (data.get("metrics") or {}).items()},
            lineage=Lineage.from_dict(data.get("lineage")),
            aliases=list(data.get("aliases") or []),
            approval=Approval(**(data.get("approval") or {})),
            description=data.get("description", ""),
        )


@dataclass
class ModelSummary(Record):
    name: str
    versions: int
    pointers: dict[str, str] = field(default_factory=dict)  # alias -> version
    updated_at: str = ""


@dataclass
class PointerMove(Record):
    """One move of an alias: what the pointer history and the audit log record."""

    model: str
    alias: str
    from_version: str | None
    to_version: str | None
    actor: str
    at: str
    reason: str = ""
    seq: int = 0


@dataclass
class ModelOverview(Record):
    """One model as the home screen reads it: its summary, the production pointer's history,
    and every version an alias points at or production ever pointed at (approval, artifact)
    — what the candidate's approval and the rollback target are judged from.

    A registry may answer for all models at once (`model_overviews()`, one read: the local
    registry); console/overview.py builds the same records from the protocol's per-model reads
    for any other."""

    summary: ModelSummary
    production_history: list[PointerMove] = field(default_factory=list)
    versions: dict[str, ModelVersion] = field(default_factory=dict)  # version -> record


# Aliases with a meaning to the console; a backend may map them to its own names.
PRODUCTION = "production"
CANDIDATE = "candidate"
CANARY = "canary"
ARCHIVED = "archived"


@runtime_checkable
class Registry(Protocol):
    """Models, versions, pointers (aliases) with compare-and-swap moves, approvals, artifacts."""

    def list_models(self) -> list[ModelSummary]: ...

    def list_versions(self, model: str) -> list[ModelVersion]: ...

    def get_version(self, model: str, version: str) -> ModelVersion: ...

    def get_pointers(self, model: str) -> dict[str, str]:
        """alias -> version for every alias of the model."""
        ...

    def move_pointer(
        self, model: str, alias: str, *, expected: str | None, new: str | None, actor: str, reason: str = "",
        approval: Approval | None = None,
    ) -> PointerMove:
        """Point `alias` at `new` (None removes it) only if it still points at `expected`.

        Raises ConflictError when the pointer is no longer `expected`; never overwrites.
        With `approval` (what the caller judged), also only if `new`'s approval is still exactly
        that one: the approval check and the move are one compare-and-swap (a reject that lands
        in between makes the move fail).
        """
        ...

    def pointer_history(self, model: str, alias: str | None = None) -> list[PointerMove]: ...

    def set_approval(
        self, model: str, version: str, approval: Approval, *, expected_status: str | None
    ) -> Approval:
        """Record an approval, compare-and-swap on the status the caller saw."""
        ...

    def register_version(
        self,
        model: str,
        artifact_path: str,
        *,
        metrics: dict[str, float],
        lineage: Lineage,
        version: str | None = None,
        description: str = "",
    ) -> ModelVersion: ...

    def fetch_artifact(self, model: str, version: str, dest_dir: str) -> str:
        """Copy the artifact to dest_dir, verify its sha256, return the local path."""
        ...

    # Optional: `caller_identity() -> str | None`, who the backend knows the caller as (the OS
    # user, MLflow's authenticated user, the AWS caller). A protected alias records it beside
    # the claimed actor and, with identity = "require", refuses a mismatch (console/release/policy.py).


# ---------------------------------------------------------------------------------------------
# Training.


@dataclass
class TrainingSpec(Record):
    model: str
    data_version: str  # "dataset@version"
    params: dict[str, Any] = field(default_factory=dict)
    gpu: bool = False
    parent_version: str | None = None
    code_commit: str = ""
    code_repo: str = ""
    label: str = ""
    test_data: str = ""  # "dataset@version" of the held-out test set
    golden_data: str = ""  # "dataset@version" of the frozen golden set


TRAINING_STATES = ("pending", "running", "succeeded", "failed", "cancelled")


@dataclass
class TrainingJob(Record):
    id: str
    model: str
    state: str = "pending"
    progress: float = 0.0  # 0..1
    message: str = ""
    started_at: str = ""
    finished_at: str = ""
    result_dir: str = ""  # where the finished run left model + metrics + lineage
    version: str | None = None  # the registered version, once it landed


@runtime_checkable
class Training(Protocol):
    def launch(self, spec: TrainingSpec) -> TrainingJob: ...

    def status(self, job_id: str) -> TrainingJob: ...

    def logs(self, job_id: str, *, follow: bool = False) -> Iterator[str]:
        """Log lines; progress lines are JSON objects with "event": "progress"."""
        ...

    def cancel(self, job_id: str) -> TrainingJob: ...


# ---------------------------------------------------------------------------------------------
# Traffic and metrics.


@dataclass
class TrafficSplit(Record):
    model: str
    weights: dict[str, int]  # version -> percent, summing to 100
    revision: int = 0  # what a compare-and-swap compares

    @property
    def stable(self) -> str | None:
        return max(self.weights, key=lambda v: self.weights[v]) if self.weights else None


@runtime_checkable
class Traffic(Protocol):
    def get_split(self, model: str) -> TrafficSplit: ...

    def set_split(self, model: str, weights: dict[str, int], *, expected_revision: int) -> TrafficSplit: ...

    def rollback(self, model: str, stable_version: str) -> TrafficSplit:
        """The fast path: everything to `stable_version`, now, whatever the revision."""
        ...


@dataclass
class HealthWindow(Record):
    """Health of one variant over one window. None means no data, never "healthy"."""

    model: str
    version: str
    start: float
    end: float
    requests: int = 0
    errors: int = 0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    latencies_ms: list[float] = field(default_factory=list)
    predictions: list[float] = field(default_factory=list)
    labelled: int = 0
    correct: int = 0
    # A latency histogram of the window's requests, when the source has one instead of raw
    # latencies (Prometheus): [(upper bound in ms, requests at or below it)], cumulative, the
    # last bound +inf. The sequential judge counts requests above a bound from it.
    latency_buckets: list[tuple[float, int]] = field(default_factory=list)
    # What the router randomised (issue 20): "user" (sticky by routing key), "request" (each request
    # routed at random), "" (not known: the judge treats requests as the unit, as before).
    unit_kind: str = ""
    # Per routing unit (a user key, or a hashed user bucket) when the source knows it: unit ->
    # {"requests", "errors", "latencies_ms", "predictions", "labelled", "wrong"} (the window's
    # requests of that unit). With it, the canary judge's tests work on users (console/rollout/units.py).
    units: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Why this window's request counts cannot feed a sample-ratio test ("" when they can).
    sample_ratio_off: str = ""

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def online_accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


@runtime_checkable
class Metrics(Protocol):
    def health(self, model: str, version: str, start: float, end: float) -> HealthWindow: ...


# ---------------------------------------------------------------------------------------------
# The two other seams (DESIGN.md): model formats and data sources. Each is found by name —
# the built-in ones listed in console/plugins.py, any other through the entry-point groups
# `mrc.formats` and `mrc.data` — so the domain never imports a concrete one.


class LoadedModel(Protocol):
    """A version's model, loaded and ready to predict a batch of rows."""

    # Input columns in the order the model wants them, when the artifact says (an MLflow
    # signature, the torch MLP's arch, an ONNX input named per column); None when it does not,
    # and then the caller passes every non-label column of the data in file order.
    features: list[str] | None

    def predict(self, rows: Any, columns: list[str]) -> Any:
        """rows: 2-D float numpy array, one column per name in `columns`.

        Returns a 1-D float numpy array: P(label = 1) for a binary classifier, the value for a
        regressor. A model that returns two columns (P(0), P(1)) is reduced to P(1) here.
        """
        ...


class ModelFormat(Protocol):
    """How a version's artifact is recognised, loaded and served (one module per format)."""

    name: str  # as written in mrc.toml `[models.X] format = ...` and in Artifact.format
    # "mrc": served by mrc's own model server (backends/local/serving/server.py) through load();
    # "mlflow-invocations": by the argv of serve_argv, which speaks MLflow's /invocations (or,
    # for an artifact whose serve_argv is None, by mrc's own model server after all).
    serve_protocol: str

    def sniff(self, path: str) -> bool:
        """True when the file or folder at `path` is in this format, judged by its own bytes."""
        ...

    def load(self, path: str, options: dict[str, Any]) -> LoadedModel:
        """Load the artifact; options is the model's `[models.X]` table from mrc.toml.

        Raises BadInputError with one line naming the file and what is wrong.
        """
        ...

    def serve_argv(self, path: str, host: str, port: int, options: dict[str, Any]) -> list[str] | None:
        """The command line of a server for this artifact, or None for mrc's own model server."""
        ...


@dataclass
class Table(Record):
    """Rows of a data set, column by column: float arrays for numbers, object arrays for text."""

    columns: list[str]
    data: dict[str, Any]  # column name -> 1-D numpy array
    source: str = ""  # what was read, for "drift used …" and error lines

    @property
    def rows(self) -> int:
        return len(next(iter(self.data.values()))) if self.data else 0


class DataSource(Protocol):
    """Reads a data set named by a reference (a path, a URI, a registry's dataset)."""

    def load(self, ref: str, options: dict[str, Any]) -> Table:
        """options: the workspace's `[data]` table (endpoint_url for s3:// …) plus the
        `workspace` root under "workspace". Raises BadInputError naming the reference."""
        ...


# ---------------------------------------------------------------------------------------------
# The monitor's prediction logs: one protocol, found by name (console/plugins.py, entry-point
# group `mrc.sources`): mrc's router log first; Kafka, S3 files and KServe's logger beside it.


@dataclass
class FieldMapping:
    """Where a source's records hold each field: a dotted path into the record (mrc.toml
    [monitor] features, prediction, id, label, key, time, version). `features` names an object
    whose keys are the features (or a list of paths, one per feature)."""

    features: Any = "x"
    prediction: str = "p"
    id: str = "id"
    label: str = "label"
    key: str = "k"
    time: str = "t"
    version: str = "v"


@dataclass
class SourceBatch:
    """Records read from a source since a cursor, column by column (numpy arrays, one entry per
    record): t (float seconds), ids, versions, keys (None entries where a record has none),
    features {name: array (float, NaN for missing; object where a value is not a number)},
    prediction (float, NaN where missing); labels [(id, label, t)] that arrived; bad
    {"source: field: why": count} for records that could not be used (counted, never fatal)."""

    t: Any = None
    ids: Any = None
    versions: Any = None
    keys: Any = None
    features: dict[str, Any] = field(default_factory=dict)
    prediction: Any = None
    labels: list[tuple[str, Any, float]] = field(default_factory=list)
    bad: dict[str, int] = field(default_factory=dict)
    cursor: dict[str, Any] = field(default_factory=dict)  # where the next read starts (saved with the panes)

    @property
    def rows(self) -> int:
        return 0 if self.t is None else len(self.t)


class MonitorSource(Protocol):
    """A prediction log the monitor folds. read() returns what arrived after `cursor` (None: from
    the beginning the source still holds), at most about `max_records` records, and the cursor
    after them; the monitor saves that cursor in the same transaction as the panes it folded,
    so each record is folded once. A source that cannot be reached raises BackendError; a bad
    mapping (a field no record has) raises BadInputError naming the source and the field."""

    name: str

    def open(self, ws_root: str, model: str, mapping: FieldMapping, options: dict[str, Any]) -> None:
        ...

    def read(self, cursor: dict[str, Any] | None, max_records: int = 200_000) -> SourceBatch:
        ...
