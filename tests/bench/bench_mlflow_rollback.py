"""`mrc rollback` on an MLflow registry as a fresh process, beside bare scripts doing the same work.

    .venv/bin/python tests/bench/bench_mlflow_rollback.py [--processes 7]

Starts its own `mlflow server` (sqlite, 127.0.0.1) through tests/support/servers.py and stops it.
Each trial, interleaved so machine load hits all alike:
  - mrc:        `python -m console.cli rollback m --expect A --to B` (reads aliases, the ledger,
                the target version; claims ledger entry N+1; sets the alias; re-reads; marks applied;
                audit append);
  - bare client: a script with the plain MlflowClient doing the same reads and conditional write
                (get model, get version, search the ledger, create the ledger experiment, set alias);
  - bare REST:  the same calls over urllib, no mlflow import: the floor for any Python client.
Prints medians, p95 and the ratios; the load average is printed because the box is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support import servers  # noqa: E402
from tests.support.remote import mlflow_toml, remote_env, write_workspace  # noqa: E402

BARE_CLIENT = textwrap.dedent("""
    import sys, uuid
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient
    uri, model, to = sys.argv[1:4]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    seen = client.get_registered_model(model).aliases.get("champion")
    client.get_model_version(model, to)
    prefix = f"bare-ledger/{model}/"
    seq = len(client.search_experiments(view_type=ViewType.ALL, filter_string=f"name LIKE '{prefix}%'")) + 1
    client.create_experiment(f"{prefix}{seq:010d}", tags={"from": seen or "", "to": to, "id": uuid.uuid4().hex})
    client.set_registered_model_alias(model, "champion", to)
    print(seen, "->", to)
""")

BARE_REST = textwrap.dedent("""
    import json, sys, urllib.parse, urllib.request, uuid
    uri, model, to = sys.argv[1:4]
    api = uri + "/api/2.0/mlflow/"
    def call(method, endpoint, body):
        if method == "GET":
            req = urllib.request.Request(api + endpoint + "?" + urllib.parse.urlencode(body))
        else:
            req = urllib.request.Request(api + endpoint, data=json.dumps(body).encode(), method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read() or b"{}")
    rm = call("GET", "registered-models/get", {"name": model})["registered_model"]
    seen = {a["alias"]: a["version"] for a in rm.get("aliases", [])}.get("champion")
    call("GET", "model-versions/get", {"name": model, "version": to})
    prefix = f"bare-rest/{model}/"
    found = call("POST", "experiments/search", {"view_type": "ALL", "max_results": 1000,
                                               "filter": f"name LIKE '{prefix}%'"}).get("experiments", [])
    call("POST", "experiments/create", {"name": f"{prefix}{len(found) + 1:010d}",
                                        "tags": [{"key": "to", "value": to}, {"key": "id", "value": uuid.uuid4().hex}]})
    call("POST", "registered-models/alias", {"name": model, "alias": "champion", "version": to})
    print(seen, "->", to)
""")


def stats(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"median {statistics.median(samples) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   (n={len(samples)})"


def timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO))
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} … failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=7)
    args = parser.parse_args()
    os.environ.update(remote_env())
    os.environ.pop("MLFLOW_TRACKING_URI", None)

    from backends.base import PRODUCTION, Approval, Lineage
    from backends.mlflow.registry import MlflowRegistry

    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"on {os.cpu_count()} cores", flush=True)
    server = servers.MlflowServer().start()
    try:
        work = Path(tempfile.mkdtemp(prefix="mrc-bench-mlflow-"))
        root = write_workspace(work / "ws", mlflow_toml(server.url))
        registry = MlflowRegistry(server.url)
        artifact = work / "m.pt"
        artifact.write_bytes(b"weights" * 1000)
        model = f"m-{uuid.uuid4().hex[:6]}"
        for _ in range(2):
            version = registry.register_version(model, str(artifact), metrics={"auc_roc": 0.9}, lineage=Lineage()).version
            registry.set_approval(model, version, Approval("approved", "bench", reason="bench"), expected_status="pending")
        registry.move_pointer(model, PRODUCTION, expected=None, new="1", actor="bench")
        registry.move_pointer(model, PRODUCTION, expected="1", new="2", actor="bench")
        bare_client, bare_rest = work / "bare_client.py", work / "bare_rest.py"
        bare_client.write_text(BARE_CLIENT)
        bare_rest.write_text(BARE_REST)
        env = {**os.environ, "PYTHONPATH": str(REPO), "MRC_ACTOR": "bench"}
        mrc_times, client_times, rest_times = [], [], []
        for i in range(args.processes):
            seen, target = ("2", "1") if i % 2 == 0 else ("1", "2")
            mrc_times.append(timed([sys.executable, "-m", "console.cli", "rollback", model, "--expect", seen,
                                    "--to", target, "--reason", "bench", "--workspace", str(root)], env))
            client_times.append(timed([sys.executable, str(bare_client), server.url, model, target], env))
            rest_times.append(timed([sys.executable, str(bare_rest), server.url, model, target], env))
        load = os.getloadavg()
        print(f"mlflow server {server.url}, {args.processes} fresh processes each, interleaved")
        print(f"  mrc rollback (REST path)         {stats(mrc_times)}")
        print(f"  bare MlflowClient script         {stats(client_times)}")
        print(f"  bare urllib REST script          {stats(rest_times)}")
        m = statistics.median(mrc_times)
        print(f"  ratio mrc / bare MlflowClient    {m / statistics.median(client_times):5.2f}x")
        print(f"  ratio mrc / bare REST            {m / statistics.median(rest_times):5.2f}x")
        print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        history = registry.pointer_history(model, PRODUCTION)
        print(f"  (production ledger at the end: {len([h for h in history if h.seq])} mrc moves)")
    finally:
        server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
