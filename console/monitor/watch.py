"""`mrc watch`: the decision of one watch run, pure (data in, verdict out, no I/O).

A run compares production's reference data with the newest version of the training dataset.
Below the critical tier it only reports; past it, it retrains on the newest data, once per
dataset version (a version already handled is never trained on twice), and never promotes.
console/monitor/watch_run.py does the I/O around this (reading data, drift, training, audit, state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

# what a run decided
UP_TO_DATE = "up-to-date"  # the newest data version is production's own reference: nothing to compare
NO_ACTION = "no-action"  # drift below the critical tier: reported only
ALREADY_HANDLED = "already-handled"  # critical, but this data version was retrained on before
RETRAIN = "retrain"  # critical and new: train on the newest data, register the candidate
# critical, but a retrain on this data version started on another host and has not finished (or that
# host crashed): not retrained here; a `mrc train` on the version by hand counts as handled
IN_PROGRESS = "retrain-in-progress"

SEVERITY_ORDER = {"none": 0, "warning": 1, "critical": 2}


@dataclass
class WorstFeature:
    name: str = ""
    psi: float | None = None
    severity: str = "none"
    method: str = ""


@dataclass
class WatchDecision:
    action: str
    model: str
    newest: str  # dataset@version compared (the newest one)
    reference: str  # production's reference data
    production: str | None = None
    severity: str = "none"  # the drift report's severity ("none" when not computed)
    drift_share: float = 0.0
    worst: WorstFeature = field(default_factory=WorstFeature)
    handled_by: dict[str, Any] | None = None  # the earlier retrain of this data version, when there was one
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "model": self.model, "newest_data": self.newest, "reference_data": self.reference,
                "production": self.production, "severity": self.severity, "drift_share": self.drift_share,
                "worst_feature": {"name": self.worst.name, "psi": self.worst.psi, "severity": self.worst.severity,
                                  "method": self.worst.method},
                "handled_by": self.handled_by, "reason": self.reason}


def newest_version(datasets: Iterable[Any], name: str) -> str | None:
    """The newest `name@version` among dataset records (each with .name, .version, .created_at),
    in the order the store registered them (the last one registered wins a tie on created_at)."""
    best = None
    for index, ds in enumerate(datasets):
        if ds.name != name:
            continue
        key = (str(ds.created_at), index)
        if best is None or key >= best[0]:
            best = (key, f"{ds.name}@{ds.version}")
    return best[1] if best else None


def worst_feature(features: Sequence[Any]) -> WorstFeature:
    """The feature that decides: highest severity, then the largest PSI (the tier's effect size)."""
    best: WorstFeature | None = None
    best_key = None
    for f in features:
        psi = (f.extra or {}).get("psi")
        key = (SEVERITY_ORDER.get(f.severity, 0), psi if isinstance(psi, (int, float)) else -1.0)
        if best_key is None or key > best_key:
            best_key = key
            best = WorstFeature(f.name, psi if isinstance(psi, (int, float)) else None, f.severity, f.method)
    return best or WorstFeature()


def needs_drift(newest: str, reference: str, handled: dict[str, Any],
                in_progress: dict[str, Any] | None = None) -> bool:
    """Whether `decide` needs a drift report (the run reads both data sets only then)."""
    return newest != reference and newest not in handled and newest not in (in_progress or {})


def decide(model: str, *, newest: str, reference: str, production: str | None, report: Any | None,
           handled: dict[str, Any], in_progress: dict[str, Any] | None = None) -> WatchDecision:
    """What to do about the newest data version.

    report: the DriftReport of newest vs reference; None is allowed only where `needs_drift` is False.
    handled: dataset@version -> the record of its earlier retrain (from the watch state, the audit
    and the registry's lineage).
    in_progress: dataset@version -> the `watch.retrain_started` record of a retrain that may still be
    running elsewhere (`unfinished_retrains`, less the ones this host knows are dead).
    """
    if newest == reference:
        return WatchDecision(UP_TO_DATE, model, newest, reference, production,
                             reason=f"{newest} is production's own reference data: nothing new to compare")
    if newest in handled:  # checked before drift is computed: a handled version costs nothing
        done = handled[newest]
        return WatchDecision(ALREADY_HANDLED, model, newest, reference, production,
                             severity=str(done.get("severity") or "critical"),
                             drift_share=float(done.get("drift_share") or 0.0),
                             worst=WorstFeature(str(done.get("feature") or ""), done.get("psi"),
                                                str(done.get("tier") or "")),
                             handled_by=done,
                             reason=f"{newest} was already retrained on (candidate {done.get('candidate') or '?'})")
    if newest in (in_progress or {}):
        started = (in_progress or {})[newest]
        return WatchDecision(IN_PROGRESS, model, newest, reference, production,
                             severity=str(started.get("severity") or "critical"),
                             drift_share=float(started.get("drift_share") or 0.0),
                             worst=WorstFeature(str(started.get("feature") or ""), started.get("psi"),
                                                str(started.get("tier") or "")),
                             handled_by=started,
                             reason=f"a retrain on {newest} started at {started.get('at') or '?'} on host "
                                    f"{started.get('host') or '?'} and has not finished: not retrained here "
                                    f"(`mrc train {model} --data {newest}` by hand counts as handled)")
    if report is None:
        raise ValueError(f"{model}: {newest} is neither the reference nor handled: a drift report is needed")
    worst = worst_feature(report.features)
    base = dict(model=model, newest=newest, reference=reference, production=production, severity=report.severity,
                drift_share=float(report.drift_share), worst=worst)
    if report.severity != "critical":
        return WatchDecision(NO_ACTION, **base, reason=f"drift {report.severity} (below critical): reported only")
    return WatchDecision(RETRAIN, **base, reason=f"drift critical on {worst.name or 'the dataset'}: retrain on {newest}")


def handled_from_events(events: Iterable[Any], model: str) -> dict[str, Any]:
    """dataset@version -> {candidate, job, at} of every `watch.retrain` audit event of the model:
    the audit log is the record that survives a lost state file."""
    handled: dict[str, Any] = {}
    for event in events:
        if event.action != "watch.retrain" or event.model != model:
            continue
        data = (event.details or {}).get("dataset_version")
        if isinstance(data, str) and data:
            details = event.details or {}
            handled[data] = {"candidate": event.version, "job": details.get("training_run", ""), "at": event.at,
                             "severity": details.get("severity", "critical"), "feature": details.get("feature", ""),
                             "psi": details.get("psi"), "tier": details.get("tier", ""),
                             "drift_share": details.get("drift_share", 0.0)}
    return handled


def handled_from_versions(versions: Iterable[Any]) -> dict[str, Any]:
    """dataset@version -> {candidate, job, at} of every registered version whose lineage names that
    data version: a retrain by hand (`mrc train`, the console) or a watch retrain whose
    `watch.retrain` event was never written (a crash right after registering) is handled too."""
    handled: dict[str, Any] = {}
    for mv in versions:
        data = getattr(mv.lineage, "data_version", "") or ""
        if data and data not in handled:  # the first version trained on it is the one to name
            handled[data] = {"candidate": mv.version, "job": mv.lineage.training_run, "at": mv.created_at,
                             "source": "registry"}
    return handled


def unfinished_retrains(events: Iterable[Any], model: str) -> dict[str, Any]:
    """dataset@version -> the details of its latest `watch.retrain_started` event that no later
    `watch.retrain` or `watch.retrain.failed` of the same data version followed (events in log order):
    a retrain still running, or one whose process died mid-way."""
    started: dict[str, Any] = {}
    for event in events:
        if event.model != model:
            continue
        data = (event.details or {}).get("dataset_version")
        if not isinstance(data, str) or not data:
            continue
        if event.action == "watch.retrain_started":
            started[data] = {**(event.details or {}), "at": event.at, "actor": event.actor}
        elif event.action in ("watch.retrain", "watch.retrain.failed"):
            started.pop(data, None)
    return started


def progress_line(decision: WatchDecision) -> str:
    """One human line per run (loop mode prints one per interval)."""
    what = f"{decision.model}: {decision.newest} vs {decision.reference or '(no reference)'}"
    if decision.action == UP_TO_DATE:
        return f"{what}: up to date (production trained on it)"
    worst = decision.worst
    psi = f" psi {worst.psi:.3f}" if isinstance(worst.psi, (int, float)) else ""
    drift = f"drift {decision.severity} ({decision.drift_share:.0%} of features; worst {worst.name or '-'}{psi})"
    tail = {NO_ACTION: "no action", ALREADY_HANDLED: f"already retrained (candidate "
                                                     f"{(decision.handled_by or {}).get('candidate') or '?'})",
            IN_PROGRESS: f"retrain started on host {(decision.handled_by or {}).get('host') or '?'}, "
                         "not finished: not retrained here",
            RETRAIN: "retraining"}[decision.action]
    return f"{what}: {drift} → {tail}"
