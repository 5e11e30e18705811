"""Running `mrc` from a test: as a real process (run_mrc), and proving a command changed nothing."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def mrc_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("MRC_ACTOR", "tester")
    env.pop("MRC_WORKSPACE", None)
    env.update(extra or {})
    return env


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def json(self):
        import json

        return json.loads(self.stdout)


def run_mrc(*args: str, env: dict[str, str] | None = None, timeout: float = 300, input: str | None = None) -> Result:
    """`python -m console.cli ARGS` as a real process, from the repository root."""
    proc = subprocess.run([sys.executable, "-m", "console.cli", *args], capture_output=True, text=True,
                          env=mrc_env(env), timeout=timeout, input=input, cwd=str(REPO))
    return Result(proc.returncode, proc.stdout, proc.stderr)


run_process = run_mrc  # the name for the tests where a process is the point (signals, start-up, races)


def tree_digest(root: Path) -> dict[str, str]:
    """path -> sha256 of every file under root: to prove a command changed nothing."""
    out = {}
    for path in sorted(Path(root).rglob("*")):
        if path.is_file():
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out
