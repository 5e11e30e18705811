"""mrc's own dataset store: `name@version` in the workspace's data/ (sha256-checked on read)."""

from __future__ import annotations

from typing import Any

from backends.base import BadInputError, Table
from backends.native.datasets import DatasetStore


class DatasetStoreSource:
    def load(self, ref: str, options: dict[str, Any]) -> Table:
        root = options.get("workspace")
        if not root:
            raise BadInputError(f"dataset {ref}: no workspace to read it from")
        _, columns, data = DatasetStore(root).load(ref)
        if len(set(columns)) != len(columns):
            dup = next(c for c in columns if columns.count(c) > 1)
            raise BadInputError(f"dataset {ref}: {dup}: duplicate column name")
        return Table(list(columns), {c: data[:, i].astype(float) for i, c in enumerate(columns)}, ref)
