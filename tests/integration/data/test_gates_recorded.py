"""Gates without a test set: the seed's evaluate_promotion on recorded metrics (S3 metrics.json
and production/metrics.json written by plain boto3; MLflow run metrics logged by the plain
client), the checks that need data listed as not run, and approval that needs an override."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import tree_digest
from tests.support.datagates import append_toml, policy_file, seed_bucket, synthetic, train_lr
from tests.support.remote import BUCKET, mlflow_toml, remote_env, s3_toml, unique, write_workspace

pytestmark = pytest.mark.integration  # real SeaweedFS and MLflow servers on 127.0.0.1

SEED = {
    "v1-prod": {"auc_roc": 0.931, "precision": 0.88},
    "v2-better": {"auc_roc": 0.944, "precision": 0.90},
    "v3-below-hard": {"auc_roc": 0.94, "precision": 0.78},  # precision below its hard gate
    "v4-regressed": {"auc_roc": 0.90, "precision": 0.90},  # 3.3% below production: beyond 2%
}
NOT_RUN = ["slices", "significance", "robustness", "sanity"]


@pytest.fixture
def seed_ws(s3_server, tmp_path):
    prefix = unique("seed")
    root = write_workspace(tmp_path / "ws", s3_toml(s3_server.endpoint, prefix))
    seed_bucket(s3_server.client(), BUCKET, prefix, "fraud", {v: {"metrics": m} for v, m in SEED.items()},
                production="v1-prod", candidate="v2-better")
    policy = policy_file(tmp_path / "gate_config.json", slices={"column": "region"})
    return root, policy


def _gate(mrc, root, version, policy):
    result = mrc("gate", "fraud", version, "--policy", str(policy), "--json", "--workspace", str(root), env=remote_env())
    assert result.returncode in (0, 1), result.stderr
    return result


def test_seed_semantics_on_recorded_metrics_and_data_checks_not_run(seed_ws, mrc):
    root, policy = seed_ws
    good = _gate(mrc, root, "v2-better", policy)
    assert good.returncode == 0, good.stdout
    report = good.json()
    assert (report["passed"], report["complete"], report["baseline"]) == (True, False, "v1-prod")
    assert report["not_run"] == NOT_RUN
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["hard_gate_auc_roc"]["status"] == "passed" and by_name["hard_gate_auc_roc"]["value"] == 0.944
    assert by_name["relative_gate_auc_roc"]["baseline_value"] == 0.931  # production/metrics.json
    for name in NOT_RUN:
        assert (by_name[name]["status"], by_name[name]["passed"]) == ("not_run", None)
        assert by_name[name]["detail"].startswith("not run: no test set")

    hard = _gate(mrc, root, "v3-below-hard", policy)
    assert hard.returncode == 1
    assert [c["name"] for c in hard.json()["checks"] if c["status"] == "failed"] == ["hard_gate_precision"]

    regressed = _gate(mrc, root, "v4-regressed", policy)
    assert regressed.returncode == 1
    failed = [c for c in regressed.json()["checks"] if c["status"] == "failed"]
    assert [c["name"] for c in failed] == ["relative_gate_auc_roc"]
    assert failed[0]["extra"]["regression_pct"] == pytest.approx(3.33, abs=0.01)

    human = mrc("gate", "fraud", "v2-better", "--policy", str(policy), "--workspace", str(root), env=remote_env())
    assert human.returncode == 0
    assert "PASSED (3/3 checks pass; 4 not run: no test set" in human.stdout
    assert human.stdout.count("not run") >= 5


def test_the_default_policy_needs_its_metrics_one_line(seed_ws, mrc):
    """The built-in policy gates f1 too; the seed's metrics.json has none: exit 2, one line."""
    root, _ = seed_ws
    result = mrc("gate", "fraud", "v2-better", "--workspace", str(root), env=remote_env())
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "fraud version v2-better recorded metrics: f1: missing" in result.stderr


def test_approval_needs_an_override_when_checks_were_not_run(seed_ws, mrc, s3_server):
    root, policy = seed_ws
    before = tree_digest(root)
    refused = mrc("approve", "fraud", "v2-better", "--reason", "metrics look fine", "--policy", str(policy),
                  "--workspace", str(root), env=remote_env())
    assert refused.returncode == 1
    assert "4 checks not run (slices, significance, robustness, sanity)" in refused.stderr
    assert "--override" in refused.stderr
    assert tree_digest(root) == before  # no audit event, no approval
    versions = {v["version"]: v for v in mrc("versions", "fraud", "--json", "--workspace", str(root),
                                            env=remote_env()).json()["versions"]}
    assert versions["v2-better"]["approval"]["status"] == "pending"

    ok = mrc("approve", "fraud", "v2-better", "--override", "--reason", "no test set yet: recorded metrics reviewed",
             "--policy", str(policy), "--json", "--workspace", str(root), env=remote_env())
    assert ok.returncode == 0, ok.stderr
    assert ok.json()["approval"]["override"] is True and ok.json()["checks_not_run"] == NOT_RUN
    events = mrc("audit", "--json", "--workspace", str(root), env=remote_env()).json()["events"]
    event = events[-1]
    assert (event["action"], event["version"]) == ("approve", "v2-better")
    assert event["details"]["checks_not_run"] == NOT_RUN
    assert event["details"]["override"] is True and event["details"]["gate_passed"] is True
    assert event["details"]["gate_complete"] is False and len(event["details"]["gate_report_sha256"]) == 64


def test_failed_gates_still_refuse_and_name_the_failure(seed_ws, mrc):
    root, policy = seed_ws
    result = mrc("approve", "fraud", "v4-regressed", "--reason", "x", "--policy", str(policy),
                 "--workspace", str(root), env=remote_env())
    assert result.returncode == 1 and "gates failed (relative_gate_auc_roc)" in result.stderr


def test_report_without_a_test_set(seed_ws, mrc, tmp_path):
    root, policy = seed_ws
    md, page = tmp_path / "r.md", tmp_path / "r.html"
    result = mrc("report", "fraud", "v2-better", "--policy", str(policy), "--md", str(md), "--html", str(page),
                 "--json", "--workspace", str(root), env=remote_env())
    assert result.returncode == 0, result.stderr
    assert result.json()["gate"]["not_run"] == NOT_RUN
    text = md.read_text()
    assert "3 of 3 checks pass, 4 not run (no test set" in text
    assert "### Checks not run" in text and "- `significance`: not run: no test set" in text
    assert "| auc_roc | 0.944 | 0.931 | +0.0130 | – |" in text  # recorded metrics, no interval
    assert "Data drift: not computed" in text  # the seed's metadata names no readable data
    html = page.read_text()
    assert "not run" in html and "0.944" in html


def test_mlflow_run_metrics_of_a_plain_sklearn_model(mlflow_server, tmp_path, mrc):
    """A model logged by the plain MLflow client (mlflow.sklearn), never by mrc."""
    import mlflow
    from mlflow.tracking import MlflowClient

    name = unique("churn")
    df = synthetic(400, seed=7)
    mlflow.set_tracking_uri(mlflow_server.url)
    client = MlflowClient(mlflow_server.url)
    experiment = client.create_experiment(unique("exp"))
    for rows, auc in ((slice(0, 150), 0.90), (slice(None), 0.93)):
        with mlflow.start_run(experiment_id=experiment):
            model = train_lr(df, rows=rows)
            mlflow.log_metrics({"auc_roc": auc, "precision": 0.86})
            mlflow.sklearn.log_model(model, name="model", registered_model_name=name)
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")
    root = write_workspace(tmp_path / "ws", mlflow_toml(mlflow_server.url))
    policy = policy_file(tmp_path / "policy.json")
    result = mrc("gate", name, "2", "--policy", str(policy), "--json", "--workspace", str(root), env=remote_env())
    assert result.returncode == 0, result.stderr
    report = result.json()
    assert report["baseline"] == "1" and report["passed"] is True and report["complete"] is False
    assert {c["name"]: c["baseline_value"] for c in report["checks"]}["relative_gate_auc_roc"] == 0.90
    assert report["not_run"] == ["significance", "robustness", "sanity"]
    refused = mrc("approve", name, "2", "--reason", "r", "--policy", str(policy), "--workspace", str(root),
                  env=remote_env())
    assert refused.returncode == 1 and "3 checks not run" in refused.stderr
    assert client.get_model_version(name, "2").tags.get("mrc.approval.status") in (None, "pending")
    assert not (tmp_path / "mlruns").exists() and not (root / "mlruns").exists()
