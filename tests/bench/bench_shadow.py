"""Shadow traffic adds no latency to served requests: served p99 with and without mirroring, in
the same run.

    .venv/bin/python tests/bench/bench_shadow.py [--requests 4000] [--block 20] [--rate 100]

Builds a workspace (`mrc init`) with two TorchScript classifiers trained here with plain torch,
serves both behind mrc's router on 127.0.0.1 (production takes all traffic), then sends
traffic (Poisson arrivals at --rate, as production traffic arrives; --rate 0: back to back, a
saturated router) in alternating blocks: mirroring off, mirroring every request to
the candidate (sample 1), off, on … so that a machine whose load drifts during the run loads
both arms alike. Prints each arm's served p50/p99 at the client, the ratio (target <= 1.05x),
and the mirror's counters (every copy answered or dropped, none waited for). Stops everything.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

MODEL, PRODUCTION, CANDIDATE = "bench", "1", "2"


def train_scripted(X, y, seed: int, steps: int):
    import torch

    class Net(torch.nn.Module):
        def __init__(self, mean, std):
            super().__init__()
            self.register_buffer("mean", mean)
            self.register_buffer("std", std)
            self.net = torch.nn.Sequential(torch.nn.Linear(len(mean), 16), torch.nn.ReLU(), torch.nn.Linear(16, 1),
                                           torch.nn.Sigmoid())

        def forward(self, x):
            return self.net((x - self.mean) / self.std).squeeze(-1)

    torch.manual_seed(seed)
    xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    net = Net(xt.mean(0), xt.std(0))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy(net(xt), yt).backward()
        opt.step()
    return torch.jit.script(net.eval())


def percentile(sorted_ms: list[float], q: float) -> float:
    pos = q * (len(sorted_ms) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_ms) - 1)
    return sorted_ms[lo] + (sorted_ms[hi] - sorted_ms[lo]) * (pos - lo)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000, help="served requests in all, both arms (<= 20000)")
    parser.add_argument("--block", type=int, default=20, help="requests per block before the arm switches")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--rate", type=float, default=100.0,
                        help="requests per second, Poisson arrivals (production traffic is open-loop); "
                             "0: back to back, one client (a saturated router)")
    args = parser.parse_args()
    if not (2 * args.block <= args.requests <= 20000):
        parser.error("--requests must be within [2 * --block, 20000]")

    import torch
    from sklearn.datasets import load_breast_cancer

    from backends.base import Lineage
    from backends.local.registry import LocalRegistry
    from backends.local.traffic import LocalTraffic

    X, y = load_breast_cancer(return_X_y=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-shadow-"))
    root = tmp / "ws"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "console.cli", "init", "--workspace", str(root)], check=True, env=env,
                   cwd=str(REPO), capture_output=True)
    registry = LocalRegistry(root)
    for version, seed, steps in ((PRODUCTION, 1, 60), (CANDIDATE, 2, 30)):
        path = tmp / f"model-{version}.pt"
        torch.jit.save(train_scripted(X, y, seed, steps), str(path))
        registry.register_version(MODEL, str(path), metrics={}, lineage=Lineage(), version=version,
                                  artifact_format="torchscript")
    registry.close()
    traffic = LocalTraffic(root)
    try:
        traffic.ensure_serving(MODEL, [PRODUCTION, CANDIDATE])
        port = traffic.router_port(MODEL)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        rows = X.tolist()

        def one(i: int) -> float:
            body = json.dumps({"rows": [rows[(i * args.rows + k) % len(rows)] for k in range(args.rows)],
                               "key": f"u{i}"}).encode()
            t0 = time.perf_counter()
            conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            ms = (time.perf_counter() - t0) * 1000.0
            assert resp.status == 200 and json.loads(data)["version"] == PRODUCTION, data[:200]
            return ms

        for i in range(50):  # warm-up: connections, torch's first passes
            one(i)
        served: dict[str, list[float]] = {"off": [], "on": []}
        arm, sent = "off", 0
        arrivals = random.Random(7)
        mirrored = {"queued": 0, "dropped": 0, "completed": 0, "failed": 0}
        while sent < args.requests:
            revision = traffic.get_shadow(MODEL)["revision"]
            traffic.set_shadow(MODEL, CANDIDATE if arm == "on" else None, sample=1.0, expected_revision=revision)
            due = time.perf_counter()
            block = min(args.block, args.requests - sent)
            for _ in range(block):
                if args.rate > 0:  # the next arrival; a late answer does not push the schedule back
                    due += arrivals.expovariate(args.rate)
                    pause = due - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                served[arm].append(one(sent))
                sent += 1
            if arm == "on":  # let the queue drain so the next "off" block is not served beside leftover copies
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    c = traffic.get_shadow(MODEL)
                    done = c["counters"]["completed"] + c["counters"]["failed"] == c["counters"]["queued"]
                    if c["counters"]["offered"] == block and c["queue"] == 0 and done:  # offered after each answer
                        break
                    time.sleep(0.02)
                for key in mirrored:  # each start of mirroring counts afresh
                    mirrored[key] += c["counters"][key]
            arm = "on" if arm == "off" else "off"
        conn.close()
    finally:
        traffic.stop_serving(MODEL)

    stats = {}
    for name, values in served.items():
        values.sort()
        stats[name] = {"n": len(values), "p50": percentile(values, 0.5), "p99": percentile(values, 0.99)}
    ratio = stats["on"]["p99"] / stats["off"]["p99"]
    pace = f"Poisson arrivals at {args.rate:g}/s" if args.rate > 0 else "back to back"
    print(f"served requests: {args.requests} ({args.rows} row(s) each, {pace}), blocks of {args.block}, alternating")
    for name in ("off", "on"):
        s = stats[name]
        print(f"  shadow {name:>3}: n {s['n']:5d}  p50 {s['p50']:7.3f} ms  p99 {s['p99']:7.3f} ms")
    print(f"  p99 ratio (shadow on / off): {ratio:.3f}x (target <= 1.05x)   "
          f"p50 ratio {stats['on']['p50'] / stats['off']['p50']:.3f}x")
    print(f"  mirrored copies: {mirrored} (every copy answered or dropped, none waited for)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
