"""`mrc gate MODEL VERSION` from recorded metrics on an MLflow registry (no test set), as a fresh
process, beside a bare script that reads the same two versions' runs through the MLflow client
and applies the seed's gates, in the same run (issue 10: target ≤ 1.2×).

    .venv/bin/python tests/datagates/bench_gate_recorded.py [--runs 7]

Starts the tests' MLflow server on 127.0.0.1, fills it with the plain client, stops it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

BARE = """
import json, sys
from mlflow.tracking import MlflowClient
url, name, policy_path = sys.argv[1:4]
client = MlflowClient(url)
model = client.get_registered_model(name)
prod = client.get_model_version_by_alias(name, "champion")
cand = client.get_model_version(name, "2")
base_m = client.get_run(prod.run_id).data.metrics
cand_m = client.get_run(cand.run_id).data.metrics
policy = json.load(open(policy_path))
ok = True
for m, t in policy["hard_gates"].items():
    ok &= cand_m[m] >= t if policy["metric_directions"][m] == "higher" else cand_m[m] <= t
for m, tol in policy["relative_gates"].items():
    reg = (base_m[m] - cand_m[m]) / base_m[m] if base_m[m] else 0.0
    ok &= reg < tol
print(json.dumps({"passed": bool(ok)}))
"""


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO))
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} … failed: {proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    from mlflow.tracking import MlflowClient
    from mlflow.entities import Metric

    from tests.remote import servers
    from tests.remote.fixtures import mlflow_toml, write_workspace

    server = servers.MlflowServer().start()
    try:
        tmp = Path(tempfile.mkdtemp(prefix="mrc-bench-gate-"))
        client = MlflowClient(server.url)
        experiment = client.create_experiment("bench")
        client.create_registered_model("bench")
        for auc in (0.90, 0.91):
            run = client.create_run(experiment).info.run_id
            client.log_batch(run, metrics=[Metric("auc_roc", auc, 0, 0), Metric("precision", 0.86, 0, 0)])
            client.set_terminated(run)
            client.create_model_version("bench", f"runs:/{run}/model", run_id=run)
        client.set_registered_model_alias("bench", "champion", "1")
        root = write_workspace(tmp / "ws", mlflow_toml(server.url))
        policy = tmp / "policy.json"
        policy.write_text(json.dumps({"metric_directions": {"auc_roc": "higher", "precision": "higher"},
                                      "hard_gates": {"auc_roc": 0.85, "precision": 0.80},
                                      "relative_gates": {"auc_roc": 0.02}}))
        (tmp / "bare.py").write_text(BARE)
        env = dict(os.environ, PYTHONPATH=str(REPO), MRC_ACTOR="bench")
        bare, gate = [], []
        for _ in range(args.runs):  # interleaved so that machine noise hits both alike
            bare.append(timed([sys.executable, str(tmp / "bare.py"), server.url, "bench", str(policy)], env))
            gate.append(timed([sys.executable, "-m", "console.cli", "gate", "bench", "2", "--policy", str(policy),
                               "--json", "--workspace", str(root)], env))
        b, g = statistics.median(bare), statistics.median(gate)
        print(f"bare MLflow-client script  median {b * 1000:7.1f} ms  (min {min(bare) * 1000:.1f})")
        print(f"mrc gate (recorded)        median {g * 1000:7.1f} ms  (min {min(gate) * 1000:.1f})")
        print(f"ratio {g / b:.2f}x (target <= 1.2x)")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
