"""Protected aliases: `[policy.<alias>]` in mrc.toml, the two-person rule and who may roll back.

    [policy.production]
    required_approvals = 2            # distinct approvers a version needs before it takes the alias
    distinct_from_trainer = true      # the trainer's own approval does not count (default true)
    approvers = ["carol", "dave"]     # optional allow-list
    rollback = "anyone"               # or a list of who may roll back (default anyone: one key on call)
    identity = "verified"             # default: an approval counts for the identity the backend verified
                                      # (OS user, MLflow user, S3 caller); "claims": count claimed --actor
                                      # names (a team that trusts them); "require": the two must be equal

Names are compared normalised (Unicode NFKC, casefold, whitespace collapsed): `Bob`, `bob` and
`bob ` are one person. Under "verified" two claims from one identity count once, and the tally
names the approval that shares an identity ("not carol (same identity as bob: os-user)").

The version's first approval is the registry's own (status, by, at, gate digest). Further
approvers co-sign it (a row in mrc.db's `approval_signatures`, or the registry's record), bound to the artifact sha256, the
gate report digest and the first approval's `at` (its epoch) — a reject or a new approval changes
the epoch and every co-signature of the old one stops counting. The tally is pure. The store is
the registry where it keeps them (S3 objects, MLflow version tags: `add_cosignature`,
`read_cosignatures`, `revoke_cosignature`), so approvers on different machines see each other's;
else stdlib sqlite3 on the workspace database (the audit log's).
"""

from __future__ import annotations

import sqlite3
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from backends.base import PRODUCTION, BackendError, BadInputError
from backends.capabilities import CoSigns, caller_identity
from console.errors import PolicyViolation  # noqa: F401  (raised here; importers take it from this module too)
from console.release.audit import AuditLog, connect

POLICY_FIELDS = ("required_approvals", "distinct_from_trainer", "approvers", "rollback", "identity")
VERIFIED, CLAIMS, REQUIRE = "verified", "claims", "require"
# "record" is the old name of "claims" (it recorded the identity and counted the claim): a team
# that wrote it opted in by name, so it keeps meaning that.
IDENTITY_MODES = (VERIFIED, CLAIMS, REQUIRE, "record")
ANYONE = "anyone"


def normalise_name(name: str | None) -> str:
    """One spelling per person: Unicode NFKC, casefolded, inner whitespace collapsed, stripped."""
    return " ".join(unicodedata.normalize("NFKC", str(name or "")).casefold().split())


def identity_names(identity: str | None) -> set[str]:
    """The names a verified identity answers to: itself, and for a path-like one (an AWS ARN
    `arn:aws:iam::1:user/bob`) its last part, so an allow-list can name `bob`."""
    full = normalise_name(identity)
    if not full:
        return set()
    return {full, full.rsplit("/", 1)[-1]}


def counts_claims(policy) -> bool:
    return policy is not None and policy.identity in (CLAIMS, "record")


@dataclass(frozen=True)
class AliasPolicy:
    alias: str
    required_approvals: int = 1
    distinct_from_trainer: bool = True
    approvers: tuple[str, ...] | None = None  # None: anyone may approve
    rollback: tuple[str, ...] | None = None  # None: anyone may roll back
    identity: str = VERIFIED

    def to_dict(self) -> dict[str, Any]:
        return {"alias": self.alias, "required_approvals": self.required_approvals,
                "distinct_from_trainer": self.distinct_from_trainer,
                "approvers": list(self.approvers) if self.approvers is not None else None,
                "rollback": list(self.rollback) if self.rollback is not None else ANYONE,
                "identity": self.identity}


# -- parsing: one clear line naming mrc.toml and the field ---------------------------------------


def _names(value: Any, where: str, *, allow_anyone: bool) -> tuple[str, ...] | None:
    if allow_anyone and value == ANYONE:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        also = ' or "anyone"' if allow_anyone else ""
        raise BadInputError(f"{where}: must be a non-empty list of names{also}, not {value!r:.80}")
    return tuple(v.strip() for v in value)


def parse_policies(config: dict[str, Any], where: Any = "mrc.toml") -> dict[str, AliasPolicy]:
    """alias -> AliasPolicy from the `[policy]` table; BadInputError on any bad value."""
    section = config.get("policy", {})
    if not isinstance(section, dict):
        raise BadInputError(f"{where}: [policy] must be a table of [policy.<alias>] tables")
    policies: dict[str, AliasPolicy] = {}
    for alias, table in section.items():
        prefix = f"{where}: policy.{alias}"
        if not isinstance(table, dict):
            raise BadInputError(f"{prefix}: must be a table ([policy.{alias}])")
        unknown = sorted(set(table) - set(POLICY_FIELDS))
        if unknown:
            raise BadInputError(f"{prefix}.{unknown[0]}: unknown field (known: {', '.join(POLICY_FIELDS)})")
        required = table.get("required_approvals", 1)
        if isinstance(required, bool) or not isinstance(required, int) or not 1 <= required <= 20:
            raise BadInputError(f"{prefix}.required_approvals: must be an integer within [1, 20], not {required!r:.80}")
        distinct = table.get("distinct_from_trainer", True)
        if not isinstance(distinct, bool):
            raise BadInputError(f"{prefix}.distinct_from_trainer: must be true or false, not {distinct!r:.80}")
        approvers = None
        if "approvers" in table:
            approvers = _names(table["approvers"], f"{prefix}.approvers", allow_anyone=False)
            if len(set(approvers)) < required:
                raise BadInputError(f"{prefix}.approvers: {len(set(approvers))} names cannot give the "
                                    f"{required} distinct approvals required_approvals asks for")
        rollback = _names(table.get("rollback", ANYONE), f"{prefix}.rollback", allow_anyone=True)
        identity = table.get("identity", VERIFIED)
        if identity not in IDENTITY_MODES:
            raise BadInputError(f"{prefix}.identity: must be \"verified\", \"claims\" or \"require\", "
                                f"not {identity!r:.80}")
        policies[str(alias)] = AliasPolicy(str(alias), required, distinct, approvers, rollback, identity)
    return policies


def alias_policy(workspace, alias: str = PRODUCTION) -> AliasPolicy | None:
    """The workspace's rule for `alias`, or None when the alias is not protected."""
    return parse_policies(workspace.config, workspace.config_path).get(alias)


# -- who trained a version ---------------------------------------------------------------------------


def trainer_of(mv) -> str:
    """Who trained the version, as far as the registry records it: lineage.trained_by (mrc's own
    trainer, an S3 metadata.json `trained_by`), else the description mrc writes ("trained by X from …")."""
    trained_by = getattr(mv.lineage, "trained_by", "") or ""
    if trained_by:
        return trained_by
    text = mv.description or ""
    if text.startswith("trained by "):
        rest = text[len("trained by "):]
        return rest.split(" from ", 1)[0].strip()
    return ""


# -- co-signatures (mrc.db) ---------------------------------------------------------------------------

SIGNATURES_SCHEMA = """
CREATE TABLE IF NOT EXISTS approval_signatures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    approver TEXT NOT NULL,
    at TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    artifact_sha256 TEXT NOT NULL,
    gate_report_sha256 TEXT NOT NULL,
    epoch TEXT NOT NULL,
    identity TEXT,
    revoked_at TEXT
)"""


@dataclass(frozen=True)
class Signature:
    """One approver's approval of one version, as the rule counts it."""

    approver: str
    at: str
    artifact_sha256: str
    gate_report_sha256: str
    epoch: str  # the registry approval's `at` it co-signs ("" for the registry approval itself)
    reason: str = ""
    identity: str | None = None
    primary: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"approver": self.approver, "at": self.at, "primary": self.primary, "identity": self.identity,
                "artifact_sha256": self.artifact_sha256, "gate_report_sha256": self.gate_report_sha256}


def read_signatures(conn: sqlite3.Connection, model: str, version: str) -> list[Signature]:
    """Co-signatures not revoked, oldest first; none when the table was never made."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'approval_signatures'").fetchone() is None:
        return []
    rows = conn.execute("SELECT approver, at, artifact_sha256, gate_report_sha256, epoch, reason, identity"
                        " FROM approval_signatures WHERE model = ? AND version = ? AND revoked_at IS NULL"
                        " ORDER BY id", (model, version)).fetchall()
    return [Signature(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]


def registry_stores_signatures(registry) -> bool:
    """A remote registry that keeps the co-signatures itself (S3: objects beside the model), so
    approvers on different machines see each other's; else they live in the workspace's mrc.db."""
    return isinstance(registry, CoSigns)


def signature_record(model: str, version: str, signature: Signature) -> dict[str, Any]:
    return {"model": model, "version": version, "approver": signature.approver, "at": signature.at,
            "reason": signature.reason, "artifact_sha256": signature.artifact_sha256,
            "gate_report_sha256": signature.gate_report_sha256, "epoch": signature.epoch,
            "identity": signature.identity, "revoked_at": None}


def registry_signatures(registry, model: str, version: str) -> list[Signature]:
    """The registry's co-signatures not revoked, oldest first."""
    out = []
    for r in registry.read_cosignatures(model, version):
        if r.get("revoked_at") or not r.get("approver"):
            continue
        out.append(Signature(str(r["approver"]), str(r.get("at", "")), str(r.get("artifact_sha256", "")),
                             str(r.get("gate_report_sha256", "")), str(r.get("epoch", "")), str(r.get("reason", "")),
                             r.get("identity")))
    return out


def signatures_of(registry, audit, model: str, version: str, held: sqlite3.Connection | None = None) -> list[Signature]:
    """The version's live co-signatures from wherever they are kept (the registry, else mrc.db)."""
    if registry is not None and registry_stores_signatures(registry):
        return registry_signatures(registry, model, version)
    if held is not None:
        return read_signatures(held, model, version)
    return load_signatures(audit.db_path, model, version) if isinstance(audit, AuditLog) else []


def load_signatures(db_path: str, model: str, version: str) -> list[Signature]:
    import os

    if not os.path.exists(db_path):
        return []
    conn = connect(db_path)
    try:
        return read_signatures(conn, model, version)
    finally:
        conn.close()


def insert_signature(conn: sqlite3.Connection, model: str, version: str, signature: Signature) -> None:
    conn.execute(SIGNATURES_SCHEMA)
    conn.execute("INSERT INTO approval_signatures (model, version, approver, at, reason, artifact_sha256,"
                 " gate_report_sha256, epoch, identity) VALUES (?,?,?,?,?,?,?,?,?)",
                 (model, version, signature.approver, signature.at, signature.reason, signature.artifact_sha256,
                  signature.gate_report_sha256, signature.epoch, signature.identity))


def revoke_signature(conn: sqlite3.Connection, model: str, version: str, approver: str, at: str) -> int:
    conn.execute(SIGNATURES_SCHEMA)
    return conn.execute("UPDATE approval_signatures SET revoked_at = ? WHERE model = ? AND version = ?"
                        " AND approver = ? AND revoked_at IS NULL", (at, model, version, approver)).rowcount


# -- the tally (pure) -----------------------------------------------------------------------------------


@dataclass
class Tally:
    """How a version stands against a protected alias's rule."""

    policy: AliasPolicy
    trainer: str
    counted: list[str] = field(default_factory=list)  # approvers whose approval counts, in order
    not_counted: list[tuple[str, str]] = field(default_factory=list)  # (approver, why)
    identities: dict[str, str | None] = field(default_factory=dict)  # approver -> the identity it counted as

    @property
    def required(self) -> int:
        return self.policy.required_approvals

    @property
    def met(self) -> bool:
        return len(self.counted) >= self.required

    @property
    def missing(self) -> int:
        return max(0, self.required - len(self.counted))

    @property
    def shared(self) -> list[tuple[str, str]]:
        """Approvals that share an identity with one counted already: flagged wherever the tally shows."""
        return [(name, why) for name, why in self.not_counted if why.startswith("same identity")]

    @property
    def unverified(self) -> list[tuple[str, str]]:
        return [(name, why) for name, why in self.not_counted if why.startswith("no verified identity")]

    def excluded(self) -> list[tuple[str, str]]:
        """Who cannot give the missing approvals, and why: the trainer, those who approved already."""
        out: list[tuple[str, str]] = []
        if self.policy.distinct_from_trainer and self.trainer:
            out.append((self.trainer, "trainer"))
        for name in self.counted:
            if normalise_name(name) != normalise_name(self.trainer):
                out.append((name, "approved"))
        return out

    def line(self) -> str:
        """"1 of 2 approvals: needs 1 more, not alice (trainer), not bob (approved)"; approvals that
        did not count because they share an identity or have none are named after it."""
        head = f"{len(self.counted)} of {self.required} approvals"
        flags = "".join(f", not {name} ({why})" for name, why in (*self.shared, *self.unverified))
        if self.met:
            return head + " (" + ", ".join(self.counted) + ")" + flags
        needs = f"needs {self.missing} more"
        if self.policy.approvers is not None:
            taken = {normalise_name(n) for n in self.counted}
            left = [a for a in self.policy.approvers if normalise_name(a) not in taken
                    and not (self.policy.distinct_from_trainer and normalise_name(a) == normalise_name(self.trainer))]
            needs += " from " + (", ".join(left) if left else "nobody left on the allow-list")
        return f"{head}: {needs}" + "".join(f", not {name} ({why})" for name, why in self.excluded()) + flags

    def to_dict(self) -> dict[str, Any]:
        return {"required": self.required, "approvals": len(self.counted), "approved_by": list(self.counted),
                "not_counted": [{"approver": a, "why": w} for a, w in self.not_counted],
                "shared_identity": [{"approver": a, "why": w} for a, w in self.shared],
                "counted_as": {a: self.identities.get(a) for a in self.counted}, "identity": self.policy.identity,
                "trainer": self.trainer or None, "met": self.met, "summary": self.line()}


def approver_problem(policy: AliasPolicy, approver: str, trainer: str, identity: str | None = None) -> str | None:
    """Why this approver's approval cannot count under the rule; None when it can. Under
    "verified" the identity the backend verified is who approves: the trainer's OS user claiming
    another name is still the trainer, and the allow-list names identities."""
    names = {normalise_name(approver)} if counts_claims(policy) or identity is None else identity_names(identity)
    if policy.distinct_from_trainer and trainer and normalise_name(trainer) in (names | {normalise_name(approver)}):
        return "trainer"
    if policy.approvers is not None and not names & {normalise_name(a) for a in policy.approvers}:
        return "not on the approvers list"
    return None


def _count_key(policy: AliasPolicy, sig: Signature) -> str | None:
    """Who an approval counts for: the claimed name normalised (claims), else the verified identity."""
    if counts_claims(policy):
        return normalise_name(sig.approver)
    return normalise_name(sig.identity) or None


def tally(policy: AliasPolicy, mv, signatures: list[Signature]) -> Tally:
    """Pure: which approvals of `mv` count. The registry approval counts when it is "approved";
    a co-signature when it signs that same approval (epoch), gate report and artifact. Each person
    counts once: by normalised claimed name under "claims", by verified identity otherwise (the
    registry approval's identity is the row its approver recorded beside it, same epoch)."""
    result = Tally(policy, trainer_of(mv))
    approval = mv.approval
    if approval.status != "approved":
        return result
    primary_name = normalise_name(approval.by)
    primary_identity = next((s.identity for s in signatures if s.epoch == approval.at and s.identity
                             and normalise_name(s.approver) == primary_name), None)
    candidates = [Signature(approval.by, approval.at, mv.artifact.sha256, approval.gate_report_sha256, "",
                            approval.reason, primary_identity, primary=True)]
    for sig in signatures:
        if sig.epoch != approval.at or sig.gate_report_sha256 != approval.gate_report_sha256:
            continue  # it co-signed an earlier approval (rejected or replaced since): not this one
        if normalise_name(sig.approver) == primary_name:
            continue  # the registry approval's own identity row: merged into it above
        if sig.artifact_sha256 != mv.artifact.sha256:
            result.not_counted.append((sig.approver, "signed other bytes"))
            continue
        candidates.append(sig)
    counted_by: dict[str, str] = {}  # count key -> the approver it counted for
    seen_names: set[str] = set()
    for sig in candidates:
        name = normalise_name(sig.approver)
        if name in seen_names:
            continue  # one person's approval twice (Bob, bob, "bob "): once
        seen_names.add(name)
        key = _count_key(policy, sig)
        if key is None:
            result.not_counted.append((sig.approver, "no verified identity: the registry could not say who "
                                       f"approved; identity = \"claims\" in [policy.{policy.alias}] counts claimed names"))
            continue
        if key in counted_by:
            result.not_counted.append((sig.approver, f"same identity as {counted_by[key]}: {key}"))
            continue
        problem = approver_problem(policy, sig.approver, result.trainer, None if counts_claims(policy) else sig.identity)
        if problem:
            result.not_counted.append((sig.approver, problem))
        else:
            counted_by[key] = sig.approver
            result.counted.append(sig.approver)
            result.identities[sig.approver] = sig.identity
    return result


def may_roll_back(policy: AliasPolicy | None, actor: str, identity: str | None = None) -> bool:
    """Under "verified" a known identity is who rolls back; a claim only where the backend cannot tell."""
    if policy is None or policy.rollback is None:
        return True
    names = identity_names(identity) if identity and not counts_claims(policy) else {normalise_name(actor)}
    return bool(names & {normalise_name(n) for n in policy.rollback})


# -- backend identity -------------------------------------------------------------------------------------


def backend_identity(registry) -> str | None:
    """The caller as the registry's backend knows it (None when it cannot tell)."""
    return caller_identity(registry)


def check_identity(policy: AliasPolicy | None, registry, actor: str, what: str) -> dict[str, Any]:
    """{"claimed", "backend"} for the audit details; with identity = "require" a backend identity
    that is not the claimed actor (or none at all) is refused."""
    required = policy is not None and policy.identity == "require"
    try:
        identity = backend_identity(registry)
    except BackendError:
        if required:
            raise
        identity = None  # only recorded here: a server that cannot say who calls must not fail the write
    record = {"claimed": actor, "backend": identity}
    if required:
        if identity is None:
            raise PolicyViolation(f"policy.{policy.alias}.identity = \"require\": the registry cannot say who is "
                                  f"calling, so {what} as {actor!r} is refused")
        if normalise_name(identity) != normalise_name(actor):
            raise PolicyViolation(f"policy.{policy.alias}.identity = \"require\": the registry knows this caller as "
                                  f"{identity!r}, not {actor!r}; {what} refused")
    return record


def workspace_policy(workspace, alias: str = PRODUCTION) -> AliasPolicy | None:
    """As `alias_policy`, for callers holding any workspace (None when mrc.toml has no [policy])."""
    config = getattr(workspace, "config", None) or {}
    if "policy" not in config:
        return None
    return alias_policy(workspace, alias)


# -- the rollback path: a typo in [policy] must not block on-call ----------------------------------------


def rollback_policy(workspace, alias: str = PRODUCTION) -> tuple[AliasPolicy | None, str | None]:
    """(the rule a rollback follows, a warning line or None). A well-formed [policy] is the rule as
    parsed. A malformed one does not block a rollback: each field is read on its own and a bad one
    falls back to its default (a bad `rollback` to "anyone": failing closed would lock on-call out),
    and the warning names mrc.toml and the field. Approve and promote still refuse it (exit 2)."""
    config = getattr(workspace, "config", None) or {}
    if "policy" not in config:
        return None, None
    where = getattr(workspace, "config_path", "mrc.toml")
    try:
        return parse_policies(config, where).get(alias), None
    except BadInputError as exc:
        warning = f"warning: {exc}; rollback proceeds on the fields that parse (a bad rollback field: anyone)"
    section = config.get("policy")
    table = section.get(alias) if isinstance(section, dict) else None
    if not isinstance(table, dict):
        return None, warning
    return AliasPolicy(alias, **_lenient_fields(table, f"{where}: policy.{alias}")), warning


def _lenient_fields(table: dict[str, Any], prefix: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    required = table.get("required_approvals", 1)
    if not isinstance(required, bool) and isinstance(required, int) and 1 <= required <= 20:
        fields["required_approvals"] = required
    if isinstance(table.get("distinct_from_trainer", True), bool):
        fields["distinct_from_trainer"] = table.get("distinct_from_trainer", True)
    for name, anyone in (("rollback", True), ("approvers", False)):
        if name in table:
            try:
                fields[name] = _names(table[name], f"{prefix}.{name}", allow_anyone=anyone)
            except BadInputError:
                pass
    if table.get("identity", VERIFIED) in IDENTITY_MODES:
        fields["identity"] = table.get("identity", VERIFIED)
    return fields
