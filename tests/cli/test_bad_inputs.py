"""Every malformed input is refused the same way: exit code 2, exactly one line on stderr, and
nothing written anywhere — neither in the workspace nor beside the inputs.

The cases run in-process through `console.cli.main` (the same dispatcher a real `mrc` runs) so
that 200+ of them fit in well under a minute; a handful run again as real processes at the end.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from tests.support.cli import tree_digest

MODEL = "breast-cancer"
LONG = "n" * 100_000

GOOD_POLICY = {"metric_directions": {"auc_roc": "higher", "p99_latency_ms": "lower"},
               "hard_gates": {"auc_roc": 0.5}, "max_p99_latency_ms": 100, "max_model_size_mb": 10}
GOOD_METRICS = {"auc_roc": 0.9, "p99_latency_ms": 5.0, "model_size_mb": 1.0}
GOOD_SCHEMA = {"numeric_columns": ["a", "b"], "categorical_columns": []}

# name -> file content (str) ; a None content makes a folder of that name
BAD_JSON = {
    "bigint.json": '{"auc_roc": ' + "9" * 400 + "}",
    "negbigint.json": '{"auc_roc": -' + "9" * 400 + "}",
    "deep.json": "[" * 100_000 + "]" * 100_000,
    "deepobj.json": '{"a":' * 50_000 + "1" + "}" * 50_000,
    "nan.json": '{"auc_roc": NaN, "p99_latency_ms": 5, "model_size_mb": 1}',
    "inf.json": '{"auc_roc": 0.9, "p99_latency_ms": Infinity, "model_size_mb": 1}',
    "neginf.json": '{"auc_roc": 0.9, "p99_latency_ms": -Infinity, "model_size_mb": 1}',
    "hugefloat.json": '{"auc_roc": 0.9, "p99_latency_ms": 1e999, "model_size_mb": 1}',
    "empty.json": "",
    "blank.json": "   \n",
    "invalid.json": '{"auc_roc": 0.9,',
    "list.json": "[1, 2, 3]",
    "string.json": '"auc_roc"',
    "binary.json": "\x00\x01\x02\xff",
    "dirjson": None,
}
NEG_METRICS = {
    "neglatency.json": {"auc_roc": 0.9, "p99_latency_ms": -5.0, "model_size_mb": 1.0},
    "negsize.json": {"auc_roc": 0.9, "p99_latency_ms": 5.0, "model_size_mb": -1.0},
    "strlatency.json": {"auc_roc": 0.9, "p99_latency_ms": "fast", "model_size_mb": 1.0},
}
BAD_POLICIES = {
    "pol_unknown_key.json": {**GOOD_POLICY, "hard_gate": {}},
    "pol_bad_direction.json": {**GOOD_POLICY, "metric_directions": {"auc_roc": "up"}},
    "pol_no_direction.json": {"metric_directions": {}, "hard_gates": {"auc_roc": 0.5}},
    "pol_neg_latency.json": {**GOOD_POLICY, "max_p99_latency_ms": -1},
    "pol_threshold.json": {**GOOD_POLICY, "threshold": 5},
    "pol_bool_gate.json": {**GOOD_POLICY, "hard_gates": {"auc_roc": True}},
}
BAD_CSV = {
    "dup.csv": "a,b,a\n1,2,3\n4,5,6\n",
    "dup2.csv": "a,a\n1,2\n",
    "empty.csv": "",
    "header_only.csv": "a,b\n",
    "data.parquet.csv": "PAR1\x00\x00garbage",
    "unknown.xlsx": "a,b\n1,2\n",
    "dircsv": None,
}
BAD_SCHEMAS = {
    "schema_not_list.json": {"numeric_columns": "a"},
    "schema_not_object.json": ["a"],
}

TOML_CASES = {
    "toml_dir": None,
    "toml_invalid": "[registry\nbackend = 'local'",
    "toml_s3_not_url": '[registry]\nbackend = "s3"\nbucket = "b"\nendpoint_url = "not a url"\n',
    "toml_s3_no_host": '[registry]\nbackend = "s3"\nbucket = "b"\nendpoint_url = "http://"\n',
    "toml_s3_bad_port": '[registry]\nbackend = "s3"\nbucket = "b"\nendpoint_url = "http://127.0.0.1:99999999"\n',
    "toml_s3_userinfo": '[registry]\nbackend = "s3"\nbucket = "b"\nendpoint_url = "http://AKIA:SENTINEL-s3@127.0.0.1:8333"\n',
    "toml_mlflow_token": '[registry]\nbackend = "mlflow"\ntracking_uri = "http://127.0.0.1:5000/?token=SENTINEL-ml"\n',
    "toml_mlflow_userinfo": '[registry]\nbackend = "mlflow"\ntracking_uri = "https://u:SENTINEL-ml@h.example"\n',
    "toml_prom_token": '[metrics]\nbackend = "prometheus"\nurl = "http://127.0.0.1:9090/?access_token=SENTINEL-p"\n',
    "toml_prom_userinfo": '[metrics]\nbackend = "prometheus"\nurl = "http://ops:SENTINEL-p@127.0.0.1:9090"\n',
    "toml_data_sig": '[data]\nreference = "https://b.s3.example/x.csv?X-Amz-Signature=SENTINEL-sig"\n',
    "toml_unknown_backend": '[registry]\nbackend = "nosuch"\n',
    "toml_role_not_table": 'registry = 3\n',
    "toml_backend_not_str": '[registry]\nbackend = 3\n',
    "toml_lock_negative": '[workspace]\nlock_timeout_s = -1\n',
    "toml_lock_string": '[workspace]\nlock_timeout_s = "ten"\n',
    "toml_lock_bool": '[workspace]\nlock_timeout_s = true\n',
    "toml_workspace_not_table": 'workspace = "x"\n',
    "toml_binary": "\udcff",
    # issue 23: unknown tables and keys are refused, naming the table and the key
    "toml_unknown_traffic_key": '[traffic]\nbackend = "local"\nshadow_log_kep = 3\n',
    "toml_unknown_table": '[trafic]\nbackend = "local"\n',
    "toml_unknown_model_key": '[models.m]\ntest_dat = "t@v1"\n',
    "toml_unknown_workspace_key": '[workspace]\nlock_timeout = 3\n',
    "toml_unknown_registry_key": '[registry]\nbackend = "local"\nbuket = "b"\n',
}
# datasets add: the store keeps finite numbers (issue 23)
DATASET_CSV = {"inf_values.csv": "a,b\n1,2\n3,inf\n", "nan_values.csv": "a,b\n1,nan\n3,4\n",
               "neginf_values.csv": "a,b\n1,2\n-inf,4\n"}

NAME_COMMANDS = [
    ["versions", "{name}"],
    ["promote", "{name}", "1", "--reason", "r"],
    ["promote", MODEL, "{name}", "--reason", "r"],
    ["rollback", "{name}"],
    ["rollback", MODEL, "--to", "{name}"],
    ["rollback", MODEL, "--expect", "{name}"],
    ["approve", "{name}", "1", "--reason", "r"],
    ["approve", MODEL, "{name}", "--reason", "r"],
    ["reject", "{name}", "1", "--reason", "r"],
    ["reject", MODEL, "{name}", "--reason", "r"],
    ["alias", "{name}", "archived", "1"],
    ["alias", MODEL, "archived", "{name}"],
    ["gate", "{name}", "1"],
    ["gate", MODEL, "{name}"],
    ["drift", "--model", "{name}"],
    ["train", "{name}"],
    ["report", MODEL, "{name}", "--md", "{inputs}/r.md"],
]
BAD_NAMES = {"newline": "bc\n", "slash": "a/b", "dotdot": "..", "long": LONG, "esc": "x\x1b[2J",
             "empty": "", "space": "a b"}


def _cases() -> list[tuple[str, list[str], dict]]:
    """(id, argv with {ws} {inputs} placeholders, extra env)."""
    cases: list[tuple[str, list[str], dict]] = []

    def add(case_id, argv, env=None):
        cases.append((case_id, argv, env or {}))

    for name in list(BAD_JSON) + list(NEG_METRICS):
        add(f"metrics-candidate-{name}", ["gate", "--candidate", "{inputs}/" + name, "--policy", "{inputs}/policy.json"])
        add(f"metrics-baseline-{name}", ["gate", "--candidate", "{inputs}/metrics.json", "--baseline",
                                         "{inputs}/" + name, "--policy", "{inputs}/policy.json"])
    for name in list(BAD_JSON) + list(BAD_POLICIES):
        add(f"policy-{name}", ["gate", "--candidate", "{inputs}/metrics.json", "--policy", "{inputs}/" + name])
        add(f"approve-policy-{name}", ["approve", MODEL, "5", "--reason", "r", "--policy", "{inputs}/" + name])
    for name in list(BAD_JSON) + list(BAD_SCHEMAS):
        add(f"schema-{name}", ["validate", "{inputs}/good.csv", "--schema", "{inputs}/" + name])
        add(f"drift-schema-{name}", ["drift", "--reference", "{inputs}/good.csv", "--current", "{inputs}/good.csv",
                                     "--schema", "{inputs}/" + name])
    for name in BAD_JSON:
        add(f"baseline-stats-{name}", ["validate", "{inputs}/good.csv", "--schema", "{inputs}/schema.json",
                                       "--baseline", "{inputs}/" + name])
    for name in list(BAD_CSV) + ["missing.csv"]:
        add(f"drift-reference-{name}", ["drift", "--reference", "{inputs}/" + name, "--current", "{inputs}/good.csv"])
        add(f"drift-current-{name}", ["drift", "--reference", "{inputs}/good.csv", "--current", "{inputs}/" + name])
        if name not in ("header_only.csv", "data.parquet.csv"):  # readable tables: validation judges them (exit 1)
            add(f"validate-data-{name}", ["validate", "{inputs}/" + name, "--schema", "{inputs}/schema.json"])
        add(f"predictions-{name}", ["gate", "--predictions", "{inputs}/" + name, "--policy", "{inputs}/policy.json"])
    for html in ("{inputs}", "{inputs}/", "{inputs}/nosuchdir/d.html", "/"):
        add(f"drift-html-{html}", ["drift", "--reference", "{inputs}/good.csv", "--current", "{inputs}/good.csv",
                                   "--html", html])
    add("report-md-folder", ["report", MODEL, "5", "--md", "{inputs}"])
    for case_id in TOML_CASES:
        # `audit` reads the log in mrc.db whatever the registry: an unknown registry backend is no bad input there
        for command in (["models"], ["versions", MODEL], ["rollback", MODEL]) + ((["audit"],) * (case_id != "toml_unknown_backend")):
            add(f"{case_id}-{command[0]}", [*command, "--workspace", "{inputs}/" + case_id])
    for label, name in BAD_NAMES.items():
        for argv in NAME_COMMANDS:
            add(f"name-{label}-{'-'.join(a for a in argv if '{' not in a)[:40]}", [a.replace("{name}", name) for a in argv])
    for pair in ("lr=nan", "lr=inf", "lr=-inf", "lr=-0.1", "lr=0", "dropout=5", "dropout=1", "dropout=-0.5",
                 "dropout=nan", "epochs=0", "epochs=2.5", "hidden=-3", "nosuch=1", "=1", "noequals", "seed=nan"):
        add(f"train-param-{pair}", ["train", MODEL, "--param", pair])
    for limit in ("-1", "0", "abc", "9" * 5000):
        add(f"audit-limit-{limit[:8]}", ["audit", "--limit", limit])
    for alpha in ("2", "0", "nan", "-1"):
        add(f"drift-alpha-{alpha}", ["drift", "--reference", "{inputs}/good.csv", "--current", "{inputs}/good.csv",
                                     "--alpha", alpha])
    add("drift-threads-0", ["drift", "--reference", "{inputs}/good.csv", "--current", "{inputs}/good.csv", "--threads", "0"])
    for flag, value in (("--max-drift", "-1"), ("--max-drift", "nan"), ("--max-null-fraction", "-0.5"),
                        ("--max-null-fraction", "nan")):
        add(f"validate{flag}={value}", ["validate", "{inputs}/good.csv", "--schema", "{inputs}/schema.json", flag, value])
    add("workspace-empty", ["models", "--workspace", ""])
    add("workspace-empty-rollback", ["rollback", MODEL, "--workspace", ""])
    add("workspace-file", ["models", "--workspace", "{inputs}/metrics.json"])
    add("workspace-missing", ["models", "--workspace", "{inputs}/no-such-workspace"])
    read_only_writes = [
        ["promote", MODEL, "5", "--reason", "r"], ["rollback", MODEL], ["approve", MODEL, "5", "--reason", "r"],
        ["reject", MODEL, "5", "--reason", "r"], ["alias", MODEL, "archived", "1"], ["train", MODEL],
        ["canary", "start", MODEL, "5"], ["canary", "abort", MODEL], ["canary", "pause", MODEL],
        ["serve-models", MODEL], ["load", MODEL, "--rate", "1"], ["drill", MODEL, "5", "--error-rate", "0.1"],
        ["init"], ["demo", "--no-tui"],
        ["validate", "{inputs}/good.csv", "--schema", "{inputs}/schema.json", "--write-baseline", "{inputs}/b.json"],
        ["drift", "--reference", "{inputs}/good.csv", "--current", "{inputs}/good.csv", "--html", "{inputs}/d.html"],
        ["report", MODEL, "5", "--md", "{inputs}/r.md"],
    ]
    for argv in read_only_writes:
        add(f"read-only-{'-'.join(a for a in argv[:2] if '{' not in a)}", ["--read-only", *argv])
    for raw in ("-1", "abc", "nan", "1e9"):
        add(f"lock-timeout-env-{raw}", ["rollback", MODEL], {"MRC_LOCK_TIMEOUT": raw})
    add("serve-remote-host", ["serve", "--host", "0.0.0.0", "--port", "1"])
    add("serve-bad-port", ["serve", "--port", "70000"])
    add("serve-short-token", ["serve", "--port", "1"], {"MRC_SERVE_TOKEN": "short"})
    add("unknown-command", ["nosuch"])
    add("unknown-option", ["models", "--nosuch"])
    add("canary-missing-action", ["canary"])
    # issue 23: every command fails cleanly
    add("unknown-command-typo", ["rollbak", MODEL])
    add("unknown-model-underscore", ["versions", "breast_cancer"])
    add("unknown-version", ["promote", MODEL, "55", "--reason", "r"])
    for name in DATASET_CSV:
        add(f"datasets-add-{name}", ["datasets", "add", "fresh@v1", "{inputs}/" + name])
    add("drill-no-options", ["drill", MODEL, "5"])
    add("drill-off-and-rate", ["drill", MODEL, "5", "--off", "--error-rate", "0.1"])
    add("drill-rate-nan", ["drill", MODEL, "5", "--error-rate", "nan"])
    add("drill-rate-above-1", ["drill", MODEL, "5", "--error-rate", "30"])
    add("revoke-nothing-to-revoke", ["revoke", MODEL, "5", "--reason", "r"])
    add("checkpoint-to-not-s3", ["audit", "checkpoint", "--to", "{inputs}/checkpoints"])
    add("checkpoint-to-no-bucket", ["audit", "checkpoint", "--to", "s3://"])
    return cases


CASES = _cases()


def test_there_are_at_least_200_cases():
    assert len(CASES) >= 200, len(CASES)
    assert len({case_id for case_id, _, _ in CASES}) == len(CASES)


def _write_inputs(root: Path) -> None:
    root.mkdir()
    for name, content in BAD_JSON.items():
        if content is None:
            (root / name).mkdir()
        else:
            (root / name).write_bytes(content.encode("utf-8", "surrogateescape") if "\udcff" in content
                                      else content.encode("latin-1") if name == "binary.json" else content.encode())
    for group in (NEG_METRICS, BAD_POLICIES, BAD_SCHEMAS):
        for name, data in group.items():
            (root / name).write_text(json.dumps(data))
    for name, content in DATASET_CSV.items():
        (root / name).write_text(content)
    for name, content in BAD_CSV.items():
        if content is None:
            (root / name).mkdir()
        else:
            (root / name).write_bytes(content.encode("latin-1"))
    (root / "policy.json").write_text(json.dumps(GOOD_POLICY))
    (root / "metrics.json").write_text(json.dumps(GOOD_METRICS))
    (root / "schema.json").write_text(json.dumps(GOOD_SCHEMA))
    (root / "good.csv").write_text("a,b\n" + "".join(f"{i % 7},{i % 5}\n" for i in range(200)))
    for case_id, content in TOML_CASES.items():
        ws = root / case_id
        ws.mkdir()
        if content is None:
            (ws / "mrc.toml").mkdir()
        else:
            (ws / "mrc.toml").write_bytes(content.encode("utf-8", "surrogateescape"))


@pytest.fixture(scope="module")
def arena(demo_template, tmp_path_factory):
    """A private demo workspace and a folder of malformed inputs, with their digests."""
    base = tmp_path_factory.mktemp("bad-inputs")
    ws = base / "ws"
    shutil.copytree(demo_template, ws)
    inputs = base / "inputs"
    _write_inputs(inputs)
    return ws, inputs, tree_digest(ws), _listing(inputs)


def _listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its size and mtime: whatever a refusal wrote shows up here."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def run_in_process(argv: list[str], env: dict[str, str], monkeypatch) -> tuple[int, str, str]:
    from console import cli

    monkeypatch.setenv("MRC_ACTOR", "tester")
    monkeypatch.delenv("MRC_WORKSPACE", raising=False)
    monkeypatch.delenv("MRC_LOCK_TIMEOUT", raising=False)
    monkeypatch.delenv("MRC_SERVE_TOKEN", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("case_id,argv,env", CASES, ids=[c[0][:60] for c in CASES])
def test_bad_input_is_one_line_exit_2_nothing_written(arena, monkeypatch, tmp_path, case_id, argv, env):
    ws, inputs, ws_digest, inputs_listing = arena
    monkeypatch.chdir(tmp_path)  # a stray relative write would land here
    argv = [a.replace("{inputs}", str(inputs)) for a in argv]
    if "--workspace" not in argv:
        argv += ["--workspace", str(ws)]
    code, out, err = run_in_process(argv, env, monkeypatch)
    lines = err.splitlines()
    assert code == 2, f"exit {code}; stderr: {err[-2000:]!r}"
    assert len(lines) == 1, f"{len(lines)} stderr lines: {err[-2000:]!r}"
    assert len(lines[0]) < 1000, lines[0][:200]
    assert "SENTINEL" not in out + err
    assert "\x1b" not in err
    assert tree_digest(ws) == ws_digest, "the workspace changed"
    assert _listing(inputs) == inputs_listing, "something was written beside the inputs"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [
    ["gate", "--candidate", "{inputs}/bigint.json", "--policy", "{inputs}/policy.json"],
    ["drift", "--reference", "{inputs}/good.csv", "--current", "{inputs}/good.csv", "--html", "{inputs}"],
    ["versions", LONG],
    ["--read-only", "validate", "{inputs}/good.csv", "--schema", "{inputs}/schema.json", "--write-baseline", "{inputs}/b.json"],
], ids=["bigint", "html-dir", "long-name", "read-only-baseline"])
def test_bad_input_as_a_real_process(arena, mrc, argv):
    ws, inputs, ws_digest, inputs_listing = arena
    result = mrc(*[a.replace("{inputs}", str(inputs)) for a in argv], "--workspace", str(ws))
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr[-2000:]
    assert len(result.stderr) < 400
    assert tree_digest(ws) == ws_digest and _listing(inputs) == inputs_listing
