"""A CSV, TSV or Parquet file, given as a path or a file:// URI.

pandas (and pyarrow for Parquet) are imported when a file is read, never at start-up. Numeric
columns become float arrays (missing values as NaN), every other column an object array.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from backends.base import BadInputError, Table

PARQUET = (".parquet", ".pq")
TEXT = {".csv": ",", ".tsv": "\t", ".txt": ","}


def local_path(ref: str, options: dict[str, Any]) -> Path:
    """file:///abs/x.csv or a path; a relative path is relative to the workspace root."""
    if ref.lower().startswith("file://"):
        parsed = urlparse(ref)
        if parsed.netloc not in ("", "localhost"):
            raise BadInputError(f"{ref}: a file:// URI must name a local path (file:///path)")
        path = Path(unquote(parsed.path))
    else:
        path = Path(ref).expanduser()
    if not path.is_absolute() and options.get("workspace"):
        path = Path(options["workspace"]) / path
    return path


def read_frame(path: Path, shown: str):
    """The file as a pandas DataFrame; one BadInputError line naming it when it cannot be read."""
    suffix = path.suffix.lower()
    if suffix not in PARQUET and suffix not in TEXT:
        raise BadInputError(f"{shown}: unknown data file type {suffix or '(none)'!r} (.csv, .tsv or .parquet)")
    if not path.exists():
        raise BadInputError(f"{shown}: no such file")
    if not path.is_file():
        raise BadInputError(f"{shown}: not a file")
    if not os.access(path, os.R_OK):
        raise BadInputError(f"{shown}: is not readable")
    import pandas as pd  # pandas: ~0.4 s

    try:
        if suffix in PARQUET:
            try:
                import pyarrow.parquet as pq  # pyarrow: ~0.2 s
            except ImportError:
                raise BadInputError(f"{shown}: reading Parquet needs pyarrow, which is not installed") from None
            names = pq.read_schema(path).names
            if len(set(names)) != len(names):
                dup = next(n for n in names if names.count(n) > 1)
                raise BadInputError(f"{shown}: {dup}: duplicate column name")
            return pd.read_parquet(path)
        with open(path, newline="") as fh:
            import csv

            header = next(csv.reader(fh, delimiter=TEXT[suffix]), None)
        if not header:
            raise BadInputError(f"{shown}: empty file")
        if len(set(header)) != len(header):
            dup = next(n for n in header if header.count(n) > 1)
            raise BadInputError(f"{shown}: {dup}: duplicate column name")
        return pd.read_csv(path, sep=TEXT[suffix])
    except BadInputError:
        raise
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadInputError(f"{shown}: cannot read ({getattr(exc, 'strerror', None) or str(exc).splitlines()[0]})") from None
    except Exception as exc:  # pyarrow and pandas parser errors have their own classes
        raise BadInputError(f"{shown}: cannot read ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None


def frame_to_table(df, source: str) -> Table:
    import numpy as np  # numpy: ~0.08 s
    import pandas as pd

    columns = [str(c) for c in df.columns]
    if len(set(columns)) != len(columns):
        dup = next(c for c in columns if columns.count(c) > 1)
        raise BadInputError(f"{source}: {dup}: duplicate column name")
    if not columns:
        raise BadInputError(f"{source}: no columns")
    data = {}
    for name, col in zip(columns, df.columns):
        series = df[col]
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            data[name] = series.to_numpy(dtype=float, na_value=np.nan)
        else:
            data[name] = series.to_numpy(dtype=object)
    return Table(columns, data, source)


class FileSource:
    def load(self, ref: str, options: dict[str, Any]) -> Table:
        path = local_path(ref, options)
        return frame_to_table(read_frame(path, ref), ref)
