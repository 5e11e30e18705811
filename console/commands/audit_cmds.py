"""audit · audit verify"""

from __future__ import annotations

import json

from backends.base import BadInputError
from console.commands.common import Context, table


def register(sub, common) -> None:
    p = common(sub.add_parser("audit", help="the audit log; `mrc audit verify` checks its hash chain"))
    p.add_argument("verify", nargs="?", choices=["verify"], help="verify the hash chain (exit 1 if broken)")
    p.add_argument("--model", help="only events of this model")
    p.add_argument("--limit", type=int, help="only the last N events")
    p.set_defaults(handler=cmd_audit)


def cmd_audit(ctx: Context) -> int:
    log = ctx.workspace.audit()
    if ctx.args.verify:
        check = log.verify()
        ctx.emit(check.to_dict(), f"audit chain intact: {check.events} events" if check.ok
                 else f"audit chain BROKEN at event {check.first_broken}: {check.reason}")
        return 0 if check.ok else 1
    if ctx.args.limit is not None and ctx.args.limit < 1:
        raise BadInputError(f"--limit {ctx.args.limit}: must be at least 1")
    events = log.events(model=ctx.args.model, limit=ctx.args.limit)
    ctx.emit({"events": [e.to_dict() for e in events]}, lambda: table(
        ["seq", "at", "actor", "action", "model", "version", "details"],
        [[e.seq, e.at[:19], e.actor, e.action, e.model, e.version, json.dumps(e.details, sort_keys=True)[:80]]
         for e in events]))
    return 0
