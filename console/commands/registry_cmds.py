"""models · versions · promote · rollback · approve · reject · alias"""

from __future__ import annotations

from backends.base import CANARY, CANDIDATE, PRODUCTION, BadInputError, check_name
from backends.support.dbfile import connect_db
from console.commands.common import Context, table
from console.rollout.live import live_canary

# mrc's modules that this file's handlers run (release, rollout, evaluate …) are imported inside
# them: every command module is imported to build `mrc --help` and `mrc rollback`'s parser, which
# must not pay for them (--help: ~70 ms of CPU as is, ~300 ms with them at the top). Light modules
# that --help loads anyway are imported above.


def register(sub, common) -> None:
    p = common(sub.add_parser("models", help="models with production, candidate, canary and drift status"))
    p.set_defaults(handler=cmd_models)

    p = common(sub.add_parser("versions", help="versions of a model with metrics, aliases, lineage, approval"))
    p.add_argument("model")
    p.set_defaults(handler=cmd_versions)

    p = common(sub.add_parser("promote", help="point production at a version (compare-and-swap)"))
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("--reason", default="", help="why, for the audit log (required with --override)")
    p.add_argument("--expect", metavar="VERSION", help="the production version you saw ('none' for no pointer); "
                   "the move fails with exit 3 if production is something else now")
    p.add_argument("--override", action="store_true", help="promote a version that is not approved (needs --reason)")
    p.set_defaults(handler=cmd_promote)

    p = common(sub.add_parser("rollback", help="move production back to the previous (or a given) version"))
    p.add_argument("model")
    p.add_argument("--to", metavar="VERSION", help="the version to roll back to (default: the newest earlier "
                   "production version that is approved, intact and not the one production was rolled away from)")
    p.add_argument("--reason", default="", help="why, for the audit log and the alert (required with --override)")
    p.add_argument("--expect", metavar="VERSION", help="the production version you saw: roll back away from it "
                   "(a bare rollback right after another one moves nothing; this rolls back further)")
    p.add_argument("--override", action="store_true",
                   help="--to a rejected, pending or corrupt version (needs --reason)")
    p.set_defaults(handler=cmd_rollback)

    for name, status, what in (
            ("approve", "approved", "approve a version for production: refused while its gates fail unless "
                                    "--override; under [policy.production] a further approver co-signs"),
            ("reject", "rejected", "reject a version: it may not take production (a rollback skips it) and every "
                                   "approval of it stops counting")):
        p = common(sub.add_parser(name, help=f"record that a version is {status}, with a reason", description=what))
        p.add_argument("model")
        p.add_argument("version")
        p.add_argument("--reason", required=True, help=f"why it is {status} (required; kept in the audit log)")
        if name == "approve":
            p.add_argument("--override", action="store_true", help="approve although gates fail (the reason says why)")
            p.add_argument("--policy", metavar="FILE", help="gate policy (default: the model's, else the built-in "
                           "one); another policy than the configured one makes an approval an override")
        else:  # accepted so scripts that pass them to both keep working; a reject needs neither
            p.add_argument("--override", action="store_true", help="no effect on a reject (a reject never needs one)")
            p.add_argument("--policy", metavar="FILE", help="gate policy the recorded gate report is judged by "
                           "(default: the model's, else the built-in one)")
        p.add_argument("--no-gates", action="store_true", help="record the decision without evaluating gates")
        p.set_defaults(handler=cmd_decide, status=status)

    p = common(sub.add_parser("revoke", help="withdraw your own approval of a version (protected aliases)"))
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("--reason", required=True, help="why the approval is withdrawn (required; kept in the audit log)")
    p.set_defaults(handler=cmd_revoke)

    p = common(sub.add_parser("alias", help="point an alias (candidate, canary, archived …) at a version"))
    p.add_argument("model")
    p.add_argument("alias")
    p.add_argument("version", help="a version, or 'none' to remove the alias")
    p.add_argument("--reason", default="", help="why, for the audit log")
    p.add_argument("--expect", metavar="VERSION", help="the version the alias points at as you saw it ('none' for "
                   "no pointer); the move fails with exit 3 if it points elsewhere now")
    p.set_defaults(handler=cmd_alias)


def _expect(args) -> tuple[str | None, bool]:
    if args.expect is None:
        return None, False
    if args.expect.lower() == "none":
        return None, True
    return check_name(args.expect, "--expect version"), True


def cmd_models(ctx: Context) -> int:
    from console.release.live_state import disagreements

    registry = ctx.registry
    rows = []
    summaries = registry.list_models()
    # pointers against their last audited move, the router against registry and canary
    disagree = disagreements(ctx.workspace, registry, ctx.workspace.audit(), summaries) if summaries else {}
    unjudged_by_model = _unjudged(ctx.workspace) if summaries else {}
    for m in summaries:
        rows.append({
            "name": m.name,
            "production": m.pointers.get(PRODUCTION),
            "candidate": m.pointers.get(CANDIDATE),
            "canary": m.pointers.get(CANARY),
            "canary_unjudged": unjudged_by_model.get(m.name),
            "drift": drift_status(ctx, m.name, m.pointers.get(CANDIDATE)),
            "versions": m.versions,
            "pointers": m.pointers,
            "updated_at": m.updated_at,
            "disagreements": disagree.get(m.name, []),
        })

    def human() -> str:
        if not rows:
            return "no models yet (try `mrc demo`)"
        text = table(
            ["model", "production", "candidate", "canary", "drift", "versions", "updated"],
            [[r["name"] + (" !" if r["disagreements"] else ""), r["production"] or "-", r["candidate"] or "-",
              (r["canary"] or "-") + (" UNJUDGED" if r["canary_unjudged"] else ""), r["drift"] or "-", r["versions"],
              r["updated_at"][:19]] for r in rows])
        lines = [f"UNJUDGED: {r['name']} canary {r['canary'] or ''}: {r['canary_unjudged']}; `mrc alerts run` resumes it"
                 for r in rows if r["canary_unjudged"]]
        lines += [f"DISAGREES: {line}" for r in rows for line in r["disagreements"]]
        return "\n".join([text, *lines, *(["(`mrc audit verify` checks everything)"] if lines else [])])

    ctx.emit({"models": rows}, human)
    return 0


def _unjudged(ws) -> dict[str, str]:
    """model -> why its live canary has nobody judging it (the controller only imported when a canary is live)."""
    if not _any_live_canary(ws.db_path):
        return {}
    from console.rollout.controller import current_states, unjudged

    return {model: why for model, state in current_states(ws).items() if (why := unjudged(ws, state))}


def _any_live_canary(db_path) -> bool:
    import os
    import sqlite3

    if not os.path.exists(db_path):
        return False
    conn = connect_db(db_path, timeout=30)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'canary_states'").fetchone() is None:
            return False
        return conn.execute("SELECT 1 FROM canary_states WHERE status IN ('progressing', 'paused') LIMIT 1").fetchone() \
            is not None
    except sqlite3.Error:
        return True
    finally:
        conn.close()


def drift_status(ctx: Context, model: str, candidate: str | None) -> str | None:
    """The drift severity last recorded for the model's candidate, if the drift engine recorded one."""
    if not candidate:
        return None
    from console.evaluate.drift import recorded_status

    return recorded_status(ctx.workspace, model, candidate)


def cmd_versions(ctx: Context) -> int:
    versions = ctx.registry.list_versions(ctx.args.model)
    data = {"model": ctx.args.model, "versions": [v.to_dict() for v in versions]}

    def human() -> str:
        keys = ["auc_roc", "f1", "p99_latency_ms"]
        return table(
            ["version", "aliases", "approval", *keys, "data", "commit", "created"],
            [[v.version, ",".join(v.aliases) or "-", v.approval.status,
              *[("%.4f" % v.metrics[k]) if k in v.metrics else "-" for k in keys],
              v.lineage.data_version or "-", (v.lineage.code_commit or "-")[:12], v.created_at[:19]]
             for v in versions])

    ctx.emit(data, human)
    return 0


def cmd_promote(ctx: Context) -> int:
    from console.release.actions import promote

    ctx.require_write("promote")
    expected, given = _expect(ctx.args)
    outcome = promote(ctx.registry, ctx.workspace.audit(), ctx.args.model, ctx.args.version, actor=ctx.actor,
                      reason=ctx.args.reason, expected=expected, expected_given=given, override=ctx.args.override,
                      traffic=_live_traffic(ctx), options=_model_options(ctx), policy=_policy(ctx))
    ctx.emit(outcome.to_dict(), outcome.detail.get("message")
             or f"{outcome.model}: production {outcome.detail.get('from') or 'none'} -> {outcome.version}"
             + ("" if outcome.changed else " (no change)"))
    return 0


def cmd_rollback(ctx: Context) -> int:
    from console.release.actions import rollback

    ctx.require_write("rollback")
    expected, given = _expect(ctx.args)
    if ctx.args.to is not None:
        check_name(ctx.args.to, "--to version")
    if ctx.args.override and not (ctx.args.reason or "").strip():
        raise BadInputError("--override: a --reason is required")
    policy, warning = None, None
    if "policy" in ctx.workspace.config:  # no [policy]: the rule's module is not even imported
        from console.release.policy import rollback_policy

        policy, warning = rollback_policy(ctx.workspace)  # a malformed [policy] warns, never blocks a rollback
    if warning:
        ctx.progress(warning)
    if policy is not None and policy.rollback is not None:  # the open default costs the rollback nothing
        from console.release.actions import rollback_allowed

        rollback_allowed(policy, ctx.registry, ctx.args.model, ctx.actor)
    to = ctx.args.to
    live = live_canary(ctx.workspace.db_path, ctx.args.model)
    if live is not None and to is None and not given:
        production = ctx.registry.get_pointers(ctx.args.model).get(PRODUCTION)
        if production == live.stable:
            # its stable is production already: traffic back to it is the whole rollback
            state = _end_live_canary(ctx)
            if state is not None:
                ctx.emit({"action": "rollback", "model": state.model, "version": state.stable, "changed": True,
                          "canary": state.id, "status": state.status, "traffic": {state.stable: 100}},
                         f"{state.model}: canary {state.candidate} rolled back, stable {state.stable} at 100%")
                return 0
        else:
            # production was moved off the canary's stable outside the canary: back to that stable,
            # pointer and traffic together (traffic alone would leave the registry saying otherwise)
            to, expected, given = live.stable, production, True
    outcome = rollback(ctx.registry, ctx.workspace.audit(), ctx.args.model, actor=ctx.actor, to=to,
                       reason=ctx.args.reason, expected=expected, expected_given=given, override=ctx.args.override,
                       traffic=_live_traffic(ctx), options=_model_options(ctx), policy=policy,
                       allowed_checked=True, end_canary=(lambda: _end_live_canary(ctx)) if live is not None else None)
    ctx.emit(outcome.to_dict(), outcome.detail.get("message")
             or f"{outcome.model}: rolled back production {outcome.detail.get('from')} -> {outcome.version}")
    return 0


def _model_options(ctx: Context) -> dict:
    """The model's [models.<name>] table: how its server loads and serves it."""
    try:
        return ctx.workspace.model_config(ctx.args.model)
    except BadInputError:
        return {}


def _end_live_canary(ctx: Context):
    """The model's live canary rolled back through its controller (imported only when one is live)."""
    from console.rollout.controller import rollback_live_canary

    return rollback_live_canary(ctx.workspace, ctx.args.model, actor=ctx.actor, reason=ctx.args.reason or "mrc rollback")


def _live_traffic(ctx: Context):
    """The traffic backend when the model has a live split to move, else None (never fails the rollback)."""
    try:
        if not ctx.workspace.may_serve(ctx.args.model):
            return None  # nothing served: the traffic backend is not even imported
        traffic = ctx.workspace.traffic()
        traffic.get_split(ctx.args.model)
    except Exception:  # noqa: BLE001  (no serving, or a backend not installed: the pointer still moves)
        return None
    return traffic


def cmd_decide(ctx: Context) -> int:
    from console.release.actions import decide

    args = ctx.args
    ctx.require_write(args.command)
    check_name(args.model, "model")
    check_name(args.version, "version")
    report = None
    custom = None
    if args.status == "approved" and args.no_gates and not args.override:
        raise BadInputError("--no-gates: approving without a gate verdict needs --override (and the reason says why)")
    policy = _policy(ctx) if args.status == "approved" else None
    if policy is not None:  # the trainer's own approval is refused before the gates are run for it
        from console.release.actions import approver_allowed

        approver_allowed(policy, ctx.registry, ctx.registry.get_version(args.model, args.version), ctx.actor)
    if args.status == "approved" and not args.no_gates:
        report = gate_report_for(ctx, args.model, args.version, args.policy)
        custom = _custom_policy(ctx, args.model, args.policy, report)
    outcome = decide(ctx.registry, ctx.workspace.audit(), args.model, args.version, status=args.status,
                     actor=ctx.actor, reason=args.reason, gate_report=report, override=args.override,
                     custom_policy=custom, policy=policy)
    not_run = [c.name for c in report.not_run] if report is not None else []
    tally = (outcome.detail.get("policy") or {}).get("summary")
    ctx.emit({**outcome.to_dict(), "checks_not_run": not_run}, f"{args.model} {args.version}: {args.status}"
             + (" (override)" if outcome.detail["approval"].get("override") else "")
             + (f"; {tally}" if tally else "")
             + (f"; {len(not_run)} checks not run: {', '.join(not_run)}" if not_run else "")
             + ("" if outcome.changed else " (no change)"))
    return 0


def _custom_policy(ctx: Context, model: str, policy: str | None, report) -> str | None:
    """`--policy FILE` when its bytes are not the workspace's configured policy: the approval is then an override."""
    if not policy:
        return None
    from console.evaluate.gates import policy_for

    configured = policy_for(ctx.workspace, model, None)
    if getattr(report, "policy_sha256", None) == configured.sha256:
        return None  # the configured policy named explicitly: judged by it all the same
    return f"{policy} (sha256 {report.policy_sha256[:12]})"


def gate_report_for(ctx: Context, model: str, version: str, policy: str | None):
    """The gate report of a registry version: from recorded metrics, and from the test set when
    the model has one (checks that need data are listed as not run without it)."""
    from console.evaluate.gates import evaluate_version

    return evaluate_version(ctx.workspace, model, version, policy_path=policy)


def cmd_alias(ctx: Context) -> int:
    from console.release.actions import set_alias

    ctx.require_write("alias")
    if ctx.args.alias in (PRODUCTION, CANARY):
        # these carry policy (approval, artifact check, live traffic): no side door around it
        raise BadInputError(f"alias {ctx.args.alias!r}: use `mrc promote`, `mrc rollback` or `mrc canary` to move it")
    expected, given = _expect(ctx.args)
    version = None if ctx.args.version.lower() == "none" else check_name(ctx.args.version, "version")
    outcome = set_alias(ctx.registry, ctx.workspace.audit(), ctx.args.model, ctx.args.alias, version, actor=ctx.actor,
                        reason=ctx.args.reason, expected=expected, expected_given=given)
    ctx.emit(outcome.to_dict(), f"{ctx.args.model}: {ctx.args.alias} -> {version or 'none'}")
    return 0


# -- protected aliases ([policy.production] in mrc.toml) ---------------------------------------------


def _policy(ctx: Context, alias: str = PRODUCTION):
    """The workspace's rule for `alias` (console/release/policy.py), None when it is not protected."""
    if "policy" not in ctx.workspace.config:
        return None
    from console.release.policy import alias_policy

    return alias_policy(ctx.workspace, alias)


def cmd_revoke(ctx: Context) -> int:
    from console.release.actions import revoke

    ctx.require_write("revoke")
    outcome = revoke(ctx.registry, ctx.workspace.audit(), ctx.args.model, ctx.args.version, actor=ctx.actor,
                     reason=ctx.args.reason, policy=_policy(ctx))
    ctx.emit(outcome.to_dict(), f"{ctx.args.model} {ctx.args.version}: approval by {ctx.actor} revoked")
    return 0
