"""`mrc datasets add` killed (SIGKILL) between its file and its row: the next add of the same
name@version is not blocked by the orphan file — it replaces it and records the version once.
Real processes; the kill lands at a named stall point, decided by a file, not by a clock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.cli import REPO, mrc_env, run_mrc


def test_a_kill_between_file_and_row_leaves_an_orphan_the_next_add_recovers(tmp_path):
    root = tmp_path / "ws"
    assert run_mrc("init", "--workspace", str(root)).returncode == 0
    csv = tmp_path / "rows.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    release = tmp_path / "release"
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "datasets", "add", "rows@v1", str(csv),
                             "--workspace", str(root)], cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=mrc_env({"MRC_STALL_AT": "datasets:file-written", "MRC_STALL_FILE": str(release)}))
    reached = Path(str(release) + ".reached")
    try:
        while not reached.exists():  # the process says when it is there; no sleep decides it
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)  # polling for the event; the outcome does not depend on it
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (root / "data" / "rows" / "v1.csv").exists()  # the orphan: a file with no row
    assert run_mrc("datasets", "--json", "--workspace", str(root)).json()["datasets"] == []

    again = run_mrc("datasets", "add", "rows@v1", str(csv), "--json", "--workspace", str(root))
    assert again.returncode == 0, again.stderr
    listed = run_mrc("datasets", "--json", "--workspace", str(root)).json()["datasets"]
    assert [(d["name"], d["version"], d["rows"]) for d in listed] == [("rows", "v1", 2)]
    events = run_mrc("audit", "--json", "--workspace", str(root)).json()["events"]
    assert [e["action"] for e in events] == ["dataset.add"]  # the killed run left no event either
