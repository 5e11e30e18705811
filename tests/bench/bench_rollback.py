"""Wall time of `mrc rollback` on the demo workspace, beside `python -c pass` in the same run.

    .venv/bin/python tests/bench/bench_rollback.py [--workspace DIR] [--runs 15]

Builds the demo workspace in a temp folder unless one is given. Each run is a fresh process,
as at 3 AM: interpreter start, imports, the target's approval and artifact checked, one
conditional write with its audit event in the same transaction. Runs alternate 2 -> 1 and
1 -> 2 with --expect/--to, so every run really moves production (a bare `mrc rollback` right
after another moves nothing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO))
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(REPO), MRC_ACTOR="bench")
    # an installed mrc has its bytecode compiled; with this set, a fresh checkout recompiles
    # every module on every start (≈ 150 ms more per rollback here), which no user pays
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    ws = args.workspace
    if ws is None:
        ws = str(Path(tempfile.mkdtemp(prefix="mrc-bench-")) / "ws")
        print(f"building the demo workspace in {ws} …", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "console.cli", "demo", "--no-tui", "--workspace", ws],
                       check=True, env=env, cwd=str(REPO), capture_output=True)
    baseline, rollback = [], []
    for i in range(args.runs):  # interleaved so that machine noise hits both alike
        baseline.append(timed([sys.executable, "-c", "pass"], env))
        seen, target = ("2", "1") if i % 2 == 0 else ("1", "2")
        rollback.append(timed([sys.executable, "-m", "console.cli", "rollback", "breast-cancer", "--expect", seen,
                               "--to", target, "--reason", "bench", "--workspace", ws], env))
    b, r = statistics.median(baseline), statistics.median(rollback)
    print(f"python -c pass      median {b * 1000:7.1f} ms  (min {min(baseline) * 1000:.1f})")
    print(f"mrc rollback        median {r * 1000:7.1f} ms  (min {min(rollback) * 1000:.1f}, max {max(rollback) * 1000:.1f})")
    print(f"ratio rollback / bare interpreter: {r / b:.2f}x;  rollback's own work ≈ {(r - b) * 1000:.1f} ms")
    one, five, fifteen = os.getloadavg()
    print(f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
