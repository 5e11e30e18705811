"""Synthetic registries with fixed contents and fixed times: for snapshots (every byte stable)
and for the benchmark (50 models × 200 versions in well under a second).

Rows go straight into the local registry's tables (the same schema LocalRegistry creates), and
audit events are chained with console.release.audit.event_hash so that `verify` holds.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from console.release.audit import GENESIS, event_hash
from console.workspace import Workspace

FIXED_AT = "2026-01-0{day}T0{hour}:00:00Z"


def at(i: int) -> str:
    day, hour = 1 + (i // 10) % 9, i % 10
    return FIXED_AT.format(day=day, hour=hour)


def make_workspace(root: Path, models: dict[str, list[dict]], *, pointers: dict[str, dict[str, str]],
                   moves: dict[str, list[tuple[str, str | None, str | None, str]]] | None = None,
                   audit: list[tuple[str, str, str, str, dict]] | None = None, config_extra: str = "") -> Path:
    """models: name -> [version dicts with metrics/lineage/approval]; pointers: name -> alias -> version."""
    root = Path(root)
    Workspace.init(root)
    if config_extra:
        (root / "mrc.toml").write_text((root / "mrc.toml").read_text() + config_extra)
    ws = Workspace.open(root)
    ws.registry().ensure_schema()
    ws.audit().ensure_schema()
    artifact = root / "artifacts" / "synthetic.pt"
    artifact.write_bytes(b"synthetic model bytes")
    sha = hashlib.sha256(artifact.read_bytes()).hexdigest()
    conn = sqlite3.connect(root / "mrc.db")
    try:
        conn.execute("BEGIN")
        n = 0
        for model, versions in models.items():
            conn.execute("INSERT INTO models (name, created_at, description) VALUES (?,?,'')", (model, at(0)))
            rows = []
            for v in versions:
                n += 1
                approval = v.get("approval", {})
                rows.append((model, v["version"], v.get("created_at", at(n)), artifact.as_uri(), sha, 21, "torch-mlp-v1",
                             json.dumps(v.get("metrics", {}), sort_keys=True),
                             json.dumps(v.get("lineage", {}), sort_keys=True), "",
                             approval.get("status", "pending"), approval.get("by", ""), approval.get("at", ""),
                             approval.get("reason", ""), approval.get("gate_report_sha256", ""),
                             int(bool(approval.get("override", False)))))
            conn.executemany(
                "INSERT INTO versions (model, version, created_at, artifact_uri, artifact_sha256, artifact_size,"
                " artifact_format, metrics_json, lineage_json, description, approval_status, approval_by,"
                " approval_at, approval_reason, approval_gate_sha256, approval_override)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        for model, aliases in pointers.items():
            for alias, version in aliases.items():
                conn.execute("INSERT INTO pointers (model, alias, version, revision, updated_at) VALUES (?,?,?,1,?)",
                             (model, alias, version, at(1)))
        for model, model_moves in (moves or {}).items():
            for i, (alias, from_v, to_v, reason) in enumerate(model_moves):
                conn.execute("INSERT INTO pointer_moves (model, alias, from_version, to_version, actor, at, reason)"
                             " VALUES (?,?,?,?,?,?,?)", (model, alias, from_v, to_v, "alice", at(20 + i), reason))
        prev = GENESIS
        for seq, (action, model, version, actor, details) in enumerate(audit or [], start=1):
            when = at(40 + seq)
            digest = event_hash(seq, when, actor, action, model, version, details, prev)
            conn.execute("INSERT INTO audit_events (seq, at, actor, action, model, version, details, prev_hash, hash)"
                         " VALUES (?,?,?,?,?,?,?,?,?)",
                         (seq, when, actor, action, model, version, json.dumps(details, sort_keys=True), prev, digest))
            prev = digest
        conn.execute("COMMIT")
    finally:
        conn.close()
    return root


def lineage(i: int, data: str = "breast_cancer@v2", parent: str | None = None, **params) -> dict:
    return {
        "code_commit": f"{i:040x}", "code_repo": "https://example.org/ml/breast-cancer.git",
        "data_version": data, "data_sha256": hashlib.sha256(data.encode()).hexdigest(),
        "params": params or {"hidden": 16 * i, "epochs": 40, "lr": 0.01},
        "environment": {"python": "3.11.7", "frameworks": {"torch": "2.13.0"}, "packages_digest": "sha256:" + "ab" * 20,
                        "device": "cpu"},
        "training_run": f"run-{i:03d}", "parent_version": parent,
    }


def release_workspace(root: Path, *, trained_by: str = "") -> Path:
    """Two models: breast-cancer (production 2, candidate 5 pending, 3 and 4 rejected) and churn.
    trained_by: who the lineage says trained every version (the two-person rule reads it)."""
    metrics = [
        {"auc_roc": 0.9612, "precision": 0.91, "f1": 0.90, "p99_latency_ms": 0.4},
        {"auc_roc": 0.9874, "precision": 0.95, "f1": 0.93, "p99_latency_ms": 0.4},
        {"auc_roc": 0.4006, "precision": 0.00, "f1": 0.00, "p99_latency_ms": 0.3},
        {"auc_roc": 0.6132, "precision": 0.62, "f1": 0.55, "p99_latency_ms": 0.4},
        {"auc_roc": 0.9901, "precision": 0.96, "f1": 0.94, "p99_latency_ms": 0.6},
    ]
    data = ["breast_cancer@v1", "breast_cancer@v2", "breast_cancer@v1", "breast_cancer@v3-drifted", "breast_cancer@v2"]
    parents = [None, "1", "1", "2", "2"]
    approvals = [
        {"status": "approved", "by": "alice", "at": at(2), "reason": "first model"},
        {"status": "approved", "by": "alice", "at": at(3), "reason": "better AUC on v2 data"},
        {"status": "rejected", "by": "bob", "at": at(4), "reason": "under-trained"},
        {"status": "rejected", "by": "bob", "at": at(5), "reason": "trained on drifted data v3"},
        {},
    ]
    versions = [{"version": str(i + 1), "metrics": metrics[i], "lineage": lineage(i + 1, data[i], parents[i]),
                 "approval": approvals[i]} for i in range(5)]
    if trained_by:
        for v in versions:
            v["lineage"]["trained_by"] = trained_by
    churn = [{"version": "1", "metrics": {"auc_roc": 0.81}, "lineage": lineage(7, "churn@v1"),
              "approval": {"status": "approved", "by": "carol", "at": at(6), "reason": "baseline"}}]
    return make_workspace(
        root, {"breast-cancer": versions, "churn": churn},
        pointers={"breast-cancer": {"production": "2", "candidate": "5", "archived": "1"}, "churn": {"production": "1"}},
        moves={"breast-cancer": [("production", None, "1", "initial release"),
                                 ("production", "1", "2", "scheduled retrain on data v2"),
                                 ("archived", None, "1", "superseded by 2"),
                                 ("candidate", None, "5", "retrain with a wider network")],
               "churn": [("production", None, "1", "baseline")]},
        audit=[("approve", "breast-cancer", "1", "alice", {"reason": "first model"}),
               ("promote", "breast-cancer", "1", "alice", {"reason": "initial release"}),
               ("approve", "breast-cancer", "2", "alice", {"reason": "better AUC on v2 data"}),
               ("promote", "breast-cancer", "2", "alice", {"reason": "scheduled retrain on data v2"}),
               ("reject", "breast-cancer", "4", "bob", {"reason": "trained on drifted data v3"})],
    )


def big_workspace(root: Path, models: int = 50, versions: int = 200) -> Path:
    """models × versions, every model with a production and a candidate (the benchmark's registry)."""
    data: dict[str, list[dict]] = {}
    pointers: dict[str, dict[str, str]] = {}
    moves: dict[str, list] = {}
    for m in range(models):
        name = f"model-{m:03d}"
        data[name] = [{"version": str(v + 1), "metrics": {"auc_roc": 0.8 + (v % 17) / 100},
                       "lineage": {"data_version": f"data-{m}@v{v % 7}", "params": {"hidden": v % 64}},
                       "approval": {"status": ("approved", "rejected", "pending")[v % 3]}} for v in range(versions)]
        pointers[name] = {"production": str(versions - 1), "candidate": str(versions)}
        moves[name] = [("production", str(versions - 2), str(versions - 1), "retrain")]
    return make_workspace(root, data, pointers=pointers, moves=moves)
