"""Benchmark: keypress-to-split-changed latency of `R` on the canary screen, over real processes.

    python tests/bench/bench_rollback_key.py [--workspace DEMO_WS] [--trials 100] [--load N]

Each trial starts a canary at 50 % (servers and router stay up), waits until the screen shows it,
presses `R` through Pilot and times until the router's persisted split (split.json, written
before the router answers) says stable 100 %. Trials alternate two moments for the key:
"as the state lands" (the key arrives while the screen is still painting the new canary: the
worst case, what a key meets when a controller update repaints the screen) and "after the
paint" (the app idle, then 100 ms: a person reacts to what is on the screen). Baseline in the
same run: the backend's own rollback call (LocalTraffic.rollback) with no UI. Target: p99 <= 100 ms.
`--load N` runs N busy-loop processes during the baseline and the trials (load N on this box);
the load average is printed before and after, since a shared box is never idle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

MODEL, STABLE, CANDIDATE = "breast-cancer", "2", "5"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]


def live_split(root: Path) -> dict[str, int]:
    data = json.loads((root / "serving" / MODEL / "split.json").read_text())
    return {v: w for v, w in data["weights"] if w}


def prepare(workspace: str | None) -> tuple[Path, Path | None]:
    tmp = Path(tempfile.mkdtemp(prefix="mrc-bench-rollback-"))
    root = tmp / "ws"
    if workspace:
        shutil.copytree(workspace, root)
    else:
        print("building the demo workspace (mrc demo --no-tui)…", flush=True)
        subprocess.run([sys.executable, "-m", "console.cli", "demo", "--no-tui", "--workspace", str(root)], cwd=str(REPO),
                       check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "console.cli", "approve", MODEL, CANDIDATE, "--reason", "bench", "--no-gates", "--override",
                    "--workspace", str(root)], cwd=str(REPO), check=True, capture_output=True)
    return root, tmp


async def run_trials(root: Path, trials: int) -> tuple[list[float], list[float], list[float]]:
    """ms key -> split changed with the key as the state lands, the same after the paint, and the
    worker's own seconds (every trial)."""
    from textual.app import App

    from console.app import PriorityKeysFirst
    import screens.canary_screen as canary_screen
    from console.rollout.controller import Controller
    from console.domain import CanaryPlan
    from console.workspace import Workspace

    # The screen polls at its own pace (POLL_S); a faster poll would load the event loop it measures.

    ws = Workspace.open(root)

    class Host(PriorityKeysFirst, App):  # as the console's app: priority keys act as they are posted
        def __init__(self):
            super().__init__()
            self.workspace, self.read_only, self.actor = ws, False, "bench"

        def on_mount(self):
            self.push_screen(canary_screen.CanaryScreen(MODEL))

    landing_ms, painted_ms, worker_ms = [], [], []
    app = Host()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        for trial in range(trials):
            controller = Controller(ws, MODEL, actor="bench")
            state = controller.start(CANDIDATE, CanaryPlan(steps=[50, 100], hold_s=600, interval_s=600))
            controller.act("next")
            deadline = time.monotonic() + 10
            while not (screen.state is not None and screen.state.id == state.id and screen.state.weight == 50):
                if time.monotonic() > deadline:
                    raise RuntimeError("the screen did not show the new canary")
                await asyncio.sleep(0.005)
            assert live_split(root) == {CANDIDATE: 50, STABLE: 50}
            after_paint = trial % 2 == 1
            if after_paint:
                await pilot.pause()  # every message handled, the screen repainted
                await asyncio.sleep(0.1)
            # A watcher thread timestamps the split change, so the event loop's own pace
            # (Pilot waits for the app to be idle after a key) does not count.
            changed: list[float] = []

            def watch(limit=time.perf_counter() + 10):
                while time.perf_counter() < limit:
                    try:
                        if live_split(root) == {STABLE: 100}:
                            changed.append(time.perf_counter())
                            return
                    except (OSError, ValueError):
                        pass
                    time.sleep(0.0002)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            started = time.perf_counter()
            await pilot.press("R")
            while watcher.is_alive():
                await asyncio.sleep(0.001)
            if not changed:
                raise RuntimeError("R did not change the split")
            (painted_ms if after_paint else landing_ms).append((changed[0] - started) * 1000)
            while not screen.last_action or screen.state is None or screen.state.status != "rolled_back":
                await asyncio.sleep(0.005)
            worker_ms.append(screen.last_action["seconds"] * 1000)
            screen.last_action = {}
    return landing_ms, painted_ms, worker_ms


def baseline(root: Path, trials: int) -> list[float]:
    from backends.local.traffic import LocalTraffic

    traffic = LocalTraffic(root)
    out = []
    for _ in range(trials):
        split = traffic.get_split(MODEL)
        traffic.set_split(MODEL, {CANDIDATE: 50, STABLE: 50}, expected_revision=split.revision)
        started = time.perf_counter()
        traffic.rollback(MODEL, STABLE)
        out.append((time.perf_counter() - started) * 1000)
    return out


def busy_loops(count: int) -> list[subprocess.Popen]:
    """`count` processes spinning on a CPU each, until killed."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def loadavg() -> str:
    import os

    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace", help="a demo workspace to copy (default: build one, ~20-60 s)")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--load", type=int, default=0, help="busy-loop processes to run during the trials")
    args = parser.parse_args(argv)
    from backends.local.traffic import LocalTraffic

    root, tmp = prepare(args.workspace)
    traffic = LocalTraffic(root)
    load: list[subprocess.Popen] = []
    try:
        traffic.ensure_serving(MODEL, [STABLE, CANDIDATE])
        print(f"before: {loadavg()}; adding {args.load} busy loops", flush=True)
        load = busy_loops(args.load)
        base = baseline(root, args.trials)
        landing_ms, painted_ms, worker_ms = asyncio.run(run_trials(root, args.trials))
        print(f"after:  {loadavg()}")
    finally:
        for proc in load:
            proc.kill()
            proc.wait()
        traffic.stop_serving(MODEL)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    key_ms = landing_ms + painted_ms
    for label, values in (("as the state lands", landing_ms), ("after the paint", painted_ms), ("all", key_ms)):
        print(f"R keypress -> split changed, {label} ({len(values)} trials): p50 {statistics.median(values):.1f} ms, "
              f"p99 {pct(values, 0.99):.1f} ms, max {max(values):.1f} ms   (target p99 <= 100 ms)")
    print(f"  worker (Controller.act rollback incl. state + audit writes): p50 {statistics.median(worker_ms):.1f} ms, "
          f"p99 {pct(worker_ms, 0.99):.1f} ms")
    print(f"  baseline LocalTraffic.rollback alone: p50 {statistics.median(base):.1f} ms, p99 {pct(base, 0.99):.1f} ms")
    print(f"  ratio key/baseline: p50 {statistics.median(key_ms) / statistics.median(base):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
