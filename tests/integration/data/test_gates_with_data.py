"""With a test set: both versions' models loaded through the format seam (here a third-party
format installed as an `mrc.formats` entry point, TorchScript built by plain torch) and scored
on data read through the data seam: a CSV path, a Parquet path, an s3:// object on SeaweedFS.
Bad inputs: one line naming the file/model/version/field, exit 2, nothing written."""

from __future__ import annotations

import io

import pytest

from tests.support.cli import tree_digest
from tests.support.datagates import (append_toml, plugin_env, policy_file, put, seed_bucket, synthetic,
                                      torchscript_bytes, train_lr)
from tests.support.remote import BUCKET, s3_toml, unique, write_workspace

pytestmark = pytest.mark.integration  # real SeaweedFS on 127.0.0.1


@pytest.fixture(scope="module")
def models():
    train = synthetic(1500, seed=11)
    production = train_lr(train, rows=slice(0, 300))  # less data: a bit worse, similar scores
    candidate = train_lr(train)
    return torchscript_bytes(production), torchscript_bytes(candidate)


@pytest.fixture
def data_ws(s3_server, tmp_path, models):
    prefix = unique("data")
    root = write_workspace(tmp_path / "ws", s3_toml(s3_server.endpoint, prefix))
    seed_bucket(s3_server.client(), BUCKET, prefix, "fraud", {
        "v1": {"metrics": {"auc_roc": 0.9, "precision": 0.85}, "model": models[0]},
        "v2": {"metrics": {"auc_roc": 0.9, "precision": 0.85}, "model": models[1]},
    }, production="v1", candidate="v2")
    policy = policy_file(tmp_path / "gate_config.json",
                         slices={"column": "region", "metrics": ["accuracy"], "min_rows": 20})
    return root, policy, prefix


def _configure(root, test_data: str, **extra):
    lines = "".join(f'{k} = "{v}"\n' for k, v in extra.items())
    append_toml(root, f'[models.fraud]\nformat = "dg-torchscript"\nlabel = "label"\ntest_data = "{test_data}"\n{lines}')


def _gate(mrc, root, policy, env, version="v2"):
    return mrc("gate", "fraud", version, "--policy", str(policy), "--json", "--workspace", str(root), env=env)


def _assert_full(result):
    assert result.returncode == 0, result.stderr + result.stdout
    report = result.json()
    assert report["complete"] is True and report["not_run"] == [] and report["passed"] is True
    kinds = {c["kind"] for c in report["checks"]}
    assert {"hard", "relative", "slice", "significance", "robustness", "sanity"} <= kinds
    slices = [c for c in report["checks"] if c["kind"] == "slice"]
    assert sorted(c["extra"]["slice"] for c in slices) == ["north", "south"]
    significance = {c["name"]: c for c in report["checks"] if c["kind"] == "significance"}
    assert set(significance) == {"significance_accuracy", "significance_auc_roc", "significance_f1"}
    auc = {c["name"]: c for c in report["checks"]}["hard_gate_auc_roc"]["value"]
    assert 0.85 < auc < 1.0  # computed on the test set, not the recorded 0.9
    return report


def test_full_gate_on_a_csv_a_parquet_and_an_s3_test_set(data_ws, mrc, format_plugin, s3_server, tmp_path):
    root, policy, prefix = data_ws
    env = plugin_env(format_plugin)
    test = synthetic(600, seed=12)
    test.to_csv(tmp_path / "test.csv", index=False)
    test.to_parquet(tmp_path / "test.parquet", index=False)
    buf = io.BytesIO()
    test.to_parquet(buf, index=False)
    key = f"{prefix}/datasets/test.parquet"
    put(s3_server.client(), BUCKET, key, buf.getvalue())
    toml = (root / "mrc.toml").read_text()
    reports = []
    for ref in (str(tmp_path / "test.csv"), str(tmp_path / "test.parquet"), f"s3://{BUCKET}/{key}"):
        (root / "mrc.toml").write_text(toml)
        _configure(root, ref, gate_policy=str(policy))  # the workspace's own policy: approving by it is no override
        reports.append(_assert_full(_gate(mrc, root, policy, env)))
    # the same rows whichever way they were read: the same verdicts and values
    values = [[(c["name"], c["value"]) for c in r["checks"]] for r in reports]
    assert values[0] == values[1] == values[2]
    approved = mrc("approve", "fraud", "v2", "--reason", "complete gate report", "--policy", str(policy), "--json",
                   "--workspace", str(root), env=env)
    assert approved.returncode == 0, approved.stderr
    assert approved.json()["approval"]["override"] is False and approved.json()["checks_not_run"] == []


def _bad(mrc, root, policy, env, fragment, s3_server=None, prefix=None):
    before = tree_digest(root)
    objects = _keys(s3_server, prefix) if s3_server else None
    for args in (("gate", "fraud", "v2"), ("approve", "fraud", "v2", "--reason", "r")):
        result = mrc(*args, "--policy", str(policy), "--workspace", str(root), env=env)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        line = result.stderr.strip()
        assert "\n" not in line and fragment in line, line
    assert tree_digest(root) == before
    if s3_server:
        assert _keys(s3_server, prefix) == objects


def _keys(s3_server, prefix):
    listed = s3_server.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/")
    return sorted((o["Key"], o["ETag"]) for o in listed.get("Contents", []))


def test_bad_test_sets_are_one_line_exit_2_and_nothing_written(data_ws, mrc, format_plugin, s3_server, tmp_path):
    root, policy, prefix = data_ws
    env = plugin_env(format_plugin)
    toml = (root / "mrc.toml").read_text()
    test = synthetic(100, seed=13)
    cases = []
    test.drop(columns=["label"]).to_csv(tmp_path / "nolabel.csv", index=False)
    cases.append((str(tmp_path / "nolabel.csv"), f"{tmp_path / 'nolabel.csv'}: label: no label column"))
    test.drop(columns=["f2"]).to_csv(tmp_path / "nof2.csv", index=False)
    cases.append((str(tmp_path / "nof2.csv"), f"fraud version v2: feature 'f2' is missing from {tmp_path / 'nof2.csv'}"))
    cases.append((f"s3://{BUCKET}/{prefix}/nowhere/test.csv", f"s3://{BUCKET}/{prefix}/nowhere/test.csv: no such object"))
    cases.append(("ftp://example.invalid/test.csv", "unknown data source 'ftp'"))
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 but not really")
    cases.append((str(tmp_path / "broken.parquet"), f"{tmp_path / 'broken.parquet'}: cannot read"))
    (tmp_path / "folder.csv").mkdir()
    cases.append((str(tmp_path / "folder.csv"), f"{tmp_path / 'folder.csv'}: not a file"))
    text = test.copy()
    text["f1"] = "low"
    text.to_csv(tmp_path / "text.csv", index=False)
    cases.append((str(tmp_path / "text.csv"), f"{tmp_path / 'text.csv'}: f1: a feature is not numeric"))
    for ref, fragment in cases:
        (root / "mrc.toml").write_text(toml)
        _configure(root, ref)
        _bad(mrc, root, policy, env, fragment, s3_server, prefix)


def test_a_model_format_nobody_installed_is_one_line(data_ws, mrc, format_plugin, tmp_path):
    root, policy, _ = data_ws
    synthetic(50, seed=14).to_csv(tmp_path / "t.csv", index=False)
    append_toml(root, f'[models.fraud]\nformat = "no-such-format"\ntest_data = "{tmp_path / "t.csv"}"\n')
    _bad(mrc, root, policy, plugin_env(format_plugin), "unknown model format 'no-such-format'")
