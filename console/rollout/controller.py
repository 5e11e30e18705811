"""The canary controller: carries the pure state machine (console/rollout/canary.py) out to the world.

Each transition is written in three moves so that a kill -9 anywhere leaves a state that a
restart can finish: (1) the intent is persisted (`pending`), (2) the traffic / registry side
effect runs (idempotent), (3) the audit event is appended and the new state committed. A
rollback skips (1): moving traffic to stable is always safe, so it happens first. On start the
controller compares the live split with the recorded one: a pending intent is finished, and a
split the state never recorded is rolled back.

The state lives in the workspace's mrc.db, table `canary_states`, through stdlib sqlite3 only
(the rollback path reads it). Every write is compare-and-swap on the state's revision, so the
CLI, the screen and the controller can act on the same canary without overwriting each other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from backends.base import CANARY, PRODUCTION, BackendError, BadInputError, ConflictError, check_name
from backends.support.dbfile import connect_db
from backends.support.timeutil import now_iso
from console.domain import CanaryPlan, CanaryState
from console.errors import PolicyRefusal
from console.notify.delivery import after_write
from console.release.actions import approval_tally, promote, promotion_guard, rollback_allowed, set_alias
from console.release.policy import PolicyViolation, rollback_policy, workspace_policy
from console.release.serving import ensure_served
from console.rollout import canary, lease
from console.rollout.canary import Decision

SCHEMA = """
CREATE TABLE IF NOT EXISTS canary_states (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    revision INTEGER NOT NULL,
    status TEXT NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS canary_states_model ON canary_states (model, created);
"""

# Tests set MRC_CANARY_CRASH="step:effect" (action:phase) to kill -9 the controller exactly there.
CRASH_ENV = "MRC_CANARY_CRASH"
# Every hook, in the order a canary meets them; tests/canary/test_fail_closed.py kills at each one
# and checks that a restart ends with registry, router and canary state agreeing.
CRASH_POINTS = (
    "start:serving",   # servers up, no canary state yet
    "start:state",     # state inserted, nothing audited, no traffic moved
    "step:intent",     # step intent saved, split not moved
    "step:split",      # split moved, production untouched, intent still pending
    "step:effect",     # effect done, state not committed
    "promote:intent",  # promote intent saved, nothing moved
    "promote:split",   # 100% to the canary, production pointer not moved
    "promote:effect",  # pointer moved too, state still "progressing" with the intent pending
    "rollback:effect",  # stable at 100%, the rollback not recorded
    "abort:effect",    # the same for a person's abort
)


def _crash_point(action: str, phase: str) -> None:
    if os.environ.get(CRASH_ENV) == f"{action}:{phase}":
        os.kill(os.getpid(), signal.SIGKILL)


ALERTS_RETRY_S = 15.0  # a receiver that is down is retried this often from the controller loop
AWAITING_APPROVALS = "awaiting-approvals"  # the canary's log: its promote holds for the two-person rule
MAX_CONFLICTS = 10  # conflicts in a row before the loop treats them as an error (and fails closed)

_SCHEMA_READY: set[tuple[str, int]] = set()


class CanaryStore:
    """CanaryState rows in mrc.db; stdlib sqlite3, compare-and-swap on `revision`."""

    def __init__(self, db_path: str | Path):
        self.db_path = str(db_path)

    @contextlib.contextmanager
    def _conn(self, *, create: bool = True) -> Iterator[sqlite3.Connection]:
        """An autocommit connection, closed on exit: `with sqlite3.connect()` alone does not close, and an
        open connection keeps mrc.db-wal / mrc.db-shm beside the database until it is collected."""
        try:  # keyed by inode too: a database deleted and made again at the same path needs the schema again
            db_key = (self.db_path, os.stat(self.db_path).st_ino)
        except FileNotFoundError:
            raise BadInputError(f"{self.db_path}: no workspace database here (run `mrc demo` or `mrc init`)") from None
        conn = connect_db(self.db_path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            if create and db_key not in _SCHEMA_READY:  # once per process: CREATE IF NOT EXISTS still takes a write lock
                conn.executescript(SCHEMA)
                _SCHEMA_READY.add(db_key)
            yield conn
        finally:
            conn.close()

    @staticmethod
    def _has_table(conn: sqlite3.Connection) -> bool:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'canary_states'").fetchone() is not None

    def latest(self, model: str) -> CanaryState | None:
        with self._conn(create=False) as conn:  # a read never writes the schema
            if not self._has_table(conn):
                return None
            row = conn.execute("SELECT state FROM canary_states WHERE model = ? ORDER BY created DESC, rowid DESC LIMIT 1",
                               (model,)).fetchone()
        return CanaryState.from_dict(json.loads(row[0])) if row else None

    def latest_by_model(self) -> dict[str, CanaryState]:
        """Every model's latest canary in one query (home reads all models at once)."""
        with self._conn(create=False) as conn:
            if not self._has_table(conn):
                return {}
            rows = conn.execute("SELECT model, state FROM canary_states ORDER BY model, created, rowid").fetchall()
        latest = dict(rows)  # ordered oldest first: the last row of each model wins
        return {model: CanaryState.from_dict(json.loads(state)) for model, state in latest.items()}

    def get(self, canary_id: str) -> CanaryState:
        with self._conn(create=False) as conn:
            row = conn.execute("SELECT state FROM canary_states WHERE id = ?", (canary_id,)).fetchone() \
                if self._has_table(conn) else None
        if row is None:
            raise BadInputError(f"canary {canary_id}: not found")
        return CanaryState.from_dict(json.loads(row[0]))

    def insert(self, state: CanaryState) -> CanaryState:
        state = dataclasses.replace(state, revision=1)
        now = time.time()
        with self._conn() as conn:
            conn.execute("BEGIN IMMEDIATE")
            active = conn.execute("SELECT id, status FROM canary_states WHERE model = ? AND status IN ('progressing', 'paused')",
                                  (state.model,)).fetchone()
            if active:
                conn.execute("ROLLBACK")
                raise ConflictError(f"{state.model}: canary {active[0]} is already {active[1]}", actual=active[0])
            conn.execute("INSERT INTO canary_states (id, model, revision, status, state, created, updated) VALUES (?,?,?,?,?,?,?)",
                         (state.id, state.model, 1, state.status, json.dumps(state.to_dict()), now, now))
            conn.execute("COMMIT")
        return state

    def save(self, state: CanaryState) -> CanaryState:
        """Write `state` if the stored revision is still state.revision; returns it at revision + 1."""
        new = dataclasses.replace(state, revision=state.revision + 1)
        with self._conn() as conn:
            cur = conn.execute("UPDATE canary_states SET revision = ?, status = ?, state = ?, updated = ? WHERE id = ? AND revision = ?",
                               (new.revision, new.status, json.dumps(new.to_dict()), time.time(), state.id, state.revision))
            if cur.rowcount != 1:
                row = conn.execute("SELECT revision FROM canary_states WHERE id = ?", (state.id,)).fetchone()
                raise ConflictError(f"{state.model}: canary state changed meanwhile (revision {row[0] if row else None}, "
                                    f"expected {state.revision})", expected=str(state.revision),
                                    actual=str(row[0]) if row else None)
        return new


def current_state(ws, model: str) -> CanaryState | None:
    """The persisted state of the model's latest canary (None when it never had one)."""
    check_name(model, "model")
    if not Path(ws.db_path).exists():
        return None
    return CanaryStore(ws.db_path).latest(model)


def current_states(ws) -> dict[str, CanaryState]:
    """current_state of every model that ever had a canary, in one read."""
    if not Path(ws.db_path).exists():
        return {}
    return CanaryStore(ws.db_path).latest_by_model()


def _pid_alive(pid: int, *, controller: bool = True) -> bool:
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not controller:  # any process may own a pending intent (the console, a CLI command)
        return True
    try:  # a reused pid is not our controller
        return b"canary" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


def _same_split(a: dict[str, int], b: dict[str, int]) -> bool:
    return {k: v for k, v in a.items() if v} == {k: v for k, v in b.items() if v}


class Controller:
    """One canary of one model. `run()` loops until the canary ends; the CLI and the screen use
    `act()` for a person's command, which goes through the same intent → effect → commit moves."""

    def __init__(self, ws, model: str, *, actor: str, traffic=None, metrics=None, registry=None, audit=None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 on_change: Callable[[CanaryState], None] | None = None):
        self.ws = ws
        self.model = check_name(model, "model")
        self.actor = actor
        self.store = CanaryStore(ws.db_path)
        self._traffic, self._metrics, self._registry, self._audit = traffic, metrics, registry, audit
        self.clock, self.sleep = clock, sleep
        self.on_change = on_change

    # Roles resolve lazily: `mrc canary pause` needs neither traffic nor metrics.
    @property
    def traffic(self):
        if self._traffic is None:
            self._traffic = self.ws.traffic()
        return self._traffic

    @property
    def metrics(self):
        if self._metrics is None:
            self._metrics = self.ws.metrics()
        return self._metrics

    @property
    def registry(self):
        if self._registry is None:
            self._registry = self.ws.registry()
        return self._registry

    @property
    def audit(self):
        if self._audit is None:
            self._audit = self.ws.audit()
        return self._audit

    # -- starting ----------------------------------------------------------------------------
    def start(self, candidate: str, plan: CanaryPlan, *, override: bool = False, reason: str = "") -> CanaryState:
        """A new canary, or the resumption of this candidate's unfinished one (after a crash)."""
        check_name(candidate, "version")
        existing = self.store.latest(self.model)
        if existing is not None and existing.active:
            if existing.candidate != candidate:
                raise ConflictError(f"{self.model}: canary of {existing.candidate} is {existing.status}; "
                                    "abort it first", actual=existing.candidate)
            if _pid_alive(existing.controller_pid):
                raise ConflictError(f"{self.model}: canary {existing.id} already has a controller (pid "
                                    f"{existing.controller_pid})", actual=str(existing.controller_pid))
            return self.resume(existing)
        mv = self.registry.get_version(self.model, candidate)
        if mv.approval.status != "approved" and not override:
            raise PolicyRefusal(f"{self.model} {candidate}: approval is {mv.approval.status!r}; approve it first "
                                "or start the canary with --override and a reason")
        if override and not reason.strip():
            raise BadInputError("--reason: a reason is required to canary an unapproved version")
        stable = self.registry.get_pointers(self.model).get(PRODUCTION)
        if stable is None:
            raise BadInputError(f"{self.model}: has no production version to compare the canary with")
        state = canary.new_state(self.model, stable, candidate, plan, self.clock(), now_iso())
        state.override = bool(override and mv.approval.status != "approved")
        # Every check before anything goes live or starts: a split someone else set, and a
        # metrics backend the judge could not read (a canary nobody can judge must not start).
        self._check_split(stable, served_only=True)
        self._probe_metrics(stable)
        ensure_served(self.ws, self.model, [stable, candidate], traffic=self.traffic, registry=self.registry)
        _crash_point("start", "serving")
        self._check_split(stable, served_only=False)  # again: ensure_serving may have set the first split
        state.controller_pid = os.getpid()
        state = self.store.insert(state)
        lease.beat(self.store.db_path, state.id, os.getpid())
        _crash_point("start", "state")
        self.audit.append(self.actor, "canary-start", self.model, candidate,
                          {"canary": state.id, "stable": stable, "plan": state.plan.to_dict(), "override": state.override,
                           "reason": reason})
        self._set_canary_alias(candidate)
        self._changed(state)
        return state

    def _check_split(self, stable: str, *, served_only: bool) -> None:
        try:
            split = self.traffic.get_split(self.model)
        except BackendError:
            if served_only:
                return  # not served yet: ensure_serving starts it with stable at 100%
            raise
        if split.weights and not _same_split(split.weights, {stable: 100}):
            raise ConflictError(f"{self.model}: live split is {split.weights}, expected {stable} at 100%; "
                                "roll back or finish the other rollout first")
        if not served_only and not split.weights:
            raise ConflictError(f"{self.model}: the router has no split; expected {stable} at 100%")

    def _probe_metrics(self, stable: str) -> None:
        """One health() call: the canary starts only if its judge can read the metrics backend."""
        now = self.clock()
        try:
            self.metrics.health(self.model, stable, now - 60.0, now)
        except BadInputError:
            raise
        except Exception as exc:  # noqa: BLE001  (any failure to read means: do not start)
            raise BackendError(f"{self.model}: metrics backend unreachable, canary not started (nothing went live): "
                               f"{type(exc).__name__}: {exc}") from None

    def resume(self, state: CanaryState) -> CanaryState:
        """After a crash: finish a pending intent, or roll back a split the state did not record."""
        ensure_served(self.ws, self.model, [state.stable, state.candidate], traffic=self.traffic, registry=self.registry)
        state = dataclasses.replace(state, controller_pid=os.getpid())
        state = self._save(canary.log_event(state, now_iso(), "resume", f"controller {os.getpid()} resumed", self.actor))
        lease.beat(self.store.db_path, state.id, os.getpid())
        self.audit.append(self.actor, "canary-resume", self.model, state.candidate,
                          {"canary": state.id, "pending": state.pending, "weight": state.weight})
        if state.pending:
            p = state.pending
            decision = Decision(p["action"], int(p["weight"]), p.get("reason", "") + " (finished after restart)",
                                int(p.get("step", state.step)))
            return self._carry_out(state, decision, p.get("actor", self.actor), intent_saved=True)
        live = self.traffic.get_split(self.model).weights
        if not _same_split(live, canary.split_for(state, state.weight)):
            return self._carry_out(state, Decision(canary.ROLLBACK, 0, f"live split {live} was not recorded by the "
                                   f"canary state ({state.weight}% canary): rolled back after restart", state.step),
                                   self.actor)
        return state

    # -- running -----------------------------------------------------------------------------
    def run(self, state: CanaryState, *, max_seconds: float | None = None) -> CanaryState:
        """Analyse and step until the canary ends (or max_seconds pass). Fails closed: an error
        that escapes a step rolls the canary back and records why; it never leaves it live
        without a controller."""
        deadline = None if max_seconds is None else self.clock() + max_seconds
        conflicts = 0
        while True:
            seen_revision = state.revision
            try:
                state, done = self._run_once(state, deadline)
                conflicts = 0
            except ConflictError as exc:
                conflicts += 1  # a person acted meanwhile: read again, but a conflict that never clears is an error
                if conflicts < MAX_CONFLICTS:
                    continue
                state = self._fail_closed(state, exc)
                self._deliver_alerts(changed=True)
                return state
            except Exception as exc:  # noqa: BLE001
                state = self._fail_closed(state, exc)
                self._deliver_alerts(changed=True)
                return state
            self._deliver_alerts(changed=done or state.revision != seen_revision)
            if done:
                return state

    _alerts_retry_at = 0.0  # after a failed delivery the loop retries no more often than ALERTS_RETRY_S

    def _deliver_alerts(self, *, changed: bool) -> None:
        """Alerts out after a transition committed (never inside one); a receiver that is down is
        retried from this loop, and never stops it."""
        config = getattr(self.ws, "config", None)
        if not isinstance(config, dict) or not isinstance(config.get("alerts"), dict):
            return
        if not changed and (not self._alerts_retry_at or time.monotonic() < self._alerts_retry_at):
            return

        results = after_write(self.ws, actor="controller")
        failed = any(not r.ok for r in results)
        self._alerts_retry_at = time.monotonic() + ALERTS_RETRY_S if failed else 0.0

    def _run_once(self, state: CanaryState, deadline: float | None) -> tuple[CanaryState, bool]:
        state = self.store.get(state.id)
        if not state.active:
            return state, True
        lease.beat(self.store.db_path, state.id, os.getpid())  # the lease: someone is judging this canary
        if state.pending:
            owner = int(state.pending.get("pid", 0))
            if owner == os.getpid() or not _pid_alive(owner, controller=False):
                # its owner died mid-transition, or it is ours and its effect failed: finish it
                # (resume rolls back a split the state did not record) instead of waiting forever
                return self.resume(state), False
            self.sleep(0.05)  # someone else is mid-transition: let them finish
            return state, False
        if deadline is not None and self.clock() >= deadline:
            return state, True
        state = self.tick(state)
        if not state.active:
            return state, True
        last_end = state.sequential.get("last_end", state.started_at)
        # never longer than a heartbeat: a long interval must not let the lease lapse
        self.sleep(max(0.02, min(state.plan.interval_s, lease.HEARTBEAT_S, last_end + state.plan.interval_s - self.clock())))
        return state, False

    def _fail_closed(self, state: CanaryState, exc: Exception) -> CanaryState:
        """Stable to 100% and the reason recorded (state and audit); re-raise only if even that fails."""
        reason = f"controller error, failing closed: {type(exc).__name__}: {exc}"
        try:
            latest = self.store.get(state.id)
            if not latest.active:
                return latest
            return self._carry_out(latest, Decision(canary.ROLLBACK, 0, reason, latest.step), "controller")
        except Exception as inner:  # noqa: BLE001
            raise inner from exc

    def tick(self, state: CanaryState) -> CanaryState:
        now = self.clock()
        analysis = None
        last_end = state.sequential.get("last_end", state.started_at)
        if state.step >= 0 and now - last_end >= state.plan.interval_s:
            try:
                stable_w = self.metrics.health(self.model, state.stable, last_end, now)
                canary_w = self.metrics.health(self.model, state.candidate, last_end, now)
            except Exception as exc:  # noqa: BLE001  (an unreadable window is a failed check, never a pass)
                analysis = canary.failed_window(state, now, "metrics", f"metrics backend: {type(exc).__name__}: {exc}")
            else:
                analysis = canary.analyze(state, stable_w, canary_w, now)
            state = self._save(canary.record_analysis(state, analysis, now_iso()))
            self._changed(state)
        decision = canary.decide(state, now, analysis)
        if decision.action == canary.HOLD:
            return state
        if decision.action == canary.ROLLBACK:
            return self._carry_out(state, decision, "controller", analysis=analysis)
        return self._carry_out(state, decision, "controller")

    # -- a person's command ------------------------------------------------------------------
    def act(self, name: str, *, reason: str = "", wait_s: float = 5.0) -> CanaryState:
        """pause | resume | next | promote | abort | rollback, CAS against the stored state."""
        if name == "rollback":  # a person's rollback follows [policy.production].rollback (default anyone)

            # read leniently: a typo in [policy] must not keep on-call from rolling a canary back
            rollback_allowed(rollback_policy(self.ws)[0], self.registry, self.model, self.actor)
        deadline = time.monotonic() + wait_s
        while True:
            state = self.store.latest(self.model)
            if state is None:
                raise BadInputError(f"{self.model}: no canary")
            if state.pending and name not in ("rollback", "abort") and time.monotonic() < deadline:
                time.sleep(0.02)  # the controller is mid-transition: it takes milliseconds
                continue
            decision = canary.command(state, name, self.clock())
            if reason:
                decision.reason = f"{decision.reason}: {reason}"
            try:
                return self._carry_out(state, decision, self.actor, human=True)
            except ConflictError:
                if time.monotonic() >= deadline:
                    self._clear_own_pending(state.id)
                    raise
                continue
            except BaseException:
                # a refused command must not leave its intent behind: another controller would wait
                # on it ("mid-transition") and its replay would roll a healthy canary back
                self._clear_own_pending(state.id)
                raise

    def _clear_own_pending(self, canary_id: str) -> None:
        """Drop this process's pending intent when its effect never reached traffic (the live split
        is still the recorded one); a split that did move keeps it, for resume to settle."""
        try:
            latest = self.store.get(canary_id)
            if not latest.pending or int(latest.pending.get("pid", 0)) != os.getpid():
                return
            live = self.traffic.get_split(self.model).weights
            if _same_split(live, canary.split_for(latest, latest.weight)):
                self._save(dataclasses.replace(latest, pending=None))
        except Exception:  # noqa: BLE001  (best effort: the original error is what the caller sees)
            pass

    # -- the two-person rule at the last step -------------------------------------------------------
    def _approvals_short(self, state: CanaryState):
        """The tally when [policy.production] protects production and the candidate lacks its
        approvals; None when it may take production (or already has it)."""
        policy = workspace_policy(self.ws)
        if policy is None or self.registry.get_pointers(self.model).get(PRODUCTION) == state.candidate:
            return None

        counted = approval_tally(self.audit, policy, self.registry.get_version(self.model, state.candidate),
                                 self.registry)
        return None if counted.met else counted

    def _await_approvals(self, state: CanaryState, counted, actor: str) -> CanaryState:
        """A promote short of approvals holds at its step (never rolls back): "awaiting approvals"
        in the canary's log and one `approval.requested`, the first time only."""
        already = any(e.get("kind") == AWAITING_APPROVALS for e in state.events)
        stale = bool(state.pending and state.pending.get("action") == canary.PROMOTE)
        if already and not stale:
            return state
        if stale:  # an intent saved before the count was short (a replay): it never moved traffic
            state = dataclasses.replace(state, pending=None)
        if not already:
            state = canary.log_event(state, now_iso(), AWAITING_APPROVALS,
                                     f"awaiting approvals: policy.{counted.policy.alias}: {counted.line()}", actor)
        state = self._save(state)  # saved first: a lost compare-and-swap asks no one
        if not already:
            self.audit.append(actor, "approval.requested", self.model, state.candidate,
                              {"alias": counted.policy.alias, "trigger": "canary promote", "canary": state.id,
                               "needs": counted.missing, "required": counted.required,
                               "approved_by": counted.counted, "summary": counted.line(),
                               "excluded": [{"name": n, "why": w} for n, w in counted.excluded()]})
        self._changed(state)
        return state

    # -- the three moves -----------------------------------------------------------------------
    def _carry_out(self, state: CanaryState, decision: Decision, actor: str, *, intent_saved: bool = False,
                   analysis: canary.Analysis | None = None, human: bool = False) -> CanaryState:
        action = decision.action
        if action == canary.HOLD:
            return state
        if action == canary.PROMOTE:
            # the two-person rule before any intent is saved: short is a hold, never a rollback
            short = self._approvals_short(state)
            if short is not None:
                live = self.traffic.get_split(self.model).weights if intent_saved else None
                if human and not intent_saved:
                    raise PolicyViolation(f"{self.model} {state.candidate}: policy.{short.policy.alias}: "
                                          f"{short.line()}; production not moved")
                if live is None or _same_split(live, canary.split_for(state, state.weight)):
                    return self._await_approvals(state, short, actor)
        if action == canary.PROMOTE and not state.override and not self._still_approved(state):
            # approval withdrawn mid-canary: never put a rejected version at 100%
            decision = Decision(canary.ROLLBACK, 0, f"{state.candidate} is no longer approved", state.step)
            action = decision.action
        if action in (canary.ROLLBACK, canary.ABORT):
            # Toward stable is always safe: traffic first, then the record.
            self._retry(lambda: self.traffic.rollback(self.model, state.stable))
            _crash_point(action, "effect")
        elif canary.changes_traffic(decision):
            if not intent_saved:
                intent = {"action": action, "weight": decision.weight, "step": decision.step, "reason": decision.reason,
                          "actor": actor, "pid": os.getpid(), "at": now_iso()}
                state = self._save(dataclasses.replace(state, pending=intent))
                _crash_point(action, "intent")
            self._effect(state, decision, actor)
            _crash_point(action, "effect")
        committed = canary.apply(state, decision, self.clock(), now_iso(), actor)
        details: dict[str, Any] = {"canary": committed.id, "weight": committed.weight, "stable": state.stable,
                                   "reason": decision.reason, "status": committed.status}
        if analysis is not None:
            details["analysis"] = {"checks": [c.to_dict() for c in analysis.checks],
                                   "sequential": [r.to_dict() for r in analysis.sequential_results],
                                   "canary": analysis.canary, "stable": analysis.stable}
        committed = self._save_over_rollback(committed) if action in (canary.ROLLBACK, canary.ABORT) else self._save(committed)
        # audited once committed: a step that lost its compare-and-swap leaves no event behind
        self.audit.append(actor, f"canary-{action}", self.model, state.candidate, details)
        if not committed.active:
            self._set_canary_alias(None)
        self._changed(committed)
        return committed

    def _still_approved(self, state: CanaryState) -> bool:
        try:
            return self.registry.get_version(self.model, state.candidate).approval.status == "approved"
        except Exception:  # noqa: BLE001  (registry unreachable: do not promote blind)
            return False

    def _effect(self, state: CanaryState, decision: Decision, actor: str) -> None:
        weights = canary.split_for(state, decision.weight)

        seen = canary.split_for(state, state.weight)
        policy = None
        if decision.action == canary.PROMOTE:  # a protected production: the approvals before any traffic moves

            policy = workspace_policy(self.ws)
            if policy is not None:
                mv = self.registry.get_version(self.model, state.candidate)
                promotion_guard(self.registry, self.audit, policy, mv, actor)(None, early=True)

        def set_split():
            live = self.traffic.get_split(self.model)
            if _same_split(live.weights, weights):
                return  # already done (a resumed transition)
            if not _same_split(live.weights, seen):
                # someone moved traffic since this decision (a rollback, say): never overwrite it
                raise ConflictError(f"{self.model}: live split {live.weights} is not the canary's {seen}",
                                    expected=str(seen), actual=str(live.weights))
            self.traffic.set_split(self.model, weights, expected_revision=live.revision)

        self._retry(set_split)
        _crash_point(decision.action, "split")
        if decision.action == canary.PROMOTE:
            if self.registry.get_pointers(self.model).get(PRODUCTION) == state.candidate:
                return  # done before a crash (promote:effect): moving it "again" from stable would conflict
            promote(self.registry, self.audit, self.model, state.candidate, actor=actor,
                    reason=f"canary {state.id} promoted: {decision.reason}", override=state.override,
                    expected=state.stable, expected_given=True, policy=policy, canary_id=state.id)  # production must still be what the canary ran against

    def _save(self, state: CanaryState) -> CanaryState:
        return self.store.save(state)

    def _save_over_rollback(self, committed: CanaryState) -> CanaryState:
        """A rollback's record must land even if the state moved meanwhile (traffic already moved)."""
        for _ in range(20):
            try:
                return self.store.save(committed)
            except ConflictError:
                latest = self.store.get(committed.id)
                if not latest.active:
                    return latest
                committed = dataclasses.replace(committed, revision=latest.revision, analyses=latest.analyses,
                                                sequential=latest.sequential)
        raise ConflictError(f"{self.model}: could not record the rollback")

    def _retry(self, fn: Callable[[], Any], attempts: int = 5, first_delay: float = 0.05) -> Any:
        delay = first_delay
        for attempt in range(attempts):
            try:
                return fn()
            except ConflictError:
                if attempt == attempts - 1:
                    raise
            except (BackendError, OSError):
                if attempt == attempts - 1:
                    raise
            self.sleep(delay)
            delay *= 2

    def _set_canary_alias(self, version: str | None) -> None:
        """The registry's `canary` alias follows the live canary (best effort, audited)."""
        try:
            set_alias(self.registry, self.audit, self.model, CANARY, version, actor=self.actor,
                      reason="canary started" if version else "canary ended")
        except (ConflictError, BadInputError, BackendError):
            pass

    def _changed(self, state: CanaryState) -> None:
        if self.on_change is not None:
            self.on_change(state)


UNJUDGED = "UNJUDGED"
UNJUDGED_EVENT = "canary.unjudged"
ORPHAN_POLICIES = ("resume", "rollback")  # [canary] orphaned: what `mrc alerts run` does with an unjudged canary


def unjudged(ws, state: CanaryState | None, now: float | None = None) -> str | None:
    """Why this live canary has nobody judging it (its controller is gone or silent), else None."""
    if state is None or not state.active:
        return None
    return lease.unjudged_reason(state.active, state.controller_pid, _pid_alive(state.controller_pid),
                                 lease.read_lease(str(ws.db_path), state.id), time.time() if now is None else now)


def orphan_policy(ws) -> str:
    """[canary] orphaned = "resume" (default: a new controller picks it up where it stopped) or
    "rollback" (stable back to 100 %)."""
    section = ws.section("canary") if hasattr(ws, "section") else {}
    value = (section or {}).get("orphaned", "resume")
    if value not in ORPHAN_POLICIES:
        raise BadInputError(f"{getattr(ws, 'config_path', 'mrc.toml')}: [canary] orphaned = {value!r}: "
                            f"one of {', '.join(ORPHAN_POLICIES)}")
    return value


def alert_unjudged(ws, *, actor: str) -> list[tuple[CanaryState, str]]:
    """Every live canary nobody judges, alerted once per controller that left it
    (`canary.unjudged`: an audit event the alert path turns into CanaryUnjudged)."""
    found = []
    audit = None
    for model, state in current_states(ws).items():
        why = unjudged(ws, state)
        if why is None:
            continue
        audit = audit or ws.audit()
        seen = any(e.action == UNJUDGED_EVENT and e.details.get("canary") == state.id
                   and e.details.get("controller_pid") == state.controller_pid for e in audit.events(model=model))
        if not seen:
            audit.append(actor, UNJUDGED_EVENT, model, state.candidate,
                         {"canary": state.id, "controller_pid": state.controller_pid, "reason": why,
                          "weight": state.weight, "stable": state.stable, "pending": state.pending})
        found.append((state, why))
    return found


def settle_unjudged(ws, found: list[tuple[CanaryState, str]], *, actor: str,
                    launch: Callable[..., Any] | None = None) -> list[dict[str, Any]]:
    """Resume each (a new controller picks it up where the last one stopped, finishing a pending
    step: after a kill at promote:split the pointer follows the router), or roll it back under
    [canary] orphaned = "rollback". A controller that is alive but silent is alerted only: a
    second controller must not judge beside it. What was done, one dict per canary."""
    done = []
    for state, why in found:
        record: dict[str, Any] = {"model": state.model, "canary": state.id, "candidate": state.candidate, "why": why}
        latest = current_state(ws, state.model)
        if latest is None or latest.id != state.id or unjudged(ws, latest) is None:
            record["action"] = "judged again meanwhile"
        elif _pid_alive(latest.controller_pid):
            record["action"] = "alerted (its controller is alive but silent)"
        elif orphan_policy(ws) == "rollback":
            ended = Controller(ws, state.model, actor=actor).act("rollback", reason=f"unjudged: {why}")
            record["action"] = f"rolled back ({ended.status}): [canary] orphaned = rollback"
        else:
            _, pid = (launch or launch_controller)(ws, state.model, state.candidate, actor=actor)
            record["action"] = f"resumed by controller pid {pid}"
        done.append(record)
    return done


def tend_unjudged(ws, *, actor: str, launch: Callable[..., Any] | None = None) -> list[dict[str, Any]]:
    """alert_unjudged, then settle_unjudged (a loop that delivers alerts delivers between the two)."""
    return settle_unjudged(ws, alert_unjudged(ws, actor=actor), actor=actor, launch=launch)


def rollback_live_canary(ws, model: str, *, actor: str, reason: str = "") -> CanaryState | None:
    """The fast path behind `R` and `mrc rollback`: if a canary is live, stable to 100% now."""
    state = current_state(ws, model)
    if state is None or not state.active:
        return None
    return Controller(ws, model, actor=actor).act("rollback", reason=reason)


def launch_controller(ws, model: str, candidate: str, *, actor: str, plan: str = "5,25,50,100", reason: str = "",
                      override: bool = False, wait_s: float = 120.0, poll: Callable[[float], None] = time.sleep,
                      extra: list[str] | None = None) -> tuple[CanaryState, int]:
    """Start a canary the way `mrc canary start` does, from a screen: that very command, as a
    detached process (the canary keeps its controller when the console closes). Returns the live
    state and the controller's pid once it is recorded; raises what the command reported if it
    exited first (bad input, conflict, an unreachable metrics backend …)."""
    import subprocess
    import sys

    check_name(model, "model")
    check_name(candidate, "version")
    root = Path(ws.root)
    logs = root / "runs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"canary-{model}-{candidate}.log"
    argv = [sys.executable, "-m", "console.cli", "canary", "start", model, candidate, "--plan", plan,
            "--workspace", str(root), "--actor", actor, *(extra or [])]
    if override:
        argv += ["--override"]
    if reason:
        argv += ["--reason", reason]
    repo = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    before = current_state(ws, model)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, cwd=repo, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        state = current_state(ws, model)
        if state is not None and state.candidate == candidate and state.controller_pid == proc.pid and \
                (before is None or state.id != before.id or state.revision != before.revision):
            return state, proc.pid
        code = proc.poll()
        if code is not None:
            lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.startswith("mrc:")]
            message = lines[-1].split(": ", 2)[-1] if lines else f"`mrc canary start` exited {code} (log: {log_path})"
            if code == 2:
                raise BadInputError(message)
            if code == 3:
                raise ConflictError(message)
            raise BackendError(message)
        poll(0.1)
    proc.kill()
    raise BackendError(f"{model}: the canary controller did not record a state within {wait_s:g} s (log: {log_path})")
