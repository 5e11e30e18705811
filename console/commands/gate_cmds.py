"""gate · drift · validate · report: the evaluation stages, headless, for CI and for people.

Exit codes: 0 pass / no critical drift, 1 gate failed / validation failed / critical drift,
2 bad input (one line naming the file and the field; nothing written).
"""

from __future__ import annotations

from backends.base import BadInputError, check_name
from console.commands.common import Context, table

# mrc's modules that this file's handlers run (release, rollout, evaluate …) are imported inside
# them: every command module is imported to build `mrc --help` and `mrc rollback`'s parser, which
# must not pay for them (--help: ~70 ms of CPU as is, ~300 ms with them at the top). Light modules
# that --help loads anyway are imported above.


def register(sub, common) -> None:
    p = common(sub.add_parser(
        "gate", help="gate report: a registry version vs production, metrics files, or a prediction file",
        description="mrc gate MODEL VERSION [--policy F] | mrc gate --candidate F [--baseline F] --policy F | "
                    "mrc gate --predictions F --policy F"))
    p.add_argument("model", nargs="?")
    p.add_argument("version", nargs="?")
    p.add_argument("--policy", metavar="FILE", help="gate policy (default: the model's, else the built-in one)")
    p.add_argument("--candidate", metavar="FILE", help="candidate metrics JSON (the seed's format)")
    p.add_argument("--baseline", metavar="FILE", help="baseline (production) metrics JSON")
    p.add_argument("--predictions", metavar="FILE", help="CSV/Parquet: y_true, one score column per model, slice columns")
    p.add_argument("--task", help="binary (default), regression or multiclass: which metrics --predictions and "
                                  "metrics files are judged on (a registry version's task comes from mrc.toml or the model)")
    p.add_argument("--label-column", default="y_true", help="label column of --predictions (default y_true)")
    p.add_argument("--candidate-column", default="score_candidate", help="candidate scores in --predictions")
    p.add_argument("--baseline-column", default="score_baseline", help="baseline scores in --predictions ('none': no baseline)")
    p.set_defaults(handler=cmd_gate)

    p = common(sub.add_parser(
        "drift", help="drift per feature (PSI, KS, χ²); exit 1 when critical",
        description="mrc drift --reference F --current F [--schema F] [--html F] | mrc drift --model M [--version V]"))
    p.add_argument("--reference", metavar="FILE", help="reference data (CSV or Parquet)")
    p.add_argument("--current", metavar="FILE", help="current data (CSV or Parquet)")
    p.add_argument("--schema", metavar="FILE", help="column kinds: numeric_columns / categorical_columns (validate's schema)")
    p.add_argument("--model", help="a registry model: its version's training data vs production's")
    p.add_argument("--version", help="the version (default: the candidate)")
    p.add_argument("--alpha", type=float, default=0.05, help="false-discovery rate across columns (default 0.05)")
    p.add_argument("--threads", type=int, default=2, help="worker threads for the per-column tests (default 2)")
    p.add_argument("--html", metavar="FILE", help="also write a drift report as HTML (plotly inlined)")
    p.set_defaults(handler=cmd_drift)

    p = common(sub.add_parser("validate", help="data validation: schema, null rates, row count, PSI, label diversity"))
    p.add_argument("data", help="CSV or Parquet file")
    p.add_argument("--schema", metavar="FILE", required=True, help="JSON: numeric_columns and categorical_columns")
    p.add_argument("--baseline", metavar="FILE", help="baseline stats JSON (row_count, distributions)")
    p.add_argument("--max-null-fraction", type=float, default=0.05, help="largest share of empty cells a column may have, within [0, 1] (default 0.05)")
    p.add_argument("--max-drift", type=float, default=0.1, help="PSI threshold per numeric column (default 0.1)")
    p.add_argument("--write-baseline", metavar="FILE", help="write baseline stats of DATA (a trusted dataset) to FILE")
    p.set_defaults(handler=cmd_validate)

    p = common(sub.add_parser("report", help="gate + drift + lineage report: plotly HTML and/or markdown for a PR"))
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("--html", metavar="FILE", help="write the report as HTML (plotly inlined) to FILE")
    p.add_argument("--md", metavar="FILE", help="write the report as markdown (for a pull request) to FILE")
    p.add_argument("--policy", metavar="FILE", help="gate policy (default: the model's, else the built-in one)")
    p.set_defaults(handler=cmd_report)


# -- gate -----------------------------------------------------------------------------------------


def _check_rows(report) -> str:
    def f(x):
        return "-" if x is None else (f"{x:.4g}" if isinstance(x, float) else str(x))

    not_run = report.not_run
    ran = len(report.checks) - len(not_run)
    head = (f"{report.model + ' ' if report.model else ''}{report.candidate} vs "
            f"{report.baseline or 'no baseline'}: {'PASSED' if report.passed else 'FAILED'} "
            f"({ran - len(report.failed_checks)}/{ran} checks pass"
            + (f"; {len(not_run)} not run: {not_run[0].detail.removeprefix('not run: ')}" if not_run else "") + ")")
    rows = [["not run" if c.status == "not_run" else "ok" if c.passed else "FAIL", c.name, f(c.value), f(c.threshold),
             f(c.baseline_value), c.detail] for c in report.checks]
    return head + "\n" + table(["", "check", "value", "threshold", "baseline", "why"], rows)


def cmd_gate(ctx: Context) -> int:
    from console.evaluate import gates

    a = ctx.args
    # --predictions may come with --candidate/--baseline metrics files (latency, size figures)
    modes = sum(bool(x) for x in (a.model, a.candidate and not a.predictions, a.predictions))
    if modes != 1:
        raise BadInputError("gate: give MODEL VERSION, or --candidate F [--baseline F], or --predictions F")
    task = None
    if getattr(a, "task", None) is not None:
        from console.evaluate.tasks import check_task

        task = check_task(a.task, "--task")
        if a.model:
            raise BadInputError("--task: a registry version's task is models.MODEL.task in mrc.toml, not a flag")
    if a.model:
        if not a.version:
            raise BadInputError("gate: MODEL needs a VERSION")
        check_name(a.model, "model")
        check_name(a.version, "version")
        report = gates.evaluate_version(ctx.workspace, a.model, a.version, a.policy)
        _request_approvals(ctx, report)
    elif a.candidate:
        report = gates.evaluate_files(a.candidate, a.baseline, a.policy, task=task or "binary")
    elif task in ("regression", "multiclass"):
        report = gate_task_predictions(a, task)
    else:
        report = gate_predictions(a)
    ctx.emit(report.to_dict(), lambda: _check_rows(report))
    return 0 if report.passed else 1


def gate_predictions(a):
    import numpy as np  # numpy: ~0.08 s

    from console.evaluate import gates
    from console.evaluate.validation import numeric_column, read_table

    policy = gates.load_policy(a.policy)
    df = read_table(a.predictions)
    src = str(a.predictions)
    for col, what in ((a.label_column, "--label-column"), (a.candidate_column, "--candidate-column")):
        if col not in df.columns:
            raise BadInputError(f"{src}: {col}: no such column ({what}; columns: {', '.join(map(str, df.columns))})")
    baseline_col = None if a.baseline_column.lower() == "none" else a.baseline_column
    if baseline_col and baseline_col not in df.columns:
        raise BadInputError(f"{src}: {baseline_col}: no such column (--baseline-column, or 'none')")
    if len(df) == 0:
        raise BadInputError(f"{src}: no rows")
    y = numeric_column(df, a.label_column, src, a.label_column)
    cand = numeric_column(df, a.candidate_column, src, a.candidate_column)
    base = numeric_column(df, baseline_col, src, baseline_col) if baseline_col else None
    for name, arr in ((a.label_column, y), (a.candidate_column, cand), (baseline_col, base)):
        if arr is not None and np.isnan(arr).any():
            raise BadInputError(f"{src}: {name}: has missing values (row {int(np.argmax(np.isnan(arr))) + 1})")
    columns = {str(c): df[c].to_numpy() for c in df.columns}
    extra_c = gates.load_metrics_file(a.candidate) if a.candidate else None
    extra_b = gates.load_metrics_file(a.baseline) if a.baseline else None
    data = gates.PairedPredictions(y, cand, base, columns, source=src)
    return gates.evaluate_predictions(policy, data, candidate_name=a.candidate_column, baseline_name=baseline_col,
                                      extra_candidate=extra_c, extra_baseline=extra_b)


def gate_task_predictions(a, task: str):
    """--predictions for a regression (one predicted value per model) or a multi-class model
    (one predicted class per model): the task's metrics and the seed-format policy."""
    import numpy as np  # numpy: ~0.08 s

    from console.evaluate import task_gates
    from console.evaluate.validation import read_table

    policy = task_gates.load_task_policy(a.policy, task)
    df = read_table(a.predictions)
    src = str(a.predictions)
    for col, what in ((a.label_column, "--label-column"), (a.candidate_column, "--candidate-column")):
        if col not in df.columns:
            raise BadInputError(f"{src}: {col}: no such column ({what}; columns: {', '.join(map(str, df.columns))})")
    baseline_col = None if a.baseline_column.lower() == "none" else a.baseline_column
    if baseline_col and baseline_col not in df.columns:
        raise BadInputError(f"{src}: {baseline_col}: no such column (--baseline-column, or 'none')")
    if len(df) == 0:
        raise BadInputError(f"{src}: no rows")
    names = [a.label_column, a.candidate_column] + ([baseline_col] if baseline_col else [])
    arrays = {}
    for name in names:
        series = df[name]
        missing = series.isna().to_numpy()
        if missing.any():
            raise BadInputError(f"{src}: {name}: has missing values (row {int(np.argmax(missing)) + 1})")
        if task == "regression":
            if series.dtype.kind not in "fiu":
                row, bad = next((i, v) for i, v in enumerate(series.tolist()) if not isinstance(v, (int, float)))
                raise BadInputError(f"{src}: {name}: not numeric ({bad!r} at row {row + 1}); a regression needs numbers")
            arrays[name] = series.to_numpy(dtype=float)
        else:
            if series.dtype.kind == "f" and not np.all(np.mod(series.to_numpy(), 1) == 0):
                row = int(np.argmax(np.mod(series.to_numpy(), 1) != 0))
                raise BadInputError(f"{src}: {name}: holds fractions ({float(series.iloc[row])!r} at row {row + 1}); "
                                    "a multi-class column holds classes, not scores")
            arrays[name] = series.to_numpy()
    columns = {str(c): df[c].to_numpy() for c in df.columns}
    extra_c = gates_metrics_file(a.candidate)
    extra_b = gates_metrics_file(a.baseline)
    data = task_gates.TaskPredictions(task, arrays[a.label_column], arrays[a.candidate_column],
                                      arrays[baseline_col] if baseline_col else None, columns, src,
                                      names=(a.label_column, a.candidate_column, baseline_col or "baseline"))
    return task_gates.evaluate_task_predictions(policy, data, candidate_name=a.candidate_column,
                                                baseline_name=baseline_col, extra_candidate=extra_c,
                                                extra_baseline=extra_b).report


def gates_metrics_file(path):
    from console.evaluate import gates

    return gates.load_metrics_file(path) if path else None


# -- drift ------------------------------------------------------------------------------------------


def _drift_rows(report) -> str:
    def f(x):
        return "-" if x is None else f"{x:.4g}"

    head = (f"drift {report.severity.upper()}: {sum(x.severity != 'none' for x in report.features)}/"
            f"{len(report.features)} columns drifted (share {report.drift_share:.0%}, dataset drift "
            f"{'yes' if report.dataset_drift else 'no'}); {report.reference_rows} reference rows, "
            f"{report.current_rows} current rows")
    rows = [[x.name, x.kind, x.method, f(x.statistic), f(x.p_value), f(x.extra.get("p_adjusted")), f(x.extra.get("psi")),
             x.severity] for x in report.features]
    return head + "\n" + table(["column", "kind", "method", "statistic", "p", "p adj", "psi", "severity"], rows)


def kinds_from_schema(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    from console.evaluate.validation import load_json, parse_schema

    schema = parse_schema(load_json(path, "schema"), str(path))
    kinds = {c: "numeric" for c in schema["numeric_columns"]}
    for c in schema["categorical_columns"]:
        if c in kinds:
            raise BadInputError(f"{path}: categorical_columns: {c!r} is also in numeric_columns")
        kinds[c] = "categorical"
    return kinds


def cmd_drift(ctx: Context) -> int:
    from console.evaluate import drift

    a = ctx.args
    if not 0 < a.alpha < 1:
        raise BadInputError(f"--alpha: must be within (0, 1), not {a.alpha}")
    if a.threads < 1:
        raise BadInputError("--threads: must be at least 1")
    if a.html:
        from console.evaluate.report import check_output_path

        check_output_path(a.html)
    if a.model:
        if a.reference or a.current:
            raise BadInputError("drift: give --model, or --reference and --current, not both")
        check_name(a.model, "model")
        version = a.version
        if not version:
            version = ctx.registry.get_pointers(a.model).get("candidate")
            if not version:
                raise BadInputError(f"drift --model {a.model}: no candidate version; give --version")
        report = drift.version_drift(ctx.workspace, a.model, check_name(version, "version"),
                                     record=not getattr(a, "read_only", False))
        reference_data = current_data = None
    else:
        if not (a.reference and a.current):
            raise BadInputError("drift: give --reference F and --current F (or --model M)")
        from console.evaluate.validation import read_table

        kinds = kinds_from_schema(a.schema)
        ref_df, cur_df = read_table(a.reference), read_table(a.current)
        for name, df in ((a.reference, ref_df), (a.current, cur_df)):
            if len(df) == 0:
                raise BadInputError(f"{name}: no rows")
            unknown = [c for c in kinds if c not in df.columns]
            if unknown:
                raise BadInputError(f"{name}: {unknown[0]}: column named in {a.schema} is missing")
        if kinds:
            ref_df, cur_df = ref_df[[c for c in ref_df.columns if c in kinds]], cur_df[[c for c in cur_df.columns if c in kinds]]
        report = drift.drift_report(ref_df, cur_df, kinds=kinds, alpha=a.alpha, threads=a.threads,
                                    source_reference=str(a.reference), source_current=str(a.current))
        report.reference, report.current = str(a.reference), str(a.current)
    if a.html:
        from console.evaluate.report import drift_html, write_text_atomic

        write_text_atomic(a.html, drift_html(report))
    ctx.emit(report.to_dict(), lambda: _drift_rows(report))
    return 1 if report.severity == "critical" else 0


# -- validate ------------------------------------------------------------------------------------


def cmd_validate(ctx: Context) -> int:
    from console.evaluate import validation

    a = ctx.args
    for flag, value in (("--max-null-fraction", a.max_null_fraction), ("--max-drift", a.max_drift)):
        if not value >= 0 or value != value:
            raise BadInputError(f"{flag}: must be a non-negative number")
    if a.write_baseline:
        from console.evaluate.report import check_output_path

        check_output_path(a.write_baseline)
        schema = validation.parse_schema(validation.load_json(a.schema, "schema"), str(a.schema))
        df = validation.read_table(a.data)
        stats = validation.baseline_stats(df, schema, data_source=str(a.data), schema_source=str(a.schema))
        validation.write_json_atomic(a.write_baseline, stats)
        ctx.emit({"baseline": str(a.write_baseline), **stats}, f"baseline stats of {a.data} written to {a.write_baseline}")
        return 0
    result = validation.validate_files(a.data, a.schema, a.baseline, max_null_fraction=a.max_null_fraction,
                                       max_drift_threshold=a.max_drift)
    ctx.emit(result.to_dict(), lambda: f"{a.data}: validation {'PASSED' if result.passed else 'FAILED'} ({result.rows} rows)\n"
             + table(["", "check", "detail"], [["ok" if ok else "FAIL", name, result.details.get(name, "")]
                                               for name, ok in result.checks.items()]))
    return 0 if result.passed else 1


# -- report ---------------------------------------------------------------------------------------


def cmd_report(ctx: Context) -> int:
    from console.evaluate import report as reports

    a = ctx.args
    if not (a.html or a.md):
        raise BadInputError("report: give --html FILE and/or --md FILE")
    check_name(a.model, "model")
    check_name(a.version, "version")
    for target in (a.html, a.md):
        if target:
            reports.check_output_path(target)
    ctx.progress("evaluating gates", 0.1)
    bundle = reports.collect(ctx.workspace, a.model, a.version, a.policy, progress=ctx.progress)
    written = []
    if a.html:
        reports.write_text_atomic(a.html, reports.render_html(bundle))
        written.append(a.html)
    if a.md:
        reports.write_text_atomic(a.md, reports.render_markdown(bundle))
        written.append(a.md)
    ctx.progress("report written", 1.0)
    gate = bundle.evaluation.report
    ctx.emit({"written": written, "passed": gate.passed, "gate": gate.to_dict(),
              "drift": bundle.drift.to_dict() if bundle.drift else None},
             f"{a.model} {a.version}: gates {'passed' if gate.passed else 'FAILED'}; wrote {', '.join(written)}")
    return 0


def _request_approvals(ctx: Context, report) -> None:
    """[policy.production]: a version that passed its (configured) gates and needs approvals says so
    in the audit log (`approval.requested`, which alerting turns into a page). Never in --read-only."""
    if report.passed is not True or _custom_gate_policy(ctx) or getattr(ctx.args, "read_only", False) \
            or "policy" not in ctx.workspace.config:
        return
    from console.release.policy import workspace_policy
    from console.release.actions import request_after_gate

    request_after_gate(ctx.registry, ctx.workspace.audit(), workspace_policy(ctx.workspace), ctx.args.model,
                       ctx.args.version, report, actor=ctx.actor)


def _custom_gate_policy(ctx: Context) -> bool:
    """Gates judged by a --policy file of the caller's choosing ask nobody for approvals."""
    return bool(getattr(ctx.args, "policy", None))
