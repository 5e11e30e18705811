"""What a backend (or a model it loads) may offer beyond its role protocol: the one file a plugin
author reads.

backends/base.py declares the roles every backend of a kind must fill (Registry, Training,
Traffic, Metrics, ModelFormat, DataSource). The console also uses abilities that only some
backends have; each is declared here as a small Protocol, and the console asks
`isinstance(traffic, Shadows)` — never `getattr`/`hasattr` (tests/unit/test_declared_capabilities.py
fails on a probe). Where the console needs an answer from every backend, the function beside the
protocol gives the default that a backend without the ability gets (None, False, a no-op), so no
caller probes either. A new optional method is added here before its first caller.

Stdlib only, like base.py: the rollback path imports it.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

from backends.base import Artifact, ModelOverview, ModelVersion

# ---------------------------------------------------------------------------------------------
# The backend factory: what `[registry] backend = "name"` names (entry-point group `mrc.backends`).


class BackendFactory(Protocol):
    """A backend: a class built once per workspace with the Workspace, offering one or more of
    the role factories below (LocalBackend offers all four; MlflowBackend and S3Backend only a
    registry; K8sBackend training and traffic; PrometheusBackend metrics). Each role factory takes
    the role's mrc.toml table (`[registry]`, `[training]` …) and returns the role's object."""

    def __init__(self, workspace: Any) -> None: ...


@runtime_checkable
class ProvidesRegistry(Protocol):
    """`[registry] backend = name` works: models, versions, pointers (base.Registry)."""

    def registry(self, config: dict[str, Any]) -> Any: ...


@runtime_checkable
class ProvidesTraining(Protocol):
    """`[training] backend = name` works: launches runs (base.Training)."""

    def training(self, config: dict[str, Any]) -> Any: ...


@runtime_checkable
class ProvidesTraffic(Protocol):
    """`[traffic] backend = name` works: splits requests between versions (base.Traffic)."""

    def traffic(self, config: dict[str, Any]) -> Any: ...


@runtime_checkable
class ProvidesMetrics(Protocol):
    """`[metrics] backend = name` works: health of a version over a window (base.Metrics)."""

    def metrics(self, config: dict[str, Any]) -> Any: ...


# role name (as in mrc.toml) -> what a backend must offer to fill it
ROLE_PROVIDERS: dict[str, type] = {
    "registry": ProvidesRegistry,
    "training": ProvidesTraining,
    "traffic": ProvidesTraffic,
    "metrics": ProvidesMetrics,
}


def open_role(backend: Any, role: str, config: dict[str, Any]) -> Any | None:
    """The backend's object for `role` (one of ROLE_PROVIDERS), built from the role's mrc.toml
    table; None when the backend does not fill that role."""
    if role == "registry" and isinstance(backend, ProvidesRegistry):
        return backend.registry(config)
    if role == "training" and isinstance(backend, ProvidesTraining):
        return backend.training(config)
    if role == "traffic" and isinstance(backend, ProvidesTraffic):
        return backend.traffic(config)
    if role == "metrics" and isinstance(backend, ProvidesMetrics):
        return backend.metrics(config)
    return None


@runtime_checkable
class KnowsWhatItServes(Protocol):
    """Says, without importing its traffic module, that nothing serves a model here: the home
    screen then skips the traffic backend's import for that model."""

    def may_serve(self, config: dict[str, Any], model: str) -> bool: ...


def may_serve(backend: Any, config: dict[str, Any], model: str) -> bool:
    """False only when the backend says so; True (ask the traffic backend) when it cannot tell."""
    return bool(backend.may_serve(config, model)) if isinstance(backend, KnowsWhatItServes) else True


# ---------------------------------------------------------------------------------------------
# Any role object.


@runtime_checkable
class Closeable(Protocol):
    """Holds a client, a connection or an event-loop thread that must be let go after a run."""

    def close(self) -> None: ...


def close(obj: Any) -> None:
    """Let go of what `obj` holds; nothing to do for an object that holds nothing."""
    if isinstance(obj, Closeable):
        obj.close()


# ---------------------------------------------------------------------------------------------
# Registry abilities.


@runtime_checkable
class VerifiesArtifacts(Protocol):
    """Checks the stored bytes against the recorded sha256 itself (cheaper than fetching them:
    S3 compares the listing's ETag). `read`: the version as read a moment ago for this decision,
    which a registry may judge from instead of reading again (or ignore). Without it the console
    fetches and hashes (console/release/actions.py verify_artifact)."""

    def verify_artifact(self, model: str, version: str, *, read: ModelVersion | None = None) -> Artifact: ...


@runtime_checkable
class HistoryEndsAtPointer(Protocol):
    """`history_shows_pointer`: the last move of an alias in pointer_history() says where it points
    now (S3), so a rollback reads the pointer from the history it read anyway."""

    history_shows_pointer: bool


def history_shows_pointer(registry: Any) -> bool:
    return isinstance(registry, HistoryEndsAtPointer) and bool(registry.history_shows_pointer)


@runtime_checkable
class ReadsHistoryWindow(Protocol):
    """`pointer_history(model, alias, limit=N)` reads only the newest N moves (S3: one GET per
    event), so a rollback reads a short window before the whole history."""

    reads_history_window: bool

    def pointer_history(self, model: str, alias: str | None = None, *, limit: int | None = None) -> list[Any]: ...


def reads_history_window(registry: Any) -> bool:
    return isinstance(registry, ReadsHistoryWindow) and bool(registry.reads_history_window)


@runtime_checkable
class SkipsAliases(Protocol):
    """`get_version(model, version, aliases=False)` leaves the aliases out (S3: no listing of the
    pointers) where the caller does not judge them."""

    skips_aliases: bool

    def get_version(self, model: str, version: str, *, aliases: bool = True) -> ModelVersion: ...


def skips_aliases(registry: Any) -> bool:
    return isinstance(registry, SkipsAliases) and bool(registry.skips_aliases)


@runtime_checkable
class SharesAuditTransaction(Protocol):
    """Writes in the workspace's own mrc.db (`db_path`) and takes `audit=` hooks on set_approval
    and move_pointer, so the audit event and the write commit together (the local registry);
    any other registry goes through the intent log (console/release/audit.py)."""

    audit_in_transaction: bool
    db_path: str


def shares_audit_transaction(registry: Any) -> bool:
    return isinstance(registry, SharesAuditTransaction) and bool(registry.audit_in_transaction)


@runtime_checkable
class KnowsCaller(Protocol):
    """Who the backend knows the caller as (the OS user, MLflow's authenticated user, the AWS
    caller). A protected alias records it beside the claimed actor and, with identity =
    "require", refuses a mismatch (console/release/policy.py)."""

    def caller_identity(self) -> str | None: ...


def caller_identity(registry: Any) -> str | None:
    """The backend's answer; None for a registry that cannot tell."""
    return registry.caller_identity() if isinstance(registry, KnowsCaller) else None


@runtime_checkable
class CoSigns(Protocol):
    """Keeps a version's co-signatures itself (S3: objects beside the model; MLflow: tags), so
    approvers on different machines see each other's; without it they live in mrc.db."""

    def read_cosignatures(self, model: str, version: str) -> list[dict[str, Any]]: ...

    def add_cosignature(self, model: str, version: str, record: dict[str, Any]) -> bool: ...

    def revoke_cosignature(self, model: str, version: str, approver: str, at: str) -> int: ...


@runtime_checkable
class ReadsOverviews(Protocol):
    """Every model's overview in one read (the local registry: one SQLite connection); without
    it console/overview.py builds the same records from the per-model reads."""

    def model_overviews(self) -> list[ModelOverview]: ...


@runtime_checkable
class ListsAllVersions(Protocol):
    """Every model's versions in one read (model -> versions); without it, one read per model."""

    def list_all_versions(self) -> dict[str, list[ModelVersion]]: ...


@runtime_checkable
class NamesDatasets(Protocol):
    """Where the dataset a version's run logged under a context (training, testing …) can be
    read (MLflow's dataset inputs): `mlflow:<context>` references. Without it only the training
    data, from the lineage's data_uri."""

    def dataset_uri(self, model: str, version: str, context: str) -> str: ...


@runtime_checkable
class CreatesSchema(Protocol):
    """Creates its tables or buckets on `mrc init` instead of on first write."""

    def ensure_schema(self) -> None: ...


# ---------------------------------------------------------------------------------------------
# Training abilities.


@runtime_checkable
class ChecksParams(Protocol):
    """Refuses bad training parameters (BadInputError) before a run is launched: `mrc watch`
    checks its retraining parameters at start, not after a drift alert."""

    def check_params(self, params: dict[str, Any]) -> None: ...


def check_params(training: Any, params: dict[str, Any]) -> None:
    """The backend's check; a backend without one accepts anything and fails in the run."""
    if isinstance(training, ChecksParams):
        training.check_params(params)


# ---------------------------------------------------------------------------------------------
# Traffic abilities: what a backend that runs the model servers itself can do (the local one).
# A cluster's traffic backend (KServe) has none of them: its controller starts and health-checks
# the servers.


@runtime_checkable
class ListsServers(Protocol):
    """The port of each version's running server, so the console can check its health before
    traffic moves to it; without it the servers are checked by whoever runs them."""

    def served_versions(self, model: str) -> dict[str, int]: ...


@runtime_checkable
class StartsServers(Protocol):
    """Starts (and stops) a server per version and the router in front of them.

    ensure_serving: registry — the workspace's registry (any backend) the artifacts are fetched
    from; options — the model's [models.X] table; resolve_format(declared, path, options) ->
    ModelFormat (console/plugins.py). Without them, the backend's own registry and the declared
    format. Returns {"router": {"pid", "port"}, "servers": {version: {"pid", "port", "format",
    "protocol", …}}}."""

    def ensure_serving(self, model: str, versions: list[str], *, registry: Any = None,
                       options: dict[str, Any] | None = None,
                       resolve_format: Callable[..., Any] | None = None) -> dict[str, Any]: ...

    def stop_serving(self, model: str, versions: list[str] | None = None) -> list[str]: ...


@runtime_checkable
class RoutesRequests(Protocol):
    """The port of the model's router (None when it is not running), so a promotion can say that
    the router started anew on another port."""

    def router_port(self, model: str) -> int | None: ...


@runtime_checkable
class ReplaysLoad(Protocol):
    """Sends rows through the model's router at a rate (`mrc load`), labels after a delay."""

    def router_port(self, model: str) -> int | None: ...

    def load(self, model: str, rows: list[list[float]], labels: list[int] | None, *,
             columns: list[str] | None = None, **pace: Any) -> dict[str, Any]: ...


@runtime_checkable
class HoldsOutRows(Protocol):
    """Reads a test set from mrc's own dataset store when the data seam cannot (the demo)."""

    def holdout(self, model: str, ref: str, label: str | None = None) -> tuple[list[str], list[list[float]], list[int]]: ...


@runtime_checkable
class InjectsFaults(Protocol):
    """Makes one version's server fail, slow down or shift its answers (`mrc drill`)."""

    def fault(self, model: str, version: str, *, error_rate: float = 0.0, latency_ms: float = 0.0,
              shift: float = 0.0) -> dict[str, Any]: ...


@runtime_checkable
class Shadows(Protocol):
    """Mirrors a sample of live requests to a version whose answers are logged, not returned."""

    def get_shadow(self, model: str) -> dict[str, Any]: ...

    def set_shadow(self, model: str, version: str | None, *, sample: float = 1.0,
                   expected_revision: int) -> dict[str, Any]: ...


# ---------------------------------------------------------------------------------------------
# Abilities of a loaded model (base.LoadedModel), beyond predict().


@runtime_checkable
class PredictsTask(Protocol):
    """A loaded model that answers in its task's own shape, on a table of mixed-type columns.

    `task`: "binary" | "regression" | "multiclass" as the artifact says it (an sklearn,
    XGBoost or LightGBM estimator knows), or None when it does not say (a PythonModel).
    `classes`: the class labels of predict_task's columns for a classifier, else None.
    """

    task: str | None
    classes: list[Any] | None

    def predict_task(self, frame: Any) -> Any:
        """frame: a pandas DataFrame with the model's feature columns, of any type (text,
        categories, booleans, missing values). Returns a numpy array: (n,) values for a
        regression, (n, k) class probabilities (columns in `classes` order) or (n,) predicted
        labels for a classifier."""
        ...
