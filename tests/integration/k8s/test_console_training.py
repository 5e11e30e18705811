"""The training screen on Kubernetes (issue 7): launched from the console with the GPU box ticked,
a batch/v1 Job runs on the emulator's fake kubelet, its pod log streams into the screen, progress
reaches 100 % and the new version lands as the candidate with full lineage."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.support.k8s.apiserver import JOBS
from tests.support.k8s.emulator import validate_k8s

pytestmark = pytest.mark.integration
NS = "ml"


def _log_text(screen) -> list[str]:
    from textual.widgets import RichLog

    return ["".join(segment.text for segment in strip) for strip in screen.query_one("#training-log", RichLog).lines]


def test_training_screen_runs_a_gpu_job_on_kubernetes_and_registers_the_candidate(apiserver, k8s_ws):
    from textual.widgets import Checkbox, Input, ProgressBar

    from console.app import ReleaseConsole
    from console.workspace import Workspace
    from screens.training_screen import TrainingScreen

    apiserver.server.volumes["mrc-data"] = str(k8s_ws / "data")  # the PVC the pod mounts at /data
    toml = k8s_ws / "mrc.toml"  # no GPU by default: only the screen's checkbox asks for one
    toml.write_text(toml.read_text().replace("gpus = 1", "gpus = 0"))
    progress_seen: list[float] = []

    async def scenario():
        app = ReleaseConsole(Workspace.open(k8s_ws), actor="tester", poll_s=0)
        async with app.run_test(size=(150, 50)) as pilot:
            await app.workers.wait_for_complete()
            app.run_command("train breast-cancer")
            await pilot.pause(0.1)
            screen = app.screen
            assert isinstance(screen, TrainingScreen)
            assert "`k8s` training backend" in str(screen.query_one(".pane-title").render())
            assert screen.query_one("#data", Input).value == "breast_cancer@v2"
            screen.query_one("#params", Input).value = "epochs=40 hidden=8"
            screen.query_one("#gpu", Checkbox).value = True
            await pilot.press("ctrl+t")
            await pilot.pause(0.05)
            assert screen.running
            bar = screen.query_one("#progress", ProgressBar)
            async with asyncio.timeout(120):
                while screen.running:  # follow the screen as a user would, while the worker streams
                    progress_seen.append(bar.progress)
                    await pilot.pause(0.02)
            await app.workers.wait_for_complete()
            await pilot.pause(0.05)
            status = str(screen.query_one("#training-status").render())
            assert "registered as candidate" in status, status
            return screen.new_version, _log_text(screen), bar.percentage

    new_version, log_lines, percentage = asyncio.run(scenario())
    import threading

    assert not [t.name for t in threading.enumerate() if t.name == "mrc-k8s-loop"]  # the run closed its client

    # the Job: valid, GPU requested because the box was ticked, tolerating the GPU taint
    (job,) = apiserver.server.items(JOBS, NS)
    manifest = {k: job[k] for k in ("apiVersion", "kind", "spec")} | {
        "metadata": {k: job["metadata"][k] for k in ("name", "namespace", "labels", "annotations")}}
    validate_k8s(manifest)
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod_spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert any(c["type"] == "Complete" for c in job["status"]["conditions"])
    assert json.loads(job["metadata"]["annotations"]["mrc.dev/params"]) == {"epochs": 40, "hidden": 8}

    # the pod's own log lines, streamed into the screen while it ran
    run_id = new_version.lineage.training_run
    assert job["metadata"]["name"] == f"mrc-train-{run_id}"
    assert any(line.startswith("launched job " + run_id) for line in log_lines), log_lines
    assert any("data verified, training run " + run_id in line for line in log_lines), log_lines
    assert any(line.startswith("epoch 40/40 loss") for line in log_lines), log_lines
    assert any(0 < p < 1 for p in progress_seen), progress_seen  # moved while running, not only at the end
    assert "GPU requested but CUDA is not available" in "\n".join(log_lines)  # the pod was told to use a GPU
    assert percentage == 1.0

    # the candidate, with the lineage the Job was given
    from console.workspace import Workspace

    ws = Workspace.open(k8s_ws)
    registry = ws.registry()
    assert registry.get_pointers("breast-cancer")["candidate"] == new_version.version
    mv = registry.get_version("breast-cancer", new_version.version)
    annotations = job["metadata"]["annotations"]
    assert mv.lineage.is_complete()
    assert mv.lineage.data_version == annotations["mrc.dev/data-version"] == "breast_cancer@v2"
    assert mv.lineage.data_sha256 == annotations["mrc.dev/data-sha256"]
    assert mv.lineage.code_commit == annotations["mrc.dev/code-commit"]
    assert mv.lineage.params["epochs"] == 40 and mv.lineage.params["hidden"] == 8  # plus the defaults it resolved
    assert mv.lineage.environment.frameworks["torch"]
    assert mv.metrics["auc_roc"] > 0.5
    assert any(e.action == "register" and e.version == mv.version and e.details["training_run"] == run_id
               for e in ws.audit().events())


def test_cancel_from_the_training_screen_deletes_the_job_and_registers_nothing(apiserver, k8s_ws):
    from textual.widgets import Input, ProgressBar

    from console.app import ReleaseConsole
    from console.workspace import Workspace
    from tests.support.k8s.apiserver import PODS

    apiserver.server.volumes["mrc-data"] = str(k8s_ws / "data")

    async def scenario():
        app = ReleaseConsole(Workspace.open(k8s_ws), actor="tester", poll_s=0)
        async with app.run_test(size=(150, 50)) as pilot:
            await app.workers.wait_for_complete()
            app.run_command("train breast-cancer")
            await pilot.pause(0.1)
            screen = app.screen
            screen.query_one("#params", Input).value = "epochs=3000"  # long enough to be cancelled mid-way
            await pilot.press("ctrl+t")
            bar = screen.query_one("#progress", ProgressBar)
            async with asyncio.timeout(60):
                while not bar.progress:  # the pod is training: its progress has reached the screen
                    await pilot.pause(0.05)
            assert screen.job_id and apiserver.server.items(JOBS, NS)
            assert "cancel_run" in {b.binding.action for b in screen.active_bindings.values() if b.enabled}
            await pilot.press("ctrl+g")  # from inside the form: ctrl+x would be the Input's cut
            async with asyncio.timeout(60):
                while screen.running:
                    await pilot.pause(0.05)
            await app.workers.wait_for_complete()
            return str(screen.query_one("#training-status").render()), screen.new_version

    status, new_version = asyncio.run(scenario())
    assert "training failed" in status and "cancelled" in status, status
    assert new_version is None
    assert apiserver.server.items(JOBS, NS) == [] and apiserver.server.items(PODS, NS) == []  # cancel deleted the Job
    (run_dir,) = (k8s_ws / "runs").iterdir()
    assert json.loads((run_dir / "job.json").read_text())["state"] == "cancelled"
    registry = Workspace.open(k8s_ws).registry()
    assert [m.name for m in registry.list_models()] == []  # nothing registered
