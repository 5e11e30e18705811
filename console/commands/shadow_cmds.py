"""shadow start|stop|status: a candidate sees a mirrored copy of production traffic.

The router (local traffic backend) mirrors a sampled copy of each served request to the shadow
version after the answer is out; users are served by the split alone. `status` compares both
answers from the router's shadow log (console/rollout/shadow.py) and gives the judge's verdict.
"""

from __future__ import annotations

import math

from backends.base import BadInputError, check_name
from backends.capabilities import Shadows
from console.commands.audit_cmds import ingest_journals
from console.commands.common import Context

# mrc's modules that this file's handlers run (release, rollout, evaluate …) are imported inside
# them: every command module is imported to build `mrc --help` and `mrc rollback`'s parser, which
# must not pay for them (--help: ~70 ms of CPU as is, ~300 ms with them at the top). Light modules
# that --help loads anyway are imported above.

EXIT_SHADOW_FAILED = 1


def register(sub, common) -> None:
    shadow = common(sub.add_parser("shadow", help="shadow traffic: mirror production requests to a candidate, compare"))
    ssub = shadow.add_subparsers(dest="shadow_command", metavar="ACTION")

    p = common(ssub.add_parser("start", help="mirror a sampled copy of the model's requests to VERSION"))
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("--sample", type=float, default=1.0, metavar="F", help="fraction of requests mirrored (default 1)")
    p.add_argument("--reason", default="", help="why, for the audit log")
    p.set_defaults(handler=cmd_start)

    p = common(ssub.add_parser("stop", help="stop mirroring (the log stays for `mrc shadow status`)"))
    p.add_argument("model")
    p.add_argument("--reason", default="", help="why, for the audit log")
    p.set_defaults(handler=cmd_stop)

    p = common(ssub.add_parser("status", help="agreement, prediction PSI, score differences, latency, verdict"))
    p.add_argument("model")
    p.add_argument("--threshold", type=float, default=0.5, help="decision threshold of a probability (default 0.5)")
    p.add_argument("--tolerance", type=float, default=0.1,
                   help="regression models: answers this close agree (default 0.1)")
    p.add_argument("--min-agreement", type=float, default=0.95, help="agreement the shadow must keep (default 0.95)")
    p.add_argument("--max-psi", type=float, default=0.2, help="largest prediction PSI that passes (default 0.2)")
    p.add_argument("--latency-ratio", type=float, default=1.25,
                   help="how much slower than production the shadow may be (default 1.25)")
    p.add_argument("--alpha", type=float, default=0.05, help="false-verdict rate of the whole judge (default 0.05)")
    p.add_argument("--min-pairs", type=int, default=30, help="requests each test needs before it decides")
    p.set_defaults(handler=cmd_status)


def _traffic(ctx: Context):
    traffic = ctx.workspace.traffic()
    if not isinstance(traffic, Shadows):
        raise BadInputError(f"{ctx.workspace.config_path}: the traffic backend cannot mirror requests (local only)")
    return traffic


def cmd_start(ctx: Context) -> int:
    from console.release.serving import ensure_served

    args = ctx.args
    ctx.require_write("shadow start")
    model, version = check_name(args.model, "model"), check_name(args.version, "version")
    if isinstance(args.sample, float) and not (math.isfinite(args.sample) and 0.0 < args.sample <= 1.0):
        raise BadInputError(f"--sample {args.sample:g}: a fraction in (0, 1]")

    ingest_journals(ctx, ctx.workspace.audit())  # control calls made since the last run, before ours
    traffic = _traffic(ctx)
    ctx.registry.get_version(model, version)  # NotFoundError (exit 2) before anything starts
    if traffic.router_port(model) is None:  # starting a router here would give it the shadow's traffic
        raise BadInputError(f"{model}: not served (run `mrc serve-models {model}` first)")
    split = traffic.get_split(model)
    if split.weights.get(version, 0) == 100:
        raise BadInputError(f"{model} {version}: already serves all traffic; a shadow must be another version")
    before = traffic.get_shadow(model)
    ensure_served(ctx.workspace, model, [version], traffic=traffic, registry=ctx.registry)  # its server, if not up
    result = traffic.set_shadow(model, version, sample=args.sample, expected_revision=int(before.get("revision", 0)))
    ctx.workspace.audit().append(ctx.actor, "shadow-start", model, version, {
        "sample": args.sample, "revision": result.get("revision"), "split": split.weights,
        "replaced": (before.get("shadow") or {}).get("version"), "reason": args.reason})
    ctx.emit(result, f"{model}: mirroring {args.sample:.0%} of requests to {version} "
                     f"(served by {', '.join(f'{v} {w}%' for v, w in split.weights.items() if w)})")
    return 0


def cmd_stop(ctx: Context) -> int:
    args = ctx.args
    ctx.require_write("shadow stop")
    model = check_name(args.model, "model")
    traffic = _traffic(ctx)
    before = traffic.get_shadow(model)
    if not before.get("live"):
        raise BadInputError(f"{model}: not served (run `mrc serve-models {model}`); nothing mirrors")
    current = (before.get("shadow") or {}).get("version")
    if current is None:
        ctx.emit(before, f"{model}: no shadow running")
        return 0
    result = traffic.set_shadow(model, None, expected_revision=int(before.get("revision", 0)))
    ctx.workspace.audit().append(ctx.actor, "shadow-stop", model, current, {
        "revision": result.get("revision"), "counters": before.get("counters", {}), "reason": args.reason})
    ctx.emit(result, f"{model}: stopped mirroring to {current} ({_counters_text(before.get('counters') or {})})")
    return 0


def _counters_text(counters: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counters.items()) or "no counters"


def cmd_status(ctx: Context) -> int:
    from console.rollout.shadow import FAIL, summary_lines
    from console.rollout.shadow_report import shadow_report

    args = ctx.args
    model = check_name(args.model, "model")
    if not 0 < args.alpha < 1:
        raise BadInputError(f"--alpha {args.alpha:g}: must be within (0, 1)")
    if not 0 <= args.min_agreement <= 1:
        raise BadInputError(f"--min-agreement {args.min_agreement:g}: must be within [0, 1]")
    if not args.latency_ratio >= 1:
        raise BadInputError(f"--latency-ratio {args.latency_ratio:g}: must be at least 1")
    if not (math.isfinite(args.threshold) and args.tolerance >= 0 and math.isfinite(args.tolerance)):
        raise BadInputError("--threshold must be a number and --tolerance a number >= 0")
    if args.min_pairs < 1 or not args.max_psi > 0:
        raise BadInputError("--min-pairs must be at least 1 and --max-psi above 0")
    report = shadow_report(ctx.workspace, model, threshold=args.threshold, tolerance=args.tolerance,
                           min_agreement=args.min_agreement, max_psi=args.max_psi, latency_ratio=args.latency_ratio,
                           alpha=args.alpha, min_pairs=args.min_pairs)
    comparison = report.pop("_comparison")
    state = "mirroring" if report["active"] else "stopped"
    ctx.emit(report, lambda: f"{model}: shadow {report['shadow']['version']} {state}\n"
             + "\n".join(summary_lines(comparison, report["counters"])))
    return EXIT_SHADOW_FAILED if comparison.verdict == FAIL else 0
