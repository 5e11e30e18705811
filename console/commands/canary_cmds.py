"""canary start|status|promote|pause|resume|next|abort · drill · serve-models"""

from __future__ import annotations

import sys

from backends.base import CANDIDATE, PRODUCTION, BadInputError, check_name
from console.commands.audit_cmds import ingest_journals
from console.commands.common import Context
from console.domain import CanaryPlan
from console.errors import PolicyRefusal

# mrc's modules that this file's handlers run (release, rollout, evaluate …) are imported inside
# them: every command module is imported to build `mrc --help` and `mrc rollback`'s parser, which
# must not pay for them (--help: ~70 ms of CPU as is, ~300 ms with them at the top). Light modules
# that --help loads anyway are imported above.

EXIT_ROLLED_BACK = 1


def register(sub, common) -> None:
    canary = common(sub.add_parser("canary", help="canary rollouts: start, status, promote, pause, abort"))
    csub = canary.add_subparsers(dest="canary_command", metavar="ACTION")

    p = common(csub.add_parser("start", help="start (or resume) a canary and run it headless until it ends"))
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("--plan", default="5,25,50,100", help="canary weights in percent, the last one 100; a first "
                   "step `shadow` (shadow,5,25,50,100) mirrors traffic to the candidate until the shadow judge passes")
    p.add_argument("--hold", type=float, metavar="S", help="seconds each step is held (default 60)")
    p.add_argument("--interval", type=float, metavar="S", help="analysis interval in seconds (default 10)")
    p.add_argument("--judge", choices=["sequential", "threshold", "both"], help="which judge rolls back (default sequential)")
    p.add_argument("--alpha", type=float, help="false-rollback rate of the sequential judge (default 0.05)")
    p.add_argument("--failures", type=int, metavar="N", help="consecutive failing windows before rollback (default 3)")
    p.add_argument("--min-requests", type=int, metavar="N", help="requests per variant a window needs to be judged")
    p.add_argument("--max-error-delta", type=float, metavar="D", help="threshold rule: allowed error-rate increase")
    p.add_argument("--min-detectable", metavar="RATIO|off", help="the last step waits until an error odds ratio "
                   "this large would have been caught (80 %% power; default 2); off: promote when the hold ends")
    p.add_argument("--no-data-timeout", type=float, metavar="S",
                   help="roll back after this long without data from both variants (default 5 intervals)")
    p.add_argument("--override", action="store_true", help="canary a version that is not approved (needs --reason)")
    p.add_argument("--reason", default="", help="why, for the audit log (required with --override)")
    p.add_argument("--max-seconds", type=float, help="stop the controller after this long (the canary stays live)")
    p.set_defaults(handler=cmd_start)

    p = common(csub.add_parser("plan", help="how long each step of a canary needs at a traffic rate, and what it "
                               "cannot see (--json too)"))
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("--rate", type=float, required=True, metavar="R", help="requests per second, both variants")
    p.add_argument("--plan", default="5,25,50,100", help="canary weights in percent, the last one 100")
    p.add_argument("--hold", type=float, metavar="S", help="seconds each step is held (default 60)")
    p.add_argument("--alpha", type=float, help="false-rollback rate of the sequential judge (default 0.05)")
    p.add_argument("--base-error-rate", type=float, default=0.01, metavar="P",
                   help="stable's error rate the plan assumes (default 0.01)")
    p.set_defaults(handler=cmd_plan)

    p = common(csub.add_parser("status", help="the model's latest canary state (--json: CanaryState)"))
    p.add_argument("model")
    p.set_defaults(handler=cmd_status)

    for name, text in (("promote", "send all traffic to the canary and make it production"),
                       ("pause", "stop stepping (analysis and automatic rollback continue)"),
                       ("resume", "resume a paused canary"),
                       ("next", "go to the next step now"),
                       ("abort", "end the canary: stable back to 100%%")):
        p = common(csub.add_parser(name, help=text))
        p.add_argument("model")
        p.add_argument("--reason", default="", help="why, for the audit log")
        p.set_defaults(handler=cmd_act, action=name)

    p = common(sub.add_parser(
        "drill", help="inject a fault into a locally served version (rehearsals, tests)",
        description="Inject a rehearsal fault into a locally served version. Drills add to each other: an option "
                    "left out keeps the value the version's fault has (`--error-rate 0.3` then `--latency-ms 200` "
                    "gives both); `--off` removes the whole fault. At least one option is required."))
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("--error-rate", type=float, metavar="R",
                   help="fraction of requests answered 500, a number within [0, 1] (0.3 = 30 %%); 0 ends this part")
    p.add_argument("--latency-ms", type=float, metavar="N",
                   help="milliseconds added to every request, >= 0; 0 ends this part")
    p.add_argument("--shift", type=float, metavar="S",
                   help="added to every predicted probability (finite, e.g. -0.2); 0 ends this part")
    p.add_argument("--off", action="store_true", help="remove the whole fault (error rate, latency and shift to 0)")
    p.set_defaults(handler=cmd_drill)

    p = common(sub.add_parser("load", help="replay the model's test rows through the local router at a rate"))
    p.add_argument("model")
    p.add_argument("--rate", type=float, default=50.0, help="requests per second (default 50)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    p.add_argument("--data", metavar="REF", help="rows to replay: a CSV/Parquet path, s3://…, or name@version "
                   "(default: the model's test_data)")
    p.add_argument("--label-delay", type=float, default=0.5, help="seconds before each label arrives")
    p.set_defaults(handler=cmd_load)

    p = common(sub.add_parser("serve-models", help="start (or stop) local model servers and the router for a model"))
    p.add_argument("model")
    p.add_argument("--versions", help="comma-separated versions (default: production and candidate)")
    p.add_argument("--stop", action="store_true", help="stop the model's servers and router")
    p.set_defaults(handler=cmd_serve_models)


def _state_text(state) -> str:
    lines = [f"{state.model}: canary {state.candidate} vs stable {state.stable} · {state.status} · "
             f"weight {state.weight}% · step {state.step + 1}/{len(state.plan.steps)} · "
             f"failures {state.failures}/{state.plan.consecutive_failures}"]
    if state.reason:
        lines.append(f"  reason: {state.reason}")
    for r in state.sequential.get("results") or []:
        lines.append(f"  {r.get('detail', '')}")
    needs = state.sequential.get("needs_more")
    if needs and state.active:  # the power-aware plan: what the last step still waits for
        lines.append(f"  needs ~{needs['requests']} more canary requests ({needs['test']}) before it can promote"
                     if needs.get("requests") is not None else
                     f"  {needs['test']} cannot show the plan's minimum regression at this split (ends inconclusive)")
    return "\n".join(lines)


def _plan(args):
    import dataclasses

    from console.rollout.canary import parse_plan, validate_plan

    plan = parse_plan(args.plan)
    overrides = {"hold_s": args.hold, "interval_s": args.interval, "judge": args.judge, "alpha": args.alpha,
                 "consecutive_failures": args.failures, "min_requests": args.min_requests,
                 "max_error_rate_delta": args.max_error_delta, "no_data_timeout_s": args.no_data_timeout}
    plan = dataclasses.replace(plan, **{k: v for k, v in overrides.items() if v is not None})
    if args.min_detectable is not None:  # "off", or the error odds ratio the last step must be able to detect
        off = args.min_detectable.strip().lower() == "off"
        try:
            ratio = None if off else float(args.min_detectable)
        except ValueError:
            raise BadInputError(f"--min-detectable {args.min_detectable!r}: an odds ratio > 1 (e.g. 2) or off") from None
        plan = dataclasses.replace(plan, min_detectable_error_ratio=ratio,
                                   **({"min_detectable_tail_ratio": None} if off else {}))
    names = {"hold_s": "--hold", "interval_s": "--interval", "alpha": "--alpha", "consecutive_failures": "--failures",
             "no_data_timeout_s": "--no-data-timeout", "min_detectable_error_ratio": "--min-detectable"}
    try:
        return validate_plan(plan, "canary plan")
    except BadInputError as exc:
        for field, flag in names.items():
            if field in str(exc):
                raise BadInputError(f"{flag}: {exc}") from None
        raise


def cmd_start(ctx: Context) -> int:
    from console.rollout.controller import Controller

    args = ctx.args
    ctx.require_write("canary start")
    check_name(args.model, "model")

    ingest_journals(ctx, ctx.workspace.audit())  # control calls made since the last run, before ours
    check_name(args.version, "version")
    from console.rollout.shadow_report import split_shadow_step

    shadow_first, args.plan = split_shadow_step(args.plan)
    plan = _plan(args)

    shown = {"events": 0}

    def on_change(state) -> None:
        for event in state.events[shown["events"]:] if len(state.events) >= shown["events"] else state.events[-1:]:
            ctx.progress(f"{event['kind']}: {event['text']}")
        shown["events"] = len(state.events)

    # Resolve every backend before the first write: a bad [traffic] or [metrics] setting must
    # stop the start with one line, not half-way through a canary that already moved traffic.
    controller = Controller(ctx.workspace, args.model, actor=ctx.actor, registry=ctx.registry, on_change=on_change,
                            traffic=ctx.workspace.traffic(), metrics=ctx.workspace.metrics())
    if shadow_first:
        report = _shadow_first(ctx, controller, plan)
        if report is not None and report["outcome"] != "pass":
            ctx.emit(report, lambda: f"{args.model}: shadow step {report['outcome']}: "
                     f"{report['comparison'].get('reason', '')}; no user traffic moved")
            return EXIT_ROLLED_BACK
    state = controller.start(args.version, plan, override=args.override, reason=args.reason)
    try:
        state = controller.run(state, max_seconds=args.max_seconds)
    except KeyboardInterrupt:
        ctx.progress(f"controller stopped; the canary stays {state.status} (rerun `mrc canary start` to resume)")
        raise
    ctx.emit(state.to_dict(), lambda: _state_text(state))
    return EXIT_ROLLED_BACK if state.status in ("rolled_back", "aborted") else 0


def _shadow_first(ctx: Context, controller, plan):
    """The plan's `shadow` step, before any user sees the candidate; None when this start
    resumes a canary already past it."""
    from console.rollout.canary import evidence_timeout
    from console.rollout.controller import current_state
    from console.rollout.shadow_report import shadow_step

    args = ctx.args
    existing = current_state(ctx.workspace, args.model)
    if existing is not None and existing.active:
        return None  # controller.start resumes it (or refuses a second one)
    mv = ctx.registry.get_version(args.model, args.version)
    if mv.approval.status != "approved" and not args.override:
        raise PolicyRefusal(f"{args.model} {args.version}: approval is {mv.approval.status!r}; approve it first "
                            "or start the canary with --override and a reason")
    stable = ctx.registry.get_pointers(args.model).get(PRODUCTION)
    if stable is None:
        raise BadInputError(f"{args.model}: has no production version to compare the canary with")
    return shadow_step(ctx.workspace, args.model, stable, args.version, actor=ctx.actor, registry=ctx.registry,
                       traffic=controller.traffic, min_s=plan.hold_s, timeout_s=evidence_timeout(plan),
                       poll_s=plan.interval_s, progress=ctx.progress, alpha=plan.alpha,
                       min_pairs=plan.min_requests, max_psi=plan.max_prediction_psi)


def cmd_plan(ctx: Context) -> int:
    """Pure planning: no workspace, nothing written."""
    import dataclasses

    from console.domain import CanaryPlan
    from console.rollout.canary import forecast, forecast_text, parse_plan, validate_plan

    args = ctx.args
    check_name(args.model, "model")
    check_name(args.version, "version")
    plan = parse_plan(args.plan, CanaryPlan())
    overrides = {"hold_s": args.hold, "alpha": args.alpha}
    plan = dataclasses.replace(plan, **{k: v for k, v in overrides.items() if v is not None})
    try:
        validate_plan(plan, "canary plan")
    except BadInputError as exc:
        flag = "--hold" if "hold_s" in str(exc) else "--alpha" if "alpha" in str(exc) else "--plan"
        raise BadInputError(f"{flag}: {exc}") from None
    result = forecast(plan, args.rate, args.base_error_rate)
    ctx.emit(result, lambda: forecast_text(args.model, args.version, result))
    return 0


def cmd_status(ctx: Context) -> int:
    from console.rollout.controller import current_state

    from console.rollout.controller import unjudged

    state = current_state(ctx.workspace, check_name(ctx.args.model, "model"))
    if state is None:
        raise BadInputError(f"{ctx.args.model}: no canary yet")
    why = unjudged(ctx.workspace, state)

    def human() -> str:
        text = _state_text(state)
        if why is None:
            return text
        # red where a terminal shows it: traffic sits at a split nobody is judging
        head = f"UNJUDGED: {why}; `mrc alerts run` resumes it (or `mrc canary start {state.model} {state.candidate}`), " \
               f"`mrc rollback {state.model}` ends it"
        return (f"\x1b[1;31m{head}\x1b[0m" if sys.stdout.isatty() else head) + "\n" + text

    ctx.emit({**state.to_dict(), "unjudged": why}, human)
    return 0


def cmd_act(ctx: Context) -> int:
    from console.rollout.controller import Controller

    ctx.require_write(f"canary {ctx.args.action}")
    check_name(ctx.args.model, "model")
    state = Controller(ctx.workspace, ctx.args.model, actor=ctx.actor, registry=ctx.registry).act(
        ctx.args.action, reason=ctx.args.reason)
    ctx.emit(state.to_dict(), lambda: _state_text(state))
    return 0


def cmd_drill(ctx: Context) -> int:
    args = ctx.args
    ctx.require_write("drill")
    check_name(args.model, "model")
    check_name(args.version, "version")
    given = {k: v for k, v in (("error_rate", args.error_rate), ("latency_ms", args.latency_ms),
                               ("shift", args.shift)) if v is not None}
    if args.off and given:
        raise BadInputError("drill: --off removes the whole fault; leave out --error-rate/--latency-ms/--shift")
    if not args.off and not given:
        raise BadInputError("drill: say what to inject (--error-rate R, --latency-ms N, --shift S) or --off "
                            "to remove the fault (see `mrc drill --help`)")
    import math

    for key, value in given.items():
        if not math.isfinite(value):
            raise BadInputError(f"--{key.replace('_', '-')} {value}: must be a finite number")
    if "error_rate" in given and not 0.0 <= given["error_rate"] <= 1.0:
        raise BadInputError(f"--error-rate {given['error_rate']}: must be within [0, 1] (a fraction: 0.3 = 30 %)")
    if "latency_ms" in given and given["latency_ms"] < 0:
        raise BadInputError(f"--latency-ms {given['latency_ms']}: must be >= 0")
    if args.off:
        error_rate = latency_ms = shift = 0.0
    else:
        error_rate, latency_ms, shift = args.error_rate, args.latency_ms, args.shift
    traffic = ctx.workspace.traffic()
    fault = getattr(traffic, "fault", None)
    if fault is None:
        raise BadInputError(f"{ctx.workspace.config_path}: the traffic backend cannot inject faults (local only)")
    result = fault(args.model, args.version, error_rate=error_rate, latency_ms=latency_ms, shift=shift)
    ctx.workspace.audit().append(ctx.actor, "drill", args.model, args.version, result.get("fault", {}))
    now = result.get("fault") or {}
    ctx.emit({"model": args.model, **result},
             f"{args.model} {args.version}: fault " + ("off" if args.off else
                                                      f"error rate {now.get('error_rate', 0):g}, "
                                                      f"+{now.get('latency_ms', 0):g} ms, shift {now.get('shift', 0):+g}"
                                                      " (drills add: --off removes it)"))
    return 0


def cmd_serve_models(ctx: Context) -> int:
    from console.release.serving import ensure_served

    args = ctx.args
    ctx.require_write("serve-models")  # it sets the split and starts or stops processes
    check_name(args.model, "model")

    ingest_journals(ctx, ctx.workspace.audit())  # control calls made since the last run, before ours
    traffic = ctx.workspace.traffic()
    if not hasattr(traffic, "ensure_serving"):
        raise BadInputError(f"{ctx.workspace.config_path}: traffic backend is not local: nothing to serve here")
    if args.stop:
        stopped = traffic.stop_serving(args.model)
        ctx.workspace.audit().append(ctx.actor, "serve-stop", args.model, "", {"stopped": stopped})
        ctx.emit({"model": args.model, "stopped": stopped}, f"{args.model}: stopped {', '.join(stopped) or 'nothing'}")
        return 0
    if args.versions:
        versions = [check_name(v.strip(), "--versions version") for v in args.versions.split(",") if v.strip()]
    else:
        pointers = ctx.registry.get_pointers(args.model)
        versions = [v for v in (pointers.get(PRODUCTION), pointers.get(CANDIDATE)) if v]
    if not versions:
        raise BadInputError(f"{args.model}: no versions to serve (pass --versions)")
    for v in versions:
        ctx.registry.get_version(args.model, v)  # NotFoundError before any process starts
    info = ensure_served(ctx.workspace, args.model, versions, traffic=traffic, registry=ctx.registry)
    split = traffic.get_split(args.model)
    ctx.workspace.audit().append(ctx.actor, "serve-start", args.model, ",".join(versions),
                                 {"versions": versions, "split": split.weights, "revision": split.revision,
                                  "formats": {v: s.get("format") for v, s in info["servers"].items()}})
    data = {"model": args.model, "router": f"http://127.0.0.1:{info['router']['port']}",
            "servers": {v: f"http://127.0.0.1:{s['port']}" for v, s in info["servers"].items()},
            "formats": {v: {"format": s.get("format"), "protocol": s.get("protocol")} for v, s in info["servers"].items()},
            "split": split.to_dict()}
    ctx.emit(data, lambda: f"{args.model}: router {data['router']} · split {split.weights}\n"
             + "\n".join(f"  {v}: {u} ({data['formats'][v]['format']}, {data['formats'][v]['protocol']})"
                         for v, u in data["servers"].items()))
    return 0


def cmd_load(ctx: Context) -> int:
    from console.release.serving import load_rows

    args = ctx.args
    ctx.require_write("load")  # the router logs every request it sends, and the labels
    check_name(args.model, "model")
    if not (0 < args.rate <= 2000) or not (0 < args.duration <= 3600):
        raise BadInputError("--rate must be in (0, 2000] and --duration in (0, 3600] (load tests stay bounded)")
    if not (0 <= args.label_delay <= 600):
        raise BadInputError("--label-delay must be in [0, 600] seconds")
    traffic = ctx.workspace.traffic()
    if not hasattr(traffic, "load"):
        raise BadInputError(f"{ctx.workspace.config_path}: the traffic backend cannot replay load (local only)")
    if traffic.router_port(args.model) is None:
        raise BadInputError(f"{args.model}: not served (run `mrc serve-models {args.model}` first)")
    columns, rows, labels = load_rows(ctx.workspace, args.model, args.data, traffic)
    summary = traffic.load(args.model, rows, labels, columns=columns, rate=args.rate, duration=args.duration,
                           label_delay_s=args.label_delay, on_start=ctx.progress)
    ctx.emit({"model": args.model, **summary}, lambda: f"{args.model}: {summary}")
    return 0
