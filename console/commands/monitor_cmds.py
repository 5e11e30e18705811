"""monitor MODEL · monitor run [MODEL …]"""

from __future__ import annotations

import sys

from console.commands.common import Context

EXIT_CRITICAL = 1


def register(sub, common) -> None:
    p = common(sub.add_parser(
        "monitor", help="production's live traffic against its reference: feature and prediction drift per window, "
                        "late labels; `run` watches every interval and acts on the tiers"))
    p.add_argument("words", nargs="+", metavar="MODEL | run [MODEL …]",
                   help="MODEL: one report (exit 0 ok/warning, 1 critical, 2 bad input); run: the daemon "
                        "(every production model under [monitor] unless models are named)")
    p.add_argument("--once", action="store_true", help="one round, then exit (the report form is always one)")
    p.add_argument("--window", choices=["15m", "1h", "24h", "7d"], help="the window judged (default [monitor] window, 1h)")
    p.add_argument("--interval", type=float, default=None, metavar="S", help="run: seconds between rounds ([monitor] interval, 60)")
    p.add_argument("--runs", type=int, default=0, metavar="N", help="run: stop after N rounds (0: never)")
    p.set_defaults(handler=cmd_monitor)


def cmd_monitor(ctx: Context) -> int:
    from backends.base import BadInputError

    words = ctx.args.words
    if words[0] == "run":
        return _run(ctx, words[1:])
    if len(words) != 1:
        raise BadInputError(f"mrc monitor: one model, or `run [MODEL …]` (got {' '.join(words)})")
    if ctx.args.interval is not None or ctx.args.runs:
        raise BadInputError("--interval and --runs belong to `mrc monitor run`")
    from console.monitor.monitor_run import monitor_once

    report = monitor_once(ctx.workspace, words[0], window=ctx.args.window)
    ctx.emit(report, lambda: human(report))
    return EXIT_CRITICAL if report["tier"] == "critical" else 0


def human(report: dict) -> str:
    from console.commands.common import table

    labels = report.get("labels") or {}
    lines = [f"{report['model']}: {report['tier'].upper()} · production {report.get('production') or '(none)'} · "
             f"window {report['window']['name']} · {report.get('units', 0)} users/units, {report.get('records', 0)} "
             f"records · labels {_pct(labels.get('coverage'))} covered"
             + (f", accuracy {labels['accuracy']:.3f}" if labels.get("accuracy") is not None else "")]
    rows = [[f["name"], f["tier"], _num(f.get("psi")), _num(f.get("ks")), _num(f.get("p_value")),
             _pct(f.get("missing_rate")), _pct(f.get("unseen_share"))] for f in report.get("features", [])]
    if rows:
        lines.append(table(["feature", "tier", "psi", "ks", "chi2 p", "missing", "unseen"], rows))
    pred = report.get("prediction") or {}
    if pred.get("psi") is not None:
        lines.append(f"prediction: {pred['tier']} · psi {_num(pred['psi'])}")
    for note in report.get("notes", []):
        lines.append(f"note: {note}")
    bad = report.get("source", {}).get("bad") or {}
    for key, n in sorted(bad.items()):
        lines.append(f"bad records: {n} × {key}")
    return "\n".join(lines)


def _num(x) -> str:
    return "-" if x is None else f"{x:.3g}"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _run(ctx: Context, models: list[str]) -> int:
    """`mrc monitor run`: a round every interval until SIGTERM / Ctrl-C; a signal lets the round in
    progress finish. One JSON line (or one text line) per model per round."""
    import json
    import signal
    import threading

    from backends.base import BadInputError
    from console.monitor.actions import MonitorRounds
    from console.monitor.monitor_run import settings

    ctx.require_write("monitor run")
    args = ctx.args
    s = settings(ctx.workspace)
    interval = args.interval if args.interval is not None else s.interval
    if not interval > 0:
        raise BadInputError(f"--interval {interval!r}: must be seconds > 0")
    if args.runs < 0:
        raise BadInputError(f"--runs {args.runs}: must be >= 0")
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        stop.set()
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

    def report(line: dict, text: str) -> None:
        if ctx.json:
            sys.stdout.write(json.dumps(line, default=str) + "\n")
            sys.stdout.flush()
        else:
            print(text, flush=True)

    rounds = MonitorRounds(ctx.workspace, actor=ctx.actor, models=models or None, report=report,
                           progress=ctx.progress)
    max_rounds = 1 if args.once else args.runs
    done = 0
    try:
        while not stop.is_set():
            rounds.round()
            done += 1
            if max_rounds and done >= max_rounds:
                break
            stop.wait(interval)
    finally:
        rounds.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    ctx.progress(f"monitor: stopped after {done} round(s)")
    return 0
