"""Home's batch read: LocalRegistry.model_overviews (one connection for every model) returns
the same records as the Registry protocol's per-model reads (console/overview.py), and home's
rows are the same whichever path built them — on a real SQLite registry with several models,
pointers, a rollback in the history, approvals and rejections."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from backends.base import Approval, Lineage


class ProtocolOnly:
    """A registry offering only the Registry protocol's reads (as a third party's would):
    no batch read, so console/overview.py takes the per-model path."""

    def __init__(self, registry):
        self._registry = registry
        self.calls: list[str] = []

    def __getattr__(self, name):
        if name not in ("list_models", "list_versions", "get_version", "get_pointers", "pointer_history"):
            raise AttributeError(name)
        self.calls.append(name)
        return getattr(self._registry, name)


def _approve(registry, model: str, version: str, status: str, by: str, *, gate: str = "", override: bool = False):
    registry.set_approval(model, version, Approval(status, by, "", f"{status} by {by}", gate, override),
                          expected_status="pending")


def _move(registry, model: str, alias: str, new: str | None, reason: str = "") -> None:
    current = registry.get_pointers(model).get(alias)
    registry.move_pointer(model, alias, expected=current, new=new, actor="alice", reason=reason)


@pytest.fixture
def ws_path(tmp_path) -> Path:
    """Four models through the local registry's own writes:
    - fraud: production 1 → 2 → 3 (3 rejected after it shipped) → rolled back to 2, candidate 5,
      a `canary` alias on 4, an archived alias moved away (None);
    - churn: production 1 → 2, 1 rejected, 2 approved, candidate 3 approved with a gate digest;
    - ranker: a candidate only (never in production);
    - empty-model: registered, every alias removed again."""
    from console.workspace import Workspace

    root = tmp_path / "ws"
    Workspace.init(root)
    registry = Workspace.open(root).registry()
    registry.ensure_schema()
    artifact = tmp_path / "model.bin"
    for i, (model, count) in enumerate((("fraud", 5), ("churn", 3), ("ranker", 2), ("empty-model", 1))):
        for v in range(count):
            artifact.write_bytes(os.urandom(64))
            registry.register_version(model, str(artifact), metrics={"auc_roc": 0.7 + v / 100},
                                      lineage=Lineage(code_commit=f"{i}{v}", data_version=f"d@v{v}", training_run=f"r{v}"))
    for v, status in (("1", "approved"), ("2", "approved"), ("3", "approved"), ("4", "rejected")):
        _approve(registry, "fraud", v, status, "bob")
    for v in ("1", "2", "3"):
        _move(registry, "fraud", "production", v, "release")
    registry.set_approval("fraud", "3", Approval("rejected", "carol", "", "bad in production"), expected_status="approved")
    _move(registry, "fraud", "production", "2", "rollback: 3 is bad")
    _move(registry, "fraud", "candidate", "5")
    _move(registry, "fraud", "canary", "4")
    _move(registry, "fraud", "archived", "1")
    _move(registry, "fraud", "archived", None)
    _approve(registry, "churn", "1", "rejected", "bob")
    _approve(registry, "churn", "2", "approved", "bob")
    _approve(registry, "churn", "3", "approved", "carol", gate="ab" * 32, override=True)
    _move(registry, "churn", "production", "1", "release")
    _move(registry, "churn", "production", "2", "release")
    _move(registry, "churn", "candidate", "3")
    _move(registry, "ranker", "candidate", "2")
    _move(registry, "empty-model", "candidate", "1")
    _move(registry, "empty-model", "candidate", None)
    registry.close()
    return root


def _registry(ws_path):
    from console.workspace import Workspace

    return Workspace.open(ws_path).registry()


def test_the_batch_read_returns_what_the_per_model_reads_return(ws_path):
    from console.overview import model_overviews, overview_from_reads

    registry = _registry(ws_path)
    batch = registry.model_overviews()
    per_model = [overview_from_reads(registry, summary) for summary in registry.list_models()]
    assert batch == per_model
    # and through the dispatcher: a registry without the batch read, with and without its listings
    listings: dict = {}
    assert model_overviews(ProtocolOnly(registry), listings=listings) == batch
    assert sorted(listings) == ["churn", "empty-model", "fraud", "ranker"]
    assert model_overviews(ProtocolOnly(registry)) == batch

    # what the records hold (so that "equal" is not "equal and empty")
    by_name = {o.summary.name: o for o in batch}
    fraud = by_name["fraud"]
    assert fraud.summary.pointers == {"production": "2", "candidate": "5", "canary": "4"}
    assert fraud.summary.versions == 5
    assert [(m.from_version, m.to_version) for m in fraud.production_history] == [
        (None, "1"), ("1", "2"), ("2", "3"), ("3", "2")]
    assert {v: mv.approval.status for v, mv in fraud.versions.items()} == {
        "1": "approved", "2": "approved", "3": "rejected", "4": "rejected", "5": "pending"}
    assert fraud.versions["2"].aliases == ["production"]
    assert fraud.versions["3"].approval.by == "carol" and fraud.versions["1"].aliases == []
    churn = by_name["churn"].versions["3"]
    assert (churn.approval.gate_report_sha256, churn.approval.override, churn.aliases) == ("ab" * 32, True, ["candidate"])
    assert churn.metrics == {"auc_roc": pytest.approx(0.72)} and churn.lineage.code_commit == "12"
    assert by_name["ranker"].production_history == [] and list(by_name["ranker"].versions) == ["2"]
    assert by_name["empty-model"].summary.pointers == {} and by_name["empty-model"].versions == {}


def test_every_version_in_one_read_equals_each_models_list(ws_path):
    registry = _registry(ws_path)
    every = registry.list_all_versions()
    assert list(every) == [summary.name for summary in registry.list_models()]
    assert every == {name: registry.list_versions(name) for name in every}
    assert [mv.version for mv in every["fraud"]] == ["1", "2", "3", "4", "5"]
    assert every["fraud"][4].aliases == ["candidate"] and every["fraud"][3].aliases == ["canary"]


def test_the_batch_read_sees_a_later_write(ws_path):
    from console.overview import overview_from_reads

    registry = _registry(ws_path)
    before = {o.summary.name: o for o in registry.model_overviews()}
    _approve(registry, "fraud", "5", "approved", "dave")
    _move(registry, "ranker", "production", "2", "release")
    after = {o.summary.name: o for o in registry.model_overviews()}
    assert before["fraud"].versions["5"].approval.status == "pending"
    assert after["fraud"].versions["5"].approval.status == "approved"
    assert after["ranker"].summary.pointers["production"] == "2"
    assert [m.to_version for m in after["ranker"].production_history] == ["2"]
    assert list(after.values()) == [overview_from_reads(registry, o.summary) for o in after.values()]


def test_the_batch_read_opens_one_connection_for_every_model(ws_path, monkeypatch):
    import backends.local.registry as local_registry

    registry = _registry(ws_path)
    registry.model_overviews()  # the first read of a registry object probes the file once
    opened = []
    real = local_registry.connect_db

    def counting(*args, **kwargs):
        opened.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(local_registry, "connect_db", counting)
    assert len(registry.model_overviews()) == 4
    assert len(opened) == 1
    opened.clear()
    for summary in registry.list_models():  # what home did before: several per model
        registry.get_version(summary.name, "1")
        registry.pointer_history(summary.name, "production")
    assert len(opened) == 1 + 2 * 4


def test_home_rows_are_the_same_from_the_batch_and_the_per_model_path(ws_path):
    from console.workspace import Workspace
    from screens.loaders import load_home

    batch_ws = Workspace.open(ws_path)
    protocol_ws = Workspace.open(ws_path)
    protocol_registry = ProtocolOnly(protocol_ws.registry())
    protocol_ws.registry = lambda: protocol_registry
    for with_versions in (False, True):
        batch = load_home(batch_ws, {}, with_versions=with_versions)
        protocol_registry.calls.clear()
        per_model = load_home(protocol_ws, {}, with_versions=with_versions)
        assert batch.rows == per_model.rows
        assert [(mv.model, mv.version) for mv in batch.versions] == [(mv.model, mv.version) for mv in per_model.versions]
        assert "pointer_history" in protocol_registry.calls  # it really took the per-model path
    rows = {row.model: row for row in load_home(batch_ws, {}, with_versions=False).rows}
    # on the first paint too (no version listing yet), the rollback target skips the rejected 3
    # and the 3 that production was rolled away from: fraud goes back to 1
    assert (rows["fraud"].production, rows["fraud"].rollback_to, rows["fraud"].candidate_approval) == ("2", "1", "pending")
    assert (rows["churn"].rollback_to, rows["churn"].gate) == (None, "failed")  # 1 was rejected; 3 approved on override
    assert (rows["ranker"].production, rows["ranker"].candidate, rows["ranker"].rollback_to) == (None, "2", None)
    assert dataclasses.asdict(rows["empty-model"])["candidate"] is None


def test_every_canary_in_one_read_matches_each_models_latest(ws_path):
    from console.rollout.controller import CanaryStore, current_state, current_states
    from console.domain import CanaryState
    from console.workspace import Workspace
    from screens.loaders import load_home

    ws = Workspace.open(ws_path)
    store = CanaryStore(ws.db_path)
    assert current_states(ws) == {}  # no canary table yet: nothing, and nothing created by the read
    first = store.insert(CanaryState("fraud", "2", "4", id="c1", status="progressing", weight=5))
    store.save(dataclasses.replace(first, status="rolled_back", weight=0))
    store.insert(CanaryState("fraud", "2", "5", id="c2", status="progressing", weight=25))
    store.insert(CanaryState("churn", "2", "3", id="c3", status="paused", weight=50))
    states = current_states(ws)
    assert sorted(states) == ["churn", "fraud"]
    assert states["fraud"].id == "c2" and states["fraud"].weight == 25 and states["churn"].status == "paused"
    assert states == {model: current_state(ws, model) for model in ("churn", "fraud")}
    rows = {row.model: row for row in load_home(ws, {}).rows}
    # inserted by hand, so no controller holds its lease: home says nobody is judging it (#23)
    assert (rows["fraud"].canary_status, rows["fraud"].canary_weight, rows["fraud"].rollback_to) == ("unjudged", 25, "2")
    assert rows["ranker"].canary_status is None


def test_the_plain_sqlite_readers_read_every_column_of_the_orm_table():
    """The batch and per-model readers select VERSION_COLUMNS by hand: a column added to the
    SQLModel table must be added there too, or versions would come back without it."""
    from backends.local.registry import VERSION_COLUMNS
    from backends.local.tables import VersionRow

    assert len(set(VERSION_COLUMNS)) == len(VERSION_COLUMNS)
    assert set(VERSION_COLUMNS) == set(VersionRow.__table__.columns.keys()) - {"id"}


def test_home_offers_the_rollback_the_cli_would_take_on_a_registry_nobody_reviewed_in_mrc(tmp_path):
    """A team's registry: versions never reviewed in mrc. `mrc rollback` goes back to the earlier
    production version (it served production, its artifact verifies); home's R must offer the same."""
    from console.workspace import Workspace
    from screens.loaders import load_home

    root = tmp_path / "team"
    Workspace.init(root)
    registry = Workspace.open(root).registry()
    registry.ensure_schema()
    artifact = tmp_path / "model.bin"
    for v in range(3):
        artifact.write_bytes(os.urandom(64))
        registry.register_version("team", str(artifact), metrics={}, lineage=Lineage(code_commit=f"c{v}"))
    for v in ("1", "2"):
        _move(registry, "team", "production", v, "release")
    registry.close()
    row = load_home(Workspace.open(root), {}, with_versions=False).rows[0]
    assert (row.production, row.rollback_to) == ("2", "1")
    registry = Workspace.open(root).registry()
    _approve(registry, "team", "1", "rejected", "bob")
    registry.close()
    assert load_home(Workspace.open(root), {}, with_versions=False).rows[0].rollback_to is None
