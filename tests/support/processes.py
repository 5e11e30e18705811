"""Stopping what a test served: the routers and model servers a workspace's serving folders
record, each in its own session (process group), killed by pid, also when a test fails.
One copy for the serving, shadow and canary tests."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path


def running(pid: int) -> bool:
    """pid is alive and not a zombie (reaped here when it is our child)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def kill_group(pid: int, grace_s: float = 5.0) -> None:
    """SIGTERM to pid's process group, SIGKILL after grace_s (polled, not slept)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and running(pid):
            time.sleep(0.05)


def served_pids(ws: Path) -> list[int]:
    """Every pid the workspace's serving folders record (routers and model servers)."""
    pids = []
    for procs in (ws / "serving").glob("*/processes.json"):
        data = json.loads(procs.read_text())
        pids += [s["pid"] for s in data.get("servers", {}).values()]
        if data.get("router"):
            pids.append(data["router"]["pid"])
    return pids


def stop_everything(ws: Path) -> None:
    """Every process the workspace's serving folders know of, by its recorded pid."""
    for pid in served_pids(ws):
        kill_group(pid)
