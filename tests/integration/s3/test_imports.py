"""Start-up and `mrc rollback` on S3 import no mlflow (nor torch, pandas …); boto3 only when used."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

from backends.base import PRODUCTION, Lineage
from tests.support.cli import REPO, mrc_env
from tests.support.remote import remote_env

HEAVY = ("mlflow", "torch", "pandas", "plotly", "sklearn", "kubernetes", "lightkube", "textual")

PROBE = """
import json, sys
import console.cli
import pytest

pytestmark = pytest.mark.integration  # starts real servers on 127.0.0.1
{body}
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})
print(json.dumps({{"rc": rc, "heavy": sorted({{m.split('.')[0] for m in heavy}}), "boto3": "boto3" in sys.modules,
                  "local_traffic": "backends.local.traffic" in sys.modules}}))
"""


def _probe(body: str) -> dict:
    code = PROBE.format(body=body, heavy=HEAVY + ("boto3",))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=mrc_env(remote_env()),
                          cwd=str(REPO), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_startup_imports_no_backend_library():
    out = _probe("console.cli.build_parser()\nimport backends.s3, backends.mlflow\nrc = 0")
    assert out["heavy"] == [] and not out["boto3"]


def test_rollback_on_s3_imports_boto3_but_not_mlflow(s3_workspace, tmp_path):
    root, registry = s3_workspace
    artifact = tmp_path / "m.pt"
    artifact.write_bytes(b"weights")
    for v in ("v1", "v2"):
        registry.register_version("m", str(artifact), metrics={}, lineage=Lineage(), version=v)
    registry.move_pointer("m", PRODUCTION, expected=None, new="v1", actor="a")
    registry.move_pointer("m", PRODUCTION, expected="v1", new="v2", actor="a")
    out = _probe(f"rc = console.cli.main(['rollback', 'm', '--workspace', {str(root)!r}, '--json'])")
    assert out["rc"] == 0
    assert out["boto3"]
    assert [m for m in out["heavy"] if m != "boto3"] == []
    assert not out["local_traffic"]  # nothing is served locally: the traffic module is not even imported
    assert registry.get_pointers("m")[PRODUCTION] == "v1"


def test_backends_are_declared_as_entry_points():
    from console.workspace import load_backend_class

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["mrc.backends"]
    assert declared["mlflow"] == "backends.mlflow:MlflowBackend" and declared["s3"] == "backends.s3:S3Backend"
    for name, target in declared.items():
        module, _, attr = target.partition(":")
        assert load_backend_class(name).__name__ == attr
