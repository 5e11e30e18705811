"""Pure presentation: row formatting, status glyphs, labels, terminal plots.

No Textual, no I/O: the screens call these and the tests check them without a terminal
(lazygit keeps its presentation layer the same way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from backends.support.redact import escape_control, redact
from console.training import parse_param_pairs

# Actions that write; --read-only removes their keys (check_action hides them from the footer).
WRITE_ACTIONS = frozenset({"approve", "reject", "rollback", "train", "launch", "override", "confirm"})

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
BAR_FULL = "█"
BAR_PARTIAL = " ▏▎▍▌▋▊▉"

# Status -> (glyph + word, rich style). Words as well as colours: a screen read over a
# monochrome SSH session must still say "FAIL".
GATE_LABELS = {
    "passed": ("✔ pass", "green"),
    "failed": ("✘ FAIL", "bold red"),
    "incomplete": ("◐ partial", "yellow"),  # what ran passed; checks needing data did not run
    "running": ("… running", "yellow"),
    "unavailable": ("? n/a", "dim"),
    None: ("· not run", "dim"),
}
APPROVAL_LABELS = {
    "approved": ("✔ approved", "green"),
    "rejected": ("✘ rejected", "red"),
    "pending": ("◌ pending", "yellow"),
}
DRIFT_LABELS = {
    "none": ("✔ none", "green"),
    "warning": ("▲ warning", "yellow"),
    "critical": ("✘ CRITICAL", "bold red"),
    None: ("· —", "dim"),
}
CANARY_LABELS = {
    "progressing": ("▶ {weight}%", "cyan"),
    "paused": ("‖ paused {weight}%", "yellow"),
    "unjudged": ("⚠ UNJUDGED {weight}%", "bold white on red"),  # live, and its controller is gone
    "promoted": ("✔ promoted", "green"),
    "rolled_back": ("↶ rolled back", "bold red"),
    "aborted": ("■ aborted", "red"),
    None: ("· —", "dim"),
}


def gate_label(status: str | None) -> tuple[str, str]:
    return GATE_LABELS.get(status, GATE_LABELS[None])


def approval_label(status: str | None, override: bool = False) -> tuple[str, str]:
    text, style = APPROVAL_LABELS.get(status or "pending", APPROVAL_LABELS["pending"])
    return (text + " (override)", "bold yellow") if override and status == "approved" else (text, style)


def monitor_label(tier: str) -> tuple[str, str]:
    """Production's live monitor tier, in the drift column where [monitor] is set."""
    return f"live {tier}", {"critical": "bold red", "warning": "bold yellow"}.get(tier, "green")


def drift_label(severity: str | None) -> tuple[str, str]:
    return DRIFT_LABELS.get(severity, DRIFT_LABELS[None])


def canary_label(status: str | None, weight: int | None = None) -> tuple[str, str]:
    text, style = CANARY_LABELS.get(status, CANARY_LABELS[None])
    return text.format(weight=weight if weight is not None else "?"), style


def alias_style(aliases: Sequence[str]) -> str:
    """Production stands out from everything else (k9s colours prod contexts)."""
    if "production" in aliases:
        return "bold reverse green"
    if "canary" in aliases:
        return "bold cyan"
    if "candidate" in aliases:
        return "bold yellow"
    if "archived" in aliases:
        return "dim"
    return ""


# ---------------------------------------------------------------------------------------------
# Numbers and times.


def fmt_number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return "nan"
        if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1000:
            return f"{int(value):,}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.{digits}f}"
    return str(value)


def fmt_delta(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "—"
    return f"{value:+.{digits}f}"


def short_sha(sha: str | None, n: int = 12) -> str:
    if not sha:
        return "—"
    prefix, _, rest = sha.partition(":")
    return f"{prefix}:{rest[:n]}" if rest else sha[:n]


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def relative_time(text: str | None, now: datetime | None = None) -> str:
    when = parse_iso(text)
    if when is None:
        return "—"
    now = now or datetime.now(timezone.utc)
    seconds = max(0, int((now - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


# ---------------------------------------------------------------------------------------------
# Terminal plots.


def sparkline(values: Iterable[float | None], lo: float | None = None, hi: float | None = None) -> str:
    """One block character per value; None is a gap."""
    values = list(values)
    known = [v for v in values if v is not None and not math.isnan(v)]
    if not known:
        return " " * len(values)
    lo = min(known) if lo is None else lo
    hi = max(known) if hi is None else hi
    span = hi - lo
    out = []
    for v in values:
        if v is None or math.isnan(v):
            out.append(" ")
        elif span <= 0:
            out.append(SPARK_BLOCKS[len(SPARK_BLOCKS) // 2])
        else:
            idx = int(round((min(max(v, lo), hi) - lo) / span * (len(SPARK_BLOCKS) - 1)))
            out.append(SPARK_BLOCKS[idx])
    return "".join(out)


def bar(value: float | None, maximum: float, width: int = 20) -> str:
    """A horizontal bar with eighth-block resolution, padded to width."""
    if value is None or maximum <= 0 or math.isnan(value):
        return " " * width
    fraction = min(max(value / maximum, 0.0), 1.0)
    eighths = int(round(fraction * width * 8))
    full, part = divmod(eighths, 8)
    text = BAR_FULL * full + (BAR_PARTIAL[part] if part and full < width else "")
    return text.ljust(width)


def histogram(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    counts = [0] * (len(edges) - 1)
    for v in values:
        if v is None or math.isnan(v):
            continue
        for i in range(len(edges) - 1):
            last = i == len(edges) - 2
            if edges[i] <= v < edges[i + 1] or (last and v == edges[-1]):
                counts[i] += 1
                break
    return counts


def overlay(reference: Sequence[float], current: Sequence[float], width: int = 24) -> tuple[str, str]:
    """Two sparklines over the same bins and scale: the reference and the current distribution.

    `reference`/`current` are bin fractions (or counts) of one feature; the shared scale makes a
    shift visible at a glance."""
    ref = list(reference)[:width]
    cur = list(current)[:width]
    ref_total = sum(ref) or 1
    cur_total = sum(cur) or 1
    ref_share = [v / ref_total for v in ref]
    cur_share = [v / cur_total for v in cur]
    hi = max(ref_share + cur_share + [0.0])
    return sparkline(ref_share, 0.0, hi), sparkline(cur_share, 0.0, hi)


# ---------------------------------------------------------------------------------------------
# Rows.


@dataclass
class HomeRow:
    model: str
    production: str | None
    candidate: str | None
    candidate_approval: str | None = None
    gate: str | None = None
    canary_status: str | None = None
    canary_weight: int | None = None
    drift: str | None = None
    last_change: str = ""
    versions: int = 0
    rollback_to: str | None = None
    canary_candidate: str | None = None  # set while a canary is live: rollback aborts it
    approvals_short: str | None = None  # "1/2": approved, but short of [policy.production]'s count
    monitor: str | None = None  # production's live monitor tier (ok, warning, critical) where [monitor] is set

    def cells(self, now: datetime | None = None) -> list[tuple[str, str]]:
        """(text, style) for each home column."""
        return [
            (self.model, "bold"),
            (self.production or "—", "bold reverse green" if self.production else "dim"),
            (self.candidate or "—", "bold yellow" if self.candidate else "dim"),
            (approval_label(self.candidate_approval) if not self.approvals_short
             else (self.approvals_short, "bold yellow")) if self.candidate else ("—", "dim"),
            gate_label(self.gate),
            canary_label(self.canary_status, self.canary_weight),
            drift_label(self.drift) if self.monitor is None else monitor_label(self.monitor),
            (relative_time(self.last_change, now), ""),
        ]


HOME_COLUMNS = (("model", 20), ("production", 10), ("candidate", 9), ("approval", 22), ("gates", 10),
                ("canary", 16), ("drift", 11), ("last change", 11))

VERSION_COLUMNS = (("model", 18), ("version", 8), ("aliases", 22), ("approval", 14), ("auc_roc", 8),
                   ("data", 24), ("created", 20))


def version_cells(mv: Any) -> list[tuple[str, str]]:
    """Cells of one version in the virtual version list."""
    aliases = list(getattr(mv, "aliases", []) or [])
    approval = getattr(mv, "approval", None)
    status = getattr(approval, "status", None)
    return [
        (mv.model, ""),
        (mv.version, alias_style(aliases)),
        (",".join(aliases) or "—", alias_style(aliases)),
        approval_label(status, bool(getattr(approval, "override", False))),
        (fmt_number(mv.metrics.get("auc_roc")), ""),
        (mv.lineage.data_version or "—", ""),
        ((mv.created_at or "")[:19], "dim"),
    ]


def search_key(cells: Sequence[tuple[str, str]]) -> str:
    return " ".join(text for text, _ in cells).lower()


def filter_indices(keys: Sequence[str], query: str, within: Sequence[int] | None = None) -> list[int]:
    """Rows whose text holds every word of the query (case-insensitive), in order.

    `within`: the matches of a query this one extends (typing one more letter can only narrow
    the matches), so each keystroke scans the survivors, not every row."""
    words = query.lower().split()
    indices: Sequence[int] = range(len(keys)) if within is None else within
    for word in words:
        indices = [i for i in indices if word in keys[i]]
    return list(indices)


def check_cells(check: Any) -> list[tuple[str, str]]:
    not_run = getattr(check, "status", "") == "not_run"
    verdict = ("· not run", "yellow") if not_run else ("✔ pass", "green") if check.passed else ("✘ FAIL", "bold red")
    return [
        verdict,
        (check.name, "" if not_run or check.passed else "bold"),
        (check.kind, "dim"),
        (fmt_number(check.value), ""),
        (fmt_number(check.threshold), ""),
        (fmt_number(check.baseline_value), ""),
        (check.detail or "", "dim"),
    ]


def confidence_interval(extra: dict[str, Any] | None) -> tuple[float, float] | None:
    """The (low, high) interval of a check's `extra`, whichever spelling the engine used."""
    if not extra:
        return None
    for key in ("ci", "confidence_interval", "delta_ci", "ci95"):
        value = extra.get(key)
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
            return float(value[0]), float(value[1])
        if isinstance(value, dict) and "low" in value and "high" in value:
            return float(value["low"]), float(value["high"])
    if "ci_low" in extra and "ci_high" in extra:
        return float(extra["ci_low"]), float(extra["ci_high"])
    return None


def interval_plot(low: float, high: float, point: float | None, span: float, width: int = 21) -> str:
    """A difference and its interval on an axis centred at zero: ├──●──┤ over '│' at 0."""
    span = span or max(abs(low), abs(high), 1e-9)
    cells = [" "] * width
    mid = width // 2

    def pos(x: float) -> int:
        return min(width - 1, max(0, int(round(mid + x / span * mid))))

    a, b = pos(low), pos(high)
    for i in range(a, b + 1):
        cells[i] = "─"
    cells[mid] = "│" if cells[mid] == " " else "┼"
    cells[a], cells[b] = "├", "┤"
    if point is not None:
        cells[pos(point)] = "●"
    return "".join(cells)


def check_metric(check: Any) -> str:
    """The metric a gate check is about: extra["metric"], else its name less the kind prefix
    ("significance_auc_roc" -> "auc_roc", "relative:f1" -> "f1")."""
    metric = (getattr(check, "extra", None) or {}).get("metric")
    if metric:
        return str(metric)
    name = check.name.split(":")[-1]
    prefix = f"{check.kind}_"
    return name[len(prefix):] if name.startswith(prefix) else name


@dataclass
class MetricDelta:
    metric: str
    candidate: float | None
    production: float | None
    delta: float | None
    ci: tuple[float, float] | None = None
    source: str = ""


def metric_deltas(candidate_metrics: dict[str, float], production_metrics: dict[str, float] | None,
                  checks: Sequence[Any] = ()) -> list[MetricDelta]:
    """Candidate vs production per metric; intervals from gate checks that carry them."""
    production_metrics = production_metrics or {}
    intervals: dict[str, tuple[float, float]] = {}
    for check in checks:
        ci = confidence_interval(getattr(check, "extra", None))
        if ci is None:
            continue
        intervals.setdefault(check_metric(check), ci)
    out = []
    for metric in sorted(set(candidate_metrics) | set(production_metrics)):
        cand, prod = candidate_metrics.get(metric), production_metrics.get(metric)
        delta = cand - prod if cand is not None and prod is not None else None
        out.append(MetricDelta(metric, cand, prod, delta, intervals.get(metric)))
    return out


# ---------------------------------------------------------------------------------------------
# Diff of two versions.


@dataclass
class DiffRow:
    section: str
    key: str
    left: str
    right: str

    @property
    def changed(self) -> bool:
        return self.left != self.right


def _flat(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k in sorted(value):
            _flat(f"{prefix}.{k}" if prefix else str(k), value[k], out)
    else:
        out[prefix] = fmt_number(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else (
            "—" if value in (None, "") else str(value))


def diff_versions(left: Any, right: Any) -> list[DiffRow]:
    """Side-by-side params, data, code and metrics of two versions."""
    sections = {
        "params": lambda mv: mv.lineage.params,
        "data": lambda mv: {"version": mv.lineage.data_version, "sha256": short_sha(mv.lineage.data_sha256, 16)},
        "code": lambda mv: {"commit": mv.lineage.code_commit[:16], "repo": redact(mv.lineage.code_repo),
                            "parent": mv.lineage.parent_version},
        "metrics": lambda mv: mv.metrics,
        "artifact": lambda mv: {"sha256": short_sha(mv.artifact.sha256, 16), "size_bytes": mv.artifact.size_bytes},
        "approval": lambda mv: {"status": mv.approval.status, "by": mv.approval.by},
    }
    rows: list[DiffRow] = []
    for section, get in sections.items():
        a: dict[str, str] = {}
        b: dict[str, str] = {}
        _flat("", get(left) or {}, a)
        _flat("", get(right) or {}, b)
        for key in sorted(set(a) | set(b)):
            rows.append(DiffRow(section, key, a.get(key, "—"), b.get(key, "—")))
    return rows


# ---------------------------------------------------------------------------------------------
# Lineage, audit, approvals, rollback.


def lineage_outline(mv: Any) -> list[tuple[str, list[str]]]:
    """(branch label, leaves) of a version's lineage, for a Tree."""
    lin = mv.lineage
    env = lin.environment
    frameworks = ", ".join(f"{k} {v}" for k, v in sorted((env.frameworks or {}).items())) or "—"
    return [
        ("code", [f"commit {lin.code_commit or '—'}", f"repo {redact(lin.code_repo) or '—'}"]),
        ("data", [f"version {lin.data_version or '—'}", f"sha256 {lin.data_sha256 or '—'}"]),
        ("params", [f"{k} = {v}" for k, v in sorted(lin.params.items())] or ["—"]),
        ("environment", [f"python {env.python or '—'}", f"frameworks {frameworks}",
                         f"packages {short_sha(env.packages_digest, 16)}", f"device {env.device or '—'}"]),
        ("run", [lin.training_run or "—"]),
        ("parent", [f"version {lin.parent_version}" if lin.parent_version else "none (first version)"]),
        ("artifact", [f"sha256 {mv.artifact.sha256}", f"{mv.artifact.size_bytes:,} bytes · {mv.artifact.format}"]),
    ]


def audit_cells(event: Any) -> list[tuple[str, str]]:
    """One audit row's cells; actor, reason and names are stored as given and shown escaped."""
    details = event.details or {}
    summary = escape_control(redact(str(details.get("reason") or ", ".join(
        f"{k}={v}" for k, v in sorted(details.items())))))[:80]
    style = "bold red" if event.action in ("rollback", "reject") or details.get("override") else (
        "green" if event.action in ("approve", "promote") else "")
    return [
        (str(event.seq), "dim"),
        ((event.at or "")[:19], "dim"),
        (escape_control(event.actor), ""),
        (escape_control(event.action), style),
        (escape_control(event.model) or "—", ""),
        (escape_control(event.version) or "—", ""),
        (summary, ""),
    ]


AUDIT_COLUMNS = (("seq", 5), ("at", 20), ("actor", 12), ("action", 16), ("model", 16), ("version", 8), ("details", 60))


def approval_statement(model: str, version: str, artifact_sha256: str, gate_digest: str | None,
                       gate_passed: bool | None, failed_checks: Sequence[str] = (), not_run: Sequence[str] = (),
                       not_run_why: str = "", gate_error: str = "") -> list[str]:
    """The lines an approver reads before confirming: exactly what will be approved."""
    if gate_error:
        gates = f"gates: NOT EVALUATED — {gate_error}"
    elif gate_passed is None:
        gates = "gate report: not available (approval records no gate digest)"
    elif gate_passed:
        gates = "gates: all that ran passed" if not_run else "gates: all passed"
    else:
        gates = "gates: FAILED — " + ", ".join(failed_checks)
    lines = [
        f"model      {model}",
        f"version    {version}",
        f"artifact   sha256 {artifact_sha256}",
        f"gate digest sha256 {gate_digest or '—'}",
        gates,
    ]
    if not_run and not gate_error:
        lines.append(f"{len(not_run)} checks not run: {not_run_why or 'no test set'} ({', '.join(not_run)})")
    return lines


def approval_needs_override(gate_passed: bool | None, not_run: Sequence[str] = (), gate_error: str = "") -> bool:
    """Only a complete, passing gate report approves without an override."""
    return bool(gate_error) or gate_passed is not True or bool(not_run)


def rollback_hint(model: str, production: str | None, target: str | None, canary: str | None = None) -> str:
    if canary and target:
        return f"{model}: R rolls the canary {canary} back: stable {target} takes 100% of traffic"
    if not production:
        return f"{model}: no production version"
    if not target:
        return f"{model}: production {production}, nothing earlier to roll back to"
    return f"{model}: R rolls production {production} back to {target}"


def training_progress_text(event: dict[str, Any]) -> str | None:
    kind = event.get("event")
    if kind == "progress":
        loss = event.get("loss")
        return f"epoch {event.get('epoch')}/{event.get('epochs')} loss {fmt_number(loss)}"
    if kind == "launched":
        return f"launched job {event.get('job')}"
    if kind in ("log", "done", "error"):
        return str(event.get("message") or kind)
    return None


def parse_params(text: str) -> dict[str, Any]:
    """"epochs=5 hidden=8" -> {"epochs": 5, "hidden": 8}; raises ValueError on a bad pair."""
    return parse_param_pairs(text.replace(",", " ").split())


@dataclass
class Command:
    name: str
    args: list[str] = field(default_factory=list)


COMMANDS = {
    "home": "the model list",
    "review": "review MODEL [VERSION]: the candidate's gates, drift and lineage",
    "history": "history MODEL: versions, metric history, pointer moves, diff",
    "train": "train MODEL: launch a training run",
    "audit": "the audit log and its chain check",
    "canary": "canary MODEL: the canary rollout",
    "monitor": "monitor MODEL: production's live traffic against its reference (drift, labels, alerts)",
    "help": "the keys of this screen",
    "quit": "leave the console",
}
COMMAND_ALIASES = {"q": "quit", "h": "help", "r": "review", "hist": "history", "log": "audit"}


def parse_command(text: str) -> Command:
    """`:review breast-cancer 5` -> Command("review", ["breast-cancer", "5"]); ValueError if unknown."""
    words = text.strip().lstrip(":").split()
    if not words:
        raise ValueError("empty command")
    name = COMMAND_ALIASES.get(words[0].lower(), words[0].lower())
    if name not in COMMANDS:
        matches = [c for c in COMMANDS if c.startswith(name)]
        if len(matches) != 1:
            raise ValueError(f"unknown command {words[0]!r} (commands: {', '.join(COMMANDS)})")
        name = matches[0]
    return Command(name, words[1:])


def drift_hist(extra: dict[str, Any] | None) -> tuple[list[float], list[float]] | None:
    """(reference, current) bin counts of a drift feature, whichever names the engine used."""
    if not extra:
        return None
    pairs = (("reference_hist", "current_hist"), ("reference_counts", "current_counts"),
             ("ref_hist", "cur_hist"), ("reference_bins", "current_bins"), ("expected", "actual"))
    for ref_key, cur_key in pairs:
        ref, cur = extra.get(ref_key), extra.get(cur_key)
        if isinstance(ref, (list, tuple)) and isinstance(cur, (list, tuple)) and ref and cur:
            return [float(v) for v in ref], [float(v) for v in cur]
    hist = extra.get("histogram") or extra.get("hist")
    if isinstance(hist, dict):
        ref, cur = hist.get("reference"), hist.get("current")
        if isinstance(ref, (list, tuple)) and isinstance(cur, (list, tuple)):
            return [float(v) for v in ref], [float(v) for v in cur]
    return None


def metric_history(versions: Sequence[Any]) -> list[tuple[str, list[float | None]]]:
    """metric -> its value for each version in order (None where a version lacks it)."""
    names = sorted({name for mv in versions for name in mv.metrics})
    return [(name, [mv.metrics.get(name) for mv in versions]) for name in names]


def pointer_move_cells(move: Any) -> list[tuple[str, str]]:
    style = "bold green" if move.alias == "production" else ""
    return [
        ((move.at or "")[:19], "dim"),
        (move.alias, style),
        (f"{move.from_version or '∅'} → {move.to_version or '∅'}", style),
        (escape_control(move.actor), ""),
        (escape_control(move.reason or ""), "dim"),
    ]


LOWER_IS_BETTER_WORDS = ("loss", "latency", "size", "error", "mse", "mae", "rmse")


def lower_is_better(metric: str) -> bool:
    return any(word in metric.lower() for word in LOWER_IS_BETTER_WORDS)


def delta_style(metric: str, delta: float | None) -> str:
    """Green when the candidate is better than production on this metric, red when worse."""
    if not delta:
        return ""
    better = delta < 0 if lower_is_better(metric) else delta > 0
    return "green" if better else "red"


# ---------------------------------------------------------------------------------------------
# Canary start / promote confirmations and production's live health (home).


def judge_lines(plan: Any = None, failures: int = 3) -> list[str]:
    """The judge that will run, in words (`plan`: a CanaryPlan; its `judge` picks which): never
    one judge described while another runs."""
    judge = getattr(plan, "judge", "threshold" if plan is None else "sequential")
    lines = []
    if judge in ("sequential", "both"):
        alpha = getattr(plan, "alpha", 0.05)
        latency = getattr(plan, "latency_margin_ratio", 1.1)
        margin = getattr(plan, "error_rate_margin", 0.0)
        over = f"stable's + {margin:.1%}" if margin else "stable's"
        lines.append(f"judge      sequential (anytime-valid) tests, false-rollback rate {alpha:.0%} across all: roll "
                     f"back to stable once the evidence shows the canary's error rate above {over}, its latency "
                     f"above {latency:g}× stable's, or a worse tail, accuracy or prediction drift")
        if judge == "sequential":
            lines.append("           the threshold checks are shown as advice; they do not roll back")
        ratio = getattr(plan, "min_detectable_error_ratio", None)
        if ratio:
            lines.append(f"           the last step promotes only once an error odds ratio of {ratio:g}× would have "
                         "been caught (80 % power)")
    if judge in ("threshold", "both"):
        failures = getattr(plan, "consecutive_failures", failures)
        lines.append(f"judge      {failures} failing windows in a row (errors, NaN, silence count as failing) "
                     "roll back to stable")
    timeout = getattr(plan, "no_data_timeout_s", None)
    interval = getattr(plan, "interval_s", None)
    if plan is not None and judge != "threshold":
        silence = f"{timeout:g} s" if timeout else (f"5 intervals ({5 * interval:g} s)" if interval else "5 intervals")
        lines.append(f"           no data from both versions for {silence} rolls back (fail closed)")
    return lines


def canary_start_statement(model: str, candidate: str, stable: str | None, steps: Sequence[int],
                           approval: str | None, hold_s: float, interval_s: float, failures: int = 3,
                           plan: Any = None) -> list[str]:
    """What a canary start will do, read before confirming; the judge as `plan` configures it."""
    lines = [
        f"model      {model}",
        f"candidate  {candidate}  (approval {approval or 'unknown'})",
        f"stable     {stable or '— none: nothing to compare against'}  (production, keeps the rest of the traffic)",
        "plan       " + " → ".join(f"{s}%" for s in steps) + f"  · hold {hold_s:g} s · analysis every {interval_s:g} s",
        *judge_lines(plan, failures),
    ]
    if approval != "approved":
        lines.append("NOT APPROVED: starting needs a reason and is recorded as an override")
    return lines


def sequential_result_line(r: dict[str, Any]) -> str:
    """One sequential check, its decision and the evidence that made it, in words that never
    contradict it. The band is the confidence sequence on the cumulative difference; the error
    count test is a different, exact e-process per window: when it rejects while the band still
    holds the margin, the line says which test decided, instead of a band containing 0 beside "reject"."""
    metric = r.get("metric", "?")
    decision = r.get("decision", "continue")
    if r.get("estimate") is None:
        return f"{metric}: {decision} · {r.get('detail', '')}".rstrip(" ·")
    lower, upper = float(r.get("lower", 0.0)), float(r.get("upper", 0.0))
    margin = float(r.get("margin", 0.0) or 0.0)
    band = f"band [{lower:+.4f}, {upper:+.4f}]"
    stat = f"Δ {r['estimate']:+.4f} {band}"
    e_value, p_value = r.get("e_value"), r.get("p_value")
    if e_value is not None:
        stat += f" · e-value {e_value:.3g}"
    if p_value is not None:
        stat += f" · p {p_value:.3f}"
    if decision == "reject":
        if lower > margin:
            why = f"the band lies above the margin {margin:+.4f}"
        elif e_value is not None:
            why = (f"the exact per-window count test's e-value {e_value:.3g} crossed its bound; the band, a "
                   f"slower test on the cumulative difference, still reaches {lower:+.4f}")
        else:
            why = f"the always-valid p {p_value if p_value is not None else float('nan'):.3f} fell below its share of α"
        return f"{metric}: reject (roll back) — {why} · {stat}"
    if decision == "safe":
        return f"{metric}: safe — no worse than stable {margin:+.4f} at the judge's confidence · {stat}"
    return f"{metric}: {decision} — not enough evidence either way yet · {stat}"


def needs_more_lines(state: Any) -> list[str]:
    """What the power-aware plan still waits for before it may promote (console/rollout/canary.py)."""
    if state is None or getattr(state, "status", "progressing") not in ("progressing", "paused"):
        return []  # rolled back, promoted, aborted: what a live canary waited for no longer applies
    gap = (state.sequential or {}).get("needs_more")
    if gap and gap.get("requests") is None and gap.get("test"):  # an infinite plan (issue 20)
        return [f"the {gap['test']} test cannot show the plan's minimum regression at this split: the evidence "
                "timeout will end the canary as inconclusive"]
    if not gap or not gap.get("requests"):
        return []
    return [f"needs ~{int(gap['requests']):,} more canary requests before the {gap.get('test', 'judge')} test "
            "can promote"]


def canary_evidence_lines(state: Any) -> list[str]:
    """The judge's current evidence on a canary: what a person overrides when they step or promote."""
    if state is None:
        return ["no canary state"]
    lines = [f"canary {state.candidate} at {state.weight}% vs stable {state.stable} · {state.status}"
             f" · step {state.step + 1}/{len(state.plan.steps)}"]
    results = state.sequential.get("results") or []
    if not results:
        lines.append("sequential judge: no analysis yet (no evidence either way)")
    for r in results:
        lines.append("sequential " + sequential_result_line(r))
    lines.extend(needs_more_lines(state))
    last = state.analyses[-1] if state.analyses else None
    verdict = last.get("window_verdict", "-") if last else "-"
    lines.append(f"failures so far: {state.failures}/{state.plan.consecutive_failures} consecutive · "
                 f"last window {verdict} · {len(state.analyses)} windows analysed")
    failed = [c.get("detail", "") for c in (last or {}).get("checks", []) if c.get("passed") is False]
    if failed:
        lines.append("last window failed: " + "; ".join(failed))
    return lines


@dataclass
class HealthPoint:
    """Production's health over one window, as the home panel plots it."""

    at: float
    requests: int
    errors: int
    p99_ms: float | None
    seconds: float

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class HealthLimits:
    """The team's thresholds ([alerts]): what home's health panel measures production against."""

    max_error_rate: float = 0.05
    max_p99_ms: float = 500.0
    min_requests: int = 20  # per window_s: fewer and the alerts give no verdict
    window_s: float = 300.0

    @property
    def min_rate(self) -> float:
        return self.min_requests / self.window_s if self.window_s > 0 else 0.0


def health_breaches(point: HealthPoint | None, limits: HealthLimits | None) -> list[str]:
    """What in the latest window is over the team's thresholds ("errors 30.00% > 5.00%")."""
    if point is None or not point.requests or limits is None:
        return []
    out = []
    if (point.error_rate or 0.0) > limits.max_error_rate:
        out.append(f"errors {point.error_rate:.2%} > {limits.max_error_rate:.2%}")
    if point.p99_ms is not None and point.p99_ms > limits.max_p99_ms:
        out.append(f"p99 {point.p99_ms:.0f} ms > {limits.max_p99_ms:.0f} ms")
    return out


def health_numbers(model: str, version: str | None, points: Sequence[HealthPoint], error: str = "",
                   limits: HealthLimits | None = None) -> str:
    """One line: production's latest error rate, p99 latency and request rate, or why there is none;
    with `limits`, each beside the team's threshold."""
    if not version:
        return f"{model}: no production version: no live health"
    if error:
        return f"production {version}: metrics unavailable ({error})"
    last = points[-1] if points else None
    if last is None or not last.requests:
        return f"production {version}: no data (no requests in the last window)"
    p99 = f"{last.p99_ms:.1f} ms" if last.p99_ms is not None else "—"
    if limits is None:
        return (f"production {version}: error rate {last.error_rate:.2%} · p99 {p99} · "
                f"{last.rate:.1f} req/s  ({last.requests} requests in {last.seconds:.0f} s)")
    breaches = health_breaches(last, limits)
    head = "OVER THRESHOLD: " + ", ".join(breaches) + " — " if breaches else ""
    low = " (below the alerts' minimum: no verdict)" if last.rate < limits.min_rate else ""
    return (f"{head}production {version}: error rate {last.error_rate:.2%} (max {limits.max_error_rate:.2%}) · "
            f"p99 {p99} (max {limits.max_p99_ms:.0f} ms) · {last.rate:.1f} req/s (alerts judge from "
            f"{limits.min_rate:.2g} req/s){low}  ({last.requests} requests in {last.seconds:.0f} s)")


def firing_line(alerts: Sequence[tuple[str, str]]) -> str:
    """"alerts firing: ProductionErrorRateHigh (2), RollbackDone (2)" or "no alerts firing"."""
    if not alerts:
        return "no alerts firing"
    return "alerts firing: " + ", ".join(f"{name} ({version})" if version else name for name, version in alerts)


def health_series(points: Sequence[HealthPoint], key: str) -> list[float | None]:
    """A series for a sparkline: None for a window with no data (drawn as a gap, never as healthy 0)."""
    if key == "error_rate":
        return [p.error_rate for p in points]
    if key == "p99_ms":
        return [p.p99_ms if p.requests else None for p in points]
    return [p.rate for p in points]
