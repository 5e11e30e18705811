"""watch"""

from __future__ import annotations

import json
import sys

from backends.base import BackendError, BadInputError, ConflictError, check_name
from backends.support.redact import escape_control, redact, redact_obj, safe_line
from console.commands.common import Context, PolicyRefusal
from console.monitor.watch import RETRAIN, WatchDecision, progress_line

# mrc's modules that this file's handlers run (release, rollout, evaluate …) are imported inside
# them: every command module is imported to build `mrc --help` and `mrc rollback`'s parser, which
# must not pay for them (--help: ~70 ms of CPU as is, ~300 ms with them at the top). Light modules
# that --help loads anyway are imported above.

EXIT_RETRAIN_LAUNCHED = 1  # the CLI contract's "drift beyond critical": this run trained a candidate


def register(sub, common) -> None:
    p = common(sub.add_parser(
        "watch", help="drift of production's reference data vs the newest dataset version; past critical, retrain"))
    p.add_argument("model")
    p.add_argument("--once", action="store_true", help="one run, then exit (cron, CI); default: a loop")
    p.add_argument("--interval", type=float, default=300.0, metavar="S", help="seconds between runs of the loop (300)")
    p.add_argument("--runs", type=int, default=0, metavar="N", help="stop the loop after N runs (0: never)")
    p.add_argument("--data", metavar="REF", help="the dataset to watch: NAME (its newest version) or NAME@VERSION "
                                                 "(default: the dataset of models.MODEL.train_data)")
    p.add_argument("--param", action="append", default=[], metavar="K=V", help="a retraining parameter (repeatable)")
    p.add_argument("--gpu", action="store_true", help="retrain on a GPU (CUDA) when one is there")
    p.set_defaults(handler=cmd_watch)


def cmd_watch(ctx: Context) -> int:
    import math
    import time

    from console.monitor.watch_run import watch_once
    from console.training import parse_param_pairs

    args = ctx.args
    ctx.require_write("watch")
    check_name(args.model, "model")
    if not (math.isfinite(args.interval) and args.interval > 0):
        raise BadInputError(f"--interval {args.interval!r}: must be a number of seconds > 0")
    if args.runs < 0:
        raise BadInputError(f"--runs {args.runs}: must be >= 0")
    params = parse_param_pairs(args.param, where="--param ")
    params.update({k: v for k, v in _config_params(ctx, args.model).items() if k not in params})
    ws = ctx.workspace
    runs = 1 if args.once else args.runs
    done = 0
    code = 0
    summary: dict = {}

    def on_event(event: dict) -> None:
        kind = event.get("event")
        if kind == "decision":
            decision: WatchDecision = event["decision"]
            summary["line"] = progress_line(decision)
            if ctx.json or decision.action == RETRAIN:  # human mode prints it on stdout when the run ends
                ctx.progress(f"watch {summary['line']}")
        elif kind == "alert":
            from console.notify.delivery import after_write

            after_write(ws, actor=ctx.actor)  # best effort, never raises; nothing where [alerts] is not set
        elif kind == "progress":
            ctx.progress(f"  epoch {event['epoch']}/{event['epochs']} loss {event['loss']:.4f}", event["progress"])
        elif kind in ("log", "launched"):
            ctx.progress("  " + (event.get("message") or f"launched job {event.get('job')}"))

    health = _health_rounds(ctx)  # None without [alerts]: not even the import
    while True:
        started = time.monotonic()
        try:
            result = watch_once(ws, args.model, actor=ctx.actor, data=args.data, params=params, gpu=args.gpu,
                                on_event=on_event)
        except Exception as exc:  # noqa: BLE001
            if args.once:  # --once keeps the exit codes (2 bad input, 4 backend, …)
                if _has_exit_code(exc):
                    raise
                # not a traceback's exit 1: for watch, 1 means "retrain launched"
                raise BackendError(f"watch {args.model}: run failed: {type(exc).__name__}: {exc}") from exc
            # a loop outlives any one run's failure (a backend down for a while, a new data version
            # without its label column, a failed training): report it, try again next interval
            _report_loop_error(ctx, args.model, exc, args.interval)
            result = None
        done += 1
        if result is not None:
            launched = result["action"] == RETRAIN
            result["exit_code"] = EXIT_RETRAIN_LAUNCHED if launched else 0
            line = summary.get("line", "")
            if launched:
                code = EXIT_RETRAIN_LAUNCHED
                line = (f"{args.model}: registered candidate {result['candidate']} trained on {result['newest_data']} "
                        f"(run {result['training_run']}); production {result['production'] or '(none)'} unchanged")
            _emit_one(ctx, result, line)
        if health is not None:
            health.round()  # production's error rate and latency, each run; delivers what is pending; never raises
        elif not args.once and isinstance(ws.config.get("alerts"), dict):
            from console.notify.delivery import after_write

            after_write(ws, actor=ctx.actor)  # a broken [alerts]: says so each run, as any write does
        if runs and done >= runs:
            return code  # main() delivers what is pending once the command returns
        time.sleep(max(0.0, args.interval - (time.monotonic() - started)))


def _health_rounds(ctx: Context):
    """With [alerts] configured, each run also checks production health (console/monitor/alerts_run.py), so
    a team running `mrc watch` needs no `mrc alerts run` beside it. A bad [alerts] table never
    stops the watcher (alerts never block a write): one line, and no health checks."""
    if not isinstance(ctx.workspace.config.get("alerts"), dict):
        return None
    from console.monitor.alerts_run import HealthRounds
    from console.notify.delivery import config

    try:
        cfg = config(ctx.workspace)
    except BadInputError as exc:
        ctx.progress(f"alerts: production health not checked: {safe_line(exc)}")
        return None
    if not ctx.args.once and ctx.args.interval >= cfg.hold_s / 2:
        ctx.progress(f"alerts: --interval {ctx.args.interval:g} is not under alerts.hold_s / 2 "
                     f"({cfg.hold_s / 2:g} s): a firing health alert may lapse between two runs")

    def report(record: dict, line: str, problem: bool) -> None:
        ctx.progress(f"alerts: {line}")  # stderr: stdout keeps one line (one JSON object) per watch run

    return HealthRounds(ctx.workspace, actor=ctx.actor, report=report)


def _config_params(ctx: Context, model: str) -> dict:
    """[models.X] watch_params = "epochs=5 hidden=16": the retraining parameters a team fixes once."""
    from console.training import parse_param_pairs

    raw = ctx.workspace.model_config(model).get("watch_params", "")
    if not isinstance(raw, str):
        raise BadInputError(f"{ctx.workspace.config_path}: models.{model}.watch_params must be a string "
                            "like \"epochs=5 hidden=16\"")
    return parse_param_pairs(raw.split(), where=f"{ctx.workspace.config_path}: models.{model}.watch_params: ")


def _has_exit_code(exc: BaseException) -> bool:
    """Whether main() turns the error into one line and its own exit code."""
    import sqlite3

    return (isinstance(exc, (BackendError, BadInputError, ConflictError, PolicyRefusal, sqlite3.Error))
            or type(exc).__name__ == "OperationalError")


def _report_loop_error(ctx: Context, model: str, exc: BaseException, interval: float) -> None:
    """One line for a loop run that failed: on stderr; with --json also one object (with `error`)
    on stdout, so a consumer of the JSON Lines sees every run."""
    kind = "bad-input" if isinstance(exc, BadInputError) else "backend" if isinstance(exc, BackendError) else "error"
    error = safe_line(exc if kind != "error" else f"{type(exc).__name__}: {exc}")
    ctx.progress(f"watch {model}: run failed: {error} (next try in {interval:g} s)")
    if ctx.json:
        sys.stdout.write(json.dumps(redact_obj({"model": model, "action": "error", "error": error,
                                                "error_kind": kind})) + "\n")
        sys.stdout.flush()


def _emit_one(ctx: Context, result: dict, line: str) -> None:
    """One line per run on stdout; with --json one object per run, one line each (JSON Lines),
    so a loop's output streams."""
    if not ctx.json:
        print(escape_control(redact(line)), flush=True)
        return

    sys.stdout.write(json.dumps(redact_obj(json.loads(json.dumps(result, default=str)))) + "\n")
    sys.stdout.flush()
