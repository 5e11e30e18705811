"""One contract for every data source (backends.base.DataSource), found by scheme as the console
finds it (console/plugins.py data_source): mrc's own store (name@version), files (CSV and
Parquet), s3:// on a real SeaweedFS. The same table, written by pandas, must come back the
same from each: columns in file order, floats, one row per row, the reference as its source;
a reference that names nothing is one line naming it.

Format-specific details (TSV, text columns, duplicate names, relative paths, mlflow:<context>)
are tested in tests/integration/data/test_data_sources.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backends.base import BadInputError, Table
from console.plugins import BUILTIN_DATA, data_source, scheme_of
from tests.support.remote import BUCKET, unique

COLUMNS = ["f0", "f1", "f2", "label"]


@dataclass
class Stored:
    ref: str  # where the table is
    missing: str  # a reference of the same kind that names nothing
    options: dict[str, Any]


@pytest.fixture(scope="module")
def frame():
    import pandas as pd  # ~0.5 s

    rng = np.random.default_rng(7)
    values = rng.normal(size=(40, 3)).round(6)
    df = pd.DataFrame(values, columns=COLUMNS[:3])
    df["label"] = (values[:, 0] > 0).astype(int)
    return df


def _mrc_store(frame, tmp_path: Path, request) -> Stored:
    from console.cli import main

    root = tmp_path / "ws"
    frame.to_csv(tmp_path / "in.csv", index=False)
    assert main(["init", "--workspace", str(root)]) == 0
    assert main(["datasets", "add", "contract@v1", str(tmp_path / "in.csv"), "--label", "label",
                 "--workspace", str(root)]) == 0
    return Stored("contract@v1", "contract@v9", {"workspace": str(root)})


def _csv(frame, tmp_path: Path, request) -> Stored:
    frame.to_csv(tmp_path / "t.csv", index=False)
    return Stored(str(tmp_path / "t.csv"), str(tmp_path / "gone.csv"), {"workspace": str(tmp_path)})


def _parquet(frame, tmp_path: Path, request) -> Stored:
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    return Stored((tmp_path / "t.parquet").as_uri(), (tmp_path / "gone.parquet").as_uri(), {"workspace": str(tmp_path)})


def _s3(frame, tmp_path: Path, request) -> Stored:
    server = request.getfixturevalue("s3_server")
    key = f"{unique('contract-data')}/t.csv"
    server.client().put_object(Bucket=BUCKET, Key=key, Body=frame.to_csv(index=False).encode())
    return Stored(f"s3://{BUCKET}/{key}", f"s3://{BUCKET}/{key}.missing.csv",
                  {"workspace": str(tmp_path), "endpoint_url": server.endpoint})


SOURCES = {"mrc": _mrc_store, "file-csv": _csv, "file-parquet": _parquet, "s3": _s3}


def test_every_builtin_source_is_under_contract():
    assert {name.split("-")[0] for name in SOURCES} == set(BUILTIN_DATA)


@pytest.fixture(params=[pytest.param(name, marks=pytest.mark.integration) if name == "s3" else name  # SeaweedFS
                        for name in sorted(SOURCES)])
def stored(request, frame, tmp_path):
    return SOURCES[request.param](frame, tmp_path, request)


def test_reads_the_table_as_written(stored, frame):
    source = data_source(scheme_of(stored.ref))
    table = source.load(stored.ref, dict(stored.options))
    assert isinstance(table, Table)
    assert table.columns == COLUMNS and table.rows == len(frame)
    assert table.source == stored.ref
    for column in COLUMNS:
        values = table.data[column]
        assert values.ndim == 1 and values.dtype == np.float64, column
        np.testing.assert_allclose(values, frame[column].to_numpy(dtype=float), err_msg=column)


def test_leaves_the_options_it_was_given_as_they_were(stored):
    options = dict(stored.options)
    data_source(scheme_of(stored.ref)).load(stored.ref, options)
    assert options == stored.options


def test_a_reference_to_nothing_is_one_line_naming_it(stored):
    source = data_source(scheme_of(stored.missing))
    with pytest.raises(BadInputError) as refused:
        source.load(stored.missing, dict(stored.options))
    message = str(refused.value)
    assert "\n" not in message and stored.missing.split("/")[-1] in message, message
