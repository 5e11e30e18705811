"""The console's domain records (DESIGN.md, "Domain"). Pure data: no I/O, no textual.

The registry records (ModelVersion, Approval, PointerMove …) live in backends/base.py because
the backend protocols exchange them; they are re-exported here so the console has one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backends.base import (  # noqa: F401  (re-exported)
    ARCHIVED,
    CANARY,
    CANDIDATE,
    PRODUCTION,
    Approval,
    Artifact,
    Environment,
    Lineage,
    ModelSummary,
    ModelVersion,
    PointerMove,
    Record,
    TrainingJob,
    TrainingSpec,
    TrafficSplit,
    HealthWindow,
)

CHECK_KINDS = (
    "hard",
    "relative",
    "latency",
    "size",
    "slice",
    "fairness",
    "significance",
    "robustness",
    "sanity",
)


CHECK_STATUSES = ("passed", "failed", "not_run")


@dataclass
class GateCheck(Record):
    name: str
    kind: str
    passed: bool | None  # None: not run (no data to run it on); neither a pass nor a failure
    value: float | None = None
    threshold: float | None = None
    baseline_value: float | None = None
    detail: str = ""  # one line: why it passed or failed
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. confidence interval
    status: str = ""  # passed | failed | not_run; derived from `passed` when left out

    def __post_init__(self) -> None:
        if not self.status:
            self.status = "not_run" if self.passed is None else ("passed" if self.passed else "failed")
        if self.status == "not_run":
            self.passed = None


@dataclass
class GateReport(Record):
    model: str
    candidate: str
    baseline: str | None
    policy_sha256: str
    checks: list[GateCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every check that ran passed (checks not run neither pass nor fail: see `complete`)."""
        return all(c.passed for c in self.checks if c.status != "not_run")

    @property
    def failed_checks(self) -> list[GateCheck]:
        return [c for c in self.checks if c.status != "not_run" and not c.passed]

    @property
    def not_run(self) -> list[GateCheck]:
        return [c for c in self.checks if c.status == "not_run"]

    @property
    def complete(self) -> bool:
        """Every check of the policy ran: an incomplete report is not enough to approve on."""
        return not self.not_run

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["passed"] = self.passed
        data["complete"] = self.complete
        data["not_run"] = [c.name for c in self.not_run]
        return data


SEVERITIES = ("none", "warning", "critical")


@dataclass
class DriftFeature(Record):
    name: str
    kind: str  # numeric | categorical
    method: str
    statistic: float
    p_value: float | None
    severity: str = "none"
    extra: dict[str, Any] = field(default_factory=dict)  # psi, ks, missing-rate change …


@dataclass
class DriftReport(Record):
    features: list[DriftFeature] = field(default_factory=list)
    drift_share: float = 0.0
    dataset_drift: bool = False
    reference_rows: int = 0
    current_rows: int = 0
    severity: str = "none"  # critical when a column is critical or the dataset drifts
    alpha: float = 0.05  # false-discovery rate across columns
    share_threshold: float = 0.5  # drift_share at which the dataset drifts
    reference: str = ""  # what was compared: file names or dataset refs
    current: str = ""
    model: str = ""
    version: str = ""
    baseline_version: str = ""
    new_columns: list[str] = field(default_factory=list)  # in current, not in reference


@dataclass
class CanaryPlan(Record):
    steps: list[int] = field(default_factory=lambda: [5, 25, 50, 100])  # weight % of the canary
    hold_s: float = 60.0  # how long each step is held before the next
    interval_s: float = 10.0  # analysis interval
    max_error_rate_delta: float = 0.01
    max_p99_latency_ratio: float = 1.5
    max_prediction_psi: float = 0.25
    min_online_accuracy_delta: float = -0.05
    consecutive_failures: int = 3
    alpha: float = 0.05
    judge: str = "sequential"  # sequential | threshold
    # Below this many requests per variant in a window the threshold judge says "no data".
    min_requests: int = 20
    # The sequential judge rolls back once the canary's log-latency mean exceeds stable's by
    # more than log(latency_margin_ratio), and on any error-rate increase beyond the margin.
    latency_margin_ratio: float = 1.1
    error_rate_margin: float = 0.0
    # Fail closed on silence: this long with no window carrying data from both variants rolls
    # back (None: NO_DATA_INTERVALS analysis intervals).
    no_data_timeout_s: float | None = None
    # The power-aware plan (sequential judge, console/rollout/canary.py evidence_gap): the last step
    # promotes only once the sample could detect these odds ratios (errors; requests above
    # stable's p99) with 80 % power; None turns that wait off. Waiting longer than
    # evidence_timeout_s (None: 30 holds) ends the canary as inconclusive (see `inconclusive`).
    min_detectable_error_ratio: float | None = 2.0
    min_detectable_tail_ratio: float | None = 3.0
    evidence_timeout_s: float | None = None
    # Halt on a sample-ratio mismatch. Counted on users when windows carry routing keys (new
    # users per variant against the split, console/rollout/units.py); on request counts only when
    # each request is routed at random; otherwise it is off and the analysis says why.
    check_sample_ratio: bool = True
    # What a canary that cannot gather evidence ends in (no data past the no-data timeout, or
    # the last step past evidence_timeout_s): "hold" pauses it at its weight for a person;
    # "rollback" rolls it back. Either is recorded as inconclusive, never as a failed check.
    inconclusive: str = "hold"


CANARY_STATUSES = ("progressing", "paused", "promoted", "rolled_back", "aborted")


@dataclass
class CanaryState(Record):
    model: str
    stable: str
    candidate: str
    plan: CanaryPlan = field(default_factory=CanaryPlan)
    step: int = 0
    weight: int = 0
    status: str = "progressing"
    failures: int = 0
    analyses: list[dict[str, Any]] = field(default_factory=list)
    updated_at: str = ""
    reason: str = ""
    # Extensions for the controller (issue 5): all optional, all JSON-able.
    id: str = ""  # one canary run
    revision: int = 0  # what a compare-and-swap on the stored state compares
    started_at: float = 0.0  # epoch seconds
    step_started_at: float = 0.0
    pending: dict[str, Any] | None = None  # the intent of a transition under way (kill -9 safety)
    events: list[dict[str, Any]] = field(default_factory=list)  # event log, newest last
    sequential: dict[str, Any] = field(default_factory=dict)  # last sequential statistics + bands
    controller_pid: int = 0
    finished_at: str = ""
    override: bool = False  # started on an unapproved candidate, with a reason

    @property
    def active(self) -> bool:
        return self.status in ("progressing", "paused")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CanaryState":
        import dataclasses

        data = dict(data)
        plan_fields = {f.name for f in dataclasses.fields(CanaryPlan)}
        plan = CanaryPlan(**{k: v for k, v in (data.pop("plan", None) or {}).items() if k in plan_fields})
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(plan=plan, **{k: v for k, v in data.items() if k in known})


@dataclass
class AuditEvent(Record):
    seq: int
    at: str
    actor: str
    action: str
    model: str = ""
    version: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = ""
    hash: str = ""
