"""One `mrc watch` run with its I/O: find production's reference data and the newest dataset
version, compute drift, and past the critical tier train on the newest data through the
configured training backend, register the candidate and audit it. Never promotes.

Runs of one model are serialised by a file lock (reports/<model>/watch.lock) held from reading
what was handled to recording the retrain, so two watchers (cron overlapping a loop) never train
twice on one data version: the second sees the first's `watch.retrain` and does nothing.

What counts as handled (never retrained): a data version with a `watch.retrain` event, one in the
state file, and one that a registered version names in its lineage (a retrain by hand, or a watch
retrain that crashed between registering and auditing). Before training, a run appends
`watch.retrain_started`; one that no `watch.retrain`/`watch.retrain.failed` followed is a retrain that
died here (same host and lock, which this run now holds: retrained, the registry check covering a
crash after registering) or one still running on another host (not retrained: IN_PROGRESS).

The lock is a local file: with a registry shared by several hosts, each with its own workspace, two
hosts can still both retrain on one new data version when their runs overlap (neither has registered
yet); after the first registers, the registry check stops the others. Run one watcher per model.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from backends.base import PRODUCTION, BadInputError, TrainingSpec, check_name
from backends import capabilities
from backends.support.timeutil import now_iso
from console.evaluate.drift import _dataset_columns, drift_report, record_status, training_data_ref
from console.monitor.watch import (
    NO_ACTION,
    RETRAIN,
    UP_TO_DATE,
    WatchDecision,
    decide,
    handled_from_events,
    handled_from_versions,
    needs_drift,
    newest_version,
    unfinished_retrains,
)
from console.notify.alerts import AlertsConfig, fold
from console.plugins import scheme_of
from console.training import train_and_register

STATE_FILE = "watch.json"


def _model_dir(ws, model: str) -> Path:
    return Path(ws.root) / "reports" / check_name(model, "model")


def state_path(ws, model: str) -> Path:
    return _model_dir(ws, model) / STATE_FILE


def read_state(ws, model: str) -> dict[str, Any]:
    try:
        data = json.loads(state_path(ws, model).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(ws, model: str, state: dict[str, Any]) -> None:
    path = state_path(ws, model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    os.replace(tmp, path)


@contextmanager
def _model_lock(ws, model: str):
    import fcntl

    folder = _model_dir(ws, model)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "watch.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _dataset_name(ref: str) -> str:
    if ref and scheme_of(ref) == "mrc" and "@" in ref:
        return ref.partition("@")[0]
    return ""


def production_of(ws, model: str):
    """(production version id or None, its ModelVersion or None)."""
    registry = ws.registry()
    production = registry.get_pointers(model).get(PRODUCTION)
    return production, (registry.get_version(model, production) if production else None)


def reference_data(ws, model: str, production_mv) -> str:
    """Production's training data (its lineage), else [models.X].reference_data."""
    reference = training_data_ref(production_mv) if production_mv is not None else ""
    reference = reference or ws.model_config(model).get("reference_data") or ""
    if not reference:
        raise BadInputError(f"{ws.config_path}: {model}: no reference data: production "
                            f"{production_mv.version if production_mv is not None else '(none)'} names no readable "
                            f"training data in its lineage and models.{model}.reference_data is not set")
    return reference


def newest_data_ref(ws, model: str, data: str | None = None, production_mv=None) -> str:
    """The dataset@version a watch run compares: `data` when it names a version (name@version),
    else the newest version of the dataset `data` names, of models.X.train_data's dataset, or of
    production's training dataset."""
    if data and "@" in data:
        ws.datasets().get(data)  # unknown -> NotFoundError names it
        return data
    name = data or _dataset_name(ws.model_config(model).get("train_data") or "")
    if not name and production_mv is not None:
        name = _dataset_name(production_mv.lineage.data_version or "")
    if not name:
        raise BadInputError(f"{ws.config_path}: {model}: which dataset to watch? set models.{model}.train_data "
                            "(name@version) or pass --data NAME")

    newest = newest_version(ws.datasets().list(), check_name(name, "dataset"))
    if newest is None:
        raise BadInputError(f"dataset {name!r}: no versions in the workspace (`mrc datasets`)")
    return newest


def handled_versions(ws, model: str) -> dict[str, Any]:
    """dataset@version -> its retrain record: the state file and the audit log together."""
    handled = handled_from_versions(ws.registry().list_versions(model))
    handled.update(read_state(ws, model).get("handled") or {})
    handled.update(handled_from_events(ws.audit().events(model=model), model))
    return handled


def _host() -> str:
    import socket

    return socket.gethostname()


def _lock_path(ws, model: str) -> str:
    return str(_model_dir(ws, model) / "watch.lock")


def retrains_in_progress(ws, model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(started elsewhere and unfinished, started here and dead). Call with the model's lock held:
    a retrain started on this host under this lock cannot still be running."""
    elsewhere: dict[str, Any] = {}
    dead: dict[str, Any] = {}
    for data, started in unfinished_retrains(ws.audit().events(model=model), model).items():
        here = started.get("host") == _host() and started.get("lock") == _lock_path(ws, model)
        (dead if here else elsewhere)[data] = started
    return elsewhere, dead


def watch_once(ws, model: str, *, actor: str, data: str | None = None, params: dict[str, Any] | None = None,
               gpu: bool = False, on_event: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """One watch run; returns the decision as a dict plus `candidate` and `training_run` when it retrained."""
    check_name(model, "model")
    _check_params(ws, params or {})
    production, production_mv = production_of(ws, model)
    reference = reference_data(ws, model, production_mv)
    newest = newest_data_ref(ws, model, data, production_mv)
    _check_trainable(ws, model, newest)
    with _model_lock(ws, model):
        handled = handled_versions(ws, model)
        in_progress, dead = retrains_in_progress(ws, model)
        report = None
        if needs_drift(newest, reference, handled, in_progress):
            report = _drift(ws, model, reference, newest, production)
        decision = decide(model, newest=newest, reference=reference, production=production, report=report,
                          handled=handled, in_progress=in_progress)
        result = decision.to_dict()
        result.update(candidate=None, training_run=None)
        if decision.action == RETRAIN and newest in dead:
            started = dead[newest]
            decision.reason += (f" (the retrain started at {started.get('at') or '?'} by pid {started.get('pid')} "
                                "died before registering a candidate)")
            result.update(reason=decision.reason, interrupted_retrain=started)
        if on_event:
            on_event({"event": "decision", "decision": decision})
        if decision.action == RETRAIN:
            mv = _retrain(ws, decision, report, actor=actor, params=params or {}, gpu=gpu, on_event=on_event)
            result.update(candidate=mv.version, training_run=mv.lineage.training_run)
        elif decision.action in (NO_ACTION, UP_TO_DATE) and drift_alert_firing(ws, model):
            # the newest data no longer drifts past critical: the DriftCritical alert ends
            ws.audit().append(actor, "drift.ok", model, production or "", {
                "dataset_version": newest, "reference_data": reference, "severity": decision.severity,
                "reason": f"{newest} vs {reference}: drift {decision.severity}", "source": "mrc watch"})
            result["resolved_alert"] = True
            if on_event:
                on_event({"event": "alert"})
    return result


def drift_alert_firing(ws, model: str) -> bool:
    """Whether the audit log leaves a DriftCritical alert of the model firing (the alerts' own fold)."""
    alerts = fold(ws.audit().events(model=model), AlertsConfig())
    return any(a.labels.get("alertname") == "DriftCritical" and a.labels.get("model") == model
               and a.status == "firing" for a in alerts.values())


def _check_trainable(ws, model: str, newest: str) -> None:
    """The newest data must be trainable (its label column there) before a drift alert is raised
    on it: bad input found after `drift.critical` was written would break "nothing written"."""
    dataset = ws.datasets().get(newest)
    label = ws.model_config(model).get("label") or dataset.label
    if not label:
        raise BadInputError(f"dataset {newest}: no label column recorded and models.{model}.label is not set")
    if label not in dataset.columns:
        raise BadInputError(f"dataset {newest}: label {label!r} (models.{model}.label) is not one of its columns")


def _check_params(ws, params: dict[str, Any]) -> None:
    """Bad retraining parameters are bad input now, not a failed training after a drift alert."""
    training = ws.training()
    try:
        capabilities.check_params(training, params)
    finally:
        capabilities.close(training)


def _drift(ws, model: str, reference: str, newest: str, production: str | None):
    report = drift_report(_dataset_columns(ws, reference, model, production or ""),
                          _dataset_columns(ws, newest, model, production or ""),
                          source_reference=reference, source_current=newest)
    report.reference, report.current, report.model = reference, newest, model
    report.baseline_version = production or ""
    return report


def _retrain(ws, decision: WatchDecision, report, *, actor: str, params: dict[str, Any], gpu: bool, on_event):
    model, newest = decision.model, decision.newest
    worst = decision.worst
    audit = ws.audit()
    psi = f" psi {worst.psi:.3f}" if isinstance(worst.psi, (int, float)) else ""
    details = {"dataset_version": newest, "reference_data": decision.reference, "feature": worst.name,
               "psi": worst.psi, "tier": worst.severity, "severity": decision.severity,
               "drift_share": decision.drift_share, "source": "mrc watch",
               "reason": f"{newest} vs {decision.reference}: {worst.name or 'dataset'}{psi} ({worst.severity}); "
                         f"retraining on {newest}"}
    # the alert first: it must go out even when the training below fails
    audit.append(actor, "drift.critical", model, decision.production or "", details)
    if on_event:
        on_event({"event": "alert"})  # delivered now, not after a training that may take an hour
    # before training: a crash from here on leaves a trace that the next run reads (retrains_in_progress)
    audit.append(actor, "watch.retrain_started", model, decision.production or "",
                 {**details, "host": _host(), "pid": os.getpid(), "lock": _lock_path(ws, model)})
    cfg = ws.model_config(model)
    spec = TrainingSpec(model, newest, params, gpu=gpu, parent_version=decision.production,
                        label=cfg.get("label", ""), test_data=cfg.get("test_data", ""),
                        golden_data=cfg.get("golden_data", ""))
    try:
        mv = train_and_register(ws, spec, actor=actor, on_event=on_event, make_candidate=True)
    except Exception as exc:
        audit.append(actor, "watch.retrain.failed", model, decision.production or "",
                     {**details, "error": f"{type(exc).__name__}: {exc}"[:500]})
        raise
    audit.append(actor, "watch.retrain", model, mv.version,
                 {**details, "training_run": mv.lineage.training_run, "production": decision.production or ""})
    # the candidate's drift is this very comparison (its data vs production's): home shows it at once
    report.version = mv.version
    record_status(ws, model, report, version=mv.version, baseline=decision.production or "")
    state = read_state(ws, model)
    state.setdefault("handled", {})[newest] = {"candidate": mv.version, "job": mv.lineage.training_run,
                                               "at": now_iso(), "severity": decision.severity,
                                               "feature": worst.name, "psi": worst.psi, "tier": worst.severity,
                                               "drift_share": decision.drift_share}
    _write_state(ws, model, state)
    return mv
