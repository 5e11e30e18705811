"""A workspace built with plain libraries: numeric CSV datasets written with numpy/pandas and
registered through the CLI (`mrc datasets add`), production trained by the real local torch
trainer and promoted through the CLI. Every run of `mrc watch` here trains for real."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import run_mrc
from tests.support.once import build_once

MODEL = "credit"
FEATURES = ["f0", "f1", "f2", "f3"]
ROWS = 1500
EPOCHS = "epochs=2"


def write_version(path: Path, seed: int, shift: float = 0.0) -> Path:
    """A binary task; `shift` moves f0 and f1 (an upstream unit change), the label keeps its rule."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(ROWS, len(FEATURES)))
    y = (X[:, 0] + 0.5 * X[:, 2] + rng.normal(scale=0.5, size=ROWS) > 0).astype(int)
    X[:, 0] += shift
    X[:, 1] += shift
    frame = pd.DataFrame(X, columns=FEATURES)
    frame["y"] = y
    frame.to_csv(path, index=False)
    return path


def mrc_ok(*args: str, code: int = 0):
    result = run_mrc(*args)
    assert result.returncode == code, f"mrc {' '.join(args)} -> {result.returncode}\n{result.stderr[-2000:]}"
    return result


def add_dataset(ws: Path, ref: str, seed: int, shift: float = 0.0, parent: str = "") -> None:
    csv = write_version(ws.parent / f"{ref.replace('@', '-')}.csv", seed, shift)
    mrc_ok("datasets", "add", ref, str(csv), "--label", "y", *(["--parent", parent] if parent else []),
           "--workspace", str(ws))


def copy_ws(src: Path, dest_parent: Path) -> Path:
    dest_parent.mkdir(parents=True, exist_ok=True)
    dest = dest_parent / "ws"
    shutil.copytree(src, dest)
    return dest


@pytest.fixture(scope="session")
def production_ws(tmp_path_factory) -> Path:
    """credit@v1 registered, version 1 trained on it and promoted: the reference is credit@v1.
    Built once per run (torch training; shared by xdist workers): tests copy it (copy_ws)."""

    def build(folder: Path) -> None:
        ws = folder / "ws"
        mrc_ok("init", "--workspace", str(ws))
        with open(ws / "mrc.toml", "a") as fh:
            fh.write(f'\n[models.{MODEL}]\ntrain_data = "credit@v1"\nlabel = "y"\n')
        add_dataset(ws, "credit@v1", seed=1)
        mrc_ok("train", MODEL, "--param", EPOCHS, "--workspace", str(ws))
        mrc_ok("promote", MODEL, "1", "--override", "--reason", "first production", "--workspace", str(ws))

    return build_once(tmp_path_factory, "watch-production", build) / "ws"


@dataclass
class Story:
    ws: Path
    runs: dict = field(default_factory=dict)  # name -> Result
    facts: dict = field(default_factory=dict)


def versions(ws: Path) -> list[dict]:
    return mrc_ok("versions", MODEL, "--json", "--workspace", str(ws)).json()["versions"]


def audit(ws: Path) -> list[dict]:
    return mrc_ok("audit", "--json", "--workspace", str(ws)).json()["events"]


def run_dirs(ws: Path) -> list[str]:
    return sorted(p.name for p in (ws / "runs").iterdir() if p.is_dir())


@pytest.fixture(scope="session")
def story(production_ws, tmp_path_factory) -> Story:
    """An undrifted new version (watched), then a drifted one (watched twice)."""
    ws = copy_ws(production_ws, tmp_path_factory.mktemp("watch-story"))
    s = Story(ws)
    s.facts["runs_before"] = run_dirs(ws)
    add_dataset(ws, "credit@v2", seed=2, parent="credit@v1")
    s.runs["undrifted"] = run_mrc("watch", MODEL, "--once", "--json", "--param", EPOCHS, "--workspace", str(ws))
    s.facts["runs_after_undrifted"] = run_dirs(ws)
    s.facts["versions_after_undrifted"] = versions(ws)
    s.facts["audit_after_undrifted"] = audit(ws)
    add_dataset(ws, "credit@v3", seed=3, shift=2.0, parent="credit@v2")
    s.runs["drifted"] = run_mrc("watch", MODEL, "--once", "--json", "--param", EPOCHS, "--workspace", str(ws))
    s.facts["runs_after_drifted"] = run_dirs(ws)
    s.facts["audit_after_drifted"] = audit(ws)
    s.runs["again"] = run_mrc("watch", MODEL, "--once", "--json", "--param", EPOCHS, "--workspace", str(ws))
    s.facts["runs_after_again"] = run_dirs(ws)
    s.facts["versions_after_again"] = versions(ws)
    s.facts["audit_after_again"] = audit(ws)
    return s
