"""audit · audit verify · audit checkpoint"""

from __future__ import annotations

import json
import sqlite3

from backends.base import BadInputError
from console.commands.common import Context, table

# mrc's modules that this file's handlers run (release, rollout, evaluate …) are imported inside
# them: every command module is imported to build `mrc --help` and `mrc rollback`'s parser, which
# must not pay for them (--help: ~70 ms of CPU as is, ~300 ms with them at the top). Light modules
# that --help loads anyway are imported above.


def register(sub, common) -> None:
    p = common(sub.add_parser(
        "audit", help="the audit log; `verify` checks the chain, its checkpoints and the registry against it; "
                      "`checkpoint` signs the head"))
    p.add_argument("verify", nargs="?", choices=["verify", "checkpoint"],
                   help="verify: hash chain, checkpoints, and every pointer move and approval has its event "
                        "(exit 1 naming what does not fit); checkpoint: sign the head (seq, hash) with the "
                        "workspace key into audit-checkpoints.jsonl")
    p.add_argument("--to", metavar="s3://BUCKET/PREFIX",
                   help="checkpoint: also write it there, write-once (If-None-Match); verify: check those too")
    p.add_argument("--model", help="only events of this model")
    p.add_argument("--limit", type=int, help="only the last N events")
    p.set_defaults(handler=cmd_audit)


def ingest_journals(ctx: Context, log) -> list[str]:
    """The router's and model servers' control journals into the log first (not under
    --read-only); a journal that no longer holds what was ingested from it is warned about."""
    from console.rollout.control_journal import ingest

    if getattr(ctx.args, "read_only", False):
        return []
    try:
        problems = ingest(log, ctx.workspace.root)["problems"]
    except (sqlite3.Error, OSError) as exc:  # a workspace this user cannot write: reads still work
        problems = [f"control journals not ingested: {exc}"]
    for p in problems:
        ctx.progress(f"warning: {p}")
    return problems


def cmd_audit(ctx: Context) -> int:
    log = ctx.workspace.audit()
    if ctx.args.verify == "checkpoint":
        ctx.require_write("audit checkpoint")  # before the ingest below writes anything
        if ctx.args.to:
            from console.release.audit_checks import check_remote_target

            check_remote_target(ctx.args.to, _endpoint(ctx.workspace))  # a bad target: refused before any write
    # checkpoint too: a router/server change not yet in the log would be left outside the anchor
    ingest_journals(ctx, log)
    if ctx.args.verify == "verify":
        return _verify(ctx, log)
    if ctx.args.verify == "checkpoint":
        return _checkpoint(ctx, log)
    if ctx.args.limit is not None and ctx.args.limit < 1:
        raise BadInputError(f"--limit {ctx.args.limit}: must be at least 1")
    events = log.events(model=ctx.args.model, limit=ctx.args.limit)
    ctx.emit({"events": [e.to_dict() for e in events]}, lambda: table(
        ["seq", "at", "actor", "action", "model", "version", "details"],
        [[e.seq, e.at[:19], e.actor, e.action, e.model, e.version, json.dumps(e.details, sort_keys=True)[:80]]
         for e in events]))
    return 0


def _verify(ctx: Context, log) -> int:
    from console.release.audit import intents
    from console.release.actions import settle_intents
    from console.release.audit_checks import (CHECKPOINTS_FILE, KEY_FILE, check_checkpoints, cross_check,
                                              key_file_exists, read_checkpoints, workspace_key)
    from console.release.live_state import split_problems

    ws = ctx.workspace
    reconciled = []
    if not ctx.args.read_only and ws.db_path.exists():
        reconciled = settle_intents(ctx.registry, log)  # a crashed remote write is settled before judging
    check = log.verify()
    events = log.events()
    checkpoints = read_checkpoints(ws.root)
    key = workspace_key(ws.root, create=False)
    problems = check_checkpoints(checkpoints, events, key)
    if not checkpoints and key_file_exists(ws.root):
        # the key is made with the first checkpoint: a key without checkpoints means they were removed
        problems.append(f"{ws.root / CHECKPOINTS_FILE}: missing or empty, but the workspace holds a checkpoint key "
                        f"({KEY_FILE}): the checkpoints were removed")
    if ctx.args.to:
        from console.release.audit_checks import read_remote_checkpoints

        remote = read_remote_checkpoints(ctx.args.to, _endpoint(ws))
        if not remote:
            problems.append(f"{ctx.args.to}: no checkpoints there")
        problems += [f"{ctx.args.to}: {p}" for p in check_checkpoints(remote, events, key)]
    problems += cross_check(ctx.registry, events)
    problems += split_problems(ws, _summaries(ctx.registry))
    from console.rollout.control_journal import missing

    problems += missing(log, ws.root)  # journal lines the log lacks, or logged lines the journal lost
    still_open = [i.id for i in intents(log, state="open")]
    ok = check.ok and not problems
    data = {**check.to_dict(), "ok": ok, "chain_ok": check.ok, "checkpoints": len(checkpoints),
            "problems": problems, "reconciled": reconciled, "open_intents": still_open}
    lines = [f"audit chain intact: {check.events} events" if check.ok
             else f"audit chain BROKEN at event {check.first_broken}: {check.reason}"]
    lines += [f"checkpoints: {len(checkpoints)}" + (" (run `mrc audit checkpoint` to anchor the chain)" if not checkpoints else "")]
    lines += [f"PROBLEM: {p}" for p in problems]
    lines += [f"intent {r['intent']}: {r['state']}" for r in reconciled]
    if still_open:
        lines.append(f"open intents (a write in flight or not yet reconciled): {still_open}")
    ctx.emit(data, "\n".join(lines))
    return 0 if ok else 1


def _checkpoint(ctx: Context, log) -> int:
    from console.release.audit_checks import check_checkpoints, read_checkpoints, workspace_key, write_checkpoint

    ctx.require_write("audit checkpoint")
    ws = ctx.workspace
    check = log.verify()
    events = log.events()
    existing = read_checkpoints(ws.root)
    key = workspace_key(ws.root, create=False)
    problems = check_checkpoints(existing, events, key) if key is not None or existing else []
    if not check.ok or problems:  # never anchor a log that already fails its checks
        ctx.emit({"ok": False, "reason": check.reason or problems[0], "problems": problems},
                 f"refused: the log does not verify ({check.reason or problems[0]})")
        return 1
    key = workspace_key(ws.root, create=True)  # made only now: a key exists only beside a checkpoint
    cp = write_checkpoint(ws.root, events, key)
    where = None
    if ctx.args.to:
        from console.release.audit_checks import put_remote_checkpoint

        where = put_remote_checkpoint(ctx.args.to, cp, _endpoint(ws))
    ctx.emit({"ok": True, "checkpoint": cp, "remote": where},
             f"checkpoint {cp['n']}: event {cp['seq']} {cp['hash'][:16]}… signed" + (f", written once to {where}" if where else ""))
    return 0


def _summaries(registry) -> list:
    from backends.base import NotFoundError

    try:
        return registry.list_models()
    except NotFoundError:
        return []


def _endpoint(ws) -> str | None:
    """[audit] endpoint_url, else the S3 registry's; None means AWS."""
    return ws.section("audit").get("endpoint_url") or ws.section("registry").get("endpoint_url")
