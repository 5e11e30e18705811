"""Data validation before training (the seed's stage 1), with its schema and baseline-stats JSON.

schema.json:   {"required_columns": [...], "numeric_columns": [...], "label_column": "y",
                "min_classes": 2}  (+ optional "categorical_columns", "max_null_fraction")
baseline.json: {"row_count": N, "distributions": {col: {"bins": [edges], "counts": [per bin]}}}

Checks, as the seed runs them: schema_valid (required columns present), null_rates_ok (every
column's null fraction <= max_null_fraction), row_count_ok (0.5 < rows / baseline rows < 2),
drift_<col> (PSI on the baseline's bins < max_drift_threshold, shares floored at 1e-6 as the
seed computes it; values outside the bins count in the edge bins, where the seed dropped them), label_diversity (distinct labels >=
min_classes). A column declared numeric that holds text is bad input (exit 2), not a failed check.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import BadInputError, Record
from console.evaluate.gates import read_json
from console.evaluate.report import write_text_atomic


@dataclass
class ValidationResult(Record):
    passed: bool
    checks: dict[str, bool] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    data: str = ""
    rows: int = 0


def read_table(path: str | os.PathLike):
    """A CSV or Parquet file as a DataFrame; one clear line when it cannot be read."""
    import pandas as pd  # pandas: ~0.4 s

    p = Path(path)
    if not p.exists():
        raise BadInputError(f"{p}: data file not found")
    if p.is_dir():
        raise BadInputError(f"{p}: is a folder, not a data file")
    if p.stat().st_size == 0:
        raise BadInputError(f"{p}: empty file")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(p)
        elif suffix in (".csv", ".txt", ".tsv"):
            df = pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",")
        else:
            raise BadInputError(f"{p}: unknown data format {suffix or '(no extension)'!r} (use .csv or .parquet)")
    except BadInputError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many kinds; the user needs the file and the reason
        raise BadInputError(f"{p}: cannot read as {suffix[1:] or 'data'} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if len(df.columns) == 0:
        raise BadInputError(f"{p}: no columns")
    if suffix != ".parquet" and suffix != ".pq":
        _refuse_duplicate_columns(p, "\t" if suffix == ".tsv" else ",")
    return df


def _refuse_duplicate_columns(p: Path, sep: str) -> None:
    """pandas renames a repeated header (`a`, `a.1`): which column is meant is then a guess."""
    import csv

    with open(p, newline="", encoding="utf-8", errors="replace") as fh:
        header = next(csv.reader(fh, delimiter=sep), [])
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise BadInputError(f"{p}: column {name[:80]!r} appears twice in the header")
        seen.add(name)


def _string_list(schema: dict, key: str, source: str) -> list[str]:
    value = schema.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadInputError(f"{source}: {key}: must be a list of column names")
    return value


def parse_schema(schema: Any, source: str) -> dict[str, Any]:
    if not isinstance(schema, dict):
        raise BadInputError(f"{source}: must be a JSON object")
    out = {
        "required_columns": _string_list(schema, "required_columns", source),
        "numeric_columns": _string_list(schema, "numeric_columns", source),
        "categorical_columns": _string_list(schema, "categorical_columns", source),
    }
    if "label_column" in schema:
        if not isinstance(schema["label_column"], str) or not schema["label_column"]:
            raise BadInputError(f"{source}: label_column: must be a column name")
        out["label_column"] = schema["label_column"]
    min_classes = schema.get("min_classes", 2)
    if isinstance(min_classes, bool) or not isinstance(min_classes, int) or min_classes < 1:
        raise BadInputError(f"{source}: min_classes: must be a positive integer, not {min_classes!r}")
    out["min_classes"] = min_classes
    if "max_null_fraction" in schema:
        out["max_null_fraction"] = _fraction(schema["max_null_fraction"], f"{source}: max_null_fraction")
    return out


def _fraction(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 1:
        raise BadInputError(f"{where}: must be a number within [0, 1], not {value!r}")
    return float(value)


def parse_baseline(baseline: Any, source: str) -> dict[str, Any]:
    if not isinstance(baseline, dict):
        raise BadInputError(f"{source}: must be a JSON object")
    rows = baseline.get("row_count")
    if isinstance(rows, bool) or not isinstance(rows, (int, float)) or not math.isfinite(rows) or rows <= 0:
        raise BadInputError(f"{source}: row_count: must be a positive number, not {rows!r}")
    dists = baseline.get("distributions", {})
    if not isinstance(dists, dict):
        raise BadInputError(f"{source}: distributions: must be an object of column -> {{bins, counts}}")
    for col, d in dists.items():
        where = f"{source}: distributions.{col}"
        if not isinstance(d, dict):
            raise BadInputError(f"{where}: must be an object with bins and counts")
        bins, counts = d.get("bins"), d.get("counts")
        if not isinstance(bins, list) or len(bins) < 2 or not all(_finite(b) for b in bins):
            raise BadInputError(f"{where}.bins: must be a list of at least two finite numbers")
        if any(b2 < b1 for b1, b2 in zip(bins, bins[1:])):
            raise BadInputError(f"{where}.bins: must be increasing")
        if not isinstance(counts, list) or len(counts) != len(bins) - 1 or not all(_finite(c) and c >= 0 for c in counts):
            raise BadInputError(f"{where}.counts: must be {len(bins) - 1} non-negative numbers (one per bin)")
        if sum(counts) <= 0:
            raise BadInputError(f"{where}.counts: all zero")
    return {"row_count": float(rows), "distributions": dists}


def _finite(x: Any) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x)


def seed_psi(bins: list[float], counts: list[float], values: np.ndarray) -> float:
    """PSI on the baseline's own bins, shares floored at 1e-6 as the seed does.

    Values outside the baseline's range count in the edge bins (the first and last bins are
    open-ended, the usual PSI convention): np.histogram alone drops them, so a column that
    moved wholly outside the baseline's range read as no drift at all, the opposite of what
    the seed's check is for ("something changed upstream").
    """
    edges = np.asarray(bins, dtype=float)
    values = np.asarray(values, dtype=float)
    actual, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    ref = np.asarray(counts, dtype=float)
    act = actual.astype(float)
    ref = np.clip(ref / ref.sum(), 1e-6, None)
    total = act.sum()
    act = np.clip(act / total if total > 0 else act, 1e-6, None)
    return float(np.sum((act - ref) * np.log(act / ref)))


def numeric_column(df, column: str, data_source: str, schema_source: str) -> np.ndarray:
    import pandas as pd  # pandas: ~0.4 s

    series = df[column]
    if series.dtype.kind in "fiu":
        return series.to_numpy(dtype=float)
    if series.dtype.kind == "b":
        return series.to_numpy(dtype=float)
    converted = pd.to_numeric(series, errors="coerce")
    bad = converted.isna() & series.notna()
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise BadInputError(f"{data_source}: column {column!r}: declared numeric in {schema_source} but holds text "
                            f"({series.iloc[row]!r} at row {row + 1})")
    return converted.to_numpy(dtype=float)


def validate(df, schema: dict[str, Any], baseline: dict[str, Any] | None = None, *, max_null_fraction: float = 0.05,
             max_drift_threshold: float = 0.1, data_source: str = "data", schema_source: str = "schema") -> ValidationResult:
    checks: dict[str, bool] = {}
    details: dict[str, str] = {}
    max_null = schema.get("max_null_fraction", max_null_fraction)
    missing = [c for c in schema["required_columns"] if c not in df.columns]
    checks["schema_valid"] = not missing
    details["schema_valid"] = f"Missing columns: {missing}" if missing else f"all {len(schema['required_columns'])} required columns present"
    numeric = {}
    for col in schema["numeric_columns"]:
        if col in df.columns:
            numeric[col] = numeric_column(df, col, data_source, schema_source)
    null_fractions = df.isnull().mean() if len(df) else df.isnull().sum()
    high = {str(k): round(float(v), 4) for k, v in null_fractions.items() if v > max_null}
    checks["null_rates_ok"] = not high
    details["null_rates_ok"] = f"High null rates: {high}" if high else f"every column's null fraction <= {max_null:g}"
    if baseline is None and len(df) == 0:
        # A header with no rows passes every column check vacuously; it is no training data.
        checks["row_count_ok"] = False
        details["row_count_ok"] = "no data rows (header only)"
    if baseline is not None:
        expected = baseline["row_count"]
        ratio = len(df) / expected
        checks["row_count_ok"] = 0.5 < ratio < 2.0
        details["row_count"] = f"Expected ~{expected:g}, got {len(df)} (ratio: {ratio:.2f})"
        details["row_count_ok"] = details["row_count"]
        for col in schema["numeric_columns"]:
            if col in numeric and col in baseline["distributions"]:
                d = baseline["distributions"][col]
                values = numeric[col][~np.isnan(numeric[col])]
                psi = seed_psi(d["bins"], d["counts"], values)
                checks[f"drift_{col}"] = psi < max_drift_threshold
                details[f"drift_{col}"] = f"PSI={psi:.4f} (threshold={max_drift_threshold})"
    if "label_column" in schema:
        label = schema["label_column"]
        if label not in df.columns:
            checks["label_diversity"] = False
            details["label_diversity"] = f"label column {label!r} missing"
        else:
            unique = int(df[label].nunique())
            checks["label_diversity"] = unique >= schema["min_classes"]
            details["label_diversity"] = f"Found {unique} unique labels (need {schema['min_classes']})"
    return ValidationResult(all(checks.values()), checks, details, data_source, int(len(df)))


def baseline_stats(df, schema: dict[str, Any], *, bins: int = 10, data_source: str = "data",
                   schema_source: str = "schema") -> dict[str, Any]:
    """Baseline stats in the seed's format from a trusted dataset (reference-quantile bins)."""
    if len(df) == 0:
        raise BadInputError(f"{data_source}: no data rows (header only); a baseline needs data")
    out: dict[str, Any] = {"row_count": int(len(df)), "distributions": {}}
    for col in schema["numeric_columns"]:
        if col not in df.columns:
            continue
        values = numeric_column(df, col, data_source, schema_source)
        values = values[~np.isnan(values)]
        if values.size == 0:
            continue
        edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))
        if edges.size < 2:
            edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
        counts, _ = np.histogram(values, bins=edges)
        out["distributions"][col] = {"bins": [float(e) for e in edges], "counts": [int(c) for c in counts]}
    return out


def load_json(path: str | os.PathLike, what: str) -> Any:
    return read_json(path, what)


def validate_files(data_path: str, schema_path: str, baseline_path: str | None = None, *,
                   max_null_fraction: float = 0.05, max_drift_threshold: float = 0.1) -> ValidationResult:
    schema = parse_schema(load_json(schema_path, "schema"), str(schema_path))
    baseline = parse_baseline(load_json(baseline_path, "baseline stats"), str(baseline_path)) if baseline_path else None
    df = read_table(data_path)
    return validate(df, schema, baseline, max_null_fraction=max_null_fraction, max_drift_threshold=max_drift_threshold,
                    data_source=str(data_path), schema_source=str(schema_path))


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
