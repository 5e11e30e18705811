"""Which tables and keys mrc.toml may hold: an unknown one is refused with one line naming the
table and the key, so a typo (`[trafic]`, `shadow_log_keeps`) is never silently ignored.

Pure: a dict in, a BadInputError out. Tables that check their own keys where they are parsed
([policy.*], [alerts], [monitor], Prometheus's [metrics]) are only named here; a role table whose
backend is not built in (an `mrc.backends` entry point) is the backend's to check.
"""

from __future__ import annotations

from typing import Any

from backends.base import BadInputError

ROLES = ("registry", "training", "traffic", "metrics")

# top-level table -> its keys, or None where the table checks its own keys where it is parsed
TABLES: dict[str, frozenset[str] | None] = {
    "registry": None, "training": None, "traffic": None, "metrics": None,  # by backend: ROLE_KEYS
    "workspace": frozenset({"lock_timeout_s"}),
    "data": frozenset({"endpoint_url", "region", "profile", "reference"}),
    "audit": frozenset({"endpoint_url"}),
    "console": frozenset({"keys"}),
    "canary": frozenset({"orphaned"}),  # console/rollout/controller.py orphan_policy
    "models": None,  # a table of [models.NAME] tables: MODEL_KEYS
    "policy": None,  # console/release/policy.py parse_policies
    "alerts": None,  # console/notify/alerts.py parse_config
    "monitor": None,  # console/monitor: its settings()
}

MODEL_KEYS = frozenset({"train_data", "test_data", "golden_data", "reference_data", "label", "gate_policy", "format",
                        "task", "features", "output", "trust_pickle", "watch_params"})

_K8S_CLIENT = {"namespace", "context", "kubeconfig"}
# (role, built-in backend) -> its keys; `backend` is every role's. Missing: the backend checks them itself
ROLE_KEYS: dict[tuple[str, str], frozenset[str]] = {
    ("registry", "local"): frozenset(),
    ("training", "local"): frozenset(),
    ("traffic", "local"): frozenset({"shadow_log_max_bytes", "shadow_log_keep"}),
    ("metrics", "local"): frozenset(),
    ("registry", "mlflow"): frozenset({"tracking_uri", "production_alias", "candidate_alias", "retries", "backoff",
                                       "timeout_s"}),
    ("registry", "s3"): frozenset({"bucket", "prefix", "endpoint_url", "region", "profile", "retries", "retry_base_s",
                                   "timeout_s"}),
    ("traffic", "k8s"): frozenset(_K8S_CLIENT | {"mode", "service", "storage_uri", "retries"}),
    ("training", "k8s"): frozenset(_K8S_CLIENT | {
        "image", "gpus", "gpu_resource", "node_selector", "tolerations", "backoff_limit", "active_deadline_s",
        "ttl_after_finished_s", "data_claim", "data_mount", "cpu", "memory", "service_account", "poll_s", "store",
        "start_timeout_s", "s3_bucket", "s3_prefix", "s3_endpoint_url", "s3_pod_endpoint_url", "s3_region",
        "s3_secret"}),
}

# keys a backend refuses with its own, better line (a secret does not belong in mrc.toml)
SECRET_HINTS = ("token", "password", "secret", "access_key", "api_key")


def _close(word: str, known: list[str]) -> str:
    import difflib

    near = difflib.get_close_matches(word, known, n=1, cutoff=0.75)
    return f"; did you mean {near[0]!r}?" if near else ""


def _refuse(where: Any, table: str, key: str, known: frozenset[str] | set[str] | tuple[str, ...]) -> None:
    names = sorted(known)
    listed = ", ".join(names) if names else "none besides backend"
    raise BadInputError(f"{where}: [{table}] {key}: unknown key{_close(key, names)} (known: {listed})")


def check_known_keys(config: dict[str, Any], where: Any = "mrc.toml") -> None:
    """Refuse a table or key mrc does not read: one line naming mrc.toml, the table and the key."""
    for table in config:
        if table not in TABLES:
            names = sorted(TABLES)
            raise BadInputError(f"{where}: [{table}]: unknown table{_close(table, names)} (known: {', '.join(names)})")
    for table, keys in TABLES.items():
        section = config.get(table)
        if not isinstance(section, dict):
            continue  # absent, or a wrong type the table's own parser names
        if table in ROLES:
            backend = section.get("backend", "local")
            known = ROLE_KEYS.get((table, backend)) if isinstance(backend, str) else None
            if known is None:
                continue
            for key in section:
                if key != "backend" and key not in known and not any(h in key.lower() for h in SECRET_HINTS):
                    _refuse(where, table, key, {"backend", *known})
        elif table == "models":
            for model, options in section.items():
                if not isinstance(options, dict):
                    continue
                for key in options:
                    if key not in MODEL_KEYS:
                        _refuse(where, f"models.{model}", key, MODEL_KEYS)
        elif keys is not None:
            for key in section:
                if key not in keys:
                    _refuse(where, table, key, keys)
