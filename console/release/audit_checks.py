"""What `mrc audit verify` checks beyond the hash chain, and the chain's anchor.

- Cross-check: every pointer move in the registry's history and every recorded approval has
  its audit event (a write without one is named). Pure functions over records.
- Checkpoints: `mrc audit checkpoint` signs the chain's head (seq, hash) with HMAC-SHA256 under
  a workspace key and appends it to audit-checkpoints.jsonl; each checkpoint's MAC covers the
  previous one's, so a checkpoint cannot be dropped from the middle either. A log truncated
  below a checkpoint, rewritten from any row up to it (even with consistent hashes) or emptied
  no longer matches. stdlib only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterable

from backends.base import BackendError, BadInputError, NotFoundError
from backends.support.timeutil import now_iso
from console.domain import AuditEvent

KEY_ENV = "MRC_AUDIT_KEY"
KEY_FILE = ".mrc-key"
CHECKPOINTS_FILE = "audit-checkpoints.jsonl"


# -- cross-check: registry writes vs the log -----------------------------------------------------

def _event_move(event: AuditEvent) -> tuple[str, str | None, str | None, int | None] | None:
    """(alias, from, to, move_seq) of a pointer-moving event; None for other events."""
    d = event.details
    if "move_seq" in d:
        return d.get("alias"), d.get("from"), d.get("to"), d.get("move_seq")
    if event.action in ("promote", "rollback") and "from" in d and "to" in d:
        return "production", d["from"], d["to"], None
    if event.action.startswith("alias:") and "to" in d:
        return event.action.removeprefix("alias:"), d.get("from"), d.get("to"), None
    if event.action == "clear-candidate":
        return "candidate", event.version, None, None
    return None


def unaudited_moves(moves: Iterable[Any], events: Iterable[AuditEvent]) -> list[Any]:
    """Pointer moves (of one model) with no event: events written with the move carry its
    `move_seq`; older ones are matched by (alias, from, to), each event used once."""
    by_seq: dict[Any, AuditEvent] = {}
    legacy: list[tuple[tuple, AuditEvent]] = []
    for event in events:
        key = _event_move(event)
        if key is None:
            continue
        if key[3] is not None:
            by_seq[key[3]] = event
        else:
            legacy.append((key[:3], event))
    missing = []
    for move in moves:
        if move.seq in by_seq and _event_move(by_seq[move.seq])[:3] == (move.alias, move.from_version, move.to_version):
            continue
        key = (move.alias, move.from_version, move.to_version)
        hit = next((i for i, (k, _) in enumerate(legacy) if k == key), None)
        if hit is None:
            missing.append(move)
        else:
            legacy.pop(hit)
    return missing


def unaudited_approvals(versions: Iterable[Any], events: Iterable[AuditEvent]) -> list[Any]:
    """Versions whose recorded approval is not what their last approve/reject event says."""
    last: dict[tuple[str, str], AuditEvent] = {}
    for event in events:
        if event.action in ("approve", "reject"):
            last[(event.model, event.version)] = event
    missing = []
    for mv in versions:
        status = mv.approval.status
        if status not in ("approved", "rejected"):
            continue
        event = last.get((mv.model, mv.version))
        wanted = "approve" if status == "approved" else "reject"
        if event is None or event.action != wanted:
            missing.append(mv)
        elif "approval_at" in event.details and event.details["approval_at"] != mv.approval.at:
            missing.append(mv)
    return missing


def cross_check(registry, events: list[AuditEvent]) -> list[str]:
    """One line per registry write that the log does not account for."""
    problems = []
    try:
        models = registry.list_models()
    except NotFoundError:
        return []  # no registry yet: nothing was written
    for summary in models:
        mine = [e for e in events if e.model == summary.name]
        history = registry.pointer_history(summary.name)
        versions = registry.list_versions(summary.name)
        for move in unaudited_moves(history, mine):
            problems.append(f"{summary.name}: pointer move #{move.seq} {move.alias} {move.from_version or 'none'} → "
                            f"{move.to_version or 'none'} by {move.actor} at {move.at} has no audit event")
        for mv in unaudited_approvals(versions, mine):
            a = mv.approval
            problems.append(f"{summary.name} {mv.version}: {a.status} by {a.by} at {a.at} has no matching audit event")
        problems += pointer_problems(summary.name, summary.pointers, mine)
        problems += actor_problems(summary.name, history, versions, mine)
    return problems


# -- live state vs the log: pointers, actors, the router's split ----------------------------------

def last_audited_pointers(events: Iterable[AuditEvent]) -> dict[str, tuple[str | None, int]]:
    """alias -> (where the last audited move of one model's events set it, that event's seq)."""
    last: dict[str, tuple[str | None, int]] = {}
    for event in sorted(events, key=lambda e: e.seq):
        key = _event_move(event)
        if key is not None and key[0]:
            last[key[0]] = (key[2], event.seq)
    return last


def pointer_problems(model: str, pointers: dict[str, str], events: Iterable[AuditEvent]) -> list[str]:
    """Pure: a pointer that is not where its last audited move set it (edited in the registry's
    store, or moved by a write the log never saw). An alias no event ever moved is left to
    `cross_check` (its history names the write)."""
    problems = []
    for alias, (audited, seq) in sorted(last_audited_pointers(events).items()):
        now = pointers.get(alias)
        if now != audited:
            problems.append(f"{model}: {alias} points at {now or 'nothing'} but its last audited move (event {seq}) "
                            f"set it to {audited or 'nothing'}: the pointer was changed outside mrc")
    return problems


def actor_problems(model: str, moves: Iterable[Any], versions: Iterable[Any], events: Iterable[AuditEvent]) -> list[str]:
    """Pure: a move or approval whose actor in the registry is not the actor of its audit event
    (one side was rewritten). Moves are matched by `move_seq`; an approval by its last own
    (not co-signing) approve/reject event."""
    events = list(events)
    by_seq = {e.details.get("move_seq"): e for e in events if "move_seq" in e.details}
    problems = []
    for move in moves:
        event = by_seq.get(move.seq)
        if event is None or not move.actor or _event_move(event)[:3] != (move.alias, move.from_version, move.to_version):
            continue
        if event.actor != move.actor:
            problems.append(f"{model}: pointer move #{move.seq} {move.alias} → {move.to_version or 'none'} was made by "
                            f"{move.actor!r} but audit event {event.seq} says {event.actor!r}: an actor was rewritten")
    last: dict[str, AuditEvent] = {}
    for event in events:
        if event.action in ("approve", "reject", "revoke-approval") and not event.details.get("co_signature"):
            last[event.version] = event
    for mv in versions:
        event = last.get(mv.version)
        a = mv.approval
        if event is None or a.status not in ("approved", "rejected") or not a.by:
            continue
        if event.details.get("approval_at") == a.at and event.actor != a.by:
            problems.append(f"{model} {mv.version}: {a.status} by {a.by!r} in the registry but audit event "
                            f"{event.seq} says {event.actor!r}: an actor was rewritten")
    return problems


def split_problem(model: str, split: dict[str, int] | None, production: str | None,
                  canary: Any = None, pending_live: bool = False) -> str | None:
    """Pure: the router's split against the registry and the canary state. With a live canary
    the split is the canary's recorded one (or, while its owner is alive mid-transition, the
    pending step's); without one, all traffic to production."""
    if split is None or production is None:
        return None
    live = {v: w for v, w in split.items() if w}
    if canary is not None and canary.active:
        def canary_split(weight: int) -> dict[str, int]:
            if weight >= 100:
                return {canary.candidate: 100}
            return {canary.stable: 100} if weight <= 0 else {canary.candidate: weight, canary.stable: 100 - weight}

        allowed = [canary_split(canary.weight)]
        if canary.pending and pending_live:
            allowed.append(canary_split(int(canary.pending.get("weight", canary.weight))))
        if live in allowed:
            return None
        what = f"canary {canary.candidate} ({canary.status}) is recorded at {canary.weight}%"
        if canary.pending:
            what += f" with a {canary.pending.get('action')} to {canary.pending.get('weight')}% left unfinished"
        return (f"{model}: the router sends {_weights(live)} but {what} and production is {production}: "
                f"`mrc canary status {model}` / `mrc alerts run` resumes it, `mrc rollback {model}` ends it")
    if live == {production: 100}:
        return None
    return f"{model}: the router sends {_weights(live)} but production is {production} and no canary is live"


def _weights(split: dict[str, int]) -> str:
    return ", ".join(f"{w}% to {v}" for v, w in sorted(split.items(), key=lambda kv: -kv[1])) or "nothing"


# -- checkpoints ---------------------------------------------------------------------------------

def workspace_key(root: Path, *, create: bool) -> bytes | None:
    """MRC_AUDIT_KEY, else <workspace>/.mrc-key (created 0600 on first use when `create`)."""
    env = os.environ.get(KEY_ENV)
    if env:
        return env.encode()
    path = Path(root) / KEY_FILE
    if path.exists() and not path.is_file():
        from backends.base import BadInputError

        raise BadInputError(f"{path}: the audit key must be a file (one line of hex), not a folder or device")
    if not path.exists():
        if not create:
            return None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
    try:
        return path.read_text().strip().encode()
    except UnicodeDecodeError:
        from backends.base import BadInputError

        raise BadInputError(f"{path}: the audit key is not text (one line of hex expected)") from None


def key_file_exists(root: Path) -> bool:
    """The workspace holds its own checkpoint key: checkpoints were made here, so they must be there."""
    return (Path(root) / KEY_FILE).exists()


def _mac(key: bytes, body: dict[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def read_checkpoints(root: Path) -> list[dict[str, Any]]:
    path = Path(root) / CHECKPOINTS_FILE
    if not path.exists():
        return []
    out = []
    # bytes first: a binary or damaged file is a checkpoint that does not parse, never a crash
    for n, line in enumerate(path.read_bytes().decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except ValueError:
            parsed = None
        out.append(parsed if isinstance(parsed, dict) else {"n": n, "unparseable": line[:80]})
    return out


def write_checkpoint(root: Path, events: list[AuditEvent], key: bytes) -> dict[str, Any]:
    """Append a signed checkpoint of the head; the caller has verified the chain first."""
    previous = read_checkpoints(root)
    head = events[-1] if events else None
    body = {"n": len(previous) + 1, "at": now_iso(), "seq": head.seq if head else 0,
            "hash": head.hash if head else "", "prev_mac": previous[-1].get("mac", "") if previous else ""}
    checkpoint = {**body, "mac": _mac(key, body)}
    with open(Path(root) / CHECKPOINTS_FILE, "a") as fh:
        fh.write(json.dumps(checkpoint, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return checkpoint


def check_checkpoints(checkpoints: list[dict[str, Any]], events: list[AuditEvent], key: bytes | None) -> list[str]:
    """Pure: one line per checkpoint that is forged, out of order, or no longer matched by the log."""
    if not checkpoints:
        return []
    if key is None:
        return [f"{len(checkpoints)} checkpoint(s) but no key to check them ({KEY_ENV} or {KEY_FILE})"]
    problems = []
    by_seq = {e.seq: e for e in events}
    prev_mac = ""
    for cp in checkpoints:
        n = cp.get("n", "?")
        body = {k: v for k, v in cp.items() if k != "mac"}
        if "unparseable" in cp or not hmac.compare_digest(str(cp.get("mac", "")), _mac(key, body)):
            problems.append(f"checkpoint {n}: signature does not match (forged, edited or another key)")
            prev_mac = str(cp.get("mac", ""))
            continue
        if cp.get("prev_mac", "") != prev_mac:
            problems.append(f"checkpoint {n}: does not follow the checkpoint before it (one was removed)")
        prev_mac = cp["mac"]
        seq = int(cp.get("seq", 0))
        if seq == 0:
            continue
        event = by_seq.get(seq)
        if event is None:
            problems.append(f"checkpoint {n} (event {seq} at {cp.get('at')}): event {seq} is missing: "
                            f"the log was truncated or emptied ({len(events)} events now)")
        elif event.hash != cp.get("hash"):
            problems.append(f"checkpoint {n}: event {seq} is not the event checkpointed at {cp.get('at')}: "
                            "the log was rewritten")
    return problems


# -- checkpoints in a write-once place: s3://bucket/prefix ---------------------------------------

def _s3(uri: str, endpoint_url: str | None):
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise BadInputError(f"{uri}: checkpoints go to s3://BUCKET/PREFIX")
    import boto3  # ~0.3 s: only `audit checkpoint/verify --to` pays it
    from botocore.config import Config

    # short timeouts, few retries: an unreachable target is one line in seconds, not minutes
    config = Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 2},
                    **({"s3": {"addressing_style": "path"}} if endpoint_url else {}))
    client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)
    return client, parsed.netloc, parsed.path.strip("/")


def _remote(uri: str, endpoint_url: str | None, what: str, call):
    """One S3 call for the checkpoints at `uri`; its failure is one line (BackendError, exit 4):
    no credentials, an endpoint that does not answer, a bucket that refuses — never a traceback."""
    client, bucket, prefix = _s3(uri, endpoint_url)
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError  # botocore: ~0.12 s

    where = f"{uri}" + (f" at {endpoint_url}" if endpoint_url else "")
    try:
        return call(client, bucket, prefix)
    except NoCredentialsError:
        raise BackendError(f"{where}: no AWS credentials to {what} (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                           "or a profile); nothing written there") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        raise BackendError(f"{where}: cannot {what}: {code} {error.get('Message', '')}".rstrip()) from None
    except BotoCoreError as exc:
        raise BackendError(f"{where}: cannot {what}: {exc}") from None


def check_remote_target(uri: str, endpoint_url: str | None) -> None:
    """Before anything is written: the target parses, credentials exist, the endpoint answers and
    the bucket lets us list the prefix (BadInputError / BackendError, one line)."""
    _remote(uri, endpoint_url, "reach the bucket",
            lambda client, bucket, prefix: client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/checkpoint-".lstrip("/"),
                                                                 MaxKeys=1))


def put_remote_checkpoint(uri: str, checkpoint: dict[str, Any], endpoint_url: str | None) -> str:
    """One object per checkpoint, written with If-None-Match: * so nothing is ever overwritten
    (pair it with S3 Object Lock on the bucket so nothing is deleted either)."""
    def put(client, bucket, prefix) -> str:
        key = f"{prefix}/checkpoint-{int(checkpoint['n']):08d}.json".lstrip("/")
        client.put_object(Bucket=bucket, Key=key, Body=json.dumps(checkpoint, sort_keys=True).encode(), IfNoneMatch="*")
        return f"s3://{bucket}/{key}"

    return _remote(uri, endpoint_url, "write the checkpoint", put)


def read_remote_checkpoints(uri: str, endpoint_url: str | None) -> list[dict[str, Any]]:
    return _remote(uri, endpoint_url, "read the checkpoints", _read_remote)


def _read_remote(client, bucket: str, prefix: str) -> list[dict[str, Any]]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/checkpoint-".lstrip("/")):
        keys += [o["Key"] for o in page.get("Contents", [])]
    out = []
    for key in sorted(keys):
        try:
            out.append(json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read()))
        except ValueError:
            out.append({"n": key, "unparseable": key})
    return out
