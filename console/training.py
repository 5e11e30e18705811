"""Launch training through the configured backend, follow it, register the result as a candidate.

Backend-neutral: the training backend produces model.pt + metrics + environment; this module
adds the lineage (code, data, run) and hands the artifact to whichever registry is configured.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Callable

from backends.base import CANDIDATE, BackendError, BadInputError, Environment, Lineage, ModelVersion, TrainingSpec
from backends import capabilities
from backends.native.lineage import code_identity
from console.release.actions import set_alias
from console.release.policy import backend_identity, workspace_policy


def parse_param_pairs(pairs, *, where: str = "") -> dict[str, Any]:
    """["epochs=5", "lr=0.1", "opt=adam"] -> {"epochs": 5, "lr": 0.1, "opt": "adam"}."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise BadInputError(f"{where}{pair!r}: expected KEY=VALUE")
        for cast in (int, float):
            try:
                params[key] = cast(raw)
                break
            except ValueError:
                continue
        else:
            params[key] = raw
        if isinstance(params[key], float) and not math.isfinite(params[key]):
            raise BadInputError(f"{where}{key}={raw[:40]!r}: must be a finite number")
    return params


def follow(training, job_id: str, on_event: Callable[[dict[str, Any]], None] | None = None):
    """Stream the job's events to on_event until it ends; return its final status."""
    for line in training.logs(job_id, follow=True):
        if on_event is None:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            event = {"event": "log", "message": line}
        on_event(event)
    return training.status(job_id)


def trainer_name(registry, policy, actor: str) -> str:
    """Who `trained_by` records: under identity = "require" the backend's identity (the two-person
    rule excludes the trainer, so a claimed --actor must not pick who is excluded), else the actor."""
    if policy is None or policy.identity != "require":
        return actor

    return backend_identity(registry) or actor


def register_result(registry, audit, training, job_id: str, spec: TrainingSpec, *, actor: str,
                    make_candidate: bool = True, policy=None) -> ModelVersion:
    result = training.result(job_id)
    if result.get("state") != "succeeded":
        raise BackendError(f"training job {job_id} {result.get('state')}: {result.get('message', '')}")
    code_commit, code_repo = (spec.code_commit, spec.code_repo) if spec.code_commit else code_identity()
    env = result.get("environment", {})
    trainer = trainer_name(registry, policy, actor)
    lineage = Lineage(
        code_commit=code_commit, code_repo=code_repo, data_version=spec.data_version,
        data_sha256=result["data_sha256"], params=result.get("params", spec.params),
        environment=Environment(**env), training_run=job_id, parent_version=spec.parent_version,
        trained_by=trainer,
    )
    version = registry.register_version(spec.model, result["model_path"], metrics=result["metrics"], lineage=lineage,
                                        description=f"trained by {trainer} from {spec.data_version}")
    training.record(job_id, version=version.version)
    audit.append(actor, "register", spec.model, version.version,
                 {"training_run": job_id, "data_version": spec.data_version, "artifact_sha256": version.artifact.sha256,
                  **({"trained_by": trainer} if trainer != actor else {})})
    if make_candidate:
        set_alias(registry, audit, spec.model, CANDIDATE, version.version, actor=actor, reason=f"trained in {job_id}")
        version = registry.get_version(spec.model, version.version)
    return version


def train_and_register(ws, spec: TrainingSpec, *, actor: str, on_event=None, make_candidate: bool = True):
    policy = workspace_policy(ws)  # read before training: a bad [policy] table fails before the work
    training = ws.training()
    try:
        job = training.launch(spec)
        if on_event:
            on_event({"event": "launched", "job": job.id})
        status = follow(training, job.id, on_event)
        while status.state in ("pending", "running"):  # log ended before the status file settled
            time.sleep(0.05)
            status = training.status(job.id)
        if status.state != "succeeded":
            raise BackendError(f"training job {job.id} {status.state}: {status.message}")
        return register_result(ws.registry(), ws.audit(), training, job.id, spec, actor=actor,
                               make_candidate=make_candidate, policy=policy)
    finally:  # a remote backend holds a client and its event-loop thread: one per run, not one per run leaked
        capabilities.close(training)
