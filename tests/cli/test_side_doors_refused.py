"""Side doors and bad input found in review: each now refused with one line, exit 2, nothing written."""

from __future__ import annotations

import pytest

from backends.base import BackendError, TrafficSplit
from tests.support.cli import tree_digest


def _ws(path):
    return ["--workspace", str(path)]


def test_production_and_canary_aliases_only_move_through_their_commands(synthetic_ws, mrc):
    before = tree_digest(synthetic_ws)
    for alias in ("production", "canary"):
        result = mrc("alias", "breast-cancer", alias, "3", *_ws(synthetic_ws))
        assert result.returncode == 2 and "mrc promote" in result.stderr
    assert tree_digest(synthetic_ws) == before
    assert mrc("alias", "breast-cancer", "shadow", "3", *_ws(synthetic_ws)).returncode == 0


def test_approval_without_gates_needs_an_override_and_is_recorded_as_one(synthetic_ws, mrc):
    before = tree_digest(synthetic_ws)
    refused = mrc("approve", "breast-cancer", "3", "--reason", "x", "--no-gates", *_ws(synthetic_ws))
    assert refused.returncode == 2 and "--override" in refused.stderr
    assert tree_digest(synthetic_ws) == before
    ok = mrc("approve", "breast-cancer", "3", "--reason", "hotfix, gates run later", "--no-gates", "--override",
             "--json", *_ws(synthetic_ws))
    assert ok.returncode == 0, ok.stderr
    assert ok.json()["approval"]["override"] is True


class _BrokenTraffic:
    """A traffic backend whose split is live but whose rollback call fails."""

    def get_split(self, model):
        return TrafficSplit(model, {"2": 75, "5": 25}, 3)

    def rollback(self, model, stable_version):
        raise BackendError("router unreachable")


def test_a_rollback_whose_traffic_fails_still_audits_the_pointer_move(synthetic_ws):
    from backends.local.registry import LocalRegistry
    from console.release.audit import AuditLog
    from console.release.actions import rollback

    registry, audit = LocalRegistry(synthetic_ws), AuditLog(str(synthetic_ws / "mrc.db"))
    outcome = rollback(registry, audit, "breast-cancer", actor="oncall", reason="3am", traffic=_BrokenTraffic())
    assert outcome.changed and registry.get_pointers("breast-cancer")["production"] == "1"
    assert "router unreachable" in outcome.detail["traffic_error"]
    actions = [(e.action, e.version) for e in audit.events()[-2:]]
    assert actions == [("rollback", "1"), ("rollback-traffic-failed", "1")]
    assert audit.verify().ok


@pytest.mark.parametrize("toml,needle", [
    ('[models.breast-cancer]\ntrain_data = 5\n', "models.breast-cancer.train_data"),
    ('[models]\nbreast-cancer = "oops"\n', "[models.breast-cancer]"),
    ('[metrics]\nbackend = "prometheus"\nurl = "https://u:secretpw@prom.example"\n', "credentials"),
    ('[metrics]\nbackend = "prometheus"\nretries = "x"\n', "metrics.retries"),
])
def test_bad_config_values_are_one_line(synthetic_ws, mrc, toml, needle):
    (synthetic_ws / "mrc.toml").write_text(toml)
    before = tree_digest(synthetic_ws)
    args = ["train", "breast-cancer"] if "models" in toml else ["canary", "start", "breast-cancer", "5", "--override", "--reason", "x"]
    result = mrc(*args, *_ws(synthetic_ws))
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr and result.stderr.count("\n") == 1
    assert "secretpw" not in result.stderr + result.stdout
    assert tree_digest(synthetic_ws) == before


@pytest.mark.parametrize("flag,value", [("--hold", "nan"), ("--interval", "inf"), ("--interval", "nan"),
                                        ("--min-requests", "-5"), ("--max-error-delta", "nan")])
def test_canary_plans_that_could_never_judge_are_refused(synthetic_ws, mrc, flag, value):
    before = tree_digest(synthetic_ws)
    result = mrc("canary", "start", "breast-cancer", "5", flag, value, *_ws(synthetic_ws))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert tree_digest(synthetic_ws) == before


def test_init_and_demo_refuse_a_file_and_audit_creates_nothing(tmp_path, mrc):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    for args in (["init"], ["demo", "--no-tui"]):
        result = mrc(*args, *_ws(a_file))
        assert result.returncode == 2 and "not a folder" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = mrc("audit", "--json", *_ws(empty))
    assert result.returncode == 0 and result.json() == {"events": []}
    assert list(empty.iterdir()) == []
