"""alerts · alerts flush · alerts run · alerts test"""

from __future__ import annotations

from backends.base import BadInputError
from backends.support.redact import escape_control, redact, redact_obj
from console.commands.common import Context, table

# mrc's modules that this file's handlers run (release, rollout, evaluate …) are imported inside
# them: every command module is imported to build `mrc --help` and `mrc rollback`'s parser, which
# must not pay for them (--help: ~70 ms of CPU as is, ~300 ms with them at the top). Light modules
# that --help loads anyway are imported above.


def register(sub, common) -> None:
    p = common(sub.add_parser(
        "alerts", help="on-call alerts derived from the audit log; `flush` checks production health and "
                       "delivers what is pending, `test` sends one test alert to every receiver"))
    p.add_argument("alerts_action", nargs="?", choices=["flush", "run", "test"], metavar="flush|run|test",
                   help="flush: check production health against [alerts] thresholds and deliver every pending "
                        "alert to Alertmanager and the webhooks (exit 4 if a receiver failed); "
                        "run: the same every --interval seconds until SIGTERM / Ctrl-C, one line per change; "
                        "test: send a short-lived MrcTest alert to every receiver (writes nothing)")
    p.add_argument("--interval", type=float, default=None, metavar="S",
                   help="run: seconds between rounds (default: 60, or less: under alerts.hold_s / 4 and about half "
                        "of alerts.health_window_s)")
    p.add_argument("--runs", type=int, default=0, metavar="N", help="run: stop after N rounds (0: never)")
    p.add_argument("--once", action="store_true", help="run: one round, then exit (4 if something failed)")
    p.set_defaults(handler=cmd_alerts)


def cmd_alerts(ctx: Context) -> int:
    from console.notify import delivery as alert_delivery

    ws = ctx.workspace
    if ctx.args.alerts_action != "run" and (ctx.args.interval is not None or ctx.args.runs or ctx.args.once):
        raise BadInputError("--interval, --runs and --once belong to `mrc alerts run`")
    if ctx.args.alerts_action == "test":
        return _report(ctx, alert_delivery.send_test(ws), "test alert")
    if ctx.args.alerts_action == "flush":
        ctx.require_write("alerts flush")
        cfg = alert_delivery.config(ws)
        if not cfg.enabled:
            raise BadInputError(f"{ws.config_path}: [alerts] names no alertmanager_url and no webhooks")
        checked = alert_delivery.check_health(ws, actor=ctx.actor)
        for event in checked:
            ctx.progress(f"{event.action}: {event.model} {event.version} {event.details.get('metric')} "
                         f"{event.details.get('value')} (threshold {event.details.get('threshold')})")
        # an explicit flush may wait for a slow receiver up to its own timeout; a write never does
        return _report(ctx, alert_delivery.deliver(ws, actor=ctx.actor, deadline_s=max(cfg.deadline_s, cfg.timeout_s)),
                       "delivered",
                       health=[e.to_dict() for e in checked])
    if ctx.args.alerts_action == "run":
        return _run(ctx)
    view = alert_delivery.state(ws)
    ctx.emit(view, lambda: _human(view))
    return 0


def _report(ctx: Context, results, what: str, **extra) -> int:
    after = "" if what == "test alert" else "; {n} alert(s) stay pending (retried by the next write or flush)"
    ctx.emit({"deliveries": [r.to_dict() for r in results], **extra}, lambda: "\n".join(
        [f"{r.receiver}: {what} {r.alerts} alert(s)" if r.ok else f"{r.receiver}: FAILED ({r.error})"
         + after.format(n=r.alerts) for r in results] or ["nothing to deliver"]))
    return 4 if any(not r.ok for r in results) else 0


def _human(view) -> str:
    if not view["configured"]:
        head = "alerts: not configured (add [alerts] alertmanager_url or [[alerts.webhooks]] to mrc.toml)"
    else:
        head = "receivers: " + ", ".join(
            f"{r['name']} (through seq {r['cursor'] if r['cursor'] is not None else '-'}"
            + (f", last error: {r['last_error']}" if r["last_error"] else "") + ")" for r in view["receivers"])
    rows = [[a["state"], a["severity"], a["alertname"], a["model"], a["version"], a["starts_at"][:19],
             a["summary"][:70]] for a in view["alerts"]]
    return head + "\n" + (table(["state", "severity", "alert", "model", "version", "since", "summary"], rows)
                          if rows else "no alerts")


def _run(ctx: Context) -> int:
    """`mrc alerts run`: health checked and alerts delivered every interval until SIGTERM / Ctrl-C.
    The first Ctrl-C (or SIGTERM) lets the round in progress finish; a second Ctrl-C interrupts it."""
    import json
    import signal
    import sys
    import threading

    from console.monitor import alerts_run
    from console.notify import delivery as alert_delivery

    args, ws = ctx.args, ctx.workspace
    ctx.require_write("alerts run")
    cfg = alert_delivery.config(ws)
    if not cfg.enabled:
        raise BadInputError(f"{ws.config_path}: [alerts] names no alertmanager_url and no webhooks")
    if args.runs < 0:
        raise BadInputError(f"--runs {args.runs}: must be >= 0")
    interval = alerts_run.check_interval(args.interval, cfg, ws.config_path)

    def report(record: dict, line: str, problem: bool) -> None:
        if problem:
            ctx.progress(f"alerts: {line}")
        if ctx.json:
            sys.stdout.write(json.dumps(redact_obj(json.loads(json.dumps(record, default=str)))) + "\n")
            sys.stdout.flush()
        elif not problem:
            print(escape_control(redact(line)), flush=True)

    rounds = alerts_run.HealthRounds(ws, actor=ctx.actor, report=report)
    if args.once:
        return 0 if rounds.round().ok else 4
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        stop.set()
        if signum == signal.SIGINT:  # a second Ctrl-C interrupts a round that hangs
            signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    ctx.progress(f"alerts: checking production health and delivering to {', '.join(cfg.receivers())} "
                 f"every {interval:g} s (Ctrl-C stops)")
    try:
        done = alerts_run.run(rounds, interval=interval, max_rounds=args.runs, stopped=stop.is_set, wait=stop.wait)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    ctx.progress(f"alerts: stopped after {done} round(s)")
    return 0
