"""The router's and model servers' control journals (serving/<model>/control.jsonl) into the
hash-chained audit log. stdlib only.

The servers append one JSON line per accepted state change (split, rollback, backends, fault)
with the caller's stated actor; they cannot write the audit log themselves. `ingest` appends
every line not yet there as a "router-control" / "server-control" event whose details hold the
line's byte range and sha256, inside one write transaction, so two runs never ingest a line
twice. The next run resumes after the last ingested line only if that line is still where it
was: a journal truncated or rewritten since is reported, never re-ingested. `missing` compares
the journal with the log both ways, for `mrc audit verify`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from console.release.audit import AuditLog, _write_tx, connect

ACTIONS = ("router-control", "server-control")


def journals(root: Path) -> list[Path]:
    """One per served model: the file the servers write (see backends/local/serving/jsonhttp.py)."""
    return sorted((Path(root) / "serving").glob("*/control.jsonl"))


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _lines(data: bytes) -> list[tuple[int, int, bytes]]:
    """(start, end, line) of every complete line; a line still being written is left for later."""
    out, start = [], 0
    while True:
        nl = data.find(b"\n", start)
        if nl < 0:
            return out
        out.append((start, nl + 1, data[start:nl + 1]))
        start = nl + 1


def _sha(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def _ingested(conn: sqlite3.Connection, journal: str) -> list[tuple[int, dict[str, Any]]]:
    """(seq, details) of this journal's events, in order."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit_events'").fetchone() is None:
        return []
    rows = conn.execute("SELECT seq, details FROM audit_events WHERE action IN (?, ?) ORDER BY seq", ACTIONS)
    found = []
    for seq, text in rows:
        try:
            details = json.loads(text)
        except ValueError:
            continue
        if isinstance(details, dict) and details.get("journal") == journal:
            found.append((seq, details))
    return found


def _event_of(entry: Any) -> tuple[str, str, str]:
    """(action, actor, version) for one journal entry. A model server's result names its
    version; the router's never does (its fault result is {"fault"} alone)."""
    if not isinstance(entry, dict):
        return "router-control", "(unparseable journal line) via router", ""
    result = entry.get("result") if isinstance(entry.get("result"), dict) else {}
    body = entry.get("body") if isinstance(entry.get("body"), dict) else {}
    stated = str(entry.get("actor") or "").strip() or "(no actor stated)"
    if "version" in result:
        return "server-control", f"{stated} via model server", str(result.get("version") or "")
    version = body.get("stable") if str(entry.get("route", "")).endswith("/control/rollback") else body.get("version")
    return "router-control", f"{stated} via router", str(version or "")


def ingest(log: AuditLog, root: Path) -> dict[str, Any]:
    """Append every new journal line as an audit event. Returns {"ingested": n, "problems": [...]}
    (a problem: a journal that no longer holds the last line ingested from it)."""
    root = Path(root)
    total, problems = 0, []
    for path in journals(root):
        journal, model = _rel(root, path), path.parent.name
        try:
            data = path.read_bytes()
        except OSError as exc:
            problems.append(f"{journal}: unreadable ({exc.strerror or exc})")
            continue

        def append_new(conn: sqlite3.Connection) -> tuple[int, str | None]:
            done = _ingested(conn, journal)
            if done and _resume_at(data, done) is None:
                return 0, (f"{journal}: truncated or rewritten since event {done[-1][0]} (its line at byte "
                           f"{done[-1][1].get('offset')} is gone); new lines not ingested, see `mrc audit verify`")
            resume = _resume_at(data, done) or 0
            count = 0
            for start, end, line in _lines(data[resume:]):
                try:
                    entry = json.loads(line)
                except ValueError:
                    entry = {"__unparseable__": line[:500].decode(errors="replace")}
                action, actor, version = _event_of(entry)
                log.append_in(conn, actor, action, model, version,
                              {"journal": journal, "offset": resume + start, "end": resume + end,
                               "line_sha256": _sha(line), "entry": entry})
                count += 1
            return count, None

        # read first: the write transaction only when there is something to append
        reader = connect(log.db_path) if os.path.exists(log.db_path) else None
        try:
            count, problem = append_new(reader) if reader is not None and _is_settled(reader, journal, data) \
                else _write_tx(log.db_path, append_new)
        finally:
            if reader is not None:
                reader.close()
        total += count
        if problem:
            problems.append(problem)
    return {"ingested": total, "problems": problems}


def _resume_at(data: bytes, done: list[tuple[int, dict[str, Any]]]) -> int | None:
    """Where the lines not yet ingested start: after the last ingested line if it is still
    where it was (0 when none was ingested); None when the journal was truncated or rewritten."""
    if not done:
        return 0
    last = done[-1][1]
    start, end = int(last.get("offset", -1)), int(last.get("end", -1))
    if not (0 <= start < end <= len(data)) or _sha(data[start:end]) != last.get("line_sha256"):
        return None
    return end


def _is_settled(conn: sqlite3.Connection, journal: str, data: bytes) -> bool:
    """Nothing to append: every complete line is in, or the journal was rewritten (reported)."""
    resume = _resume_at(data, _ingested(conn, journal))
    return resume is None or not _lines(data[resume:])


def _pending(data: bytes, done: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, int, bytes]]:
    """The lines after the last ingested one, if that line is still where it was."""
    resume = _resume_at(data, done)
    return [] if resume is None else _lines(data[resume:])


def missing(log: AuditLog, root: Path) -> list[str]:
    """Both ways: ingested lines no longer in their journal, and journal lines not in the log."""
    root = Path(root)
    problems: list[str] = []
    names = {_rel(root, p) for p in journals(root)}
    if not log.events():
        ingested: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    else:
        conn = connect(log.db_path)
        try:
            rows = conn.execute("SELECT DISTINCT details FROM audit_events WHERE action IN (?, ?)", ACTIONS)
            for (text,) in rows:
                try:
                    names.add(str(json.loads(text).get("journal") or ""))
                except (ValueError, AttributeError):
                    continue
            ingested = {name: _ingested(conn, name) for name in sorted(names) if name}
        finally:
            conn.close()
    for name in sorted(n for n in names if n):
        path = root / name
        try:
            data = path.read_bytes()
        except OSError:
            data = b""
        on_disk = Counter(_sha(line) for _, _, line in _lines(data))
        in_log = Counter(d.get("line_sha256") for _, d in ingested.get(name, []))
        left = on_disk.copy()
        for seq, details in ingested.get(name, []):
            h = details.get("line_sha256")
            if left[h] > 0:
                left[h] -= 1
                continue
            entry = details.get("entry") if isinstance(details.get("entry"), dict) else {}
            problems.append(f"{name}: line of event {seq} ({entry.get('route', '?')} by "
                            f"{entry.get('actor') or '(no actor stated)'}) is missing from the journal")
        # lines after the last ingested one are pending (a --read-only verify, or a call made
        # since the ingest), not missing
        not_logged = on_disk - in_log - Counter(_sha(line) for _, _, line in _pending(data, ingested.get(name, [])))
        if not_logged:
            problems.append(f"{name}: {sum(not_logged.values())} journal line(s) not in the audit log")
    return problems
