"""A team's MLflow registry with a regression (sklearn, LightGBM), a 3-class model (sklearn,
XGBoost) and a mixed-type Pipeline, built once per session by build_tasks.py (plain libraries,
its own process) on the shared real MLflow server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.remote import mlflow_toml, unique, write_workspace

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def task_team(mlflow_server, tmp_path_factory) -> dict:
    data = tmp_path_factory.mktemp("task-team-data")
    log = data / "build.log"
    prefix = unique("tasks")
    with open(log, "w") as err:
        proc = subprocess.run([sys.executable, str(HERE / "build_tasks.py"), mlflow_server.url, prefix, str(data)],
                              stdout=subprocess.PIPE, stderr=err, text=True, timeout=900)
    assert proc.returncode == 0, f"build_tasks.py failed:\n{log.read_text()[-4000:]}"
    team = json.loads(proc.stdout.strip().splitlines()[-1])
    team["prefix"], team["url"] = prefix, mlflow_server.url
    return team


@pytest.fixture
def task_ws(tmp_path, task_team):
    """make({short name: {key: value}}) -> a workspace on the team's MLflow registry."""
    def make(models: dict | None = None, name: str = "ws") -> Path:
        lines = [mlflow_toml(task_team["url"])]
        for short, keys in (models or {}).items():
            lines.append(f'[models."{task_team["prefix"]}-{short}"]')
            lines += [f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {json.dumps(v)}" for k, v in keys.items()]
        return write_workspace(tmp_path / name, "\n".join(lines) + "\n")
    return make
