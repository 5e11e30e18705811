"""Model formats, data sources and the monitor's prediction-log sources, found by name (the
built-in ones here, others through the entry-point groups `mrc.formats`, `mrc.data` and
`mrc.sources`), so that the domain never imports a concrete one.

Nothing here imports a format or a data source until it is asked for: the rollback path and
start-up never load torch, onnxruntime, mlflow or boto3 through this module.
"""

from __future__ import annotations

import importlib


from backends.base import BadInputError, DataSource, ModelFormat, MonitorSource

# format name -> "module:Class" (a class with no arguments implementing backends.base.ModelFormat)
BUILTIN_FORMATS = {
    "torch-mlp-v1": "backends.formats.torch_mlp:TorchMlpFormat",
    "torchscript": "backends.formats.torchscript:TorchScriptFormat",
    "onnx": "backends.formats.onnx:OnnxFormat",
    "mlflow-pyfunc": "backends.formats.mlflow_pyfunc:MlflowPyfuncFormat",
    "torch-pickle": "backends.formats.torch_pickle:TorchPickleFormat",
}

# Names registries write in Artifact.format that mean one of the formats above.
FORMAT_ALIASES = {
    "mlflow-model": "mlflow-pyfunc",
    "mlflow": "mlflow-pyfunc",
    "pyfunc": "mlflow-pyfunc",
    "torch-jit": "torchscript",
    "jit": "torchscript",
    "onnxruntime": "onnx",
}

# Sniffing order when neither mrc.toml nor the registry names a known format: the cheapest and
# most specific first; torch-pickle last, since it only claims what nothing else did.
SNIFF_ORDER = ("mlflow-pyfunc", "onnx", "torchscript", "torch-mlp-v1", "torch-pickle")

# reference scheme -> "module:Class" (a class with no arguments implementing backends.base.DataSource)
BUILTIN_DATA = {
    "mrc": "backends.data.store:DatasetStoreSource",  # name@version in the workspace's data/
    "file": "backends.data.files:FileSource",  # a CSV or Parquet path
    "s3": "backends.data.s3:S3Source",  # s3://bucket/key.csv|parquet on the configured endpoint
}


# source name -> "module:Class" (a class with no arguments implementing backends.base.MonitorSource)
BUILTIN_SOURCES = {
    "router": "backends.local.monitor_source:RouterLogSource",  # the local router's capture segments
}


def _load(kind: str, name: str, builtin: dict[str, str], group: str, where: str):
    target = builtin.get(name)
    if target is None:
        from importlib.metadata import entry_points

        for ep in entry_points(group=group):
            if ep.name == name:
                return ep.load()()
        known = ", ".join(sorted(builtin))
        raise BadInputError(f"{where}: unknown {kind} {name!r} (known: {known}, or an `{group}` entry point)")
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)()
    except ImportError as exc:
        raise BadInputError(f"{where}: {kind} {name!r} needs {exc.name or exc}, which is not installed") from None


def model_format(name: str, where: str = "mrc.toml") -> ModelFormat:
    name = FORMAT_ALIASES.get(name, name)
    return _load("model format", name, BUILTIN_FORMATS, "mrc.formats", where)


def known_format(name: str) -> str | None:
    """The canonical name of a format the registry wrote, or None when it names no known one."""
    name = FORMAT_ALIASES.get(name, name)
    return name if name in BUILTIN_FORMATS else None


def resolve_format(declared: str | None, path: str, options: dict | None = None,
                   model: str | None = None) -> ModelFormat:
    """Which format loads the artifact at `path`: `format` under [models.X] in mrc.toml first,
    then the format the registry declared (when it is a known one and the bytes agree), then
    the file's own bytes; a declared format nothing else claims is kept, so its load says why."""
    options = options or {}
    _check_format_options(options, model or "<model>")
    configured = options.get("format")
    if configured:
        if not isinstance(configured, str):
            raise BadInputError(f"mrc.toml: models.{model or '<model>'}.format: must be a string")
        return model_format(configured, f"mrc.toml: models.{model or '<model>'}.format")
    name = known_format(declared) if declared else None
    declared_format = model_format(name, path) if name else None
    if declared_format is not None and declared_format.sniff(path):
        return declared_format
    for name in SNIFF_ORDER:
        try:
            candidate = model_format(name, path)
        except BadInputError:  # its library is not installed: it cannot claim the file
            continue
        if candidate.sniff(path):
            return candidate
    if declared_format is not None:
        return declared_format
    raise BadInputError(f"{path}: no known model format (tried {', '.join(SNIFF_ORDER)}); "
                        f"set `format = \"…\"` under [models.{model or '<model>'}] in mrc.toml")


def artifact_sha256(path: str) -> tuple[str, int]:
    """(sha256, bytes) of a fetched artifact, a file or a folder such as an MLflow model (the
    tree's sorted relative paths and bytes), for reports and servers that name what they ran."""
    return importlib.import_module("backends.formats.digest").artifact_sha256(path)


def _check_format_options(options: dict, model: str) -> None:
    """The [models.X] keys the formats read, checked once here: one line naming the field."""
    where = f"mrc.toml: models.{model}"
    features = options.get("features")
    if features is not None and not (isinstance(features, list) and features
                                     and all(isinstance(f, str) and f for f in features)):
        raise BadInputError(f"{where}.features: must be a list of column names")
    for key, allowed in (("task", ("binary", "regression", "multiclass")), ("output", ("logits", "probabilities"))):
        if key in options and options[key] not in allowed:
            raise BadInputError(f"{where}.{key}: must be one of {', '.join(allowed)}, not {options[key]!r}")
    if "trust_pickle" in options and not isinstance(options["trust_pickle"], bool):
        raise BadInputError(f"{where}.trust_pickle: must be true or false")


def data_source(scheme: str, where: str = "mrc.toml") -> DataSource:
    return _load("data source", scheme, BUILTIN_DATA, "mrc.data", where)


def scheme_of(ref: str) -> str:
    """Which data source reads a reference: s3://… → s3, name@version → mrc, else a file path."""
    if "://" in ref:
        scheme = ref.split("://", 1)[0].lower()
        return "file" if scheme == "file" else scheme
    if "@" in ref and "/" not in ref and not ref.lower().endswith((".csv", ".parquet", ".pq", ".tsv")):
        return "mrc"
    return "file"




def monitor_source(name: str, where: str = "mrc.toml") -> MonitorSource:
    """The prediction log `[monitor] source = NAME` names (default: mrc's own router)."""
    return _load("monitor source", name, BUILTIN_SOURCES, "mrc.sources", where)
