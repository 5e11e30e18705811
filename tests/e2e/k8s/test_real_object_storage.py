"""Training data and model through object storage (real SeaweedFS S3), on the real control plane.

`store = "s3"`: mrc uploads the dataset under its sha256, the Job (no volume at all) reads it
from S3 with credentials from a Secret, writes the model to S3 and logs only its key and sha256;
mrc fetches it and registers the candidate with the hash checked.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from backends.base import BackendError
from backends.k8s.training import K8sTraining
from tests.support.k8s.real_cluster import workspace_toml
from tests.support import servers
from tests.support.remote import _remote_credentials, s3_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration
BUCKET = "mrc-k8s-training"


def s3_training(ns: str, kubeconfig, endpoint: str) -> str:
    toml = workspace_toml(ns, kubeconfig, store="s3", s3_bucket=BUCKET, s3_endpoint_url=endpoint,
                          s3_region="us-east-1", s3_prefix=f"runs-{ns}")
    return toml


def test_mrc_train_reads_data_from_and_writes_the_model_to_s3_with_its_hash_checked(cluster, k8s_ws, mrc,
                                                                                     s3_server):  # noqa: F811
    s3_server.create_bucket(BUCKET)
    ns = cluster.namespace()  # no PV, no PVC: nothing mounted
    cluster.kubectl("create", "secret", "generic", "mrc-s3", "-n", ns,
                    f"--from-literal=AWS_ACCESS_KEY_ID={servers.ACCESS_KEY}",
                    f"--from-literal=AWS_SECRET_ACCESS_KEY={servers.SECRET_KEY}")
    (k8s_ws / "mrc.toml").write_text(s3_training(ns, cluster.mrc_kubeconfig, s3_server.endpoint))
    result = mrc("train", "breast-cancer", "--backend", "k8s", "--gpu", "--param", "epochs=4",
                 "--workspace", str(k8s_ws))
    assert result.returncode == 0, result.stderr
    assert servers.SECRET_KEY not in result.stderr + result.stdout

    (version,) = mrc("versions", "breast-cancer", "--json", "--workspace", str(k8s_ws)).json()["versions"]
    run_id = version["lineage"]["training_run"]
    client = s3_server.client()
    model = client.get_object(Bucket=BUCKET, Key=f"runs-{ns}/runs/{run_id}/model.pt")["Body"].read()
    assert hashlib.sha256(model).hexdigest() == version["artifact"]["sha256"]  # the registered bytes are S3's
    data_sha = version["lineage"]["data_sha256"]
    uploaded = client.get_object(Bucket=BUCKET, Key=f"runs-{ns}/data/{data_sha}.csv")["Body"].read()
    assert hashlib.sha256(uploaded).hexdigest() == data_sha

    job = cluster.get("job", f"mrc-train-{run_id}", ns)
    pod_spec = job["spec"]["template"]["spec"]
    assert not any("persistentVolumeClaim" in v for v in pod_spec.get("volumes") or [])
    env = {e["name"]: e for e in pod_spec["containers"][0]["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "mrc-s3",
                                                                           "key": "AWS_SECRET_ACCESS_KEY"}
    assert servers.SECRET_KEY not in json.dumps(job)  # the Job names the Secret, never the key
    (pod,) = cluster.items("pods", ns, f"mrc.dev/run={run_id}")
    logged = cluster.kubectl("logs", "-n", ns, pod["metadata"]["name"]).stdout
    assert '"model_key"' in logged and '"model_b64"' not in logged  # the model did not travel in the log


def test_a_model_whose_bytes_in_s3_are_not_the_logged_hash_is_refused(cluster, k8s_ws, s3_server, tmp_path):  # noqa: F811
    s3_server.create_bucket(BUCKET)
    s3_server.client().put_object(Bucket=BUCKET, Key="tampered/model.pt", Body=b"not the model")
    training = K8sTraining(k8s_ws, {"namespace": "unused", "store": "s3", "s3_bucket": BUCKET,
                                    "s3_endpoint_url": s3_server.endpoint, "s3_region": "us-east-1"})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    event = {"event": "result", "state": "succeeded", "metrics": {}, "params": {}, "environment": {},
             "model_sha256": hashlib.sha256(b"the model").hexdigest(), "model_key": "tampered/model.pt"}
    with pytest.raises(BackendError, match="does not match its sha256"):
        training.loop.run(_drain(training._store_result(run_dir, event)))
    assert sorted(p.name for p in run_dir.iterdir()) == []  # no model.pt, no result.json, no part file left
    training.close()


async def _drain(notes) -> list[str]:
    return [note async for note in notes]


def test_the_model_download_runs_off_the_event_loop_with_progress_and_its_hash_checked(k8s_ws, s3_server,
                                                                                       tmp_path):  # noqa: F811
    """A heartbeat coroutine on the backend's loop keeps ticking while an 8 MB model comes from SeaweedFS:
    it ticks between the download's progress reports, which it could not if the download held the loop."""
    import asyncio
    import os

    s3_server.create_bucket(BUCKET)
    model = os.urandom(8 << 20)
    s3_server.client().put_object(Bucket=BUCKET, Key="big/model.pt", Body=model)
    training = K8sTraining(k8s_ws, {"namespace": "unused", "store": "s3", "s3_bucket": BUCKET,
                                    "s3_endpoint_url": s3_server.endpoint, "s3_region": "us-east-1"})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "log.jsonl").write_text("")
    event = {"event": "result", "state": "succeeded", "metrics": {"auc_roc": 0.9}, "params": {}, "environment": {},
             "model_sha256": hashlib.sha256(model).hexdigest(), "model_key": "big/model.pt"}

    async def download_with_heartbeat() -> tuple[list[dict], list[int]]:
        ticks, ticks_at_note, notes = [0], [], []
        running = True

        async def heartbeat():
            while running:
                ticks[0] += 1
                await asyncio.sleep(0.005)

        beating = asyncio.ensure_future(heartbeat())
        async for line in training._take_line(run_dir, json.dumps(event)):
            notes.append(json.loads(line))
            ticks_at_note.append(ticks[0])
        running = False
        await beating
        return notes, ticks_at_note

    notes, ticks_at_note = training.loop.run(download_with_heartbeat())
    progress = [n["download"] for n in notes if "download" in n]
    assert len(progress) >= 5 and progress[-1] == {"bytes": len(model), "total": len(model)}
    assert [p["bytes"] for p in progress] == sorted(p["bytes"] for p in progress)
    assert "100% (8.4 of 8.4 MB) from s3://" in notes[-2]["message"]
    assert notes[-1]["event"] == "done" and notes[-1]["state"] == "succeeded"
    # the loop ran the heartbeat between progress reports: the download did not hold it
    assert len(set(ticks_at_note[:len(progress)])) >= 3, ticks_at_note
    assert (run_dir / "model.pt").read_bytes() == model and not (run_dir / "model.pt.part").exists()
    assert json.loads((run_dir / "result.json").read_text())["model_uri"] == f"s3://{BUCKET}/big/model.pt"
    logged = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert logged == notes  # the progress is in the run's log, as the training's own progress is
    training.close()
