"""`mrc gate MODEL VERSION` from recorded metrics on an MLflow registry, beside a bare script.

    .venv/bin/python tests/bench/bench_gate_mlflow.py [--repeat 9]

Starts its own `mlflow server` on 127.0.0.1 (stopped at the end), fills one registered model with
two versions through the plain MLflow client (runs with the metrics a team logs; champion on
version 1, challenger on version 2), then times, as fresh processes and interleaved round by
round:
  1. `python -m console.cli gate MODEL 2 --json` (mrc's gate without a test set: the seed's
     evaluate_promotion on the recorded metrics, data checks listed as not run);
  2. `python bare_gate.py` — the least a team's script does for the same verdict: MlflowClient,
     read production's alias and both versions' runs, the seed's threshold comparison, print JSON.
Prints the medians and the ratio (target ≤ 1.2×) and checks both reach the same verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support import servers  # noqa: E402
from tests.support.remote import mlflow_toml, remote_env, write_workspace  # noqa: E402

BARE = textwrap.dedent("""
    import json, sys
    from mlflow.tracking import MlflowClient

    uri, name, version, policy_path = sys.argv[1:5]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    production = client.get_model_version_by_alias(name, "champion")
    candidate = client.get_model_version(name, version)
    cand = client.get_run(candidate.run_id).data.metrics
    base = client.get_run(production.run_id).data.metrics
    config = json.load(open(policy_path))
    checks = {}
    for metric, threshold in config.get("hard_gates", {}).items():
        higher = config["metric_directions"][metric] == "higher"
        checks[f"hard_gate_{metric}"] = cand[metric] >= threshold if higher else cand[metric] <= threshold
    for metric, tolerance in config.get("relative_gates", {}).items():
        higher = config["metric_directions"][metric] == "higher"
        b, c = base[metric], cand[metric]
        regression = ((b - c) if higher else (c - b)) / b if b != 0 else 0
        checks[f"relative_gate_{metric}"] = regression < tolerance
    if "p99_latency_ms" in cand and "max_p99_latency_ms" in config:
        checks["latency_gate"] = cand["p99_latency_ms"] <= config["max_p99_latency_ms"]
    if "model_size_mb" in cand and "max_model_size_mb" in config:
        checks["size_gate"] = cand["model_size_mb"] <= config["max_model_size_mb"]
    passed = all(checks.values())
    print(json.dumps({"candidate": version, "baseline": production.version, "checks": checks, "passed": passed}))
    sys.exit(0 if passed else 1)
""")

METRICS = {
    "1": {"auc_roc": 0.962, "precision": 0.91, "recall": 0.88, "f1": 0.894, "p99_latency_ms": 18.0, "model_size_mb": 4.2},
    "2": {"auc_roc": 0.968, "precision": 0.92, "recall": 0.89, "f1": 0.905, "p99_latency_ms": 17.0, "model_size_mb": 4.3},
}


def fill(url: str, name: str) -> None:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(url)
    experiment = client.create_experiment(f"{name}-runs")
    client.create_registered_model(name)
    for version, metrics in METRICS.items():
        run_id = client.create_run(experiment, tags={"mlflow.source.git.commit": f"{int(version):040x}"}).info.run_id
        client.log_batch(run_id, metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
                         params=[Param("C", str(0.5 * int(version)))])
        client.log_text(run_id, "weights", "model/weights.txt")
        client.set_terminated(run_id)
        client.create_model_version(name, f"mlflow-artifacts:/{experiment}/{run_id}/artifacts/model", run_id=run_id)
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")


def timed(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    return time.perf_counter() - start, proc


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"  # the figures are the output
    work = Path(tempfile.mkdtemp(prefix="mrc-bench-gate-"))
    (work / "mlflow").mkdir()
    server = servers.MlflowServer(work / "mlflow")
    try:
        server.start()
        name = "bench-gate"
        fill(server.url, name)
        ws = write_workspace(work / "ws", mlflow_toml(server.url))
        bare = work / "bare_gate.py"
        bare.write_text(BARE)
        env = dict(os.environ, **remote_env(), PYTHONPATH=str(REPO), MRC_ACTOR="bench")
        env.pop("MRC_WORKSPACE", None)
        policy = str(REPO / "assets" / "gate_policy.json")
        mrc_argv = [sys.executable, "-m", "console.cli", "gate", name, "2", "--json", "--workspace", str(ws)]
        bare_argv = [sys.executable, str(bare), server.url, name, "2", policy]
        cwd = str(work)
        # warm the page cache and check both agree before timing
        _, first_mrc = timed(mrc_argv, env, str(REPO))
        _, first_bare = timed(bare_argv, env, cwd)
        assert first_mrc.returncode == 0, first_mrc.stderr
        assert first_bare.returncode == 0, first_bare.stderr
        mrc_report, bare_report = json.loads(first_mrc.stdout), json.loads(first_bare.stdout)
        seed_names = set(bare_report["checks"])
        mine = {c["name"]: c["passed"] for c in mrc_report["checks"] if c["name"] in seed_names}
        assert mine == bare_report["checks"] and mrc_report["passed"] == bare_report["passed"], (mine, bare_report)
        not_run = [c["name"] for c in mrc_report["checks"] if c.get("status") == "not_run"]
        mrc_times, bare_times = [], []
        load_before = os.getloadavg()[0]
        for _ in range(args.repeat):
            t, proc = timed(mrc_argv, env, str(REPO))
            assert proc.returncode == 0, proc.stderr
            mrc_times.append(t)
            t, proc = timed(bare_argv, env, cwd)
            assert proc.returncode == 0, proc.stderr
            bare_times.append(t)
        load_after = os.getloadavg()[0]
        m, b = statistics.median(mrc_times), statistics.median(bare_times)
        print(f"mlflow server at {server.url}; {args.repeat} interleaved rounds, "
              f"load average {load_before:.1f} -> {load_after:.1f}")
        print(f"  verdict: both {'PASSED' if bare_report['passed'] else 'FAILED'} on {sorted(seed_names)}; "
              f"mrc also lists {len(not_run)} checks not run")
        print(f"  mrc gate (fresh process)   median {m * 1000:7.0f} ms   min {min(mrc_times) * 1000:7.0f} ms")
        print(f"  bare MLflow-client script  median {b * 1000:7.0f} ms   min {min(bare_times) * 1000:7.0f} ms")
        print(f"  ratio mrc / bare: {m / b:.2f}x (median), {min(mrc_times) / min(bare_times):.2f}x (min); target <= 1.2x")
        return 0
    finally:
        server.cleanup()
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
