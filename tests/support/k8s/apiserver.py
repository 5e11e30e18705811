"""kmock's KubernetesEmulator, extended to behave like a real API server where our backend depends on it.

kmock (0.8) gives us the HTTP server, request parsing (resource, namespace, name, action,
subresource), an object store and discovery. Where it falls short of a real API server, this
subclass does what the API server does:
- assigns metadata.resourceVersion (one cluster-wide counter, as etcd's revision), uid,
  creationTimestamp, generation; lists carry the current resourceVersion;
- answers 409 Conflict to a write whose metadata.resourceVersion is stale, and 409
  AlreadyExists to a duplicate create; nothing is written then;
- applies PATCH by its Content-Type: JSON merge patch (RFC 7386: null deletes, lists replace),
  strategic merge (treated as merge: our objects have no strategic list keys), JSON patch;
- filters LIST by labelSelector (=, ==, !=, exists, !exists);
- serves pods/NAME/log, with follow=true streaming until the container exits.
And it plays the cluster's controllers, just enough for our flows:
- a Job controller + kubelet: a Job gets a Pod (labels job-name, controller-uid, the template's),
  scheduled on a fake GPU node only if its nodeSelector matches and it tolerates the node's
  taint; its container command runs here as a local process (the PVC mapped to a host folder)
  with stdout as the pod log; backoffLimit retries, activeDeadlineSeconds, Complete/Failed
  conditions; deleting the Job kills the process and removes its pods;
- a KServe controller: status.components.predictor.traffic (Serverless: Knative revisions,
  latestRolledoutRevision, canaryTrafficPercent honoured) or status.canaryStatuses (Standard,
  where canaryTrafficPercent is ignored as kserve#5335 says). Each status write bumps
  resourceVersion, as on a real cluster.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import json
import os
import secrets
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal.k8s import KubernetesError

REPO = Path(__file__).resolve().parents[3]
JOBS = kmock.resource("batch", "v1", "jobs")
PODS = kmock.resource("", "v1", "pods")
ISVCS = kmock.resource("serving.kserve.io", "v1beta1", "inferenceservices")
EVENTS = kmock.resource("", "v1", "events")


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _conflict(message: str) -> KubernetesError:
    return KubernetesError(status=409, reason="Conflict", message=message, details={})


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    volumes: dict[str, str] = attrs.field(factory=dict)  # PVC claim name -> host folder
    node_labels: dict[str, str] = attrs.field(factory=lambda: {"nvidia.com/gpu.present": "true"})
    node_taints: list[dict[str, str]] = attrs.field(
        factory=lambda: [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}])
    revision: int = attrs.field(default=1000)
    pod_logs: dict[tuple[str, str], list[str]] = attrs.field(factory=dict)
    pod_done: dict[tuple[str, str], asyncio.Event] = attrs.field(factory=dict)
    job_tasks: dict[tuple[str, str], asyncio.Task] = attrs.field(factory=dict)
    processes: dict[tuple[str, str], Any] = attrs.field(factory=dict)
    knative: dict[tuple[str, str], dict[str, Any]] = attrs.field(factory=dict)
    writes: list[tuple[str, str, str]] = attrs.field(factory=list)  # (verb, resource plural, name) accepted

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for res in (JOBS, PODS, ISVCS, EVENTS):
            self.resources[res] = {}

    # -- the store ---------------------------------------------------------------------------
    def get(self, res, namespace: str, name: str) -> dict[str, Any] | None:
        key = (res, namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return copy.deepcopy(self.objects[key].raw)

    def items(self, res, namespace: str | None = None) -> list[dict[str, Any]]:
        out = []
        for (r, ns, _), obj in list(self.objects.items()):
            if r == res and (namespace is None or ns == namespace) and not obj.deleted:
                out.append(copy.deepcopy(obj.raw))
        return out

    async def store(self, res, obj: dict[str, Any], *, event: str) -> dict[str, Any]:
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        key = (res, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if key in self.objects and not self.objects[key].deleted:
            self.objects[key].create(obj)
        elif key in self.objects:
            self.objects[key].create(obj)
        else:
            self.objects[key] = obj
        await self._buses[res].put({"type": event, "object": copy.deepcopy(obj)})
        return copy.deepcopy(obj)

    async def remove(self, res, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.get(res, namespace, name)
        if obj is None:
            return None
        self.objects[(res, namespace, name)].delete()
        await self._buses[res].put({"type": "DELETED", "object": obj})
        return obj

    async def create(self, res, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = namespace
        if self.get(res, namespace, meta.get("name", "")) is not None:
            raise KubernetesError(status=409, reason="AlreadyExists",
                                  message=f'{res.plural} "{meta["name"]}" already exists', details={})
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        obj.setdefault("status", {})
        return await self.store(res, obj, event="ADDED")

    async def update(self, res, namespace: str, name: str, new: dict[str, Any]) -> dict[str, Any]:
        old = self.get(res, namespace, name)
        if new.get("spec") != old.get("spec"):
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        return await self.store(res, new, event="MODIFIED")

    # -- HTTP ------------------------------------------------------------------------------------
    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        # the API server answers errors as a Status object with Content-Type exactly application/json
        # (lightkube turns only those into ApiError); kmock's aiohttp default adds "; charset=utf-8"
        response = await super()._render_error(exc)
        if isinstance(exc, KubernetesError):
            body = {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                    "message": exc.message, "reason": exc.reason, "code": exc.status, "details": exc.details or {}}
            return aiohttp.web.Response(body=json.dumps(body).encode(), status=exc.status,
                                        headers={"Content-Type": "application/json"})
        return response

    async def _handle(self, request):  # type: ignore[override]
        res = request.resource
        if res is None or res not in (JOBS, PODS, ISVCS, EVENTS):
            return await super()._handle(request)
        namespace = request.namespace
        if request.subresource == "log" and res == PODS:
            return await self._serve_log(request)
        if request.action == kmock.action.CREATE:
            obj = await self.create(res, namespace or request.data["metadata"].get("namespace"), request.data)
            self.writes.append(("create", res.plural, obj["metadata"]["name"]))
            self._after_write(res, obj, created=True)
            return aiohttp.web.json_response(obj, status=201)
        if request.action == kmock.action.UPDATE:
            return aiohttp.web.json_response(await self._serve_patch(request))
        if request.action == kmock.action.DELETE:
            obj = await self.remove(res, namespace, request.name)
            if obj is None:
                raise kmock.KubernetesObjectNotFoundError()
            self.writes.append(("delete", res.plural, request.name))
            if res == JOBS:
                await self._delete_job(namespace, request.name)
            return aiohttp.web.json_response(obj)
        if request.action == kmock.action.LIST:
            selector = request.params.get("labelSelector", "")
            fields = dict(f.split("=", 1) for f in request.params.get("fieldSelector", "").split(",") if "=" in f)
            about = fields.pop("involvedObject.name", None)  # the only field selector mrc sends
            items = [o for o in self.items(res, namespace)
                     if selector_matches(selector, (o["metadata"].get("labels") or {}))
                     and (about is None or (o.get("involvedObject") or {}).get("name") == about)]
            return aiohttp.web.json_response({"apiVersion": "v1", "kind": "List", "items": items,
                                              "metadata": {"resourceVersion": str(self.revision)}})
        if request.action == kmock.action.FETCH:
            obj = self.get(res, namespace, request.name)
            if obj is None:
                raise KubernetesError(status=404, reason="NotFound",
                                      message=f'{res.plural} "{request.name}" not found', details={})
            return aiohttp.web.json_response(obj)
        return await super()._handle(request)

    async def _serve_patch(self, request) -> dict[str, Any]:
        import jsonpatch

        res, namespace, name = request.resource, request.namespace, request.name
        current = self.get(res, namespace, name)
        if current is None:
            raise KubernetesError(status=404, reason="NotFound", message=f'{res.plural} "{name}" not found', details={})
        body = json.loads(request.body or b"null")
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type == "application/json-patch+json":
            new = jsonpatch.apply_patch(current, body)
            wanted_rv = None
        elif content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            wanted_rv = ((body or {}).get("metadata") or {}).get("resourceVersion")
            new = merge_patch(current, body)
        else:
            raise KubernetesError(status=415, reason="UnsupportedMediaType",
                                  message=f"the body of the request was in an unknown format - accepted media types "
                                          f"include: application/json-patch+json, application/merge-patch+json, "
                                          f"application/apply-patch+yaml ({content_type!r})", details={})
        if wanted_rv is not None and str(wanted_rv) != current["metadata"]["resourceVersion"]:
            raise _conflict(f'Operation cannot be fulfilled on {res.plural}.{res.group or "core"} "{name}": the object '
                            "has been modified; please apply your changes to the latest version and try again")
        new["metadata"]["name"], new["metadata"]["namespace"] = name, namespace
        new["metadata"]["uid"] = current["metadata"]["uid"]
        obj = await self.update(res, namespace, name, new)
        self.writes.append(("patch", res.plural, name))
        self._after_write(res, obj, created=False)
        return obj

    async def _serve_log(self, request):
        key = (request.namespace, request.name)
        if self.get(PODS, *key) is None:
            raise KubernetesError(status=404, reason="NotFound", message=f'pods "{request.name}" not found', details={})
        if key not in self.pod_logs:
            raise KubernetesError(status=400, reason="BadRequest", details={},
                                  message=f'container "trainer" in pod "{request.name}" is waiting to start')
        if request.params.get("follow") != "true":
            return aiohttp.web.Response(text="".join(line + "\n" for line in self.pod_logs[key]))
        response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        await response.prepare(request._raw_request)
        sent = 0
        while True:
            lines = self.pod_logs[key]
            while sent < len(lines):
                await response.write((lines[sent] + "\n").encode())
                sent += 1
            if self.pod_done[key].is_set() and sent == len(self.pod_logs[key]):
                break
            await asyncio.sleep(0.02)
        await response.write_eof()
        return response

    # -- controllers ---------------------------------------------------------------------------
    def _after_write(self, res, obj: dict[str, Any], *, created: bool) -> None:
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        if res == JOBS and created:
            self.job_tasks[(namespace, name)] = asyncio.get_running_loop().create_task(self._run_job(namespace, name))
        if res == ISVCS:
            asyncio.get_running_loop().create_task(self._reconcile_isvc(namespace, name))

    async def _set_status(self, res, namespace: str, name: str, status: dict[str, Any]) -> None:
        obj = self.get(res, namespace, name)
        if obj is None:
            return
        obj["status"] = merge_patch(obj.get("status") or {}, status)
        await self.store(res, obj, event="MODIFIED")

    def _schedulable(self, pod_spec: dict[str, Any]) -> str | None:
        for key, value in (pod_spec.get("nodeSelector") or {}).items():
            if self.node_labels.get(key) != value:
                return f"0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector ({key}={value})"
        limits = ((pod_spec["containers"][0].get("resources") or {}).get("limits") or {})
        if "nvidia.com/gpu" in limits:  # only the GPU node has the resource, and it is tainted
            for taint in self.node_taints:
                tolerated = any(t.get("key") == taint["key"] and t.get("effect", taint["effect"]) == taint["effect"]
                                and (t.get("operator") == "Exists" or t.get("value") == taint["value"])
                                for t in pod_spec.get("tolerations") or [])
                if not tolerated:
                    return (f"0/1 nodes are available: 1 node(s) had untolerated taint "
                            f"{{{taint['key']}: {taint['value']}}}")
        return None

    async def _run_job(self, namespace: str, name: str) -> None:
        job = self.get(JOBS, namespace, name)
        spec = job["spec"]
        template = spec["template"]
        started = asyncio.get_running_loop().time()
        await self._set_status(JOBS, namespace, name, {"startTime": _now()})
        failures = 0
        while True:
            pod_name = f"{name}-{secrets.token_hex(3)[:5]}"
            labels = {**(template["metadata"].get("labels") or {}), "job-name": name,
                      "batch.kubernetes.io/job-name": name, "controller-uid": job["metadata"]["uid"]}
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": pod_name, "labels": labels,
                                "annotations": template["metadata"].get("annotations") or {},
                                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                                                     "uid": job["metadata"]["uid"], "controller": True}]},
                   "spec": copy.deepcopy(template["spec"]), "status": {"phase": "Pending"}}
            await self.create(PODS, namespace, pod)
            await self._set_status(JOBS, namespace, name, {"active": 1})
            unschedulable = self._schedulable(template["spec"])
            if unschedulable:
                await self._set_status(PODS, namespace, pod_name, {"conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable}]})
                await self.create(EVENTS, namespace, {  # and the scheduler says so in an event about the pod
                    "apiVersion": "v1", "kind": "Event", "metadata": {"name": f"{pod_name}.{secrets.token_hex(4)}"},
                    "involvedObject": {"kind": "Pod", "namespace": namespace, "name": pod_name},
                    "type": "Warning", "reason": "FailedScheduling", "message": unschedulable,
                    "eventTime": _now(), "reportingComponent": "default-scheduler"})
                return  # stays Pending, as on a cluster without a fitting node
            exit_code = await self._run_container(namespace, pod_name, template["spec"], started,
                                                  spec.get("activeDeadlineSeconds"))
            if self.get(JOBS, namespace, name) is None:
                return
            if exit_code == "deadline":
                await self._set_status(PODS, namespace, pod_name, {"phase": "Failed"})
                await self._set_status(JOBS, namespace, name, {"active": 0, "failed": failures + 1, "conditions": [
                    {"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                     "message": "Job was active longer than specified deadline"}]})
                return
            phase = "Succeeded" if exit_code == 0 else "Failed"
            image = template["spec"]["containers"][0]["image"]
            await self._set_status(PODS, namespace, pod_name, {"phase": phase, "containerStatuses": [
                {"name": "trainer", "image": image, "imageID": f"{image}@sha256:{'0' * 64}", "ready": False,
                 "restartCount": 0, "state": {"terminated": {"exitCode": exit_code, "reason":
                                                             "Completed" if exit_code == 0 else "Error"}}}]})
            if exit_code == 0:
                await self._set_status(JOBS, namespace, name, {"active": 0, "succeeded": 1, "completionTime": _now(),
                                                               "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]})
                return
            failures += 1
            await self._set_status(JOBS, namespace, name, {"active": 0, "failed": failures})
            if failures > spec.get("backoffLimit", 6):
                await self._set_status(JOBS, namespace, name, {"conditions": [
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                     "message": "Job has reached the specified backoff limit"}]})
                return

    async def _run_container(self, namespace: str, pod_name: str, pod_spec: dict[str, Any], started: float,
                             deadline_s: int | None):
        container = pod_spec["containers"][0]
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        env.update({e["name"]: e.get("value", "") for e in container.get("env") or []})
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod_spec.get("volumes") or []
                  if "persistentVolumeClaim" in v}
        for mount in container.get("volumeMounts") or []:  # the kubelet mounts the claim; here: a host folder
            host = self.volumes[claims[mount["name"]]]
            for key, value in env.items():
                if value == mount["mountPath"]:
                    env[key] = host
        env.update(PYTHONPATH=str(REPO), HOSTNAME=pod_name)
        command = [sys.executable if c == "python" else c for c in container["command"]] + list(container.get("args") or [])
        key = (namespace, pod_name)
        self.pod_logs[key] = []
        self.pod_done[key] = asyncio.Event()
        await self._set_status(PODS, namespace, pod_name, {"phase": "Running", "conditions": [
            {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}]})
        proc = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT, env=env, cwd=str(REPO),
                                                    limit=1 << 24)
        self.processes[key] = proc
        try:
            async def pump():
                async for raw in proc.stdout:
                    self.pod_logs[key].append(raw.decode(errors="replace").rstrip("\n"))
                return await proc.wait()

            remaining = None
            if deadline_s is not None:
                remaining = max(0.0, deadline_s - (asyncio.get_running_loop().time() - started))
            try:
                return await asyncio.wait_for(pump(), remaining)
            except asyncio.TimeoutError:
                return "deadline"
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            self.pod_done[key].set()

    async def _delete_job(self, namespace: str, name: str) -> None:
        task = self.job_tasks.pop((namespace, name), None)
        for pod in self.items(PODS, namespace):
            if (pod["metadata"].get("labels") or {}).get("job-name") == name:
                proc = self.processes.get((namespace, pod["metadata"]["name"]))
                if proc is not None and proc.returncode is None:
                    proc.kill()
                await self.remove(PODS, namespace, pod["metadata"]["name"])
        if task is not None:
            task.cancel()

    async def _reconcile_isvc(self, namespace: str, name: str) -> None:
        await asyncio.sleep(0)
        isvc = self.get(ISVCS, namespace, name)
        if isvc is None:
            return
        mode = ((isvc["metadata"].get("annotations") or {}).get("serving.kserve.io/deploymentMode") or "Serverless")
        predictor = isvc["spec"].get("predictor") or {}
        if mode == "Serverless":
            state = self.knative.setdefault((namespace, name), {"n": 0, "config": None, "latest": None,
                                                                  "rolled_out": None, "previous": None})
            config = {k: v for k, v in predictor.items() if k != "canaryTrafficPercent"}
            if config != state["config"]:  # a new Knative revision for every predictor change
                state["n"] += 1
                state["config"] = copy.deepcopy(config)
                state["latest"] = f"{name}-predictor-{state['n']:05d}"
            percent = predictor.get("canaryTrafficPercent")
            if state["rolled_out"] is None or percent is None or (percent == 100):
                if state["rolled_out"] != state["latest"]:
                    state["previous"] = state["rolled_out"]
                state["rolled_out"] = state["latest"]
                traffic = [{"revisionName": state["latest"], "percent": 100, "latestRevision": True, "tag": "latest"}]
            elif state["latest"] == state["rolled_out"]:
                traffic = [{"revisionName": state["latest"], "percent": 100, "latestRevision": True, "tag": "latest"}]
            else:
                traffic = [{"revisionName": state["rolled_out"], "percent": 100 - percent, "latestRevision": False,
                            "tag": "prev"},
                           {"revisionName": state["latest"], "percent": percent, "latestRevision": True,
                            "tag": "latest"}]
                traffic = [t for t in traffic if t["percent"] > 0 or t["latestRevision"]]
            status = {"components": {"predictor": {"latestCreatedRevision": state["latest"],
                                                   "latestReadyRevision": state["latest"],
                                                   "latestRolledoutRevision": state["rolled_out"],
                                                   "previousRolledoutRevision": state["previous"],
                                                   "traffic": traffic}},
                      "conditions": [{"type": "Ready", "status": "True"}],
                      "url": f"http://{name}.{namespace}.example.com"}
            obj = self.get(ISVCS, namespace, name)
            obj["status"] = status
            await self.store(ISVCS, obj, event="MODIFIED")
        else:
            canaries = isvc["spec"].get("canary") or []
            obj = self.get(ISVCS, namespace, name)
            conditions = [{"type": "Ready", "status": "True"}]
            if canaries:
                conditions.append({"type": "CanaryReady", "status": "True"})
            obj["status"] = {"deploymentMode": "Standard", "conditions": conditions,
                             "canaryStatuses": [{"name": c["predictor"]["name"], "trafficPercent": c["trafficPercent"],
                                                 "ready": True} for c in canaries],
                             "url": f"http://{name}.{namespace}.example.com"}
            await self.store(ISVCS, obj, event="MODIFIED")


class RunningApiServer:
    """The emulator on 127.0.0.1 in a background thread (its own loop), with a kubeconfig for it."""

    def __init__(self, kubeconfig_path: Path, **options: Any):
        self.kubeconfig = kubeconfig_path
        self.options = options
        self.loop = asyncio.new_event_loop()
        self.server: ApiServer | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self.url = ""
        self.error: BaseException | None = None

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # surfaced by start()
            self.error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with ApiServer(**self.options) as server, kmock.Server(server) as http:
            self.server = server
            self.url = f"http://127.0.0.1:{http.port}"
            self._ready.set()
            await self._stop.wait()
            for proc in list(server.processes.values()):
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            for task in list(server.job_tasks.values()):
                task.cancel()

    def start(self) -> "RunningApiServer":
        self._thread.start()
        self._ready.wait(30)
        if self.error is not None:
            raise self.error
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {}}],
            "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "tester",
                                                          "namespace": "default"}}],
        }))
        return self

    def call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=15)
