"""STAND-IN for a kubelet: the one part of the test cluster that is ours, not Kubernetes'.

Nothing runs containers on this machine, so this agent plays one GPU node against the real
API server: it registers a Node advertising `nvidia.com/gpu` with the taint
`nvidia.com/gpu=present:NoSchedule` and label `nvidia.com/gpu.present=true`, heartbeats its
Ready condition, and for each pod the real scheduler binds to it runs the first container's
command as a local process (`python` is this interpreter: the "image" is this repository),
with the pod's env (values and secretKeyRef) and each persistentVolumeClaim mount mapped to its
bound PersistentVolume's hostPath (env values naming a mountPath are rewritten to the host
folder). It reports phases through pods/status (Running, then Succeeded/Failed with the exit
code), kills the process and confirms deletion when a pod is deleted (what lets a foreground
delete of a Job finish), and serves `/containerLogs/NS/POD/CONTAINER` over TLS (the API server
proxies `pods/log` here with its kubelet client certificate).

What it does not do: images, cgroups/limits, probes, restarts (pods are restartPolicy Never),
secret/configMap volumes, pod networking.
"""

from __future__ import annotations

import datetime
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
GPU_LABEL = "nvidia.com/gpu.present"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class NodeAgent:
    def __init__(self, plane, name: str = "gpu-node-1", *, gpus: int = 1, poll_s: float = 0.3):
        import httpx

        self.plane, self.name, self.gpus, self.poll_s = plane, name, gpus, poll_s
        tls = ssl.create_default_context(cafile=plane.pki.ca)
        tls.load_cert_chain(*plane.admin_cert)
        self.api = httpx.Client(base_url=plane.server, verify=tls, timeout=30)
        self.serving = plane.pki.issue(f"node-{name}-serving", f"system:node:{name}", server=True, client=False,
                                       dns=("localhost", name), ips=("127.0.0.1",))
        self.logdir = plane.root / "node" / name
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}  # pod uid -> process
        self.done: dict[str, int] = {}  # pod uid -> exit code (reported)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._http: ThreadingHTTPServer | None = None

    # -- API helpers -------------------------------------------------------------------------------
    def _check(self, response, what: str):
        if response.status_code >= 400:
            raise RuntimeError(f"node agent: {what}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else {}

    def _patch_status(self, path: str, status: dict[str, Any]) -> None:
        r = self.api.patch(path + "/status", content=json.dumps({"status": status}),
                           headers={"Content-Type": "application/merge-patch+json"})
        if r.status_code not in (200, 404, 409):  # gone, or raced a deletion: nothing to report
            self._check(r, f"PATCH {path}/status")

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> "NodeAgent":
        self._serve_logs()
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.name, "labels": {GPU_LABEL: "true", "kubernetes.io/hostname": self.name,
                                                            "kubernetes.io/os": "linux", "mrc.dev/stand-in": "true"}},
                "spec": {"taints": [dict(GPU_TAINT)]}}
        self._check(self.api.post("/api/v1/nodes", json=node), "register node")
        self._heartbeat()
        for target in (self._heartbeat_loop, self._pod_loop):
            thread = threading.Thread(target=target, name=f"node-agent-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _heartbeat(self) -> None:
        now = _now()
        resources = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi",
                     "nvidia.com/gpu": str(self.gpus)}
        conditions = [{"type": t, "status": "False", "reason": f"KubeletHas{r}", "lastHeartbeatTime": now,
                       "lastTransitionTime": now}
                      for t, r in (("MemoryPressure", "SufficientMemory"), ("DiskPressure", "NoDiskPressure"),
                                   ("PIDPressure", "SufficientPID"))]
        conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": now,
                           "lastTransitionTime": now, "message": "mrc node agent (stand-in) is posting ready status"})
        self._patch_status(f"/api/v1/nodes/{self.name}", {
            "capacity": resources, "allocatable": resources, "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.log_port}},
            "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": os.uname().release,
                         "osImage": "mrc node agent (stand-in)", "containerRuntimeVersion": "mrc-stand-in://0",
                         "kubeletVersion": "v1.20.2", "kubeProxyVersion": "", "operatingSystem": "linux",
                         "architecture": "amd64"}})

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(5):
            try:
                self._heartbeat()
            except Exception as exc:  # keep beating: a missed beat is what the controller judges
                print(f"node agent heartbeat: {exc}", file=sys.stderr)

    def stop(self) -> None:
        self._stop.set()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        for thread in self._threads:
            thread.join(10)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        try:
            self.api.delete(f"/api/v1/nodes/{self.name}")
        except Exception:
            pass
        self.api.close()

    # -- pods ---------------------------------------------------------------------------------------
    def _pod_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync()
            except Exception as exc:
                print(f"node agent sync: {type(exc).__name__}: {exc}", file=sys.stderr)
            self._stop.wait(self.poll_s)

    def _sync(self) -> None:
        pods = self._check(self.api.get("/api/v1/pods", params={"fieldSelector": f"spec.nodeName={self.name}"}),
                           "list pods")["items"]
        for pod in pods:
            meta = pod["metadata"]
            uid = meta["uid"]
            path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
            if meta.get("deletionTimestamp"):
                proc = self.procs.get(uid)
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(5)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(5)
                self.api.request("DELETE", path, content=json.dumps(
                    {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}))
                continue
            phase = (pod.get("status") or {}).get("phase")
            if uid not in self.procs and phase in (None, "Pending"):
                self._start_container(pod, path)
            proc = self.procs.get(uid)
            if proc is not None and proc.poll() is not None and uid not in self.done:
                self.done[uid] = proc.returncode
                self._report_exit(pod, path, proc.returncode)

    def _resolve_env(self, namespace: str, container: dict[str, Any]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = item["value"]
            elif ((item.get("valueFrom") or {}).get("secretKeyRef")):
                ref = item["valueFrom"]["secretKeyRef"]
                secret = self._check(self.api.get(f"/api/v1/namespaces/{namespace}/secrets/{ref['name']}"),
                                     f"read secret {ref['name']}")
                import base64

                env[item["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        return env

    def _host_path(self, namespace: str, claim: str) -> str:
        pvc = self._check(self.api.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}"),
                          f"read PVC {claim}")
        pv = self._check(self.api.get(f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}"), "read PV")
        spec = pv["spec"]
        return (spec.get("hostPath") or spec.get("local") or {})["path"]

    def _start_container(self, pod: dict[str, Any], path: str) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        container = spec["containers"][0]
        env = self._resolve_env(meta["namespace"], container)
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec.get("volumes") or []
                  if "persistentVolumeClaim" in v}
        for mount in container.get("volumeMounts") or []:  # the kubelet would mount; here: the PV's host folder
            if mount["name"] in claims:
                host = self._host_path(meta["namespace"], claims[mount["name"]])
                for key, value in env.items():
                    if value == mount["mountPath"] or value.startswith(mount["mountPath"].rstrip("/") + "/"):
                        env[key] = host + value[len(mount["mountPath"].rstrip("/")):]
        env.update(PYTHONPATH=str(REPO), HOSTNAME=meta["name"])
        command = [sys.executable if c == "python" else c for c in container.get("command") or []]
        command += list(container.get("args") or [])
        log = self.logdir / f"{meta['namespace']}_{meta['name']}_{container['name']}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, cwd=str(REPO), start_new_session=True)
        proc.mrc_log = log  # type: ignore[attr-defined]  # the /containerLogs follower asks whether it ended
        self.procs[meta["uid"]] = proc
        started = _now()
        self._patch_status(path, {
            "phase": "Running", "hostIP": "127.0.0.1", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": started,
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": started}
                           for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
            "containerStatuses": [{"name": container["name"], "image": container.get("image", ""), "imageID": "",
                                   "containerID": f"mrc-stand-in://{proc.pid}", "ready": True, "started": True,
                                   "restartCount": 0, "state": {"running": {"startedAt": started}}}]})

    def _report_exit(self, pod: dict[str, Any], path: str, code: int) -> None:
        container = pod["spec"]["containers"][0]
        finished = _now()
        started = ((pod.get("status") or {}).get("startTime")) or finished
        self._patch_status(path, {
            "phase": "Succeeded" if code == 0 else "Failed",
            "conditions": [{"type": t, "status": "True" if t in ("Initialized", "PodScheduled") else "False",
                            "lastTransitionTime": finished}
                           for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
            "containerStatuses": [{"name": container["name"], "image": container.get("image", ""), "imageID": "",
                                   "containerID": f"mrc-stand-in://{self.procs[pod['metadata']['uid']].pid}",
                                   "ready": False, "started": False, "restartCount": 0,
                                   "state": {"terminated": {"exitCode": code, "startedAt": started,
                                                            "finishedAt": finished,
                                                            "reason": "Completed" if code == 0 else "Error"}}}]})

    # -- /containerLogs over TLS -------------------------------------------------------------------
    def _serve_logs(self) -> None:
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                parts = url.path.strip("/").split("/")
                if len(parts) != 4 or parts[0] != "containerLogs":
                    self.send_error(404)
                    return
                _, namespace, pod, container = parts
                query = urllib.parse.parse_qs(url.query)
                follow = query.get("follow", ["false"])[0] == "true"
                log = agent.logdir / f"{namespace}_{pod}_{container}.log"
                if not log.exists():
                    self.send_error(404, f"no container {container} in pod {namespace}/{pod}")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                try:
                    self._stream(log, follow)
                except (ConnectionError, ssl.SSLError):  # the reader went away (a follower that stopped)
                    pass

            def _stream(self, log: Path, follow: bool) -> None:
                with open(log, "rb") as fh:
                    while True:
                        chunk = fh.read(1 << 16)
                        if chunk:
                            self.wfile.write(chunk)
                            self.wfile.flush()
                            continue
                        if not follow or agent._finished(log) or agent._stop.is_set():
                            rest = fh.read()
                            if rest:
                                self.wfile.write(rest)
                            return
                        time.sleep(0.1)

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.serving)
        ctx.load_verify_locations(self.plane.pki.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED  # only the API server (its kubelet client cert) reads logs
        self._http.socket = ctx.wrap_socket(self._http.socket, server_side=True)
        self.log_port = self._http.server_address[1]
        thread = threading.Thread(target=self._http.serve_forever, name="node-agent-logs", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _finished(self, log: Path) -> bool:
        """The log's process has exited (or was never ours): follow ends after the last bytes."""
        for proc in list(self.procs.values()):
            if getattr(proc, "mrc_log", None) == log:
                return proc.poll() is not None
        return True
