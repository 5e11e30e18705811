"""Any team's model, released through `mrc` alone (real subprocesses, real servers).

Three registries of models mrc did not make (conftest.py): an MLflow registry (sklearn, pyfunc
from code and pytorch flavours as MLflow 3 logged models, a bad one registered from run
artifacts), and a seed-layout bucket on SeaweedFS with TorchScript and with ONNX versions. For
each: `versions`, `gate` without and with a test set (a CSV path, an s3:// URI, a Parquet
path), `approve`, `report --html`, the console's review through Pilot, and last the release:
`serve-models`, `load`, a canary that promotes the good candidate, `rollback`, a canary that
rolls back a drilled bad one, `serve-models --stop`.

The tests of one registry share its state (approvals, pointers): the release test runs last and
leaves production where it found it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from tests.support.cli import REPO, mrc_env, run_mrc, tree_digest
from tests.support.remote import remote_env
from tests.support import teamdata
from tests.support.teams import ONNX_MODEL, PICKLE_MODEL, TS_MODEL, alive, kill_recorded, recorded_pids

pytestmark = pytest.mark.integration

DATA_KINDS = ("slice", "fairness", "significance", "robustness", "sanity")
# A window must hold --min-requests per variant: at 50 % of 50 req/s a 1 s window holds ≈ 25.
# A rehearsal: seconds of traffic cannot have the power the default plan waits for (`off`).
FAST_CANARY = ["--plan", "50,100", "--hold", "1", "--interval", "1", "--min-requests", "10", "--min-detectable", "off"]



@dataclass
class Team:
    key: str
    model: str
    production: str
    candidate: str
    bad: str
    others: list[str]  # further good versions (MLflow: the pytorch one)
    commits: dict[str, str]
    data_uri: dict[str, str]
    metrics: dict[str, dict[str, float]]
    formats: dict[str, str | None]  # the canonical format mrc must report, None: found by sniffing
    test_data: str
    make_ws: Callable[..., Path]
    artifact_file: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def versions(self) -> list[str]:
        return [self.production, self.candidate, *self.others, self.bad]

    def plain_ws(self) -> Path:
        """Out of the box: the registry and nothing else in mrc.toml."""
        return self.make_ws({}, name="ws-plain")

    def data_ws(self) -> Path:
        """With a test set. The policy is the default one with a latency limit for a busy 2-core
        test machine: with data, the gate times the models itself (p99 of 80 ms seen at load 19)."""
        root = self.make_ws({self.model: {"test_data": self.test_data, "label": teamdata.LABEL,
                                          "gate_policy": "policy.json"}}, name="ws-data")
        (root / "policy.json").write_text(json.dumps({**DEFAULT_POLICY, "max_p99_latency_ms": 1000}))
        return root


@pytest.fixture(params=["mlflow", "s3-torchscript", "s3-onnx"])
def team(request, team_data) -> Team:
    if request.param == "mlflow":
        mlflow_ws = request.getfixturevalue("mlflow_ws")
        built = request.getfixturevalue("mlflow_team")
        v = built["versions"]
        by_kind = {kind: v[kind] for kind in v}
        return Team(
            "mlflow", built["model"], v["sklearn"], v["pyfunc"], v["classic"], [v["pytorch"]],
            commits={by_kind[k]: c for k, c in built["commits"].items()},
            data_uri={by_kind[k]: built["data"]["train_drifted" if k == "classic" else "train"] for k in by_kind},
            metrics={by_kind[k]: m for k, m in built["metrics"].items()},
            formats={version: "mlflow-pyfunc" for version in v.values()},
            test_data=built["data"]["test"], make_ws=mlflow_ws, extra={"sources": built["sources"]})
    s3 = request.getfixturevalue("s3_team")
    s3_ws = request.getfixturevalue("s3_ws")
    model = TS_MODEL if request.param == "s3-torchscript" else ONNX_MODEL
    info = s3["models"][model]
    v = info["versions"]
    return Team(
        request.param, model, v["good"], v["candidate"], v["bad"], [],
        commits={v[k]: c for k, c in info["commits"].items()},
        data_uri={v[k]: uri for k, uri in info["data"].items()},
        metrics={v[k]: m for k, m in info["metrics"].items()},
        formats={version: (None if model == TS_MODEL else "onnx") for version in v.values()},
        # TorchScript's test set is read from the bucket, ONNX's from a local Parquet file
        test_data=s3["data"]["test"] if model == TS_MODEL else str(team_data["test_parquet"]),
        make_ws=s3_ws, artifact_file="model.pt" if model == TS_MODEL else "model.onnx")


def mrc_in(ws: Path, *args: str, timeout: float = 300):
    return run_mrc(*args, "--workspace", str(ws), env=remote_env(), timeout=timeout)


def versions_of(team: Team, ws: Path) -> dict[str, dict]:
    result = mrc_in(ws, "versions", team.model, "--json")
    assert result.returncode == 0, result.stderr
    return {v["version"]: v for v in result.json()["versions"]}


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def failing(report: dict) -> list[str]:
    return [f"{c['name']}: {c.get('detail')}" for c in report["checks"] if c["passed"] is False]


def not_run(check: dict) -> bool:
    return check.get("status") == "not_run" or "not run" in (check.get("detail") or "").lower()


def seed_verdicts(candidate: dict, baseline: dict, policy: dict) -> dict[str, bool]:
    """The seed article's evaluate_promotion, check by check, on recorded metrics."""
    out = {}
    for metric, threshold in policy.get("hard_gates", {}).items():
        value = candidate[metric]
        higher = policy["metric_directions"][metric] == "higher"
        out[f"hard_gate_{metric}"] = value >= threshold if higher else value <= threshold
    for metric, tolerance in policy.get("relative_gates", {}).items():
        cand, base = candidate[metric], baseline[metric]
        higher = policy["metric_directions"][metric] == "higher"
        regression = ((base - cand) if higher else (cand - base)) / base if base != 0 else 0
        out[f"relative_gate_{metric}"] = regression < tolerance
    if "p99_latency_ms" in candidate and "max_p99_latency_ms" in policy:
        out["latency_gate"] = candidate["p99_latency_ms"] <= policy["max_p99_latency_ms"]
    if "model_size_mb" in candidate and "max_model_size_mb" in policy:
        out["size_gate"] = candidate["model_size_mb"] <= policy["max_model_size_mb"]
    return out


DEFAULT_POLICY = json.loads((REPO / "assets" / "gate_policy.json").read_text())


# -- registry ---------------------------------------------------------------------------------

def test_versions_show_format_lineage_and_data(team):
    from console.plugins import known_format

    versions = versions_of(team, team.plain_ws())
    assert set(team.versions) <= set(versions)
    assert versions[team.production]["aliases"] == ["production"]
    assert versions[team.candidate]["aliases"] == ["candidate"]
    for version in team.versions:
        shown = versions[version]
        assert shown["lineage"]["code_commit"] == team.commits[version], version
        assert shown["lineage"]["data_uri"] == team.data_uri[version], version
        assert shown["metrics"]["auc_roc"] == pytest.approx(team.metrics[version]["auc_roc"]), version
        if team.formats[version]:
            assert known_format(shown["artifact"]["format"]) == team.formats[version], shown["artifact"]
        if team.artifact_file:
            assert shown["artifact"]["uri"].endswith(team.artifact_file), shown["artifact"]
    if team.key == "mlflow":  # MLflow 3 logged models and a classic run-artifact registration
        sources = team.extra["sources"]
        assert all(sources[k].startswith("models:/m-") for k in ("sklearn", "pyfunc", "pytorch"))
        assert sources["classic"].startswith("runs:/")


# -- gates --------------------------------------------------------------------------------------

def test_gate_without_a_test_set_follows_the_seed_on_recorded_metrics(team):
    ws = team.plain_ws()
    before = tree_digest(ws)
    for version in [team.candidate, *team.others, team.bad]:
        result = mrc_in(ws, "gate", team.model, version, "--json")
        assert result.returncode in (0, 1), result.stderr
        report = result.json()
        assert report["baseline"] == team.production
        checks = {c["name"]: c for c in report["checks"]}
        expected = seed_verdicts(team.metrics[version], team.metrics[team.production], DEFAULT_POLICY)
        assert {name: checks[name]["passed"] for name in expected} == expected, version
        assert checks["hard_gate_auc_roc"]["value"] == pytest.approx(team.metrics[version]["auc_roc"])
        assert checks["relative_gate_auc_roc"]["baseline_value"] == pytest.approx(
            team.metrics[team.production]["auc_roc"])
        skipped = [c for c in report["checks"] if not_run(c)]
        assert skipped and all(c["kind"] in DATA_KINDS for c in skipped), report["checks"]
        assert all(not_run(c) for c in report["checks"] if c["kind"] in DATA_KINDS)
        good = version != team.bad
        assert all(expected.values()) is good, expected  # the data says so, not the test
        assert result.returncode == (0 if good else 1), report
        assert report["passed"] is good
    assert tree_digest(ws) == before  # a gate is a read


def test_gate_leaves_the_working_directory_clean(team, tmp_path):
    """Issue 10 item 7: no mlflow.db, no mlruns/ where mrc was started."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    ws = team.plain_ws()
    proc = subprocess.run([sys.executable, "-m", "console.cli", "gate", team.model, team.candidate, "--json",
                           "--workspace", str(ws)], cwd=cwd, env=mrc_env(remote_env()), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in cwd.iterdir()) == []


def test_gate_with_a_test_set_scores_the_models_themselves(team):
    """With test_data the gate loads each model through its format and scores the test set: the
    AUC it finds equals the one the team's own library computed on the same rows. Every version
    is gated before the test judges, so one report names every version that went wrong."""
    ws = team.data_ws()
    refs = [(ws, version) for version in [team.candidate, *team.others, team.bad]]
    if team.key == "mlflow":  # the test set the candidate's run logged as its "testing" input
        logged = team.make_ws({team.model: {"test_data": "mlflow:testing", "label": teamdata.LABEL,
                                            "gate_policy": str(ws / "policy.json")}}, name="ws-logged")
        refs.append((logged, team.candidate))
    problems = []
    for where, version in refs:
        result = mrc_in(where, "gate", team.model, version, "--json")
        what = f"{team.model} {version} ({where.name})"
        if result.returncode not in (0, 1):
            problems.append(f"{what}: exit {result.returncode}: {result.stderr.strip()[-300:]}")
            continue
        report = result.json()
        checks = {c["name"]: c for c in report["checks"]}
        if checks["hard_gate_auc_roc"]["value"] != pytest.approx(team.metrics[version]["auc_roc"], abs=1e-3):
            problems.append(f"{what}: AUC {checks['hard_gate_auc_roc']['value']} on the test set, the team's "
                            f"library says {team.metrics[version]['auc_roc']}")
        if checks["relative_gate_auc_roc"]["baseline_value"] != pytest.approx(
                team.metrics[team.production]["auc_roc"], abs=1e-3):
            problems.append(f"{what}: production AUC {checks['relative_gate_auc_roc']['baseline_value']}")
        skipped = [c["name"] for c in report["checks"] if not_run(c)]
        if skipped or not {c["kind"] for c in report["checks"]} & {"significance", "slice"}:
            problems.append(f"{what}: data checks not run: {skipped}")
        expected = 1 if version == team.bad else 0
        if result.returncode != expected:
            problems.append(f"{what}: exit {result.returncode}, expected {expected}: {failing(report)}")
    assert not problems, "\n".join(problems)


def test_a_wrong_test_set_is_one_line_exit_2(team, tmp_path):
    bad_csv = tmp_path / "no-label.csv"
    bad_csv.write_text("mean_radius,mean_texture\n1.0,2.0\n")
    for ref, words in ((str(bad_csv), "target"), (str(tmp_path / "missing.csv"), "missing.csv")):
        ws = team.make_ws({team.model: {"test_data": ref, "label": teamdata.LABEL}}, name=f"ws-{Path(ref).stem}")
        before = tree_digest(ws)
        result = mrc_in(ws, "gate", team.model, team.candidate)
        assert result.returncode == 2, result.stderr
        assert words in one_line(result.stderr)
        assert tree_digest(ws) == before


def test_a_pickled_torch_model_is_refused_unless_trusted(s3_team, s3_ws):
    """torch.save(module) runs arbitrary code on load: refused with one line saying how to allow it."""
    versions = s3_team["models"][PICKLE_MODEL]["versions"]
    keys = {"test_data": s3_team["data"]["test"], "label": teamdata.LABEL}
    ws = s3_ws({PICKLE_MODEL: keys}, name="ws-pickle")
    before = tree_digest(ws)
    refused = mrc_in(ws, "gate", PICKLE_MODEL, versions["candidate"])
    assert refused.returncode == 2, refused.stderr
    assert "trust_pickle" in one_line(refused.stderr)
    assert tree_digest(ws) == before
    trusted = s3_ws({PICKLE_MODEL: {**keys, "trust_pickle": True}}, name="ws-pickle-trusted")
    result = mrc_in(trusted, "gate", PICKLE_MODEL, versions["candidate"], "--json")
    assert result.returncode in (0, 1), result.stderr
    assert {c["name"]: c for c in result.json()["checks"]}["hard_gate_auc_roc"]["value"] > 0.9


# -- approval and report ------------------------------------------------------------------------

def test_approve_needs_override_when_checks_did_not_run(team):
    ws = team.plain_ws()
    assert versions_of(team, ws)[team.candidate]["approval"]["status"] == "pending"
    refused = mrc_in(ws, "approve", team.model, team.candidate, "--reason", "recorded metrics look fine")
    assert refused.returncode == 1, refused.stderr
    assert "override" in one_line(refused.stderr)
    assert versions_of(team, ws)[team.candidate]["approval"]["status"] == "pending"

    done = mrc_in(ws, "approve", team.model, team.candidate, "--reason", "no test set yet; recorded metrics pass",
                  "--override", "--json")
    assert done.returncode == 0, done.stderr
    approval = versions_of(team, ws)[team.candidate]["approval"]
    assert (approval["status"], approval["override"], approval["by"]) == ("approved", True, "tester")
    events = mrc_in(ws, "audit", "--json").json()["events"]
    event = [e for e in events if e["action"] == "approve" and e["version"] == team.candidate][-1]
    assert event["details"]["override"] is True
    said = json.dumps(event["details"]).lower()
    assert "not run" in said or "not_run" in said, event["details"]

    bad = mrc_in(ws, "approve", team.model, team.bad, "--reason", "ship it")
    assert bad.returncode == 1 and "gates failed" in one_line(bad.stderr)
    assert versions_of(team, ws)[team.bad]["approval"]["status"] != "approved"


def test_report_html_is_written(team, tmp_path):
    ws = team.plain_ws()
    out = tmp_path / "report.html"
    result = mrc_in(ws, "report", team.model, team.candidate, "--html", str(out))
    assert result.returncode == 0, result.stderr
    html = out.read_text()
    assert team.model in html and team.candidate in html and team.commits[team.candidate] in html
    assert "not run" in html.lower()


# -- the console's review -----------------------------------------------------------------------

def test_console_review_shows_gates_drift_and_lineage(team):
    """The review screen, driven by Pilot: the candidate's gate report (data checks not run),
    its lineage with the commit; the bad version's drift against production's training data,
    read from where the registry says it is."""
    from textual.widgets import DataTable, Tree

    from screens.review_screen import ReviewScreen
    from tests.support.pilot import make_app, run, settle

    ws = team.plain_ws()

    async def review(version: str):
        app = make_app(ws)
        async with app.run_test(size=(160, 60)) as pilot:
            await settle(app, pilot)
            app.run_command(f"review {team.model} {version}")
            for _ in range(20):  # remote registries: wait for every worker, however long
                await settle(app, pilot)
                screen = app.screen
                if isinstance(screen, ReviewScreen) and screen.gate_state != "running" and \
                        str(screen.query_one("#drift-status").render()):
                    break
            screen = app.screen
            assert isinstance(screen, ReviewScreen)
            table = screen.query_one("#gates", DataTable)
            rows = [" ".join(str(cell) for cell in table.get_row_at(i)) for i in range(table.row_count)]
            labels = []

            def walk(node):
                labels.append(str(node.label))
                for child in node.children:
                    walk(child)

            walk(screen.query_one("#lineage", Tree).root)
            return (screen.gate_state, str(screen.query_one("#gates-status").render()), rows,
                    str(screen.query_one("#drift-status").render()), getattr(screen, "drift_report", None), labels)

    state, status, rows, drift_status, drift, lineage = run(review(team.candidate))
    assert state == "done", status
    assert "PASSED" in status, status
    assert any("not run" in row.lower() for row in rows), rows
    assert any(team.commits[team.candidate][:12] in label for label in lineage), lineage
    assert not drift_status.startswith("⚠"), drift_status

    state, status, rows, drift_status, drift, lineage = run(review(team.bad))
    assert state == "done" and "FAILED" in status, status
    assert not drift_status.startswith("⚠") and drift is not None, drift_status
    drifted = {f.name for f in drift.features if f.severity != "none"}
    assert len(drifted & set(teamdata.DRIFTED)) >= 3, drifted
    used = json.dumps(drift.to_dict())
    assert team.data_uri[team.bad] in used and team.data_uri[team.production] in used


# -- the release --------------------------------------------------------------------------------

def _pointers(team: Team, ws: Path) -> dict[str, str]:
    return {alias: v for v, shown in versions_of(team, ws).items() for alias in shown["aliases"]}


def test_release_serve_load_canary_rollback(team, background):
    ws = team.data_ws()
    try:
        served = mrc_in(ws, "serve-models", team.model, "--versions",
                        ",".join([team.production, team.candidate, team.bad]), "--json")
        assert served.returncode == 0, served.stderr
        assert recorded_pids(ws), "serve-models recorded no processes"

        load = mrc_in(ws, "load", team.model, "--rate", "20", "--duration", "3", "--json")
        assert load.returncode == 0, load.stderr
        counts = load.json()
        assert counts["ok"] > 0 and counts["errors"] == 0 and counts["failed"] == 0, counts

        approved = mrc_in(ws, "approve", team.model, team.candidate, "--reason", "canary of a team's model",
                          "--override")
        assert approved.returncode == 0, approved.stderr
        background.start("load", team.model, "--rate", "50", "--duration", "600", "--workspace", str(ws))

        canary = mrc_in(ws, "canary", "start", team.model, team.candidate, *FAST_CANARY, "--json", timeout=300)
        if team.key == "mlflow" and canary.returncode == 1:
            # The team's candidate is a model-from-code PythonModel. On a loaded machine MLflow's
            # scoring server has answered it up to ~3x slower than the sklearn flavour in production,
            # and then the within-window latency test rolls it back (seen once at log-latency +1.1
            # vs a +0.095 margin); on a calmer one it is promoted. Either way the verdict is the
            # judge's own: a rollback must name latency, and a person then promotes.
            assert canary.json()["status"] == "rolled_back" and "latency" in canary.json()["reason"], canary.stdout
            promoted = mrc_in(ws, "promote", team.model, team.candidate, "--reason", "slower, accepted by a person")
            assert promoted.returncode == 0, promoted.stderr
        else:
            assert canary.returncode == 0, canary.stderr
            assert canary.json()["status"] == "promoted"
        assert _pointers(team, ws)["production"] == team.candidate

        back = mrc_in(ws, "rollback", team.model, "--reason", "rehearsal: back to the old model", "--json")
        assert back.returncode == 0, back.stderr
        assert back.json()["version"] == team.production
        assert _pointers(team, ws)["production"] == team.production

        drill = mrc_in(ws, "drill", team.model, team.bad, "--error-rate", "0.5")
        assert drill.returncode == 0, drill.stderr
        canary = mrc_in(ws, "canary", "start", team.model, team.bad, *FAST_CANARY, "--override", "--reason",
                        "drilled bad model", "--json", timeout=300)
        assert canary.returncode == 1, canary.stderr
        state = canary.json()
        assert state["status"] == "rolled_back" and "error_rate" in state["reason"], state
        assert _pointers(team, ws)["production"] == team.production

        pids = recorded_pids(ws)
        stopped = mrc_in(ws, "serve-models", team.model, "--stop", "--json")
        assert stopped.returncode == 0, stopped.stderr
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in pids if alive(pid)], "serve-models --stop left processes running"
    finally:
        background.close()
        kill_recorded(ws)
