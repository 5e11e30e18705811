"""Training on Kubernetes: one batch/v1 Job per run, followed through the Job, its pods and the pod log.

A run keeps the same folder as a local run (runs/<job id>/): spec.json (what was asked, the
data sha256, the manifest), job.json (namespace, Job name, state the console learned),
log.jsonl (the pod log as it streamed) and, once the pod's `result` event arrived, model.pt and
result.json. So `console/training.py` registers a Kubernetes result exactly as a local one:
`result()` gives the model path, metrics, params, environment and data sha256; `record()`
writes back the registered version.

[training] settings (mrc.toml): namespace, context, kubeconfig, image, gpus, gpu_resource,
node_selector, tolerations, backoff_limit, active_deadline_s, ttl_after_finished_s,
data_claim, data_mount, cpu, memory, service_account, poll_s; and for data and model through
object storage instead of the PVC and the pod log: store = "s3", s3_bucket, s3_prefix,
s3_endpoint_url (as mrc reaches it), s3_pod_endpoint_url (as the pod does; default the same),
s3_region, s3_secret (a Secret in the namespace with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

from backends.base import BackendError, BadInputError, NotFoundError, TrainingJob, TrainingSpec, check_name
from backends.k8s.client import LoopThread, api_error, check_int, make_async_client
from backends.native.datasets import DatasetStore
from backends.native.lineage import code_identity
from backends.support.timeutil import now_iso, parse_iso

RUN_LABEL = "mrc.dev/run"
MODEL_ANNOTATION = "mrc.dev/model"
DEFAULT_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
TERMINAL = ("succeeded", "failed", "cancelled")
DOWNLOAD_CHUNK = 1 << 18  # the model from object storage, read and hashed 256 KiB at a time
DOWNLOAD_REPORT_STEP = 0.1  # a progress line every 10 % of it


def _now() -> str:
    return now_iso()


def _age_s(iso: str) -> float:
    from datetime import datetime, timezone

    return (datetime.now(timezone.utc) - parse_iso(iso)).total_seconds()


class _RetryLog(Exception):
    """The log stream failed but the log is readable: follow it again."""


def job_state(job: dict[str, Any]) -> tuple[str, str]:
    """Pure: (state, message) of a batch/v1 Job from its status."""
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return "succeeded", condition.get("message") or "Job complete"
        if condition.get("type") == "Failed":
            return "failed", f"{condition.get('reason', 'Failed')}: {condition.get('message', '')}".strip(": ")
    if status.get("active"):
        return "running", f"{status['active']} pod(s) active"
    return "pending", "waiting for a pod"


def _container_waiting(pod: dict[str, Any]) -> str | None:
    """Pure: a container held waiting (image pull, config error …) — the pod's current trouble — or None."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") not in (None, "ContainerCreating"):
            return f"{waiting['reason']}: {waiting.get('message', '')}".strip(": ")
    return None


def pod_message(pod: dict[str, Any]) -> str:
    """Pure: why a pod is not running yet (unschedulable, image pull …), or its phase."""
    status = pod.get("status") or {}
    waiting = _container_waiting(pod)
    if waiting:
        return waiting
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"{condition.get('reason', 'Unschedulable')}: {condition.get('message', '')}".strip(": ")
    return status.get("phase", "Pending")


def _event_time(event: dict[str, Any]) -> float:
    """An event's newest moment: a core/v1 event carries lastTimestamp (seconds), one written through
    events.k8s.io (the 1.20+ scheduler) eventTime (microseconds) or its series' lastObservedTime."""
    from datetime import datetime

    for text in ((event.get("series") or {}).get("lastObservedTime"), event.get("lastTimestamp"),
                 event.get("eventTime"), (event.get("metadata") or {}).get("creationTimestamp")):
        if text:
            try:
                return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return 0.0


def waiting_reason(pod: dict[str, Any] | None, events: list[dict[str, Any]]) -> str:
    """Pure: why the run has no running pod yet, in the cluster's newest words. A container waiting
    (image pull, config error) is the current state; else the newest event about the pod, or about the
    Job when it has no pod (the Job controller's FailedCreate: no service account, quota, admission);
    else the pod's PodScheduled condition."""
    if pod is not None and _container_waiting(pod):
        return _container_waiting(pod)
    if events:
        newest = max(events, key=lambda e: (_event_time(e), int(e.get("count") or 0)))
        text = " ".join(str(newest.get("message") or newest.get("note") or "").split())
        return f"{newest.get('reason') or newest.get('type') or 'Event'}: {text}".strip(": ")
    if pod is None:
        return "no pod created yet"
    return pod_message(pod)


class K8sTraining:
    def __init__(self, root: str | Path, config: dict[str, Any], *, where: str = "mrc.toml"):
        self.root = Path(root)
        self.runs = self.root / "runs"
        self.where = where
        self.config = dict(config)
        here = f"{where}: [training]"
        self.namespace = str(config.get("namespace", "default"))
        self.image = str(config.get("image", "model-release-console-trainer:0.1.0"))
        self.gpus = check_int(config, "gpus", 1, here)
        self.gpu_resource = str(config.get("gpu_resource", "nvidia.com/gpu"))
        self.node_selector = config.get("node_selector", {})
        if not isinstance(self.node_selector, dict):
            raise BadInputError(f"{here}: node_selector must be a table of label = value")
        # Applied only to a pod that asks for a GPU, and one can ask per run (--gpu, the screen's checkbox)
        # with gpus = 0 in mrc.toml: the default toleration must not hang on that setting.
        self.tolerations = config.get("tolerations", DEFAULT_TOLERATIONS)
        if not isinstance(self.tolerations, list) or not all(isinstance(t, dict) for t in self.tolerations):
            raise BadInputError(f"{here}: tolerations must be a list of tables (key, operator, value, effect)")
        self.backoff_limit = check_int(config, "backoff_limit", 1, here)
        self.active_deadline_s = check_int(config, "active_deadline_s", 6 * 3600, here, minimum=1)
        self.ttl_after_finished_s = check_int(config, "ttl_after_finished_s", 24 * 3600, here)
        self.data_claim = str(config.get("data_claim", "mrc-data"))
        self.data_mount = str(config.get("data_mount", "/data"))
        self.store = str(config.get("store", "pvc"))
        if self.store not in ("pvc", "s3"):
            raise BadInputError(f"{here}: store must be \"pvc\" or \"s3\", got {self.store!r}")
        self.s3 = {k: str(config[f"s3_{k}"]) for k in ("bucket", "prefix", "endpoint_url", "pod_endpoint_url",
                                                       "region", "secret") if config.get(f"s3_{k}")}
        if self.store == "s3" and "bucket" not in self.s3:
            raise BadInputError(f"{here}: store = \"s3\" needs s3_bucket")
        self.s3.setdefault("prefix", "mrc-training")
        self.s3.setdefault("secret", "mrc-s3")
        self.poll_s = float(config.get("poll_s", 1.0))
        # how long a run may wait for its first pod to start before it fails with the cluster's reason
        # 0 (the default): wait as long as the cluster makes it wait; a shared cluster may queue a GPU Job
        # for hours (quota, an autoscaler, Kueue), and a status read must not delete it unasked
        self.start_timeout_s = check_int(config, "start_timeout_s", 0, here, minimum=0)
        self.datasets = DatasetStore(self.root)
        self._loop: LoopThread | None = None
        self._client = None

    @classmethod
    def from_config(cls, workspace: Any, config: dict[str, Any]) -> "K8sTraining":
        return cls(workspace.root, config, where=str(workspace.config_path))

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def loop(self) -> LoopThread:
        if self._loop is None:
            self._loop = LoopThread()
        return self._loop

    def client(self):
        if self._client is None:
            self._client = make_async_client(self.config, namespace=self.namespace, where=f"{self.where}: [training]")
        return self._client

    def close(self) -> None:
        if self._loop is not None:
            if self._client is not None:
                self.loop.run(self._client.close())
            self._loop.close()
        self._loop = self._client = None

    def _run_dir(self, job_id: str) -> Path:
        check_name(job_id, "job id")
        path = self.runs / job_id
        if not (path / "job.json").exists():
            raise NotFoundError(f"unknown training job {job_id!r}")
        return path

    def _meta(self, job_id: str) -> dict[str, Any]:
        return json.loads((self._run_dir(job_id) / "job.json").read_text())

    def record(self, job_id: str, **fields: Any) -> None:
        """Write back what the console learned (state, finished_at, the registered version)."""
        path = self._run_dir(job_id) / "job.json"
        meta = json.loads(path.read_text())
        meta.update(fields)
        path.write_text(json.dumps(meta, indent=2))

    # -- the manifest --------------------------------------------------------------------------
    def _dataset_ref(self, ref: str) -> dict[str, str]:
        self.datasets.verified_path(ref)  # the bytes we record are the bytes on disk
        dataset = self.datasets.get(ref)
        relative = Path(dataset.path)
        if relative.parts[:1] == ("data",):  # data/<name>/<version>.csv -> <name>/<version>.csv on the volume
            relative = Path(*relative.parts[1:])
        return {"ref": ref, "path": relative.as_posix(), "sha256": dataset.sha256}

    def manifest(self, job_id: str, spec: TrainingSpec, trainer_spec: dict[str, Any]) -> dict[str, Any]:
        """The batch/v1 Job for one run (pure given its inputs; validated in the tests)."""
        labels = {"app.kubernetes.io/managed-by": "mrc", "app.kubernetes.io/component": "training", RUN_LABEL: job_id}
        annotations = {
            MODEL_ANNOTATION: spec.model, "mrc.dev/data-version": spec.data_version,
            "mrc.dev/data-sha256": trainer_spec["train_data"]["sha256"], "mrc.dev/code-commit": spec.code_commit,
            "mrc.dev/code-repo": spec.code_repo, "mrc.dev/params": json.dumps(spec.params, sort_keys=True),
            "mrc.dev/parent-version": spec.parent_version or "",
        }
        limits: dict[str, str] = {}
        requests: dict[str, str] = {}
        gpus = self.gpus or (1 if spec.gpu else 0)  # [training] gpus sets the size; --gpu asks for one when unset
        if gpus:
            limits[self.gpu_resource] = str(gpus)  # extended resources: limits only (requests default to it)
        for key in ("cpu", "memory"):
            if self.config.get(key):
                limits[key] = requests[key] = str(self.config[key])
        container: dict[str, Any] = {
            "name": "trainer",
            "image": self.image,
            "command": ["python", "-m", "backends.k8s.pod_trainer"],
            "env": [
                {"name": "MRC_TRAINER_SPEC", "value": json.dumps(trainer_spec, sort_keys=True)},
                {"name": "MRC_DATA_ROOT", "value": self.data_mount},
                {"name": "MRC_CODE_COMMIT", "value": spec.code_commit},
                {"name": "PYTHONUNBUFFERED", "value": "1"},
            ],
            "resources": {"limits": limits, **({"requests": requests} if requests else {})},
        }
        pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
        if self.store == "pvc":
            container["volumeMounts"] = [{"name": "data", "mountPath": self.data_mount, "readOnly": True}]
            pod_spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": self.data_claim,
                                                                              "readOnly": True}}]
        else:  # the pod reads the data from and writes the model to object storage, with these credentials
            container["env"] += [{"name": key, "valueFrom": {"secretKeyRef": {"name": self.s3["secret"], "key": key}}}
                                 for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")]
        if self.node_selector:
            pod_spec["nodeSelector"] = {str(k): str(v) for k, v in self.node_selector.items()}
        if self.tolerations and limits.get(self.gpu_resource):
            pod_spec["tolerations"] = [dict(t) for t in self.tolerations]
        if self.config.get("service_account"):
            pod_spec["serviceAccountName"] = str(self.config["service_account"])
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": f"mrc-train-{job_id}", "namespace": self.namespace, "labels": labels,
                         "annotations": annotations},
            "spec": {
                "backoffLimit": self.backoff_limit,
                "activeDeadlineSeconds": self.active_deadline_s,
                "ttlSecondsAfterFinished": self.ttl_after_finished_s,
                "template": {"metadata": {"labels": labels, "annotations": {MODEL_ANNOTATION: spec.model}},
                             "spec": pod_spec},
            },
        }

    # -- launch ------------------------------------------------------------------------------------
    def launch(self, spec: TrainingSpec) -> TrainingJob:
        return self.loop.run(self.alaunch(spec))

    async def alaunch(self, spec: TrainingSpec) -> TrainingJob:
        import asyncio

        from lightkube.resources.batch_v1 import Job  # lightkube: ~0.13 s

        check_name(spec.model, "model")
        if not spec.code_commit:  # the lineage must name the code: record it before the Job exists

            spec.code_commit, spec.code_repo = code_identity()
        train = self._dataset_ref(spec.data_version)
        job_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        label = spec.label or self.datasets.get(spec.data_version).label
        if not label:
            raise BadInputError(f"dataset {spec.data_version}: no label column recorded; pass a label")
        trainer_spec: dict[str, Any] = {"run_id": job_id, "label": label, "params": spec.params,
                                        "gpu": bool(spec.gpu or self.gpus), "train_data": train}
        for key, ref in (("test_data", spec.test_data), ("golden_data", spec.golden_data)):
            if ref:
                trainer_spec[key] = self._dataset_ref(ref)
        if self.store == "s3":
            await asyncio.to_thread(self._upload_data, trainer_spec)
            trainer_spec["store"] = {"kind": "s3", "bucket": self.s3["bucket"], "region": self.s3.get("region", ""),
                                     "endpoint_url": self.s3.get("pod_endpoint_url") or self.s3.get("endpoint_url", ""),
                                     "model_key": f"{self.s3['prefix']}/runs/{job_id}/model.pt"}
        manifest = self.manifest(job_id, spec, trainer_spec)
        run_dir = self.runs / job_id
        run_dir.mkdir(parents=True)
        (run_dir / "spec.json").write_text(json.dumps({"training_spec": spec.to_dict(), "trainer": trainer_spec,
                                                       "data_sha256": train["sha256"], "manifest": manifest}, indent=2))
        (run_dir / "log.jsonl").write_text("")
        meta = {"backend": "k8s", "namespace": self.namespace, "job_name": manifest["metadata"]["name"],
                **TrainingJob(job_id, spec.model, "pending", 0.0, "Job created", _now(), "", str(run_dir)).to_dict()}
        (run_dir / "job.json").write_text(json.dumps(meta, indent=2))
        try:
            if self.store == "pvc":
                await self._check_claim()
        except Exception as exc:
            self.record(job_id, state="failed", message=f"Job not created: {exc}", finished_at=_now())
            raise
        try:
            created = await self.client().create(Job.from_dict(manifest), namespace=self.namespace)
        except Exception as exc:
            self.record(job_id, state="failed", message=f"Job not created: {exc}", finished_at=_now())
            raise api_error(exc, f"create Job {manifest['metadata']['name']} in {self.namespace}") from None
        self.record(job_id, uid=created.metadata.uid or "")
        return TrainingJob(job_id, spec.model, "pending", 0.0, "Job created", meta["started_at"], "", str(run_dir))

    async def _check_claim(self) -> None:
        """The data volume must exist before the Job does: a pod mounting a missing claim stays Pending forever."""
        from lightkube import ApiError  # lightkube: ~0.13 s
        from lightkube.resources.core_v1 import PersistentVolumeClaim

        try:
            await self.client().get(PersistentVolumeClaim, self.data_claim, namespace=self.namespace)
        except ApiError as exc:
            if getattr(exc.status, "code", None) == 404:
                raise BadInputError(f"{self.where}: [training] data_claim: no PersistentVolumeClaim {self.data_claim!r} "
                                    f"in namespace {self.namespace}; create it (a volume holding the workspace's "
                                    "data/ folder) or name an existing one") from None
            raise api_error(exc, f"read PersistentVolumeClaim {self.data_claim} in {self.namespace}") from None
        except Exception as exc:
            raise api_error(exc, f"read PersistentVolumeClaim {self.data_claim} in {self.namespace}") from None

    # -- object storage ----------------------------------------------------------------------------
    def _s3_client(self):
        import boto3  # boto3: ~0.15 s
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.s3.get("endpoint_url") or None,
                            region_name=self.s3.get("region") or None,
                            config=Config(retries={"max_attempts": 3, "mode": "standard"},
                                          s3={"addressing_style": "path"} if self.s3.get("endpoint_url") else {}))

    def _upload_data(self, trainer_spec: dict[str, Any]) -> None:
        """Each dataset once under its sha256 (content-addressed: a rerun uploads nothing)."""
        from botocore.exceptions import BotoCoreError, ClientError  # botocore: ~0.12 s

        client = self._s3_client()
        for key in ("train_data", "test_data", "golden_data"):
            ref = trainer_spec.get(key)
            if not ref:
                continue
            ref["s3_key"] = f"{self.s3['prefix']}/data/{ref['sha256']}.csv"
            where = f"s3://{self.s3['bucket']}/{ref['s3_key']}"
            try:
                try:
                    client.head_object(Bucket=self.s3["bucket"], Key=ref["s3_key"])
                except ClientError as exc:
                    if str(exc.response.get("Error", {}).get("Code")) not in ("404", "NoSuchKey", "NotFound"):
                        raise
                    client.upload_file(str(self.datasets.verified_path(ref["ref"])), self.s3["bucket"], ref["s3_key"])
            except (BotoCoreError, ClientError) as exc:
                raise BackendError(f"{self.where}: [training] upload of dataset {ref['ref']} to {where}: {exc}") from None

    def _download_model(self, run_dir: Path, event: dict[str, Any], report) -> Path:
        """On a worker thread: stream the model into model.pt.part, hashing as it comes; report(done, total)
        after each chunk. Returns the part file once its sha256 is the logged one (removed otherwise)."""
        from botocore.exceptions import BotoCoreError, ClientError  # botocore: ~0.12 s

        where = f"s3://{self.s3['bucket']}/{event['model_key']}"
        part = run_dir / "model.pt.part"
        digest = hashlib.sha256()
        try:
            body = self._s3_client().get_object(Bucket=self.s3["bucket"], Key=event["model_key"])
            total, done = int(body.get("ContentLength") or 0), 0
            with open(part, "wb") as fh:
                for chunk in body["Body"].iter_chunks(DOWNLOAD_CHUNK):
                    fh.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    report(done, total)
        except (BotoCoreError, ClientError) as exc:
            part.unlink(missing_ok=True)
            raise BackendError(f"run {run_dir.name}: model {where}: {exc}") from None
        if digest.hexdigest() != event["model_sha256"]:
            part.unlink(missing_ok=True)
            raise BackendError(f"run {run_dir.name}: the model in {where} does not match its sha256")
        return part

    # -- status --------------------------------------------------------------------------------
    def status(self, job_id: str) -> TrainingJob:
        return self.loop.run(self.astatus(job_id))

    async def _pods(self, job_id: str, namespace: str) -> list[dict[str, Any]]:
        from lightkube.resources.core_v1 import Pod  # lightkube: ~0.13 s

        try:
            pods = [pod.to_dict() async for pod in self.client().list(Pod, namespace=namespace,
                                                                      labels={RUN_LABEL: job_id})]
        except Exception as exc:
            raise api_error(exc, f"list pods of run {job_id} in {namespace}") from None
        return sorted(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))

    async def astatus(self, job_id: str) -> TrainingJob:
        from lightkube import ApiError  # lightkube: ~0.13 s
        from lightkube.resources.batch_v1 import Job

        meta = self._meta(job_id)
        run_dir = self._run_dir(job_id)
        job = TrainingJob(job_id, meta["model"], meta["state"], 0.0, meta.get("message", ""), meta["started_at"],
                          meta.get("finished_at", ""), str(run_dir), meta.get("version"))
        progress = self._last_progress(run_dir)
        if progress:
            job.progress = float(progress.get("progress", 0.0))
            job.message = f"epoch {progress.get('epoch')}/{progress.get('epochs')} loss {progress.get('loss')}"
        if meta.get("cancelled") or meta["state"] in TERMINAL:
            if (run_dir / "result.json").exists() and job.state == "succeeded":
                job.progress = 1.0
            return job
        try:
            k8s_job = (await self.client().get(Job, meta["job_name"], namespace=meta["namespace"])).to_dict()
        except ApiError as exc:
            if getattr(exc.status, "code", None) == 404:  # gone (TTL or someone deleted it): what we saw is all
                job.state = "succeeded" if (run_dir / "result.json").exists() else "failed"
                job.message = job.message if job.state == "succeeded" else "the Job is gone and left no result"
                return job
            raise api_error(exc, f"read Job {meta['job_name']}") from None
        except Exception as exc:
            raise api_error(exc, f"read Job {meta['job_name']}") from None
        state, message = job_state(k8s_job)
        if state == "succeeded" and not (run_dir / "result.json").exists():
            # the Job finished before anyone followed its log: collect the result event now
            state, message = await self._collect_result(job_id, meta["namespace"], run_dir)
        if state in ("pending", "running"):  # a Job counts a Pending pod as active: the pod says more
            pods = await self._pods(job_id, meta["namespace"])
            newest = pods[-1] if pods else None
            if (newest is None and state == "pending") or \
                    (newest is not None and (newest.get("status") or {}).get("phase", "Pending") == "Pending"):
                about = (newest or {}).get("metadata", {}).get("name") or meta["job_name"]
                state, message = "pending", waiting_reason(newest, await self._events(about, meta["namespace"]))
                never_started = all((p.get("status") or {}).get("phase", "Pending") == "Pending" for p in pods)
                if never_started and self.start_timeout_s and _age_s(meta["started_at"]) > self.start_timeout_s:
                    return await self._give_up(job_id, job, message)
        job.state = state
        if state in ("failed", "pending") or not progress:
            job.message = message
        if state == "succeeded":
            job.progress = 1.0
            result = json.loads((run_dir / "result.json").read_text())
            job.message = "succeeded: " + ", ".join(f"{k} {v}" for k, v in sorted(result["metrics"].items())[:3])
        if state in TERMINAL:
            self.record(job_id, state=state, message=job.message, finished_at=_now())
            job.finished_at = self._meta(job_id)["finished_at"]
        return job

    async def _events(self, name: str, namespace: str) -> list[dict[str, Any]]:
        """The events about one object (the pod, or the Job while it has none), for why it has not started."""
        from lightkube.resources.core_v1 import Event  # lightkube: ~0.13 s

        try:
            return [e.to_dict() async for e in self.client().list(Event, namespace=namespace,
                                                                  fields={"involvedObject.name": name})]
        except Exception as exc:
            raise api_error(exc, f"list events of {name} in {namespace}") from None

    async def _give_up(self, job_id: str, job: TrainingJob, reason: str) -> TrainingJob:
        """No pod started within start_timeout_s: delete the Job (it must not start later, unwatched) and fail
        with the cluster's reason."""
        from lightkube import ApiError  # lightkube: ~0.13 s
        from lightkube.resources.batch_v1 import Job
        from lightkube.types import CascadeType

        meta = self._meta(job_id)
        try:
            await self.client().delete(Job, meta["job_name"], namespace=meta["namespace"],
                                       cascade=CascadeType.FOREGROUND)
        except ApiError as exc:
            if getattr(exc.status, "code", None) != 404:
                raise api_error(exc, f"delete Job {meta['job_name']}") from None
        job.state, job.message = "failed", f"no pod started within {self.start_timeout_s} s (Job deleted): {reason}"
        self.record(job_id, state="failed", message=job.message, finished_at=_now())
        job.finished_at = self._meta(job_id)["finished_at"]
        return job

    async def _collect_result(self, job_id: str, namespace: str, run_dir: Path) -> tuple[str, str]:
        pods = [p for p in await self._pods(job_id, namespace) if (p.get("status") or {}).get("phase") == "Succeeded"]
        event = None
        if pods:
            async for line in self.client().log(pods[-1]["metadata"]["name"], namespace=namespace, newlines=False):
                if '"result"' in line:
                    try:
                        candidate = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(candidate, dict) and candidate.get("event") == "result":
                        event = candidate
        if event is None or event.get("state") != "succeeded":
            return "failed", "the Job completed but its pod log held no result event"
        async for note in self._store_result(run_dir, event):
            self._append_log(run_dir, note)
        return "succeeded", "Job complete"

    def _last_progress(self, run_dir: Path) -> dict[str, Any] | None:
        last = None
        try:
            with open(run_dir / "log.jsonl") as fh:
                for line in fh:
                    if '"progress"' in line:
                        try:
                            event = json.loads(line)
                        except ValueError:
                            continue
                        if event.get("event") == "progress":
                            last = event
        except FileNotFoundError:
            pass
        return last

    # -- logs ----------------------------------------------------------------------------------
    def logs(self, job_id: str, *, follow: bool = False) -> Iterator[str]:
        if not follow:
            yield from (self._run_dir(job_id) / "log.jsonl").read_text().splitlines()
            return
        yield from self.loop.iterate(self.alogs(job_id, follow=True))

    async def alogs(self, job_id: str, *, follow: bool = True) -> AsyncIterator[str]:
        """The pod log, live, pod after pod (a retry under backoffLimit is a new pod)."""
        import asyncio

        import httpx2  # httpx2: ~0.1 s
        from lightkube import ApiError

        run_dir = self._run_dir(job_id)
        meta = self._meta(job_id)
        if not follow or meta["state"] in TERMINAL:
            for line in (run_dir / "log.jsonl").read_text().splitlines():
                yield line
            return
        seen: dict[str, int] = {}  # pod -> lines already taken (a broken stream resumes after them)
        done: set[str] = set()
        waiting = ""  # why no pod runs, as last shown: a new line only when the cluster's reason changes
        while True:
            pods = await self._pods(job_id, meta["namespace"])
            streamable = [p for p in pods if p["metadata"]["name"] not in done
                          and (p.get("status") or {}).get("phase") in ("Running", "Succeeded", "Failed")]
            if not streamable:
                status = await self.astatus(job_id)
                if status.state in TERMINAL:
                    return
                if status.state == "pending" and status.message != waiting:
                    waiting = status.message
                    yield self._append_log(run_dir, json.dumps({"event": "log", "waiting": waiting,
                                                                "message": f"pod not started: {waiting}"}))
                await asyncio.sleep(self.poll_s)
                continue
            pod = streamable[0]
            name = pod["metadata"]["name"]
            try:
                count = 0
                async for line in self._follow_log(name, meta["namespace"]):
                    count += 1
                    if count <= seen.get(name, 0):
                        continue
                    seen[name] = count
                    async for shown in self._take_line(run_dir, line):
                        yield shown
                done.add(name)
            except (ApiError, httpx2.TransportError, _RetryLog) as exc:
                if isinstance(exc, ApiError) and getattr(exc.status, "code", None) in (401, 403):
                    raise api_error(exc, f"read the log of pod {name}") from None  # retrying cannot help
                if isinstance(exc, ApiError) and getattr(exc.status, "code", None) == 404:
                    done.add(name)  # the pod went away (cancel, TTL)
                await asyncio.sleep(self.poll_s)

    async def _follow_log(self, name: str, namespace: str) -> AsyncIterator[str]:
        """lightkube's followed log, with its error path repaired: on an error answer lightkube 1.0 reads the
        streamed body synchronously and raises RuntimeError, hiding the API error (a 403, a 404). Asking once
        without follow (the body read whole) turns it back into that ApiError."""
        try:
            async for line in self.client().log(name, namespace=namespace, follow=True, newlines=False):
                yield line
        except RuntimeError as exc:
            if "async stream" not in str(exc):
                raise
            async for _ in self.client().log(name, namespace=namespace, tail_lines=1, newlines=False):
                pass  # it answered this time: follow again from where we were
            raise _RetryLog() from None

    async def _take_line(self, run_dir: Path, line: str) -> AsyncIterator[str]:
        """Keep one pod log line and yield it; the `result` event becomes model.pt + result.json here, the
        lines of its download (from object storage) coming first."""
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if isinstance(event, dict) and event.get("event") == "result":
            async for note in self._store_result(run_dir, event):
                yield self._append_log(run_dir, note)
            line = json.dumps({"event": "done", "state": event.get("state"), "message": event.get("message", "")})
        yield self._append_log(run_dir, line)

    @staticmethod
    def _append_log(run_dir: Path, line: str) -> str:
        with open(run_dir / "log.jsonl", "a") as fh:
            fh.write(line + "\n")
        return line

    async def _store_result(self, run_dir: Path, event: dict[str, Any]) -> AsyncIterator[str]:
        """Keep the result event's model (checked against its sha256) and metrics. A model in object storage
        is downloaded on a worker thread — the event loop keeps streaming and polling meanwhile — and this
        yields its progress as log events (every DOWNLOAD_REPORT_STEP of it)."""
        import asyncio

        if event.get("state") != "succeeded":
            (run_dir / "failed.json").write_text(json.dumps(event, indent=2))
            return
        if "model_key" in event:  # the pod wrote it to object storage: fetch it, check it is those bytes
            where = f"s3://{self.s3['bucket']}/{event['model_key']}"
            loop = asyncio.get_running_loop()
            notes: asyncio.Queue = asyncio.Queue()
            reported = [-1.0]

            def report(done: int, total: int) -> None:  # on the worker thread
                share = done / total if total else 0.0
                if share >= 1.0 or share - reported[0] >= DOWNLOAD_REPORT_STEP:
                    reported[0] = share
                    loop.call_soon_threadsafe(notes.put_nowait, (done, total))

            download = asyncio.ensure_future(asyncio.to_thread(self._download_model, run_dir, event, report))
            while not (download.done() and notes.empty()):
                waiter = asyncio.ensure_future(notes.get())
                await asyncio.wait({waiter, download}, return_when=asyncio.FIRST_COMPLETED)
                if not waiter.done():
                    waiter.cancel()
                    continue
                done, total = waiter.result()
                yield json.dumps({"event": "log", "message": f"model download {100 * done / max(total, 1):.0f}% "
                                  f"({done / 1e6:.1f} of {total / 1e6:.1f} MB) from {where}",
                                  "download": {"bytes": done, "total": total}})
            download.result().replace(run_dir / "model.pt")  # raises the download's error (sha256, S3)
        else:
            blob = base64.b64decode(event["model_b64"])
            if hashlib.sha256(blob).hexdigest() != event["model_sha256"]:
                raise BackendError(f"run {run_dir.name}: the model in the pod log does not match its sha256")
            (run_dir / "model.pt").write_bytes(blob)
        result = {k: event[k] for k in ("state", "metrics", "params", "environment", "model_sha256")}
        if "model_key" in event:
            result["model_uri"] = f"s3://{self.s3['bucket']}/{event['model_key']}"
        (run_dir / "metrics.json").write_text(json.dumps(result["metrics"], indent=2, sort_keys=True))
        (run_dir / "result.json").write_text(json.dumps(result, indent=2, sort_keys=True))

    # -- cancel and result ---------------------------------------------------------------------------
    def cancel(self, job_id: str) -> TrainingJob:
        return self.loop.run(self.acancel(job_id))

    async def acancel(self, job_id: str) -> TrainingJob:
        from lightkube import ApiError  # lightkube: ~0.13 s
        from lightkube.resources.batch_v1 import Job
        from lightkube.types import CascadeType

        meta = self._meta(job_id)
        status = await self.astatus(job_id)
        if status.state in TERMINAL:
            return status
        try:  # Foreground propagation: the Job is gone only once its pods are (the process killed)
            await self.client().delete(Job, meta["job_name"], namespace=meta["namespace"],
                                       cascade=CascadeType.FOREGROUND)
        except ApiError as exc:
            if getattr(exc.status, "code", None) != 404:
                raise api_error(exc, f"delete Job {meta['job_name']}") from None
        self.record(job_id, state="cancelled", cancelled=True, message="cancelled: Job deleted", finished_at=_now())
        return await self.astatus(job_id)

    def result(self, job_id: str) -> dict[str, Any]:
        run_dir = self._run_dir(job_id)
        spec = json.loads((run_dir / "spec.json").read_text())
        path = run_dir / "result.json"
        if not path.exists():
            failed = run_dir / "failed.json"
            message = json.loads(failed.read_text()).get("message", "") if failed.exists() else "no result in the pod log"
            state = self._meta(job_id)["state"]
            return {"state": "failed" if state == "succeeded" else state, "message": message}
        result = json.loads(path.read_text())
        result["model_path"] = str(run_dir / "model.pt")
        result["data_sha256"] = spec["data_sha256"]
        result["training_spec"] = spec["training_spec"]
        return result
