"""Test, golden and reference data where teams keep it: CSV/TSV/Parquet paths, file:// URIs,
s3:// objects on a real SeaweedFS, mrc's own name@version, and mlflow:<context> references."""

from __future__ import annotations

import io

import numpy as np
import pytest

from backends.base import BadInputError
from tests.support.datagates import put, synthetic
from tests.support.remote import BUCKET, unique


def _workspace(tmp_path, extra: str = ""):
    from console.workspace import Workspace

    root = tmp_path / "ws"
    Workspace.init(root)
    if extra:
        (root / "mrc.toml").write_text((root / "mrc.toml").read_text() + extra)
    return Workspace.open(root)


def test_csv_tsv_and_parquet_read_alike_numbers_as_floats_text_as_objects(tmp_path):
    df = synthetic(50, seed=1)
    df.loc[3, "f1"] = np.nan
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_csv(tmp_path / "t.tsv", index=False, sep="\t")
    df.to_parquet(tmp_path / "t.parquet", index=False)
    ws = _workspace(tmp_path)
    for ref in (str(tmp_path / "t.csv"), str(tmp_path / "t.tsv"), (tmp_path / "t.parquet").as_uri()):
        table = ws.load_table(ref)
        assert table.columns == ["f0", "f1", "f2", "f3", "region", "label"], ref
        assert table.rows == 50 and table.source == ref
        assert table.data["f0"].dtype == np.float64 and table.data["label"].dtype == np.float64
        assert table.data["region"].dtype == object and set(table.data["region"]) == {"north", "south"}
        assert np.isnan(table.data["f1"][3]) and np.allclose(table.data["f0"], df["f0"].to_numpy())


def test_a_relative_path_is_read_from_the_workspace_root(tmp_path):
    ws = _workspace(tmp_path)
    synthetic(10, seed=2).to_csv(ws.root / "holdout.csv", index=False)
    assert ws.load_table("holdout.csv").rows == 10


@pytest.mark.parametrize("name, body, fragment", [
    ("dup.csv", "a,b,a\n1,2,3\n", "a: duplicate column name"),
    ("empty.csv", "", "empty file"),
    ("garbage.parquet", "this is not parquet", "cannot read"),
    ("data.xlsx", "x", "unknown data file type '.xlsx'"),
])
def test_unreadable_files_are_one_line_naming_the_file(tmp_path, name, body, fragment):
    ws = _workspace(tmp_path)
    path = tmp_path / name
    path.write_text(body)
    with pytest.raises(BadInputError) as err:
        ws.load_table(str(path))
    message = str(err.value)
    assert fragment in message and str(path) in message and "\n" not in message


def test_duplicate_parquet_columns_are_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table([[1.0], [2.0]], names=["x", "x"]), tmp_path / "d.parquet")
    with pytest.raises(BadInputError, match="x: duplicate column name"):
        _workspace(tmp_path).load_table(str(tmp_path / "d.parquet"))


def test_missing_files_and_unknown_schemes(tmp_path):
    ws = _workspace(tmp_path)
    with pytest.raises(BadInputError, match="nope.csv: no such file"):
        ws.load_table(str(tmp_path / "nope.csv"))
    with pytest.raises(BadInputError, match="unknown data source 'ftp'"):
        ws.load_table("ftp://example.invalid/t.csv")
    with pytest.raises(BadInputError, match="a file:// URI must name a local path"):
        ws.load_table("file://otherhost/t.csv")


def test_mrc_datasets_by_name_at_version(tmp_path, mrc):
    root = tmp_path / "ws"
    assert mrc("init", "--workspace", str(root)).returncode == 0
    from console.workspace import Workspace

    ws = Workspace.open(root)
    data = np.column_stack([np.arange(5.0), np.arange(5.0) % 2])
    ws.datasets().add("holdout", "v1", ["x", "label"], data, label="label")
    table = ws.load_table("holdout@v1")
    assert table.columns == ["x", "label"] and table.data["x"].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(BadInputError, match="unknown dataset 'holdout@v2'"):
        ws.load_table("holdout@v2")


def test_s3_objects_on_the_configured_endpoint(s3_server, tmp_path):
    """[data] names no endpoint: the s3 registry's endpoint_url is used."""
    from console.workspace import Workspace

    root = _workspace(tmp_path).root
    (root / "mrc.toml").write_text(f'[registry]\nbackend = "s3"\nbucket = "{BUCKET}"\n'
                                   f'endpoint_url = "{s3_server.endpoint}"\nprefix = "{unique("d")}"\n')
    ws = Workspace.open(root)
    client = s3_server.client()
    df = synthetic(40, seed=3)
    key = unique("data") + "/test.parquet"
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    put(client, BUCKET, key, buf.getvalue())
    put(client, BUCKET, key.replace(".parquet", ".csv"), df.to_csv(index=False))
    for ref in (f"s3://{BUCKET}/{key}", f"s3://{BUCKET}/{key.replace('.parquet', '.csv')}"):
        table = ws.load_table(ref)
        assert table.rows == 40 and table.source == ref
        assert np.allclose(table.data["f2"], df["f2"].to_numpy())
    with pytest.raises(BadInputError, match=r"s3://.*/missing\.csv: no such object"):
        ws.load_table(f"s3://{BUCKET}/{unique('x')}/missing.csv")
    with pytest.raises(BadInputError, match="expected s3://bucket/key"):
        ws.load_table("s3://only-a-bucket")


def test_s3_endpoint_from_the_data_table(s3_server, tmp_path):
    ws = _workspace(tmp_path, f'\n[data]\nendpoint_url = "{s3_server.endpoint}"\n')
    key = unique("data") + "/ref.csv"
    put(s3_server.client(), BUCKET, key, "a,label\n1,0\n2,1\n")
    assert ws.load_table(f"s3://{BUCKET}/{key}").data["a"].tolist() == [1.0, 2.0]


def test_mlflow_training_context_falls_back_to_the_lineage_data_uri(tmp_path):
    """A registry without dataset_uri (the local one): mlflow:training is the version's data_uri."""
    from backends.base import Lineage

    ws = _workspace(tmp_path)
    ws.local().create_tables()
    synthetic(30, seed=4).to_csv(tmp_path / "train.csv", index=False)
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(b"weights")
    ws.registry().register_version("m", str(artifact), metrics={}, lineage=Lineage(data_uri=str(tmp_path / "train.csv")))
    assert ws.load_table("mlflow:training", model="m", version="1").rows == 30
    with pytest.raises(BadInputError, match="cannot name a run's testing dataset"):
        ws.load_table("mlflow:testing", model="m", version="1")
    with pytest.raises(BadInputError, match="needs a model version"):
        ws.load_table("mlflow:training")
