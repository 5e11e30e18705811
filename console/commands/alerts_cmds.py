"""alerts · alerts flush · alerts test"""

from __future__ import annotations

from console.commands.common import Context, table


def register(sub, common) -> None:
    p = common(sub.add_parser(
        "alerts", help="on-call alerts derived from the audit log; `flush` checks production health and "
                       "delivers what is pending, `test` sends one test alert to every receiver"))
    p.add_argument("alerts_action", nargs="?", choices=["flush", "test"], metavar="flush|test",
                   help="flush: check production health against [alerts] thresholds and deliver every pending "
                        "alert to Alertmanager and the webhooks (exit 4 if a receiver failed); "
                        "test: send a short-lived MrcTest alert to every receiver (writes nothing)")
    p.set_defaults(handler=cmd_alerts)


def cmd_alerts(ctx: Context) -> int:
    from console import alert_delivery

    ws = ctx.workspace
    if ctx.args.alerts_action == "test":
        return _report(ctx, alert_delivery.send_test(ws), "test alert")
    if ctx.args.alerts_action == "flush":
        ctx.require_write("alerts flush")
        cfg = alert_delivery.config(ws)
        if not cfg.enabled:
            from backends.base import BadInputError

            raise BadInputError(f"{ws.config_path}: [alerts] names no alertmanager_url and no webhooks")
        checked = alert_delivery.check_health(ws, actor=ctx.actor)
        for event in checked:
            ctx.progress(f"{event.action}: {event.model} {event.version} {event.details.get('metric')} "
                         f"{event.details.get('value')} (threshold {event.details.get('threshold')})")
        # an explicit flush may wait for a slow receiver up to its own timeout; a write never does
        return _report(ctx, alert_delivery.deliver(ws, actor=ctx.actor, deadline_s=max(cfg.deadline_s, cfg.timeout_s)),
                       "delivered",
                       health=[e.to_dict() for e in checked])
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
