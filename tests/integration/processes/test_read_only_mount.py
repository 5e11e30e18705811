"""Read commands work on a workspace nobody can write (a read-only bind mount in a private mount
namespace: as root, chmod alone would not stop a write), and `--read-only` writes nothing anywhere:
each write is refused by one rule in the dispatcher before any handler runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.support.cli import REPO, mrc_env, tree_digest

READS = [
    ["models"],
    ["models", "--json"],
    ["versions", "breast-cancer"],
    ["versions", "breast-cancer", "--json"],
    ["audit"],
    ["audit", "verify"],
    ["datasets"],
    ["gate", "breast-cancer", "5"],
    ["--read-only", "drift", "--model", "breast-cancer", "--version", "5"],
]


def run_on_read_only_mount(ws, commands: list[list[str]]) -> list[dict]:
    """Each command as a real `mrc` process, with ws bind-mounted read-only over itself."""
    driver = textwrap.dedent(f"""
        import json, subprocess, sys
        ws = {str(ws)!r}
        subprocess.run(["mount", "--bind", "-o", "ro", ws, ws], check=True)
        probe = subprocess.run(["touch", ws + "/probe"], capture_output=True)
        assert probe.returncode != 0, "the mount is writable"
        for argv in json.loads(sys.argv[1]):
            r = subprocess.run([sys.executable, "-m", "console.cli", *argv, "--workspace", ws],
                               capture_output=True, text=True)
            print(json.dumps({{"argv": argv, "code": r.returncode, "stdout": r.stdout, "stderr": r.stderr}}))
        """)
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("util-linux `unshare` is needed to mount the workspace read-only")
    proc = subprocess.run([unshare, "--user", "--map-root-user", "--mount", sys.executable, "-c", driver,
                           json.dumps(commands)], capture_output=True, text=True, cwd=REPO, env=mrc_env(), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_read_commands_work_on_a_read_only_mount(demo_ws):
    before = tree_digest(demo_ws)
    mtimes = {p: p.stat().st_mtime_ns for p in demo_ws.rglob("*")}
    results = run_on_read_only_mount(demo_ws, READS)
    assert [r["argv"] for r in results] == READS
    for r in results:
        assert r["code"] in (0, 1), f"{r['argv']}: exit {r['code']}: {r['stderr'][-800:]}"  # 1: a gate/drift verdict
        assert r["stdout"].strip(), r["argv"]
    assert "breast-cancer" in results[0]["stdout"]
    assert tree_digest(demo_ws) == before
    assert {p: p.stat().st_mtime_ns for p in demo_ws.rglob("*")} == mtimes


def test_writes_on_a_read_only_mount_are_one_clear_line(demo_ws):
    results = run_on_read_only_mount(demo_ws, [["rollback", "breast-cancer"], ["promote", "breast-cancer", "5"]])
    for r in results:
        assert r["code"] == 2 and len(r["stderr"].splitlines()) == 1, r
        assert "not writable" in r["stderr"]


WRITES = [
    ["load", "breast-cancer", "--rate", "5", "--duration", "1"],
    ["serve-models", "breast-cancer"],
    ["drill", "breast-cancer", "5", "--error-rate", "0.5"],
    ["canary", "start", "breast-cancer", "5"],
    ["train", "breast-cancer", "--param", "epochs=1"],
    ["validate", "{out}/data.csv", "--schema", "{out}/schema.json", "--write-baseline", "{out}/baseline.json"],
    ["drift", "--model", "breast-cancer", "--html", "{out}/drift.html"],
    ["report", "breast-cancer", "5", "--md", "{out}/report.md"],
]


@pytest.mark.parametrize("argv", WRITES, ids=lambda a: " ".join(a[:2]))
def test_read_only_refuses_every_write_before_it_starts(demo_ws, tmp_path, mrc, argv):
    out = tmp_path / "out"
    out.mkdir()
    (out / "data.csv").write_text("a\n1\n2\n")
    (out / "schema.json").write_text(json.dumps({"required_columns": ["a"], "numeric_columns": ["a"]}))
    before, listing = tree_digest(demo_ws), sorted(os.listdir(out))
    result = mrc("--read-only", *[a.replace("{out}", str(out)) for a in argv], "--workspace", str(demo_ws))
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "--read-only" in result.stderr and "writes, refused" in result.stderr
    assert tree_digest(demo_ws) == before
    assert sorted(os.listdir(out)) == listing
    assert not (demo_ws / "serving").exists() or not any((demo_ws / "serving").rglob("requests.jsonl"))
