"""The domain imports without Textual; the console starts without the heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("mlflow", "torch", "pandas", "plotly", "boto3", "kubernetes", "lightkube", "scipy", "sklearn")


def python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def test_console_domain_modules_import_without_textual_or_screens():
    modules = sorted(".".join(p.relative_to(REPO).with_suffix("").parts) for p in (REPO / "console").rglob("*.py")
                     if p.stem != "__init__" and p != REPO / "console" / "app.py")
    # the pure presenters are UI code (screens/) but must stay testable without a terminal
    modules.append("screens.presenters")
    loaded = json.loads(python(
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'screens', 'rich'))))"))
    assert "console.evaluate.gates" in modules and "console.rollout.canary" in modules
    assert [m for m in loaded if m.split(".")[0] == "textual"] == []
    assert [m for m in loaded if m.split(".")[0] == "screens" and m not in ("screens", "screens.presenters")] == []


def test_starting_the_console_imports_no_heavy_library(release_ws):
    """Start the real app headless, let the home screen load (its workers included), then look."""
    code = (
        "import asyncio, json, sys\n"
        "from tests.support.pilot import make_app, settle\n"
        "async def main():\n"
        f"    app = make_app({str(release_ws)!r})\n"
        "    async with app.run_test(size=(120, 40)) as pilot:\n"
        "        await settle(app, pilot)\n"
        "        assert app.screen.loads >= 1 and app.screen.rows, 'home did not load'\n"
        "asyncio.run(main())\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))")
    assert json.loads(python(code)) == []


def test_mrc_help_and_rollback_path_stay_light():
    loaded = json.loads(python(
        "import json, sys\n"
        "import console.cli, console.release.actions, console.commands.serve_cmds\n"
        "console.cli.build_parser()\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY + ('textual', 'textual_serve')!r})))"))
    assert loaded == []
