"""`mrc monitor run`: rounds of the monitor, and what a tier change does.

`plan` is pure (the last audited tier and this round's report in, actions out). The tiers go
through the existing audit → alert path: `monitor.warning` fires ModelDriftWarning,
`monitor.critical` ModelDriftCritical, `monitor.ok` resolves them (console/notify/alerts.py).
On critical:
- a live canary halts: paused when production's traffic drifted, rolled back when the canary's
  own traffic is the critical one;
- production rolls back only where `[monitor] auto_rollback = true`, and only to the rollback
  target when that target's own traffic in the same window is judged and not critical (inputs
  that drifted for every version are not fixed by a rollback: that needs a retrain or break glass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from console.monitor.monitor_run import Settings, State, judge, monitor_once, reference_profile, settings, state_path

AUDIT_SOURCE = "mrc monitor"


@dataclass
class Action:
    kind: str  # audit | canary-pause | canary-rollback | rollback | rollback-skipped
    details: dict[str, Any]


def worst(report: dict[str, Any]) -> dict[str, Any]:
    feats = report.get("features") or []
    return feats[0] if feats else {}


def plan(previous: str, report: dict[str, Any], *, auto_rollback: bool, target: str | None,
         target_tier: str | None) -> list[Action]:
    """What this round does: an audit event when production's tier changed, and on a new critical
    the canary and rollback actions (see the module's docstring)."""
    actions: list[Action] = []
    tier = report["tier"]
    canary = report.get("canary") or None
    top = worst(report)
    details = {"tier": tier, "previous": previous, "window": report["window"]["name"], "feature": top.get("name"),
               "psi": top.get("psi"), "source": AUDIT_SOURCE,
               "reason": f"{top.get('name')}: PSI {top.get('psi', 0) or 0:.3f} over the {report['window']['name']} window"
               if top else ""}
    if tier != previous:
        actions.append(Action("audit", {"action": f"monitor.{tier}", **details}))
    canary_critical = canary is not None and canary.get("tier") == "critical"
    if canary is not None and (canary_critical or (tier == "critical" and previous != "critical")):
        what = "canary-rollback" if canary_critical else "canary-pause"
        actions.append(Action(what, {"version": canary["version"], "reason": "monitor.critical: " + (
            "the canary's own traffic drifted" if canary_critical else "production's traffic drifted")}))
    if tier == "critical" and previous != "critical" and auto_rollback:
        if target is None:
            actions.append(Action("rollback-skipped", {"why": "no rollback target"}))
        elif target_tier in (None, "critical"):
            why = "its traffic in the same window is critical too" if target_tier == "critical" else \
                "its traffic in the same window was not judged (too few records): not known to be better"
            actions.append(Action("rollback-skipped", {"target": target, "why": why}))
        else:
            actions.append(Action("rollback", {"target": target, "reason": f"monitor.critical: {details['reason']}"}))
    return actions


class MonitorRounds:
    def __init__(self, ws, *, actor: str, models: list[str] | None, report: Callable[[dict, str], None],
                 progress: Callable[[str], None]):
        self.ws, self.actor, self.models, self.report, self.progress = ws, actor, models, report, progress
        self.states: dict[str, State] = {}
        self.problems: dict[str, str] = {}

    def _models(self) -> list[str]:
        if self.models:
            return self.models
        registry = self.ws.registry()
        return [m.name for m in registry.list_models() if registry.get_pointers(m.name).get("production")]

    def round(self, now: float | None = None) -> list[dict[str, Any]]:
        from backends.support.redact import safe_line

        out = []
        try:
            models = self._models()
        except Exception as exc:  # noqa: BLE001  (the registry: next round)
            self.progress(f"monitor: models unreadable: {safe_line(exc)} (retried next round)")
            return out
        s = settings(self.ws)
        for model in models:
            try:
                out.append(self._one(model, s, now))
                if self.problems.pop(model, None):
                    self.progress(f"monitor {model}: ok again")
            except Exception as exc:  # noqa: BLE001  (one model's failure never stops the others)
                why = safe_line(exc)
                if self.problems.get(model) != why:
                    self.progress(f"monitor {model}: round failed: {why} (retried next round)")
                self.problems[model] = why
        from console.notify.delivery import after_write

        after_write(self.ws, actor=self.actor)  # nothing where [alerts] is not set; never raises
        return out

    def _one(self, model: str, s: Settings, now: float | None) -> dict[str, Any]:
        state = self.states.get(model)
        if state is None:
            state = self.states[model] = State(state_path(self.ws, model))
        report = monitor_once(self.ws, model, now=now, s=s, state=state)
        previous = state.get("audited_tier", "ok")
        target, target_tier = None, None
        if report["tier"] == "critical" and previous != "critical" and s.cfg.auto_rollback:
            target, target_tier = self._target(model, state, s, report)
        actions = plan(previous, report, auto_rollback=s.cfg.auto_rollback, target=target, target_tier=target_tier)
        for action in actions:
            self._do(model, report, action)
        state.put("audited_tier", report["tier"])
        top = worst(report)
        self.report({"model": model, "tier": report["tier"], "window": report["window"]["name"],
                     "worst": top.get("name"), "psi": top.get("psi"), "units": report.get("units"),
                     "labels": report.get("labels", {}).get("coverage"), "actions": [a.kind for a in actions]},
                    f"{model}: {report['tier']} · worst {top.get('name', '-')} PSI {top.get('psi') or 0:.3f} · "
                    f"{report.get('units', 0)} units" + (f" · {', '.join(a.kind for a in actions)}" if actions else ""))
        return report

    def _target(self, model: str, state: State, s: Settings, report: dict[str, Any]) -> tuple[str | None, str | None]:
        from console.release.actions import _production_history, rollback_target

        registry = self.ws.registry()
        history, _ = _production_history(registry, model)
        approvals = {v.version: v.status for v in registry.list_versions(model)}
        target = rollback_target(history, report.get("production"), approvals)
        if target is None:
            return None, None
        profile, _ = reference_profile(self.ws, model, state, s.options)
        verdict, _ = judge(state, profile, target, report["window"]["end"], s.cfg)
        return target, verdict.tier if verdict.enough else None

    def _do(self, model: str, report: dict[str, Any], action: Action) -> None:
        audit = self.ws.audit()
        version = report.get("production") or ""
        if action.kind == "audit":
            details = dict(action.details)
            audit.append(self.actor, details.pop("action"), model, version, details)
        elif action.kind in ("canary-pause", "canary-rollback"):
            from console.rollout.controller import Controller

            Controller(self.ws, model, actor=self.actor).act("pause" if action.kind == "canary-pause" else "rollback",
                                                            reason=action.details["reason"])
        elif action.kind == "rollback":
            from console.release.actions import rollback

            rollback(self.ws.registry(), audit, model, actor=self.actor, to=action.details["target"],
                     reason=action.details["reason"], expected=version or None, expected_given=bool(version),
                     traffic=self.ws.traffic(), options=self.ws.model_config(model), allowed_checked=True)
        elif action.kind == "rollback-skipped":
            audit.append(self.actor, "monitor.rollback_skipped", model, version, {**action.details,
                                                                                "source": AUDIT_SOURCE})

    def close(self) -> None:
        for state in self.states.values():
            state.close()
        self.states.clear()
