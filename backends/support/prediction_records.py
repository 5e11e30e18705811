"""Prediction-log records (JSON objects) into a SourceBatch, through a field mapping.

Shared by the monitor's sources (the router's capture segments, and any source whose records are
JSON objects: Kafka values, JSON-lines files). Two paths give the same batch: pyarrow's C++ JSON
reader for a block of JSON lines whose fields keep one type, and a plain json.loads path for
everything else (mixed types, odd layouts). A record that cannot be used is counted in `bad`
under "SOURCE: FIELD: why", never raised.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

import numpy as np

from backends.base import FieldMapping, SourceBatch


def _get(rec: Any, path: str) -> tuple[bool, Any]:
    """(found, value) at a dotted path."""
    cur = rec
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def prediction_value(value: Any) -> float:
    """One prediction as a number: P(1) of [p0, p1], the value of [v]; NaN when none."""
    if isinstance(value, list) and value:
        value = value[-1]
    if isinstance(value, dict):
        for key in ("1", "probability", "score", "prediction"):
            if key in value:
                return prediction_value(value[key])
        return math.nan
    number = _number(value)
    return math.nan if number is None else number


def _count(bad: dict[str, int], source: str, field: str, why: str) -> None:
    key = f"{source}: {field}: {why}"
    bad[key] = bad.get(key, 0) + 1


def batch_from_records(records: Iterable[Any], mapping: FieldMapping, source: str) -> SourceBatch:
    """The plain path: any JSON objects (already parsed; a non-object counts as bad)."""
    batch = SourceBatch()
    ts: list[float] = []
    ids: list[str] = []
    versions: list[Any] = []
    keys: list[Any] = []
    preds: list[float] = []
    columns: dict[str, list[Any]] = {}
    bad = batch.bad
    feature_paths = mapping.features if isinstance(mapping.features, list) else None
    for rec in records:
        if not isinstance(rec, dict):
            _count(bad, source, "record", "not a JSON object")
            continue
        found_t, t = _get(rec, mapping.time)
        t = _number(t)
        if not found_t or t is None or not math.isfinite(t):
            _count(bad, source, mapping.time, "missing or not a number")
            continue
        found_id, rid = _get(rec, mapping.id)
        if not found_id or rid is None:
            _count(bad, source, mapping.id, "missing")
            continue
        rid = str(rid)
        if feature_paths is not None:
            values = {p: _get(rec, p) for p in feature_paths}
            features = {p: v for p, (ok, v) in values.items() if ok}
            has_features = bool(features)
        else:
            has_features, features = _get(rec, mapping.features)
            if has_features and not isinstance(features, dict):
                _count(bad, source, mapping.features, "not an object of features")
                continue
        found_label, label = _get(rec, mapping.label)
        if not has_features:
            if found_label or rec.get("type") == "label":
                batch.labels.append((rid, label, t))
            else:
                _count(bad, source, mapping.features if isinstance(mapping.features, str) else "features", "missing")
            continue
        n = len(ts)
        for name, value in features.items():
            column = columns.get(name)
            if column is None:
                column = columns[name] = [None] * n
            column.append(value)
        for column in columns.values():
            if len(column) == n:
                column.append(None)
        ts.append(t)
        ids.append(rid)
        versions.append(_get(rec, mapping.version)[1])
        key = _get(rec, mapping.key)[1]
        keys.append(None if key is None else str(key))
        found_p, p = _get(rec, mapping.prediction)
        preds.append(prediction_value(p) if found_p else math.nan)
        if found_label and label is not None:
            batch.labels.append((rid, label, t))
    batch.t = np.asarray(ts, dtype=float)
    batch.ids = np.asarray(ids, dtype=object)
    batch.versions = np.asarray([None if v is None else str(v) for v in versions], dtype=object)
    batch.keys = np.asarray(keys, dtype=object)
    batch.prediction = np.asarray(preds, dtype=float)
    batch.features = {name: _column(values) for name, values in columns.items()}
    return batch


def _column(values: list[Any]) -> np.ndarray:
    """Numbers as float (NaN for missing); any text makes the column an object array."""
    numbers = [(_number(v) if v is not None else math.nan) for v in values]
    if all(x is not None for x in numbers):
        return np.asarray(numbers, dtype=float)
    return np.asarray([v if _number(v) is None else _number(v) for v in values], dtype=object)


def batch_from_json_lines(data: bytes, mapping: FieldMapping, source: str) -> SourceBatch:
    """Complete JSON lines: pyarrow's JSON reader where the block reads as typed columns (the
    fast path; a router capture block always does), else line by line."""
    if not data.strip():
        return batch_from_records([], mapping, source)
    if isinstance(mapping.features, str) and "." not in mapping.features + mapping.time + mapping.id:
        try:
            return _arrow_batch(data, mapping, source)
        except _Fallback:
            pass
    records = []
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            records.append(None)
    batch = batch_from_records([r for r in records if r is not None], mapping, source)
    torn = sum(1 for r in records if r is None)
    if torn:
        batch.bad[f"{source}: record: not JSON"] = batch.bad.get(f"{source}: record: not JSON", 0) + torn
    return batch


class _Fallback(Exception):
    pass


def _strings(column) -> np.ndarray:
    """An Arrow column as an object array of str (None where null), in C++ where it is text."""
    import pyarrow as pa

    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.to_numpy(zero_copy_only=False)
    return np.asarray([None if v is None else str(v) for v in column.to_pylist()], dtype=object)


def _arrow_batch(data: bytes, mapping: FieldMapping, source: str) -> SourceBatch:
    import pyarrow as pa  # ~0.2 s: only the monitor's fold reads with it
    import pyarrow.json as pj

    try:
        table = pj.read_json(pa.BufferReader(data))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise _Fallback from None
    names = table.column_names
    if mapping.time not in names or mapping.id not in names:
        raise _Fallback
    t_col = table.column(mapping.time)
    if not pa.types.is_floating(t_col.type) and not pa.types.is_integer(t_col.type):
        raise _Fallback
    t = t_col.to_numpy(zero_copy_only=False).astype(float)
    features_col = table.column(mapping.features) if mapping.features in names else None
    if features_col is not None and not pa.types.is_struct(features_col.type):
        raise _Fallback
    has_features = (np.zeros(len(t), dtype=bool) if features_col is None
                    else ~features_col.is_null().to_numpy(zero_copy_only=False))
    ids_col = table.column(mapping.id)
    ids = (ids_col.to_numpy(zero_copy_only=False) if pa.types.is_string(ids_col.type)
           else np.asarray([None if x is None else str(x) for x in ids_col.to_pylist()], dtype=object))
    batch = SourceBatch()
    bad_t = ~np.isfinite(t) if len(t) else np.zeros(0, dtype=bool)
    label_col = table.column(mapping.label).to_pylist() if mapping.label in names else [None] * len(t)
    kinds = table.column("type").to_pylist() if "type" in names else [None] * len(t)
    usable = ~bad_t & (ids != None)  # noqa: E711  (elementwise)
    ok = has_features & usable
    missing = 0
    for i in np.flatnonzero(usable):
        if has_features[i]:
            if label_col[i] is not None:  # a label on a prediction line is also a label
                batch.labels.append((ids[i], label_col[i], float(t[i])))
        elif label_col[i] is not None or kinds[i] == "label":
            batch.labels.append((ids[i], label_col[i], float(t[i])))
        else:
            missing += 1
    if missing:
        batch.bad[f"{source}: {mapping.features}: missing"] = missing
    if bad_t.any():
        batch.bad[f"{source}: {mapping.time}: missing or not a number"] = int(bad_t.sum())
    if (ids == None).any():  # noqa: E711
        batch.bad[f"{source}: {mapping.id}: missing"] = int((ids == None).sum())  # noqa: E711
    rows = np.flatnonzero(ok)
    batch.t = t[rows]
    batch.ids = ids[rows]
    batch.versions = (_strings(table.column(mapping.version))[rows] if mapping.version in names
                      else np.full(len(rows), None, object))
    batch.keys = _strings(table.column(mapping.key))[rows] if mapping.key in names else np.full(len(rows), None, object)
    if mapping.prediction in names:
        p_col = table.column(mapping.prediction)
        if pa.types.is_floating(p_col.type) or pa.types.is_integer(p_col.type):
            batch.prediction = p_col.to_numpy(zero_copy_only=False).astype(float)[rows]
        else:
            values = p_col.to_pylist()
            batch.prediction = np.asarray([prediction_value(values[i]) for i in rows], dtype=float)
    else:
        batch.prediction = np.full(len(rows), np.nan)
    if features_col is not None:
        struct = features_col.combine_chunks()
        for i in range(struct.type.num_fields):
            field = struct.type.field(i)
            child = struct.field(i)
            if pa.types.is_floating(field.type) or pa.types.is_integer(field.type) or pa.types.is_boolean(field.type):
                values = child.cast(pa.float64()).to_numpy(zero_copy_only=False)
            elif pa.types.is_null(field.type):
                values = np.full(len(child), np.nan)
            else:
                values = np.asarray(child.to_pylist(), dtype=object)
                values = np.asarray([np.nan if v is None else v for v in values], dtype=object)
            batch.features[field.name] = values[rows]
    return batch
