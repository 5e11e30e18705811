"""Serving a model's versions for canaries and load tests: the console's half of it.

The traffic backend fetches each version from the workspace's registry (whatever backend) and
starts its server; the console hands it what only the console may know: the registry, the
model's [models.X] options and the format resolver of console/plugins.py (a backend never
imports console/, and the artifact's path, which sniffing needs, is known only once fetched).
`mrc serve-models`, `mrc canary start` and the canary controller all come through here.
"""

from __future__ import annotations

from typing import Any

from backends.base import BadInputError, Table
from backends.capabilities import HoldsOutRows, StartsServers
from console.plugins import data_source, resolve_format, scheme_of


def ensure_served(ws, model: str, versions: list[str], *, traffic=None, registry=None) -> dict[str, Any] | None:
    """Start what serves these versions; None when the traffic backend serves nothing here
    (a cluster's traffic backend serves by itself)."""
    traffic = traffic if traffic is not None else ws.traffic()
    if not isinstance(traffic, StartsServers):
        return None

    return traffic.ensure_serving(model, versions, registry=registry if registry is not None else ws.registry(),
                  options=ws.model_config(model), resolve_format=resolve_format)


def _read_table(ws, model: str, ref: str) -> Table:
    """The table behind a reference, through the data seam (the workspace's own loader when it
    has one)."""
    load_table = getattr(ws, "load_table", None)
    if load_table is not None:
        return load_table(ref, model=model)

    options = {**ws.section("data"), "workspace": str(ws.root)}
    if scheme_of(ref) == "s3" and "endpoint_url" not in options:
        endpoint = ws.section("registry").get("endpoint_url")
        if endpoint:
            options["endpoint_url"] = endpoint
    return data_source(scheme_of(ref)).load(ref, options)


def load_rows(ws, model: str, ref: str | None, traffic=None) -> tuple[list[str], list[list[float]], list[int]]:
    """(columns, rows, labels) to replay for a model: its test set ([models.X] test_data, or
    `ref`) through the data seam, in the model's feature order when mrc.toml names it
    (`features`), else every column but the label in file order; the columns go with each
    request so a server picks its features by name."""
    import numpy as np  # numpy: ~0.08 s

    cfg = ws.model_config(model)
    ref = ref or cfg.get("test_data")
    if not ref:
        raise BadInputError(f"{ws.config_path}: models.{model}.test_data: not set (pass --data)")
    try:
        table = _read_table(ws, model, ref)
    except BadInputError as exc:
        # mrc's demo keeps its data in its own store: the local traffic backend can read it there

        if not isinstance(traffic, HoldsOutRows) or scheme_of(ref) != "mrc":
            raise
        try:
            return traffic.holdout(model, ref, cfg.get("label"))
        except (KeyError, ValueError, OSError):
            raise exc from None
    label = cfg.get("label") or "label"
    if label not in table.columns:
        raise BadInputError(f"{table.source or ref}: no label column {label!r} (models.{model}.label)")
    features = cfg.get("features")
    if features is not None:
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise BadInputError(f"{ws.config_path}: models.{model}.features must be a list of column names")
        missing = [f for f in features if f not in table.columns]
        if missing:
            raise BadInputError(f"{table.source or ref}: no column {missing[0]!r} (models.{model}.features)")
        columns = list(features)
    else:
        columns = [c for c in table.columns if c != label]
    try:
        matrix = np.column_stack([np.asarray(table.data[c], dtype=float) for c in columns])
        labels = [int(x) for x in np.asarray(table.data[label], dtype=float)]
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"{table.source or ref}: a column is not numeric ({exc})") from None
    if not len(labels):
        raise BadInputError(f"{table.source or ref}: no rows")
    return columns, matrix.tolist(), labels
