"""Shared fixtures: run `mrc` as a real process, and a demo workspace built once per session.

Area-specific fixtures (servers: mlflow, SeaweedFS, prometheus, model servers) live in the
conftest.py of their own test folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
    proc = subprocess.run([sys.executable, "-m", "console.cli", *args], capture_output=True, text=True,
                          env=mrc_env(env), timeout=timeout, input=input, cwd=str(REPO))
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def mrc():
    """mrc("versions", "m", "--json") -> Result, as a real subprocess."""
    return run_mrc


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory) -> Path:
    """The demo workspace, built once per test session by the real `mrc demo --no-tui`."""
    root = tmp_path_factory.mktemp("demo-template") / "ws"
    result = run_mrc("demo", "--no-tui", "--workspace", str(root), timeout=600)
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture
def demo_ws(demo_template, tmp_path) -> Path:
    """A private copy of the demo workspace for one test."""
    dest = tmp_path / "ws"
    shutil.copytree(demo_template, dest)
    return dest


def tree_digest(root: Path) -> dict[str, str]:
    """path -> sha256 of every file under root: to prove a command changed nothing."""
    out = {}
    for path in sorted(Path(root).rglob("*")):
        if path.is_file():
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out
