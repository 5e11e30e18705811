"""Fixtures for the canary area: real model servers and router on 127.0.0.1, a load
generator, and controller processes — each stopped afterwards, also when a test fails."""

from __future__ import annotations

import subprocess
import textwrap
import sys
from pathlib import Path

import pytest

from tests.support.cli import REPO, mrc_env, run_mrc
from tests.support.processes import kill_group, stop_everything  # noqa: F401  (the tests import stop_everything here)

MODEL = "breast-cancer"
STABLE, CANDIDATE = "2", "5"
# Short canaries: the whole area stays within a few minutes on 2 shared cores.
# a few dozen requests: the power-aware wait for evidence before promotion is off (tests/unit/rollout/test_sequential_* test it)
FAST_PLAN = ["--plan", "25,50,100", "--hold", "1", "--interval", "0.4", "--min-requests", "10", "--min-detectable", "off"]


@pytest.fixture
def served_ws(demo_ws):
    """The demo workspace with candidate 5 approved and versions 2 and 5 served (router at 2: 100%)."""
    from backends.local.traffic import LocalTraffic

    result = run_mrc("approve", MODEL, CANDIDATE, "--reason", "canary tests", "--no-gates", "--override", "--workspace", str(demo_ws))
    assert result.returncode == 0, result.stderr
    traffic = LocalTraffic(demo_ws)
    try:
        traffic.ensure_serving(MODEL, [STABLE, CANDIDATE])
        yield demo_ws
    finally:
        stop_everything(demo_ws)


@pytest.fixture
def load(served_ws):
    """Holdout rows replayed at 80 requests/s with labels 0.3 s later, for the whole test."""
    from backends.local.loadgen import LoadGenerator, holdout
    from backends.local.traffic import LocalTraffic

    rows, labels = holdout(str(served_ws), MODEL)
    from backends.local.serving.controlkey import auth_headers

    gen = LoadGenerator(LocalTraffic(served_ws).router_port(MODEL), rows, labels, rate=80, label_delay_s=0.3,
                        headers=auth_headers(served_ws)).start()
    try:
        yield gen
    finally:
        gen.stop()


class Controllers:
    """`mrc canary start` as real processes in their own session; all killed at teardown."""

    def __init__(self, ws: Path):
        self.ws = ws
        self.procs: list[subprocess.Popen] = []

    def start(self, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "console.cli", "canary", "start", MODEL, CANDIDATE, *FAST_PLAN,
                                 "--workspace", str(self.ws), "--json", *extra], cwd=str(REPO), env=mrc_env(env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                kill_group(proc.pid)
            proc.communicate(timeout=10)


@pytest.fixture
def controllers(served_ws):
    c = Controllers(served_ws)
    try:
        yield c
    finally:
        c.close()


HEAVY = ("plotly", "pandas", "mlflow", "scipy", "torch", "sklearn", "textual")


# Runs `mrc rollback` in-process with every heavy library and the drift/report/plot modules
# made unimportable: if the path touched any of them, the rollback would fail.
SCRIPT = textwrap.dedent("""
    import importlib.abc, json, sys
    BROKEN = {broken!r}
    class Broken(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BROKEN or name in BROKEN:
                raise ImportError(f"{{name}} is broken in this test")
            return None
    sys.meta_path.insert(0, Broken())
    from console.cli import main
    code = main(["rollback", {model!r}, "--workspace", {ws!r}, "--reason", "page", "--json"])
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
    print(json.dumps({{"code": code, "heavy": heavy}}), file=sys.stderr)
    sys.exit(code)
""")
