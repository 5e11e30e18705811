"""Traffic on a KServe InferenceService (serving.kserve.io/v1beta1), in both deployment modes.

- Serverless (Knative): step with `spec.predictor.canaryTrafficPercent`; promote by removing
  it; roll back by pinning it to 0 *and* restoring the previous storageUri (pinning alone
  leaves the bad model in the spec, and a later promote would ship it).
- Standard (RawDeployment, KServe v0.20+): `spec.canary: [{trafficPercent, predictor: {name,
  model}}]`; roll back with `canary: []`; promote by moving the canary's predictor into
  `spec.predictor`. `canaryTrafficPercent` is silently ignored there (kserve#5335), so it is
  never written in that mode.

Every write is a JSON merge patch carrying `metadata.resourceVersion`: the API server applies
it only if the object is still the one we read, else answers 409 (ConflictError, exit 3).
Traffic is read back from `status` (`components.predictor.traffic`, `canaryStatuses`).

[traffic] settings: namespace, context, kubeconfig, mode (auto|serverless|standard),
service (isvc name template, default "$model"), storage_uri (template, default
"pvc://models/$model/$version"), retries.
"""

from __future__ import annotations

import re
from string import Template
from typing import Any

from backends.base import BadInputError, ConflictError, TrafficSplit, check_name
from backends.k8s.client import LoopThread, api_error, check_int, make_async_client

SERVERLESS, STANDARD = "serverless", "standard"
PREVIOUS = "mrc.dev/previous-version"  # the stable version while a Serverless canary runs
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"


def canary_name(version: str) -> str:
    """A DNS-1123 label for a Standard-mode canary predictor (its Deployment is {isvc}-{name}-predictor)."""
    return ("v-" + re.sub(r"[^a-z0-9-]", "-", version.lower())).strip("-")[:40]


def detect_mode(isvc: dict[str, Any]) -> str | None:
    """Pure: the deployment mode the cluster runs this InferenceService in, or None if it cannot tell."""
    annotations = (isvc.get("metadata") or {}).get("annotations") or {}
    status = isvc.get("status") or {}
    declared = annotations.get(MODE_ANNOTATION) or status.get("deploymentMode")
    if declared:
        return SERVERLESS if declared.lower() == "serverless" else STANDARD  # RawDeployment / Standard
    if "canary" in (isvc.get("spec") or {}) or "canaryStatuses" in status:
        return STANDARD
    if ((status.get("components") or {}).get("predictor") or {}).get("traffic"):
        return SERVERLESS
    return None


class KServeTraffic:
    def __init__(self, config: dict[str, Any], *, where: str = "mrc.toml"):
        self.config = dict(config)
        self.where = f"{where}: [traffic]"
        self.namespace = str(config.get("namespace", "default"))
        self.mode = str(config.get("mode", "auto")).lower()
        if self.mode not in ("auto", SERVERLESS, STANDARD):
            raise BadInputError(f"{self.where}: mode must be auto, serverless or standard, got {self.mode!r}")
        self.service = Template(str(config.get("service", "$model")))
        self.storage_uri = Template(str(config.get("storage_uri", "pvc://models/$model/$version")))
        self.retries = check_int(config, "retries", 5, self.where, minimum=1)
        self._loop: LoopThread | None = None
        self._client = None

    @classmethod
    def from_config(cls, workspace: Any, config: dict[str, Any]) -> "KServeTraffic":
        return cls(config, where=str(workspace.config_path))

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def loop(self) -> LoopThread:
        if self._loop is None:
            self._loop = LoopThread()
        return self._loop

    def client(self):
        if self._client is None:
            self._client = make_async_client(self.config, namespace=self.namespace, where=self.where)
        return self._client

    def close(self) -> None:
        if self._loop is not None:
            if self._client is not None:
                self.loop.run(self._client.close())
            self._loop.close()
        self._loop = self._client = None

    @staticmethod
    def resource():
        from lightkube.generic_resource import create_namespaced_resource  # lightkube: ~0.13 s

        return create_namespaced_resource("serving.kserve.io", "v1beta1", "InferenceService", "inferenceservices")

    def isvc_name(self, model: str) -> str:
        return self.service.substitute(model=check_name(model, "model")).lower().replace("_", "-").replace(".", "-")

    def uri_of(self, model: str, version: str) -> str:
        return self.storage_uri.substitute(model=model, version=check_name(version, "version"))

    def version_of(self, model: str, uri: str | None) -> str | None:
        """The version a storageUri holds, by matching the storage_uri template."""
        if not uri:
            return None
        pattern = re.escape(self.storage_uri.template)
        pattern = pattern.replace(re.escape("$model"), re.escape(model)).replace(re.escape("$version"),
                                                                               r"(?P<version>[A-Za-z0-9._-]+)")
        match = re.fullmatch(pattern, uri)
        return match.group("version") if match else None

    # -- reading ------------------------------------------------------------------------------
    async def aread(self, model: str) -> dict[str, Any]:
        name = self.isvc_name(model)
        try:
            obj = await self.client().get(self.resource(), name, namespace=self.namespace)
        except Exception as exc:
            raise api_error(exc, f"read InferenceService {self.namespace}/{name}") from None
        return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)

    def mode_of(self, isvc: dict[str, Any]) -> str:
        mode = detect_mode(isvc)
        if self.mode != "auto":
            if mode is not None and mode != self.mode:
                raise BadInputError(f"{self.where}: mode = {self.mode!r} but InferenceService "
                                    f"{isvc['metadata']['name']} runs in {mode} mode")
            return self.mode
        if mode is None:
            raise BadInputError(f"{self.where}: cannot tell whether InferenceService {isvc['metadata']['name']} runs "
                                "Serverless or Standard (no deploymentMode annotation or status); set mode")
        return mode

    def split_of(self, model: str, isvc: dict[str, Any], *, from_status: bool = True) -> TrafficSplit:
        """Pure given the object: version -> percent, from status when the controller reported it."""
        mode = self.mode_of(isvc)
        spec, status = isvc.get("spec") or {}, isvc.get("status") or {}
        predictor = spec.get("predictor") or {}
        latest = self.version_of(model, (predictor.get("model") or {}).get("storageUri"))
        weights: dict[str, int] = {}
        if mode == SERVERLESS:
            previous = ((isvc.get("metadata") or {}).get("annotations") or {}).get(PREVIOUS)
            traffic = ((status.get("components") or {}).get("predictor") or {}).get("traffic") if from_status else None
            if traffic:
                for entry in traffic:
                    version = latest if entry.get("latestRevision") else (previous or latest)
                    weights[version] = weights.get(version, 0) + int(entry.get("percent") or 0)
            else:
                percent = predictor.get("canaryTrafficPercent")
                if percent is None or previous in (None, latest):
                    weights[latest] = 100
                else:
                    weights = {previous: 100 - int(percent), latest: int(percent)}
        else:
            canaries = spec.get("canary") or []
            reported = {c.get("name"): c for c in status.get("canaryStatuses") or []} if from_status else {}
            total = 0
            for canary in canaries:
                cpred = canary.get("predictor") or {}
                version = self.version_of(model, (cpred.get("model") or {}).get("storageUri"))
                percent = int((reported.get(cpred.get("name")) or canary).get("trafficPercent") or 0)
                weights[version] = weights.get(version, 0) + percent
                total += percent
            weights[latest] = weights.get(latest, 0) + 100 - total
        weights = {v: w for v, w in weights.items() if v is not None and (w > 0 or len(weights) == 1)}
        return TrafficSplit(model, weights, int(isvc["metadata"]["resourceVersion"]))

    def get_split(self, model: str) -> TrafficSplit:
        return self.loop.run(self.aget_split(model))

    async def aget_split(self, model: str) -> TrafficSplit:
        return self.split_of(model, await self.aread(model))

    def readiness(self, model: str) -> dict[str, Any]:
        isvc = self.loop.run(self.aread(model))
        conditions = {c.get("type"): c for c in (isvc.get("status") or {}).get("conditions") or []}
        ready = conditions.get("Ready", {})
        return {"ready": ready.get("status") == "True", "reason": ready.get("reason", ""),
                "mode": self.mode_of(isvc), "url": (isvc.get("status") or {}).get("url", ""),
                "canary_ready": (conditions.get("CanaryReady") or {}).get("status")}

    # -- writing ------------------------------------------------------------------------------
    def patch_for(self, model: str, isvc: dict[str, Any], weights: dict[str, int]) -> dict[str, Any]:
        """Pure: the merge patch that moves this InferenceService to `weights` (without the CAS field)."""
        if not weights or any(not isinstance(w, int) or w < 0 or w > 100 for w in weights.values()) \
                or sum(weights.values()) != 100:
            raise BadInputError(f"traffic weights {weights}: integers 0..100 summing to 100")
        live = {v: w for v, w in weights.items() if w > 0}
        if len(live) > 2:
            raise BadInputError(f"traffic weights {weights}: at most a stable and one canary version")
        for version in live:
            check_name(version, "version")
        mode = self.mode_of(isvc)
        spec = isvc.get("spec") or {}
        predictor = spec.get("predictor") or {}
        current = self.version_of(model, (predictor.get("model") or {}).get("storageUri"))
        if current is None:
            raise BadInputError(f"InferenceService {isvc['metadata']['name']}: spec.predictor.model.storageUri "
                                f"does not match {self.where} storage_uri {self.storage_uri.template!r}")
        if mode == SERVERLESS:
            previous = ((isvc.get("metadata") or {}).get("annotations") or {}).get(PREVIOUS) or current
            if len(live) == 1:
                (target,) = live
                if target == current and previous != current:  # promote: the canary takes everything
                    return {"metadata": {"annotations": {PREVIOUS: None}},
                            "spec": {"predictor": {"canaryTrafficPercent": None}}}
                if target == previous and previous != current:  # roll back: pin to 0 and restore the model
                    return {"metadata": {"annotations": {PREVIOUS: None}},
                            "spec": {"predictor": {"canaryTrafficPercent": 0,
                                                   "model": {"storageUri": self.uri_of(model, target)}}}}
                if target == current:
                    return {"spec": {"predictor": {"canaryTrafficPercent": None}}}
                return {"metadata": {"annotations": {PREVIOUS: None}},  # a straight switch, no canary
                        "spec": {"predictor": {"canaryTrafficPercent": None,
                                               "model": {"storageUri": self.uri_of(model, target)}}}}
            stable = previous if previous in live else current
            if stable not in live:
                raise BadInputError(f"traffic weights {weights}: one side must be the serving version {stable}")
            (canary,) = [v for v in live if v != stable]
            return {"metadata": {"annotations": {PREVIOUS: stable}},
                    "spec": {"predictor": {"canaryTrafficPercent": live[canary],
                                           "model": {"storageUri": self.uri_of(model, canary)}}}}
        # Standard: the stable predictor stays in spec.predictor, the canary in spec.canary
        canaries = spec.get("canary") or []
        if len(live) == 1:
            (target,) = live
            if target == current:
                return {"spec": {"canary": []}}  # roll back (or nothing to do)
            for canary in canaries:
                cpred = canary.get("predictor") or {}
                if self.version_of(model, (cpred.get("model") or {}).get("storageUri")) == target:
                    return {"spec": {"predictor": {"name": cpred.get("name"), "model": cpred.get("model")},
                                     "canary": []}}  # promote: retarget the stable predictor
            return {"spec": {"predictor": {"model": {"storageUri": self.uri_of(model, target)}}, "canary": []}}
        if current not in live:
            raise BadInputError(f"traffic weights {weights}: one side must be the stable version {current}")
        (canary_version,) = [v for v in live if v != current]
        model_spec = dict(predictor.get("model") or {})
        model_spec["storageUri"] = self.uri_of(model, canary_version)
        return {"spec": {"canary": [{"trafficPercent": live[canary_version],
                                     "predictor": {"name": canary_name(canary_version), "model": model_spec}}]}}

    async def _write(self, model: str, isvc: dict[str, Any], patch: dict[str, Any], resource_version: str) -> dict:
        from lightkube.types import PatchType  # lightkube: ~0.13 s

        patch = dict(patch)
        patch["metadata"] = {**(patch.get("metadata") or {}), "resourceVersion": resource_version}
        name = isvc["metadata"]["name"]
        try:
            obj = await self.client().patch(self.resource(), name, patch, namespace=self.namespace,
                                            patch_type=PatchType.MERGE)
        except Exception as exc:
            raise api_error(exc, f"patch InferenceService {self.namespace}/{name} at resourceVersion "
                                 f"{resource_version}") from None
        return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)

    def set_split(self, model: str, weights: dict[str, int], *, expected_revision: int) -> TrafficSplit:
        return self.loop.run(self.aset_split(model, weights, expected_revision=expected_revision))

    async def aset_split(self, model: str, weights: dict[str, int], *, expected_revision: int) -> TrafficSplit:
        isvc = await self.aread(model)
        seen = int(isvc["metadata"]["resourceVersion"])
        if seen != int(expected_revision):  # the server would refuse it too; say so before building the patch
            raise ConflictError(f"InferenceService {isvc['metadata']['name']} is at resourceVersion {seen}, "
                                f"not the {expected_revision} you saw", expected=str(expected_revision), actual=str(seen))
        patch = self.patch_for(model, isvc, weights)
        written = await self._write(model, isvc, patch, str(expected_revision))
        return TrafficSplit(model, {v: w for v, w in weights.items() if w > 0},
                            int(written["metadata"]["resourceVersion"]))

    def rollback(self, model: str, stable_version: str) -> TrafficSplit:
        return self.loop.run(self.arollback(model, stable_version))

    async def arollback(self, model: str, stable_version: str) -> TrafficSplit:
        """Everything to `stable_version` now: CAS on the version just read, retried on a lost race."""
        import asyncio

        check_name(stable_version, "version")
        delay = 0.05
        for attempt in range(self.retries):
            isvc = await self.aread(model)
            try:
                patch = self.patch_for(model, isvc, {stable_version: 100})
                written = await self._write(model, isvc, patch, isvc["metadata"]["resourceVersion"])
            except ConflictError:
                if attempt + 1 == self.retries:
                    raise
                await asyncio.sleep(delay)
                delay *= 2
                continue
            return TrafficSplit(model, {stable_version: 100}, int(written["metadata"]["resourceVersion"]))
        raise AssertionError("unreachable")

