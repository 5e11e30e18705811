"""break-glass · restore: all traffic to a known-good fallback, and back."""

from __future__ import annotations

from backends.base import BadInputError, check_name
from console.commands.common import Context

# mrc's modules that this file's handlers run are imported inside them: every command module is
# imported to build `mrc --help`, which must not pay for them.


def register(sub, common) -> None:
    p = common(sub.add_parser("break-glass", help="send 100%% of a model's traffic to a fallback version now "
                                                  "(compare-and-swap, audited, alerted; `mrc restore` undoes it)"))
    p.add_argument("model")
    p.add_argument("--to", metavar="VERSION", help="the fallback (default: the version a rollback would pick — the "
                   "newest earlier production version that is fit)")
    p.add_argument("--reason", default="", help="why, for the audit log and the alert (required)")
    p.set_defaults(handler=cmd_break_glass)

    p = common(sub.add_parser("restore", help="put back the split a break glass replaced (refused when the split "
                                              "changed since)"))
    p.add_argument("model")
    p.add_argument("--reason", default="", help="why, for the audit log (required)")
    p.set_defaults(handler=cmd_restore)


def _traffic(ctx: Context):
    """The traffic backend serving the model; one line when nothing serves it."""
    model = ctx.args.model
    if not ctx.workspace.may_serve(model):
        raise BadInputError(f"{model}: not served (run `mrc serve-models {model}`); break glass moves served traffic")
    return ctx.workspace.traffic()


def _model_options(ctx: Context) -> dict:
    try:
        return ctx.workspace.model_config(ctx.args.model)
    except BadInputError:
        return {}


def _check(ctx: Context, what: str) -> None:
    ctx.require_write(what)
    check_name(ctx.args.model, "model")
    if not (ctx.args.reason or "").strip():
        raise BadInputError(f"{what}: a --reason is required (it goes to the audit log and the alert)")


def cmd_break_glass(ctx: Context) -> int:
    from console.release.break_glass import break_glass

    _check(ctx, "break-glass")
    if ctx.args.to is not None:
        check_name(ctx.args.to, "--to version")
    outcome = break_glass(ctx.registry, _traffic(ctx), ctx.workspace.audit(), ctx.args.model, actor=ctx.actor,
                          reason=ctx.args.reason, to=ctx.args.to, options=_model_options(ctx))
    ctx.emit(outcome.to_dict(), outcome.detail.get("message"))
    return 0


def cmd_restore(ctx: Context) -> int:
    from console.release.break_glass import restore

    _check(ctx, "restore")
    outcome = restore(_traffic(ctx), ctx.workspace.audit(), ctx.args.model, actor=ctx.actor, reason=ctx.args.reason)
    ctx.emit(outcome.to_dict(), outcome.detail.get("message"))
    return 0
