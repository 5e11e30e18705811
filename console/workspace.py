"""The workspace: a folder with mrc.toml, mrc.db, artifacts/, data/, runs/.

`--workspace DIR`, else `MRC_WORKSPACE`, else the embedded default under the user's data dir.
Each role (registry, training, traffic, metrics) names a backend in mrc.toml; a role left out
falls back to `local`. Backends are found by name: the built-in ones here, any other through
the entry-point group `mrc.backends` (so a third party can add one).
"""

from __future__ import annotations

import importlib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.base import BadInputError
from backends.capabilities import BackendFactory, NamesDatasets, may_serve, open_role
from backends.support.redact import credential_in_url, redact
from console.config_keys import check_known_keys
from console.plugins import data_source, scheme_of
from console.release.audit import AuditLog
from console.release.policy import parse_policies

ROLES = ("registry", "training", "traffic", "metrics")

# name -> "module:Class". Kept here as well as in the entry points so a source checkout works
# without reinstalling, and so start-up does not scan every installed distribution.
BUILTIN_BACKENDS = {
    "local": "backends.local:LocalBackend",
    "mlflow": "backends.mlflow:MlflowBackend",
    "s3": "backends.s3:S3Backend",
    "k8s": "backends.k8s:K8sBackend",
    "prometheus": "backends.prometheus:PrometheusBackend",
}

DEFAULT_TOML = """\
# mrc workspace. Each role names a backend; a role left out uses `local`.
[registry]
backend = "local"

[training]
backend = "local"

[traffic]
backend = "local"

[metrics]
backend = "local"
"""


DEFAULT_LOCK_TIMEOUT_S = 10.0

# keys whose value must be an http(s) URL with a host (S3 endpoint_url, Prometheus url …)
HTTP_URL_KEYS = ("url", "endpoint_url")


def check_config_urls(config: Any, where: Path | str, path: str = "") -> None:
    """Refuse credentials in any URL of mrc.toml (they belong in the environment or a credential
    chain, not in a file that gets copied and committed), and URLs that are not URLs.

    The message names the field and the kind of secret, never the secret itself.
    """
    if isinstance(config, dict):
        for key, value in config.items():
            dotted = f"{path}.{key}" if path else str(key)
            if isinstance(value, str):
                secret = credential_in_url(value)
                if secret:
                    raise BadInputError(f"{where}: {dotted}: the URL carries credentials ({secret}); "
                                        "put them in the environment or the backend's credential chain, not mrc.toml")
                if str(key) in HTTP_URL_KEYS and path and not _is_http_url(value):
                    raise BadInputError(f"{where}: {dotted}: must be an http(s) URL with a host "
                                        f"(like http://127.0.0.1:8333), not {redact(value)[:80]!r}")
            else:
                check_config_urls(value, where, dotted)
    elif isinstance(config, list):
        for i, value in enumerate(config):
            dotted = f"{path}[{i}]"
            if isinstance(value, str):
                secret = credential_in_url(value)
                if secret:
                    raise BadInputError(f"{where}: {dotted}: the URL carries credentials ({secret}); "
                                        "put them in the environment or the backend's credential chain, not mrc.toml")
            else:
                check_config_urls(value, where, dotted)


def _is_http_url(value: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def default_workspace_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "mrc" / "default"


def resolve_dir(path: str | os.PathLike | None) -> Path:
    if path:
        return Path(path).expanduser().absolute()
    env = os.environ.get("MRC_WORKSPACE")
    return Path(env).expanduser().absolute() if env else default_workspace_dir()


@dataclass
class Workspace:
    root: Path
    config: dict[str, Any] = field(default_factory=dict)
    _backends: dict[str, Any] = field(default_factory=dict, repr=False)
    policy_error: str | None = None  # a bad [policy] table, opened with lenient_policy (the rollback path)

    # -- paths -----------------------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.root / "mrc.db"

    @property
    def config_path(self) -> Path:
        return self.root / "mrc.toml"

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "artifacts"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike | None = None, *, create: bool = False,
             lenient_policy: bool = False) -> "Workspace":
        """Open an existing workspace; with create=True make an empty one first. `lenient_policy`:
        a bad [policy] table is kept in `policy_error` instead of refusing (the rollback path)."""
        if path is not None and not str(path).strip():
            raise BadInputError("--workspace: empty path (leave the option out for the default workspace)")
        root = resolve_dir(path)
        if create:
            cls.init(root)
        if not root.exists():
            raise BadInputError(f"workspace {root}: does not exist (run `mrc demo` or `mrc init`)")
        if not root.is_dir():
            raise BadInputError(f"workspace {root}: is not a folder")
        if not os.access(root, os.R_OK | os.X_OK):
            raise BadInputError(f"workspace {root}: is not readable")
        config_path = root / "mrc.toml"
        config: dict[str, Any] = {}
        if config_path.exists():
            if not config_path.is_file():
                raise BadInputError(f"{config_path}: is not a file")
            try:
                config = tomllib.loads(config_path.read_text())
            except PermissionError:
                raise BadInputError(f"{config_path}: is not readable") from None
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise BadInputError(f"{config_path}: not valid TOML ({exc})") from None
            except (OSError, RecursionError) as exc:
                raise BadInputError(f"{config_path}: cannot read ({getattr(exc, 'strerror', None) or type(exc).__name__})") from None
            check_config_urls(config, config_path)
            check_known_keys(config, config_path)
        db = root / "mrc.db"
        if db.exists() and not os.access(db, os.R_OK):
            raise BadInputError(f"{db}: is not readable")
        ws = cls(root, config)
        for role in ROLES:
            ws.backend_name(role)  # validate names early: one clear line, before any write
        ws.lock_timeout_s()
        if "policy" in config:  # protected aliases: a bad rule is one line before anything runs

            try:
                parse_policies(config, config_path)
            except BadInputError as exc:
                if not lenient_policy:
                    raise
                # the rollback path (mrc rollback, the console) opens anyway: it reads only the
                # rollback key, leniently (console/release/policy.py rollback_policy); approve/promote refuse
                ws.policy_error = str(exc)
        return ws

    @classmethod
    def init(cls, root: Path) -> None:
        if root.exists() and not root.is_dir():
            raise BadInputError(f"workspace {root}: is not a folder")
        root.mkdir(parents=True, exist_ok=True)
        for sub in ("artifacts", "data", "runs"):
            (root / sub).mkdir(exist_ok=True)
        if not (root / "mrc.toml").exists():
            (root / "mrc.toml").write_text(DEFAULT_TOML)

    # -- config ----------------------------------------------------------------------------
    def section(self, role: str) -> dict[str, Any]:
        value = self.config.get(role, {})
        if not isinstance(value, dict):
            raise BadInputError(f"{self.config_path}: [{role}] must be a table")
        return value

    def backend_name(self, role: str) -> str:
        name = self.section(role).get("backend", "local")
        if not isinstance(name, str) or not name:
            raise BadInputError(f"{self.config_path}: {role}.backend must be a backend name")
        return name

    def lock_timeout_s(self) -> float:
        """How long a write waits for another process's lock: [workspace] lock_timeout_s, default 10."""
        section = self.config.get("workspace", {})
        if not isinstance(section, dict):
            raise BadInputError(f"{self.config_path}: [workspace] must be a table")
        value = section.get("lock_timeout_s", DEFAULT_LOCK_TIMEOUT_S)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 86400:
            raise BadInputError(f"{self.config_path}: workspace.lock_timeout_s: must be a number of seconds "
                                "within [0, 86400]")
        return float(value)

    def model_config(self, model: str) -> dict[str, Any]:
        models = self.config.get("models", {})
        if not isinstance(models, dict):
            raise BadInputError(f"{self.config_path}: [models] must be a table of tables")
        table = models.get(model, {})
        if not isinstance(table, dict):
            raise BadInputError(f"{self.config_path}: [models.{model}] must be a table")
        for key in ("train_data", "test_data", "golden_data", "reference_data", "label", "gate_policy", "format", "task"):
            if key in table and not isinstance(table[key], str):
                raise BadInputError(f"{self.config_path}: models.{model}.{key} must be a string")
        return dict(table)

    # -- backends --------------------------------------------------------------------------
    def _backend(self, name: str) -> Any:
        if name not in self._backends:
            self._backends[name] = load_backend_class(name, self.config_path)(self)
        return self._backends[name]

    def _role(self, role: str) -> Any:
        name = self.backend_name(role)
        backend = self._backend(name)
        opened = open_role(backend, role, self.section(role))
        if opened is None:
            raise BadInputError(f"{self.config_path}: {role}.backend = {name!r} does not provide a {role} backend")
        return opened

    def registry(self):
        return self._role("registry")

    def training(self):
        return self._role("training")

    def traffic(self):
        return self._role("traffic")

    def metrics(self):
        return self._role("metrics")

    def may_serve(self, model: str) -> bool:
        """False only when the traffic backend says, without being imported, that nothing serves
        `model` (its optional `may_serve(config, model)`); True when it cannot tell."""
        return may_serve(self._backend(self.backend_name("traffic")), self.section("traffic"), model)

    def audit(self):
        log = AuditLog(str(self.db_path))
        return log

    def local(self):
        """The embedded backend, whatever the roles say: mrc.db's tables and the dataset store
        live in every workspace."""
        return self._backend("local")

    def datasets(self):
        """mrc's own versioned datasets (data/ in the workspace)."""
        return self.local().datasets()

    # -- data --------------------------------------------------------------------------------
    def data_options(self, scheme: str) -> dict[str, Any]:
        """What a data source gets: the [data] table, the workspace root, and for s3 the
        registry's endpoint when [data] names none."""
        options: dict[str, Any] = dict(self.section("data"))
        options["workspace"] = str(self.root)
        if scheme == "s3":
            registry = self.section("registry")
            for key in ("endpoint_url", "region"):
                if not options.get(key) and isinstance(registry.get(key), str) and registry.get(key):
                    options[key] = registry[key]
        return options

    def load_table(self, ref: str, *, model: str | None = None, version: str | None = None):
        """A data set by reference: a CSV/Parquet path or file:// URI, s3://bucket/key, mrc's
        name@version, or mlflow:<context> (the dataset the version's run logged with that context)."""
        if not isinstance(ref, str) or not ref.strip():
            raise BadInputError(f"{self.config_path}: empty data reference")
        ref = ref.strip()
        if ref.lower().startswith("mlflow:") and "://" not in ref:
            ref = self.logged_dataset_uri(ref.split(":", 1)[1], model, version)
        scheme = scheme_of(ref)
        return data_source(scheme, str(self.config_path)).load(ref, self.data_options(scheme))

    def logged_dataset_uri(self, context: str, model: str | None, version: str | None) -> str:
        """Where the dataset a version's run logged under `context` can be read."""
        where = f"mlflow:{context}"
        if not context:
            raise BadInputError(f"{where}: name a dataset context (mlflow:training, mlflow:testing …)")
        if not model or not version:
            raise BadInputError(f"{where}: needs a model version to resolve (the run's logged dataset)")
        registry = self.registry()
        uri = ""
        if isinstance(registry, NamesDatasets):
            uri = registry.dataset_uri(model, version, context) or ""
        elif context == "training":
            uri = registry.get_version(model, version).lineage.data_uri
        else:
            raise BadInputError(f"{where}: the {self.backend_name('registry')} registry cannot name a run's "
                                f"{context} dataset ({model} version {version})")
        if not uri:
            raise BadInputError(f"{where}: {model} version {version} logged no {context} dataset that can be read")
        if uri.lower().startswith("mlflow:"):
            raise BadInputError(f"{where}: {model} version {version}: the registry answered {uri!r}")
        return uri


def load_backend_class(name: str, where: Path | str = "mrc.toml") -> type[BackendFactory]:
    target = BUILTIN_BACKENDS.get(name)
    if target is None:
        from importlib.metadata import entry_points

        for ep in entry_points(group="mrc.backends"):
            if ep.name == name:
                return ep.load()
        known = ", ".join(sorted(BUILTIN_BACKENDS))
        raise BadInputError(f"{where}: unknown backend {name!r} (known: {known}, or an `mrc.backends` entry point)")
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        raise BadInputError(f"{where}: backend {name!r} is not installed ({exc.name or exc}): "
                            f"pip install 'model-release-console[{name}]'") from None
