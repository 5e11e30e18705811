"""`mrc monitor MODEL --json` and `mrc monitor run --once` on the demo workspace, with a capture
log written here by hand (the router's layout): bad input is one line and exit 2; bad records
are counted and shown, never a crash; a drifted log is critical (exit 1) and `run` audits the
tier change once, as an alert-mapped event."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

MODEL = "breast-cancer"
SCALED = ["mean_texture", "mean_fractal_dimension", "symmetry_error", "worst_smoothness", "mean_compactness"]


def rows(n: int, scale: float, seed: int):
    """(columns, rows) of the breast-cancer data as the demo keeps it, from sklearn itself."""
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer()
    keep = [i for i, name in enumerate(raw.feature_names)
            if any(k in name for k in ("texture", "smoothness", "symmetry", "fractal"))]
    keep += [list(raw.feature_names).index(name) for name in ("mean compactness", "radius error")]
    columns = [raw.feature_names[i].replace(" ", "_") for i in keep]
    rng = np.random.default_rng(seed)
    data = raw.data[rng.integers(0, len(raw.data), n)][:, keep].copy()
    for name in SCALED:
        data[:, columns.index(name)] *= scale
    return columns, data


def write_capture(ws: Path, n: int, *, scale: float = 1.0, seed: int = 0, extra: bytes = b"", start: float | None = None):
    folder = ws / "serving" / MODEL / "capture"
    folder.mkdir(parents=True, exist_ok=True)
    columns, data = rows(n, scale, seed)
    start = time.time() - 300 if start is None else start
    lines = [json.dumps({"t": start + i * 0.1, "id": f"{seed}-{i}", "v": "2", "k": f"user{i % 997}",
                         "x": dict(zip(columns, map(float, row))), "p": 0.3, "status": 200}).encode()
             for i, row in enumerate(data)]
    path = folder / f"seg-{int(start * 1000):013d}-1-{seed:04d}.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n" + extra)


def configure(ws: Path, text: str) -> None:
    with open(ws / "mrc.toml", "a") as fh:
        fh.write("\n" + text + "\n")


def test_without_a_monitor_table_or_with_a_bad_one_it_is_one_line_and_exit_2(demo_ws, mrc):
    result = mrc("monitor", MODEL, "--workspace", str(demo_ws))
    assert result.returncode == 2 and "[monitor]" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    configure(demo_ws, "[monitor]\nfeatures = 42")
    result = mrc("monitor", MODEL, "--workspace", str(demo_ws))
    assert result.returncode == 2 and "monitor.features" in result.stderr
    assert not (demo_ws / "monitor").exists()  # nothing written


def test_bad_records_are_counted_and_shown_and_the_drift_is_critical(demo_ws, mrc):
    configure(demo_ws, "[monitor]\nmin_units = 30")
    write_capture(demo_ws, 3000, scale=1.6, seed=1,
                  extra=b'{"t": 1, "id": "torn"\n{"t":5.0,"id":"nofeatures","v":"2","p":0.5}\n')
    result = mrc("monitor", MODEL, "--json", "--workspace", str(demo_ws))
    assert result.returncode == 1, result.stderr
    report = result.json()
    assert report["tier"] == "critical" and report["records"] == 3000
    critical = {f["name"] for f in report["features"] if f["tier"] == "critical"}
    assert critical and critical <= set(SCALED)
    bad = report["source"]["bad"]
    assert sum(n for k, n in bad.items() if "not JSON" in k) == 1
    assert sum(n for k, n in bad.items() if k.endswith("x: missing")) == 1
    assert set(report) >= {"tier", "window", "features", "prediction", "labels"}
    assert set(report["features"][0]) >= {"name", "tier", "psi", "p_value", "ks", "kl"}
    human = mrc("monitor", MODEL, "--workspace", str(demo_ws))
    assert human.returncode == 1 and "CRITICAL" in human.stdout and "bad records" in human.stdout


def test_run_audits_each_tier_change_once_as_an_alerting_event(demo_ws, mrc):
    configure(demo_ws, "[monitor]\nmin_units = 30")
    write_capture(demo_ws, 3000, scale=1.6, seed=2)
    first = mrc("monitor", "run", "--once", "--json", "--workspace", str(demo_ws))
    assert first.returncode == 0, first.stderr
    line = json.loads(first.stdout.strip().splitlines()[-1])
    assert line["tier"] == "critical" and "audit" in line["actions"]
    again = mrc("monitor", "run", "--once", "--json", "--workspace", str(demo_ws))
    assert json.loads(again.stdout.strip().splitlines()[-1])["actions"] == []
    audit = mrc("audit", "--json", "--workspace", str(demo_ws))
    events = [e for e in audit.json()["events"] if e["action"].startswith("monitor.")] \
        if isinstance(audit.json(), dict) else [e for e in audit.json() if e["action"].startswith("monitor.")]
    assert [e["action"] for e in events] == ["monitor.critical"]
    assert events[0]["details"]["feature"] in SCALED
    tier = json.loads((demo_ws / "monitor" / MODEL / "tier.json").read_text())
    assert tier["tier"] == "critical"


def test_a_mapping_naming_a_field_no_record_has_is_one_line_naming_source_and_field(demo_ws, mrc):
    configure(demo_ws, "[monitor]\nfeatures = \"inputs\"")
    write_capture(demo_ws, 200, seed=3)
    result = mrc("monitor", MODEL, "--workspace", str(demo_ws))
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "router log" in line and "inputs: missing" in line


def test_run_stops_on_sigterm_after_the_round_it_is_in(demo_ws):
    """The daemon's first round reports (an event, not a sleep), then SIGTERM ends the wait for
    the next: exit 0, one round done."""
    import signal
    import subprocess
    import sys

    from tests.support.cli import REPO, mrc_env

    configure(demo_ws, "[monitor]\nmin_units = 30")
    write_capture(demo_ws, 500, seed=4)
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "monitor", "run", "--interval", "3600", "--json",
                             "--workspace", str(demo_ws)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=mrc_env(), cwd=str(REPO))
    try:
        first = json.loads(proc.stdout.readline())
        assert first["model"] == MODEL and first["tier"] in ("ok", "warning", "critical")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped after 1 round(s)" in err
