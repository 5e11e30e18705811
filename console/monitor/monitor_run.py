"""`mrc monitor`: one round with its I/O. Read what the source holds since the saved cursor, fold
it into per-minute panes, join labels by id, judge the windows, and (in `mrc monitor run`) turn
tier changes into audit events, which the alert path delivers and the actions act on.

State lives in monitor/MODEL/state.db (SQLite, stdlib):
  meta(key, value)                  the source cursor, the profile, the prediction baselines
  panes(version, minute, data)      one int64 vector per pane (console/monitor/panes.py)
  preds(id, version, minute, p, label, labelled_at)   captured predictions, for the label join
  pending(id, label, t)             labels that came before their prediction (or never will)
Each batch is folded, and its cursor saved, in one transaction: a crash never counts a record
twice, and a restart resumes where the last round stopped.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import PRODUCTION, BadInputError, FieldMapping, check_name
from console.monitor.decide import (MonitorConfig, WindowReport, detector, group_units, judge_window, order_by_tier,
                                    pane_log_evalues)
from console.monitor.panes import EMPTY, PANE_S, Layout, combine, distinct_rows, fold, unite
from console.monitor.profile import PRED_WIDTH, Profile, build_profile
from console.monitor.tier_file import write_tier

WINDOWS = {"15m": 900, "1h": 3600, "24h": 86400, "7d": 604800}
DETECTOR_SPAN_PANES = 24 * 60  # the detector replays at most the last day of panes each round
PRED_BASELINE_UNITS = 500  # the prediction's reference: a version's first units (see baseline())
JOIN_WINDOW_S = 14 * 86400.0  # a label waits this long for its prediction, a prediction for its label
MAX_BATCHES = 50  # per round: a backlog is folded over several rounds, each bounded

CONFIG_KEYS = {"sample", "segment_max_bytes", "segment_max_age_s", "keep_bytes", "retain_s", "source", "features",
               "prediction", "id", "label", "key", "time", "version", "warning", "critical", "false_alarms_per_month",
               "min_units", "window", "auto_rollback", "interval", "options", "reference_data"}


@dataclass
class Settings:
    cfg: MonitorConfig
    mapping: FieldMapping
    source: str = "router"
    options: dict[str, Any] = field(default_factory=dict)
    interval: float = 60.0


def settings(ws) -> Settings:
    """mrc.toml [monitor], checked: one line naming the field."""
    section = ws.config.get("monitor")
    where = f"{ws.config_path}: monitor"
    if not isinstance(section, dict):
        raise BadInputError(f"{ws.config_path}: no [monitor] table (add one to watch production's traffic)")
    unknown = sorted(set(section) - CONFIG_KEYS)
    if unknown:
        raise BadInputError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(CONFIG_KEYS))})")
    cfg = MonitorConfig()
    for key in ("warning", "critical", "false_alarms_per_month"):
        if key in section:
            value = section[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise BadInputError(f"{where}.{key} = {value!r}: must be a number > 0")
            setattr(cfg, key, float(value))
    if cfg.warning > cfg.critical:
        raise BadInputError(f"{where}.warning ({cfg.warning}) must not exceed critical ({cfg.critical})")
    if "min_units" in section:
        if isinstance(section["min_units"], bool) or not isinstance(section["min_units"], int) or section["min_units"] < 1:
            raise BadInputError(f"{where}.min_units = {section['min_units']!r}: must be a whole number >= 1")
        cfg.min_units = section["min_units"]
    if "window" in section:
        if section["window"] not in WINDOWS:
            raise BadInputError(f"{where}.window = {section['window']!r}: one of {', '.join(WINDOWS)}")
        cfg.window_s = WINDOWS[section["window"]]
    if "auto_rollback" in section:
        if not isinstance(section["auto_rollback"], bool):
            raise BadInputError(f"{where}.auto_rollback: must be true or false")
        cfg.auto_rollback = section["auto_rollback"]
    mapping = FieldMapping()
    for key in ("prediction", "id", "label", "key", "time", "version"):
        if key in section:
            if not isinstance(section[key], str) or not section[key]:
                raise BadInputError(f"{where}.{key}: must be a field path (a string like \"x\" or \"request.id\")")
            setattr(mapping, key, section[key])
    if "features" in section:
        value = section["features"]
        if not (isinstance(value, str) and value) and not (
                isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)):
            raise BadInputError(f"{where}.features: a field path to an object of features, or a list of paths")
        mapping.features = value
    source = section.get("source", "router")
    if not isinstance(source, str) or not source:
        raise BadInputError(f"{where}.source: a source name (router, or an `mrc.sources` entry point)")
    options = section.get("options", {})
    if not isinstance(options, dict):
        raise BadInputError(f"{where}.options: must be a table")
    interval = section.get("interval", 60.0)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
        raise BadInputError(f"{where}.interval = {interval!r}: must be seconds > 0")
    return Settings(cfg, mapping, source, {**options, "reference_data": section.get("reference_data")}, float(interval))


# -- state -----------------------------------------------------------------------------------------


class State:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript("""
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE IF NOT EXISTS panes (version TEXT, minute INTEGER, data BLOB, PRIMARY KEY (version, minute));
            -- the same panes summed per hour: a 24 h window reads 24 of these and two partial hours' minutes
            CREATE TABLE IF NOT EXISTS hours (version TEXT, hour INTEGER, data BLOB, PRIMARY KEY (version, hour));
            CREATE TABLE IF NOT EXISTS preds (id TEXT PRIMARY KEY, version TEXT, minute INTEGER, p REAL,
                                              label INTEGER, labelled_at REAL);
            CREATE INDEX IF NOT EXISTS preds_window ON preds (version, minute);
            CREATE TABLE IF NOT EXISTS pending (id TEXT PRIMARY KEY, label INTEGER, t REAL);
        """)

    def get(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def put(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def close(self) -> None:
        self.db.close()


def state_path(ws, model: str) -> Path:
    return Path(ws.root) / "monitor" / check_name(model, "model") / "state.db"


# -- the reference ---------------------------------------------------------------------------------


def reference_profile(ws, model: str, state: State, options: dict[str, Any]) -> tuple[Profile, str | None]:
    """Production's reference profile (its training data, else [monitor] / [models.X]
    reference_data), built once per (production version, data) and kept in the state; a new
    reference starts the panes afresh (their bins were the old reference's)."""
    from console.monitor.watch_run import production_of, reference_data

    production, mv = production_of(ws, model)
    ref = options.get("reference_data") or reference_data(ws, model, mv)
    ident = {"production": production, "data": ref}
    saved = state.get("profile")
    if saved and saved.get("ident") == ident:
        return Profile.from_dict(saved["profile"]), production
    table = ws.load_table(ref, model=model, version=production)
    label = ws.model_config(model).get("label")
    task = str(ws.model_config(model).get("task") or "binary")
    profile = build_profile(dict(table.data), label=label, task=task, source=ref)
    state.db.execute("BEGIN IMMEDIATE")
    try:
        if saved:  # a new reference: the old panes were binned on other edges
            state.db.execute("DELETE FROM panes")
            state.db.execute("DELETE FROM hours")
            state.db.execute("DELETE FROM meta WHERE key LIKE 'pred_ref:%'")
        state.put("profile", {"ident": ident, "profile": profile.to_dict()})
        state.db.execute("COMMIT")
    except BaseException:
        state.db.execute("ROLLBACK")
        raise
    return profile, production


# -- folding ---------------------------------------------------------------------------------------


@dataclass
class FoldResult:
    records: int = 0
    labels: int = 0
    bad: dict[str, int] = field(default_factory=dict)


def open_source(ws, model: str, s: Settings):
    from console.plugins import monitor_source

    source = monitor_source(s.source, f"{ws.config_path}: monitor.source")
    source.open(str(ws.root), model, s.mapping, s.options)
    return source


def _label_value(label: Any) -> int | None:
    if isinstance(label, bool):
        return int(label)
    if isinstance(label, (int, float)) and math.isfinite(label):
        return int(label >= 0.5) if not float(label).is_integer() else int(label)
    if isinstance(label, str) and label.strip() in ("0", "1", "true", "false"):
        return int(label.strip() in ("1", "true"))
    return None


def fold_source(state: State, source, profile: Profile, *, max_batches: int = MAX_BATCHES) -> FoldResult:
    """Everything new in the source, folded; each batch in one transaction with its cursor."""
    result = FoldResult()
    bad_total = state.get("bad", {})
    for _ in range(max_batches):
        cursor = state.get("cursor")
        batch = source.read(cursor)
        if batch.rows == 0 and not batch.labels and batch.cursor == cursor:
            break
        missing = {k: n for k, n in batch.bad.items() if k.endswith(": missing")}
        if batch.rows == 0 and not batch.labels and missing:  # no record has a field the mapping names
            key, n = max(missing.items(), key=lambda kv: kv[1])
            raise BadInputError(f"{key} in {n} record(s), none usable: check the field mapping under [monitor]")
        panes = fold(profile, batch.t, batch.versions, batch.keys, batch.ids, batch.features, batch.prediction)
        db = state.db
        db.execute("BEGIN IMMEDIATE")
        if state.get("cursor") != cursor:  # another monitor (the daemon, a screen) folded this batch first
            db.execute("ROLLBACK")
            continue
        try:
            _add_panes(db, panes, Layout(len(profile.features)))
            minutes = np.floor(batch.t / PANE_S).astype(np.int64) if batch.rows else []
            rows = [(str(i), None if v is None else str(v), int(m), None if not math.isfinite(p) else float(p))
                    for i, v, m, p in zip(batch.ids, batch.versions, minutes, batch.prediction)]
            db.executemany("INSERT OR IGNORE INTO preds (id, version, minute, p) VALUES (?, ?, ?, ?)", rows)
            if rows:  # labels that came first
                db.execute("""UPDATE preds SET label = (SELECT label FROM pending WHERE pending.id = preds.id),
                                  labelled_at = (SELECT t FROM pending WHERE pending.id = preds.id)
                              WHERE id IN (SELECT id FROM pending)""")
                db.execute("DELETE FROM pending WHERE id IN (SELECT id FROM preds)")
            for rid, label, t in batch.labels:
                value = _label_value(label)
                if value is None:
                    key = f"{source.name}: label: not 0/1 (id {str(rid)[:40]})"
                    batch.bad[key] = batch.bad.get(key, 0) + 1
                    continue
                cur = db.execute("UPDATE preds SET label = ?, labelled_at = ? WHERE id = ?", (value, t, str(rid)))
                if cur.rowcount == 0:
                    db.execute("INSERT OR REPLACE INTO pending VALUES (?, ?, ?)", (str(rid), value, t))
                result.labels += 1
            for key, n in batch.bad.items():
                bad_total[key] = bad_total.get(key, 0) + n
                result.bad[key] = result.bad.get(key, 0) + n
            state.put("bad", bad_total)
            state.put("cursor", batch.cursor)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        result.records += batch.rows
    return result


PANES_PER_HOUR = 3600 // PANE_S


def _add_panes(db, panes: dict[tuple[str, int], np.ndarray], layout: Layout) -> None:
    hours: dict[tuple[str, int], np.ndarray] = {}
    for (version, minute), vector in panes.items():
        key = (version, minute // PANES_PER_HOUR)
        hours[key] = combine(hours[key], vector, layout) if key in hours else vector
        _upsert(db, "panes", "minute", version, minute, vector, layout)
    for (version, hour), vector in hours.items():
        _upsert(db, "hours", "hour", version, hour, vector, layout)


def _upsert(db, table: str, column: str, version: str, at: int, vector: np.ndarray, layout: Layout) -> None:
    row = db.execute(f"SELECT data FROM {table} WHERE version = ? AND {column} = ?", (version, at)).fetchone()
    if row is not None:
        old = np.frombuffer(row[0], dtype=np.int64)
        if len(old) == len(vector):
            vector = combine(old, vector, layout)
    db.execute(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?)", (version, at, vector.astype(np.int64).tobytes()))


def prune(state: State, now: float) -> dict[str, int]:
    """Predictions and pending labels past the join window; panes past 7 days. Labels still
    pending at the end are counted as 'label for unknown id'."""
    db = state.db
    cutoff = int((now - JOIN_WINDOW_S) // PANE_S)
    db.execute("BEGIN IMMEDIATE")
    try:
        stale = db.execute("SELECT COUNT(*) FROM pending WHERE t < ?", (now - JOIN_WINDOW_S,)).fetchone()[0]
        if stale:
            bad = state.get("bad", {})
            bad["labels: id: label for an unknown id (no prediction within the join window)"] = \
                bad.get("labels: id: label for an unknown id (no prediction within the join window)", 0) + stale
            state.put("bad", bad)
        db.execute("DELETE FROM pending WHERE t < ?", (now - JOIN_WINDOW_S,))
        db.execute("DELETE FROM preds WHERE minute < ?", (cutoff,))
        db.execute("DELETE FROM panes WHERE minute < ?", (int((now - WINDOWS["7d"]) // PANE_S),))
        db.execute("DELETE FROM hours WHERE hour < ?", (int((now - WINDOWS["7d"] - 3600) // 3600),))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return {"stale_labels": stale}


# -- windows ---------------------------------------------------------------------------------------


def pane_matrix(state: State, version: str, first: int, last: int, layout: Layout) -> np.ndarray:
    """Dense (last - first, size) panes of one version; a minute without traffic is zeros."""
    out = np.zeros((max(0, last - first), layout.size), dtype=np.int64)
    out[:, layout.counts:] = EMPTY  # a minute without traffic has an empty sketch
    for minute, data in state.db.execute("SELECT minute, data FROM panes WHERE version = ? AND minute >= ? "
                                         "AND minute < ?", (version, first, last)):
        vector = np.frombuffer(data, dtype=np.int64)
        if len(vector) == layout.size:
            out[minute - first] = vector
    return out


def baseline(state: State, version: str, layout: Layout) -> np.ndarray | None:
    """The prediction's reference for a version: the unit counts of its first panes, up to
    PRED_BASELINE_UNITS units, pinned once reached (the version's first traffic is what it was
    released on). None until then."""
    saved = state.get(f"pred_ref:{version}")
    if saved is not None:
        return np.asarray(saved, dtype=float)
    total = np.zeros(PRED_WIDTH)
    for (data,) in state.db.execute("SELECT data FROM panes WHERE version = ? ORDER BY minute", (version,)):
        vector = np.frombuffer(data, dtype=np.int64)
        if len(vector) != layout.size:
            continue
        total += layout.prediction_counts(vector)
        if total.sum() >= PRED_BASELINE_UNITS:
            state.put(f"pred_ref:{version}", total.tolist())
            return total
    return None


def labels_summary(state: State, version: str, first: int, last: int) -> dict[str, Any]:
    row = state.db.execute("""
        SELECT COUNT(*), SUM(label IS NOT NULL),
               SUM(label IS NOT NULL AND (p >= 0.5) = (label = 1)),
               SUM(label = 1 AND p >= 0.5), SUM(label = 0 AND p >= 0.5), SUM(label = 1 AND p < 0.5)
        FROM preds WHERE version = ? AND minute >= ? AND minute < ? AND p IS NOT NULL""",
                           (version, first, last)).fetchone()
    n, labelled, correct, tp, fp, fn = (int(x or 0) for x in row)
    out: dict[str, Any] = {"predictions": n, "labelled": labelled, "coverage": labelled / n if n else None,
                           "accuracy": None, "accuracy_interval": None, "error_rate": None, "precision": None,
                           "recall": None}
    out["pending"] = state.db.execute("SELECT COUNT(*) FROM pending").fetchone()[0]  # labels awaiting their id
    if labelled:
        acc = correct / labelled
        out.update(accuracy=acc, error_rate=1 - acc, accuracy_interval=list(wilson(correct, labelled)),
                   precision=tp / (tp + fp) if tp + fp else None, recall=tp / (tp + fn) if tp + fn else None)
    return out


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def advance_detector(state: State, profile: Profile, version: str, now: float, cfg: MonitorConfig,
                     layout: Layout, ref_pred: np.ndarray | None) -> dict[str, Any]:
    """The version's e-detector, advanced over the panes completed since its last round (each
    pane once: the pane still filling waits; records that arrive for a pane already judged count
    in the windows, not in the detector). Its state: {"minute", "log_r", "alarms" [minutes]}."""
    key = f"detector:{version}"
    det = state.get(key) or {"minute": None, "log_r": None, "alarms": []}
    current = int(now // PANE_S)  # the pane still filling
    start = current - DETECTOR_SPAN_PANES if det["minute"] is None else max(det["minute"] + 1,
                                                                             current - DETECTOR_SPAN_PANES)
    if start < current:
        history = max(cfg.history_panes)
        matrix = pane_matrix(state, version, start - history, current, layout)
        groups = group_units(profile, ref_pred, layout.feature_counts(matrix), layout.prediction_counts(matrix))
        log_e = pane_log_evalues(groups, cfg)[history:]
        log_r0 = -math.inf if det["log_r"] is None else det["log_r"]
        alarms, log_r = detector(log_e, cfg.alarm_threshold, log_r0)
        keep_after = current - WINDOWS["7d"] // PANE_S
        det = {"minute": current - 1, "log_r": None if log_r == -math.inf else log_r,
               "alarms": [m for m in det["alarms"] if m >= keep_after] + [start + i for i in alarms]}
        state.put(key, det)
    # the pane still filling, looked at without being kept: a likelihood ratio over a pane's
    # records is a martingale in them, so looking before the pane ends keeps the guarantee
    history = max(cfg.history_panes)
    matrix = pane_matrix(state, version, current - history, current + 1, layout)
    groups = group_units(profile, ref_pred, layout.feature_counts(matrix), layout.prediction_counts(matrix))
    log_now = float(np.logaddexp(-math.inf if det["log_r"] is None else det["log_r"], 0.0)
                    + pane_log_evalues(groups, cfg)[-1])
    alarms = det["alarms"] + ([current] if log_now >= math.log(cfg.alarm_threshold) else [])
    return {**det, "alarms": alarms, "log_r": log_now}


def judge(state: State, profile: Profile, version: str, now: float, cfg: MonitorConfig) -> tuple[WindowReport, dict]:
    layout = Layout(len(profile.features))
    last = int(now // PANE_S) + 1
    window_panes = max(1, cfg.window_s // PANE_S)
    first = last - window_panes
    ref_pred = baseline(state, version, layout)
    det = advance_detector(state, profile, version, now, cfg, layout, ref_pred)
    window = window_sum(state, version, first, last, layout)
    in_window = [m for m in det["alarms"] if m >= first]
    report = judge_window(profile, ref_pred, layout.feature_counts(window), layout.prediction_counts(window),
                          int(window[0]), int(window[1]), cfg, alarmed=bool(in_window), alarms=len(in_window),
                          log_r=-math.inf if det["log_r"] is None else det["log_r"],
                          distinct=distinct_rows(layout.sketch(window)))
    return report, labels_summary(state, version, first, last)


def window_sum(state: State, version: str, first: int, last: int, layout: Layout) -> np.ndarray:
    """One vector for the window: counts summed, sketches united."""
    lo_hour = -(-first // PANES_PER_HOUR)  # the first whole hour inside the window
    hi_hour = last // PANES_PER_HOUR  # … and the end of the last whole hour
    if hi_hour > lo_hour:
        parts = [("panes", "minute", first, lo_hour * PANES_PER_HOUR), ("hours", "hour", lo_hour, hi_hour),
                 ("panes", "minute", hi_hour * PANES_PER_HOUR, last)]
    else:
        parts = [("panes", "minute", first, last)]
    blobs = [data for table, column, lo, hi in parts for (data,) in state.db.execute(
        f"SELECT data FROM {table} WHERE version = ? AND {column} >= ? AND {column} < ?", (version, lo, hi))]
    vectors = np.frombuffer(b"".join(b for b in blobs if len(b) == 8 * layout.size), dtype=np.int64)
    vectors = vectors.reshape(-1, layout.size)
    out = np.zeros(layout.size, dtype=np.int64)
    out[layout.counts:] = EMPTY
    if len(vectors):
        out[:layout.counts] = vectors[:, :layout.counts].sum(axis=0)
        out[layout.counts:] = unite([layout.sketch(vectors)])
    return out


def sparkline(state: State, profile: Profile, version: str, now: float, hours: int = 24) -> dict[str, list[float]]:
    """Each feature's PSI per hour over the last `hours` (the screen's 24 h sparklines)."""
    from console.monitor.decide import psi

    layout = Layout(len(profile.features))
    last = int(now // PANE_S) + 1
    matrix = pane_matrix(state, version, last - hours * 60, last, layout)
    hourly = layout.feature_counts(matrix).reshape(hours, 60, len(profile.features), -1).sum(axis=1)
    out = {}
    for j, f in enumerate(profile.features):
        ref = np.asarray(f.ref)
        out[f.name] = [psi(ref, hourly[h, j]) if hourly[h, j].sum() else 0.0 for h in range(hours)]
    return out


# -- one round -------------------------------------------------------------------------------------


def window_name(seconds: int) -> str:
    return next((k for k, v in WINDOWS.items() if v == seconds), f"{seconds}s")


def detail(state: State, profile: Profile, version: str, now: float, cfg: MonitorConfig) -> dict[str, Any]:
    """What the screen draws beside the report: 24 h PSI sparklines, the prediction histogram."""
    layout = Layout(len(profile.features))
    last = int(now // PANE_S) + 1
    window = pane_matrix(state, version, last - max(1, cfg.window_s // PANE_S), last, layout)
    ref = baseline(state, version, layout)
    return {"sparklines": sparkline(state, profile, version, now),
            "prediction_histogram": {"edges": profile.pred_edges,
                                     "reference": None if ref is None else ref.tolist(),
                                     "current": layout.prediction_counts(window).sum(axis=0).tolist()}}


def monitor_once(ws, model: str, *, now: float | None = None, window: str | None = None,
                 s: Settings | None = None, state: State | None = None, with_detail: bool = False) -> dict[str, Any]:
    """Fold what is new and judge production's window: the `--json` report."""
    check_name(model, "model")
    s = s or settings(ws)
    if window is not None:
        if window not in WINDOWS:
            raise BadInputError(f"--window {window!r}: one of {', '.join(WINDOWS)}")
        s.cfg.window_s = WINDOWS[window]
    own = state is None
    state = state or State(state_path(ws, model))
    try:
        source = open_source(ws, model, s)
        profile, production = reference_profile(ws, model, state, s.options)
        folded = fold_source(state, source, profile)
        now = time.time() if now is None else now
        prune(state, now)
        versions = [production] if production else []
        canary = _live_canary(ws, model)
        if canary and canary not in versions:
            versions.append(canary)
        reports = {}
        for version in versions:
            report, labels = judge(state, profile, version, now, s.cfg)
            reports[version] = _report_dict(report, labels, s.cfg)
        main = reports.get(production) if production else None
        out = {"model": model, "production": production, "tier": main["tier"] if main else "ok",
               "window": {"name": window_name(s.cfg.window_s), "seconds": s.cfg.window_s, "end": now},
               **({k: v for k, v in main.items() if k != "tier"} if main else
                  {"features": [], "prediction": {}, "labels": {"coverage": None}}),
               "canary": ({"version": canary, **reports[canary]} if canary else None),
               "source": {"name": s.source, "read": folded.records, "labels": folded.labels,
                          "bad": state.get("bad", {}), "bad_this_round": folded.bad},
               "reference": profile.source,
               "false_alarms_per_month": s.cfg.false_alarms_per_month}
        if folded.bad:
            out["notes"] = out.get("notes", []) + [f"{n} bad record(s): {k}" for k, n in sorted(folded.bad.items())]
        if with_detail and production:
            out["detail"] = detail(state, profile, production, now, s.cfg)
        write_tier(ws, model, out)
        return out
    finally:
        if own:
            state.close()


def _report_dict(report: WindowReport, labels: dict[str, Any], cfg: MonitorConfig) -> dict[str, Any]:
    return {"tier": report.tier,
            "features": [v.to_dict() for v in order_by_tier(report.features)],
            "prediction": report.prediction.to_dict(),
            "labels": labels,
            "detector": {"alarmed": report.alarmed, "alarms": report.alarms,
                         "log_r": None if report.log_r == -math.inf else round(report.log_r, 3),
                         "threshold": cfg.alarm_threshold},
            "records": report.records, "units": report.units, "distinct_rows": round(report.distinct, 1),
            "enough": report.enough, "notes": report.notes}


def _live_canary(ws, model: str) -> str | None:
    try:
        from console.rollout.controller import current_state

        state = current_state(ws, model)
    except Exception:  # noqa: BLE001  (no canary store yet)
        return None
    return state.candidate if state is not None and state.active else None
