"""Start-up and the rollback path pay only for the Kubernetes client they need (measured in subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.cli import REPO, mrc_env
from tests.support.k8s.apiserver import ISVCS

HEAVY = ("lightkube", "httpx2", "kubernetes", "kubernetes_validate", "httpx", "msgspec")


def run_python(code: str, env: dict | None = None) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO),
                          env=mrc_env(env), timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_startup_and_backend_factories_import_no_kubernetes_client():
    report = run_python(
        "import json, sys, time\n"
        "t0 = time.perf_counter()\n"
        "import console.cli\n"
        "console.cli.build_parser()\n"
        "import console.release.actions, console.rollout.controller, console.workspace\n"
        "import backends.k8s, backends.prometheus\n"
        "elapsed = time.perf_counter() - t0\n"
        f"print(json.dumps({{'elapsed_s': elapsed, 'loaded': sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})}}))\n")
    print(f"mrc start-up imports (cli parser, release, canary controller, k8s/prometheus factories): "
          f"{report['elapsed_s'] * 1000:.0f} ms")
    assert report["loaded"] == []


@pytest.mark.integration
def test_the_kserve_rollback_path_imports_only_lightkube_core(apiserver):
    body = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "m", "annotations": {"serving.kserve.io/deploymentMode": "Serverless",
                                                      "mrc.dev/previous-version": "1"}},
            "spec": {"predictor": {"canaryTrafficPercent": 10, "model": {
                "modelFormat": {"name": "pytorch"}, "storageUri": "s3://models/m/2"}}}}
    apiserver.call(apiserver.server.create(ISVCS, "serving", body))
    report = run_python(
        "import json, sys, time\n"
        "t0 = time.perf_counter()\n"
        "from backends.k8s.traffic import KServeTraffic\n"
        "traffic = KServeTraffic({'namespace': 'serving', 'storage_uri': 's3://models/$model/$version'})\n"
        "split = traffic.rollback('m', '1')\n"
        "elapsed = time.perf_counter() - t0\n"
        "print(json.dumps({'elapsed_s': elapsed, 'weights': split.weights, "
        "'loaded': sorted({m for m in sys.modules if m.split('.')[0] in ('lightkube', 'kubernetes', 'httpx2')})}))\n",
        env={"KUBECONFIG": str(apiserver.kubeconfig)})
    print(f"KServe rollback in a fresh process (imports + kubeconfig + read + CAS patch): "
          f"{report['elapsed_s'] * 1000:.0f} ms")
    assert report["weights"] == {"1": 100}
    stored = apiserver.server.get(ISVCS, "serving", "m")["spec"]["predictor"]
    assert stored["canaryTrafficPercent"] == 0 and stored["model"]["storageUri"] == "s3://models/m/1"
    loaded = set(report["loaded"])
    assert "kubernetes" not in loaded  # the official client is never needed
    # typed Job models are training's business, not the rollback's (core_v1 comes with `import lightkube`)
    assert not {"lightkube.resources.batch_v1", "lightkube.models.batch_v1"} & loaded
