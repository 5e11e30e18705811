"""Nothing of the monitor is imported where [monitor] is absent: not by `mrc`'s parser, the
router, the traffic backend, LocalMetrics or home's loader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MONITOR_MODULES = ("console.monitor.panes", "console.monitor.profile", "console.monitor.decide",
                   "console.monitor.monitor_run", "console.monitor.actions", "console.monitor.tier_file",
                   "backends.local.serving.capture", "backends.local.monitor_source",
                   "backends.support.prediction_records", "screens.monitor_screen")


def test_start_up_paths_import_no_monitor_module(tmp_path):
    (tmp_path / "mrc.toml").write_text("[traffic]\nbackend = \"local\"\n")
    code = (
        "import json, sys\n"
        "import console.cli, backends.local.serving.router, backends.local.metrics, screens.loaders\n"
        "console.cli.build_parser()\n"
        "from backends.local.traffic import LocalTraffic\n"
        f"assert LocalTraffic({str(tmp_path)!r}, {{}})._router_flags() == []\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m in {MONITOR_MODULES!r})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_with_a_monitor_table_the_router_is_told_to_capture(tmp_path):
    (tmp_path / "mrc.toml").write_text("[monitor]\nsample = 0.25\nsegment_max_bytes = 1000000\n")
    code = (f"from backends.local.traffic import LocalTraffic\n"
            f"print(LocalTraffic({str(tmp_path)!r}, {{}})._router_flags())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['--capture-sample', '0.25', '--capture-max-bytes', '1000000']"
