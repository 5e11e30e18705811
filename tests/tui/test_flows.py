"""Each console flow driven by keys through Textual's Pilot, asserting on what landed in the
registry and the audit log (real local backend, real demo workspace, real gate engine)."""

from __future__ import annotations

from console.workspace import Workspace
from tests.support.pilot import make_app, run, settle
from tests.support.pilot import keys  # noqa: F401


def registry_and_audit(ws_path):
    ws = Workspace.open(ws_path)
    return ws.registry(), ws.audit()


def db_dump(ws_path) -> list[str]:
    import sqlite3

    conn = sqlite3.connect(ws_path / "mrc.db")
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


async def open_review(app, pilot, version: str | None = None):
    await settle(app, pilot)
    if version is None:
        await pilot.press("enter")  # home: review the selected model's candidate
    else:
        app.run_command(f"review breast-cancer {version}")
    await settle(app, pilot)
    from screens.review_screen import ReviewScreen

    assert isinstance(app.screen, ReviewScreen)
    return app.screen


def test_approve_with_a_reason_records_approval_audit_and_gate_digest(demo_ws, monkeypatch):
    """The held-key guard is about human timing, so the test steps the dialog's clock itself: on a
    loaded machine real time between two presses is anything, and must not decide the outcome."""
    from console.release.actions import report_digest
    from screens.dialogs import approve as approve_dialog

    now = [1000.0]
    monkeypatch.setattr(approve_dialog, "clock", lambda: now[0])

    async def scenario():
        app = make_app(demo_ws)
        async with app.run_test(size=(150, 50)) as pilot:
            review = await open_review(app, pilot)
            assert review.gate_state == "done" and review.gate_report.passed, review.gate_report
            await pilot.press("a")
            from screens.dialogs.approve import ApproveDialog

            dialog = app.screen
            assert isinstance(dialog, ApproveDialog)
            now[0] += 0.05
            await pilot.press("a", "a")  # a held `a`: must neither confirm nor land in the reason
            await pilot.press("ctrl+y")  # 50 ms after opening: a held key, not a decision
            await settle(app, pilot)
            assert app.screen is dialog and dialog.query_one("#reason").value == ""
            now[0] += 2.0  # the engineer reads the statement, then types
            await pilot.press(*keys("gates pass and auc is within noise"))
            await pilot.press("ctrl+y")
            await settle(app, pilot)
            assert app.screen is not dialog
            return report_digest(review.gate_report)

    digest = run(scenario())
    registry, audit = registry_and_audit(demo_ws)
    mv = registry.get_version("breast-cancer", "5")
    assert mv.approval.status == "approved"
    assert mv.approval.reason == "gates pass and auc is within noise"
    assert mv.approval.by == "tester" and mv.approval.gate_report_sha256 == digest and len(digest) == 64
    event = audit.events()[-1]
    assert (event.action, event.version, event.actor) == ("approve", "5", "tester")
    assert event.details["gate_report_sha256"] == digest and event.details["gate_passed"] is True
    assert audit.verify().ok


def test_approve_is_refused_on_failing_gates_then_overridden_with_a_reason(demo_ws):
    async def scenario():
        app = make_app(demo_ws)
        async with app.run_test(size=(150, 50)) as pilot:
            review = await open_review(app, pilot, "4")  # trained on drifted data: genuinely worse
            assert review.gate_report is not None and not review.gate_report.passed
            await pilot.press("a")
            await pilot.pause(0.6)
            await pilot.press(*keys("ship it"))
            await pilot.press("ctrl+y")
            await pilot.pause(0.1)
            from screens.dialogs.approve import ApproveDialog

            dialog = app.screen
            assert isinstance(dialog, ApproveDialog)  # still open: refused
            error = str(dialog.query_one("#dialog-error").render())
            assert "refused: gates failed" in error
            registry, _ = registry_and_audit(demo_ws)
            assert registry.get_version("breast-cancer", "4").approval.status == "rejected"
            await pilot.press("ctrl+o")  # override, with the reason already given
            await pilot.press("ctrl+y")
            await settle(app, pilot)
            assert not isinstance(app.screen, ApproveDialog)

    run(scenario())
    registry, audit = registry_and_audit(demo_ws)
    mv = registry.get_version("breast-cancer", "4")
    assert mv.approval.status == "approved" and mv.approval.override is True and mv.approval.reason == "ship it"
    event = audit.events()[-1]
    assert event.action == "approve" and event.details["override"] is True and event.details["gate_passed"] is False


def test_reject_with_a_reason(demo_ws):
    async def scenario():
        app = make_app(demo_ws)
        async with app.run_test(size=(150, 50)) as pilot:
            await open_review(app, pilot)
            await pilot.press("x")
            await pilot.press("ctrl+y")  # too soon and without a reason: nothing happens
            await pilot.pause(0.6)
            await pilot.press("ctrl+y")
            await pilot.pause(0.05)
            assert "a reason is required" in str(app.screen.query_one("#dialog-error").render())
            await pilot.press(*keys("latency doubled"))
            await pilot.press("ctrl+y")
            await settle(app, pilot)

    run(scenario())
    registry, audit = registry_and_audit(demo_ws)
    mv = registry.get_version("breast-cancer", "5")
    assert mv.approval.status == "rejected" and mv.approval.reason == "latency doubled"
    assert audit.events()[-1].action == "reject"


def test_rollback_from_home_names_the_target_and_moves_production(release_ws):
    demo_ws = release_ws
    async def scenario():
        app = make_app(demo_ws)
        async with app.run_test(size=(150, 50)) as pilot:
            await settle(app, pilot)
            home = app.screen
            status = str(home.query_one("#home-status").render())
            assert "R rolls production 2 back to 1" in status
            descriptions = [b.binding.description for b in home.active_bindings.values()]
            assert "Rollback → 1" in descriptions  # the footer names the version
            await pilot.press("R", "R", "R")  # a held key rolls back once
            await settle(app, pilot)
            assert home.rows[0].production == "1"
            calls = [call for _, call in app.calls if "rollback" in call]
            assert calls == ["console.release.actions.rollback(registry, audit, 'breast-cancer', to='1', expected='2', "
                             "actor='tester')"]
            await pilot.press("at")  # the action log shows it
            from screens.action_log_screen import ActionLogScreen

            assert isinstance(app.screen, ActionLogScreen)

    run(scenario())
    registry, audit = registry_and_audit(demo_ws)
    assert registry.get_pointers("breast-cancer")["production"] == "1"
    rollbacks = [e for e in audit.events() if e.action == "rollback"]
    assert len(rollbacks) == 1 and rollbacks[0].details["from"] == "2"


def test_filter_narrows_the_version_list(release_ws):
    async def scenario():
        app = make_app(release_ws)
        async with app.run_test(size=(150, 50)) as pilot:
            await settle(app, pilot)
            versions = app.screen.query_one("#versions")
            assert versions.row_count == 6
            await pilot.press("slash", *keys("breast rejected"))
            await pilot.pause(0.4)  # the model table follows the list once typing pauses
            assert [k for k in versions.keys] == [("breast-cancer", "3"), ("breast-cancer", "4")]
            assert "2 of 6" in str(app.screen.query_one("#versions-title").render())
            models = app.screen.query_one("#models")
            assert models.row_count == 1  # churn has no rejected version
            await pilot.press("escape")
            await pilot.pause(0.05)
            assert versions.row_count == 6

    run(scenario())


def test_history_shows_lineage_and_diffs_two_versions(release_ws):
    async def scenario():
        app = make_app(release_ws)
        async with app.run_test(size=(150, 50)) as pilot:
            await settle(app, pilot)
            await pilot.press("h")
            await settle(app, pilot)
            from screens.diff_screen import DiffScreen
            from screens.history_screen import HistoryScreen

            history = app.screen
            assert isinstance(history, HistoryScreen)
            tree = history.query_one("#lineage")
            assert str(tree.root.label) == "breast-cancer version 5"
            leaves = [str(leaf.label) for node in tree.root.children for leaf in node.children]
            assert "version breast_cancer@v2" in leaves and "version 2" in leaves
            moves = history.query_one("#moves")
            assert moves.row_count == 4
            await pilot.press("up", "up", "up")  # version 2
            await pilot.press("space")
            await pilot.press("down", "down", "down")  # version 5
            await pilot.press("d")
            await pilot.pause(0.05)
            diff = app.screen
            assert isinstance(diff, DiffScreen)
            changed = {(r.section, r.key): (r.left, r.right) for r in diff.rows if r.changed}
            assert changed[("params", "hidden")] == ("32", "80")
            assert changed[("metrics", "auc_roc")] == ("0.9874", "0.9901")
            await pilot.press("escape")
            assert isinstance(app.screen, HistoryScreen)

    run(scenario())


def test_launch_a_short_training_run_and_see_the_new_version(demo_ws):
    async def scenario():
        app = make_app(demo_ws)
        async with app.run_test(size=(150, 50)) as pilot:
            await settle(app, pilot)
            await pilot.press("t")
            await pilot.pause(0.05)
            from screens.training_screen import TrainingScreen

            screen = app.screen
            assert isinstance(screen, TrainingScreen)
            params = screen.query_one("#params")
            params.value = "epochs=3 hidden=4"
            await pilot.press("ctrl+t")
            await settle(app, pilot)
            assert screen.new_version is not None, str(screen.query_one("#training-status").render())
            assert screen.query_one("#progress").progress == 1.0
            log_lines = [str(line.text) for line in screen.query_one("#training-log").lines]
            assert any("epoch 3/3" in line for line in log_lines)
            await pilot.press("escape")
            await settle(app, pilot)
            return screen.new_version.version

    new_version = run(scenario())
    registry, audit = registry_and_audit(demo_ws)
    assert new_version == "6"
    assert registry.get_pointers("breast-cancer")["candidate"] == "6"
    mv = registry.get_version("breast-cancer", "6")
    assert mv.lineage.params["epochs"] == 3 and mv.lineage.parent_version == "2"
    assert any(e.action == "register" and e.version == "6" for e in audit.events())


def test_read_only_has_no_write_path(release_ws):
    demo_ws = release_ws
    from tests.support.cli import tree_digest

    before = tree_digest(demo_ws)
    dump_before = db_dump(demo_ws)

    async def scenario():
        app = make_app(demo_ws, read_only=True)
        async with app.run_test(size=(150, 50)) as pilot:
            await settle(app, pilot)
            home = app.screen
            assert "READ-ONLY" in app.sub_title and "READ-ONLY" in str(home.query_one("#home-status").render())
            shown = {b.binding.action for b in home.active_bindings.values() if b.enabled}
            assert not shown & {"rollback", "train"}
            await pilot.press("R", "t")
            await settle(app, pilot)
            assert app.screen is home
            await pilot.press("enter")
            await settle(app, pilot)
            review = app.screen
            shown = {b.binding.action for b in review.active_bindings.values() if b.enabled}
            assert not shown & {"approve", "reject"}
            await pilot.press("a", "x")
            await pilot.pause(0.1)
            assert app.screen is review  # no dialog opened
            review.action_approve()  # even called directly, the action refuses
            await pilot.pause(0.05)
            assert app.screen is review
            app.run_command("train breast-cancer")
            await pilot.pause(0.05)
            assert app.screen is review
            for command in ("canary breast-cancer", "history breast-cancer", "audit"):  # every read screen
                app.run_command(command)
                await settle(app, pilot)
                assert app.screen is not review, command
                await pilot.press("escape")
                await settle(app, pilot)

    run(scenario())
    # Byte for byte: no new table, no WAL or shm file left behind, no checkpoint rewriting mrc.db.
    assert tree_digest(demo_ws) == before
    assert db_dump(demo_ws) == dump_before
    assert tree_digest(demo_ws) == before  # dumping the database closed cleanly too
    registry, audit = registry_and_audit(demo_ws)
    assert registry.get_version("breast-cancer", "5").approval.status == "pending"


def test_help_lists_the_keys_of_this_screen_and_command_mode_opens_audit(release_ws):
    async def scenario():
        app = make_app(release_ws)
        async with app.run_test(size=(150, 50)) as pilot:
            await settle(app, pilot)
            await pilot.press("question_mark")
            from screens.audit_screen import AuditScreen
            from screens.help_screen import HelpScreen

            help_screen = app.screen
            assert isinstance(help_screen, HelpScreen)
            ids = {binding_id for _, _, binding_id in help_screen.keys}
            assert {"home.review", "home.rollback", "home.filter", "app.quit", "app.command"} <= ids
            await pilot.press("escape")
            await pilot.press("colon", *keys("audit"), "enter")
            await settle(app, pilot)
            assert isinstance(app.screen, AuditScreen)
            assert app.screen.check.ok and app.screen.check.events == 5

    run(scenario())


def test_keys_can_be_remapped_by_binding_id(release_ws):
    async def scenario():
        from console.app import ReleaseConsole

        app = ReleaseConsole(Workspace.open(release_ws), actor="t", poll_s=0, keymap={"home.history": "y"})
        async with app.run_test(size=(150, 50)) as pilot:
            await settle(app, pilot)
            await pilot.press("y")
            await settle(app, pilot)
            from screens.history_screen import HistoryScreen

            assert isinstance(app.screen, HistoryScreen)

    run(scenario())


def test_empty_registry_opens_and_says_so(empty_ws):
    async def scenario():
        app = make_app(empty_ws)
        async with app.run_test(size=(120, 30)) as pilot:
            await settle(app, pilot)
            assert "empty registry" in str(app.screen.query_one("#home-status").render())

    run(scenario())


def test_polls_never_pile_up_and_skip_while_a_dialog_is_open(release_ws):
    async def scenario():
        from console.app import ReleaseConsole

        app = ReleaseConsole(Workspace.open(release_ws), actor="t", poll_s=0.05)
        async with app.run_test(size=(150, 50)) as pilot:
            await settle(app, pilot)
            home = app.screen
            await pilot.pause(0.5)
            assert home.loads >= 3
            running = [w for w in app.workers if w.group == "home-load" and w.is_running]
            assert len(running) <= 1
            await pilot.press("question_mark")  # a modal on top: no reloads underneath it
            await pilot.pause(0.1)
            frozen = home.loads
            await pilot.pause(0.4)
            assert home.loads == frozen
            await pilot.press("escape")
            await pilot.pause(0.4)
            assert home.loads > frozen

    run(scenario())


def test_canary_key_opens_the_canary_view_of_the_selected_model(release_ws):
    async def scenario():
        app = make_app(release_ws)
        async with app.run_test(size=(150, 50)) as pilot:
            await settle(app, pilot)
            await pilot.press("down", "c")  # churn
            await settle(app, pilot)
            from screens.canary_screen import CanaryScreen

            assert isinstance(app.screen, CanaryScreen)
            assert app.screen.model == "churn"

    run(scenario())
