"""Home: every model with its production version, candidate, gates, canary, drift, last change;
below it every version of every model in a virtual list that `/` filters."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Footer, Header, Static

from backends.capabilities import ListsAllVersions
from console.assets import asset_path
from console.release.actions import promote, rollback, rolled_back_from
from console.release.break_glass import active_break, break_glass, fallback_version, restore
from console.release.health import active_fault, fault_line, measure
from console.release.live_state import model_disagreements
from console.release.policy import rollback_policy, workspace_policy
from console.rollout.controller import launch_controller, rollback_live_canary
from console.rollout.live import live_canary
from screens.after_write import deliver_alerts
from screens.base import ConsoleScreen
from screens.dialogs.canary_start import CanaryStartDialog
from screens.dialogs.break_glass import BreakGlassDialog
from screens.dialogs.roll_forward import RollForwardDialog
from screens.loaders import live_traffic, load_home
from screens.messages import OpenAudit, OpenCanary, OpenHistory, OpenRetrainOnNewestData, OpenReview, OpenTraining
from screens.presenters import (
    HOME_COLUMNS,
    VERSION_COLUMNS,
    HomeRow,
    filter_indices,
    rollback_hint,
    search_key,
    version_cells,
)
from screens.widgets.filter_line import FilterLine
from screens.widgets.health_panel import HealthPanel
from screens.widgets.virtual_table import VirtualTable

ROLLBACK_DEBOUNCE_S = 1.5
FIRST_PAGE_VERSIONS = 200  # versions in the first paint of a big registry: more than a screenful
# the rest of the versions is read once the first page is on screen (or after this long): read
# meanwhile, the worker would hold the GIL against the event loop that paints the first page
FIRST_PAINT_WAIT_S = 2.0
MODEL_FILTER_DELAY_S = 0.15  # a held key must not flip production back and forth


class HomeScreen(ConsoleScreen):
    CSS_PATH = str(asset_path("health.tcss"))
    AUTO_FOCUS = "#models"
    BINDINGS = [
        # priority: the focused table's own enter would otherwise hide "Review" from the footer
        Binding("enter", "review", "Review", id="home.review", priority=True),
        Binding("h", "history", "History", id="home.history"),
        Binding("t", "train", "Train", id="home.train"),
        # only where the row's drift is critical; off the footer (it lists the everyday keys), in `?`
        Binding("w", "retrain_newest", "Retrain on newest data (drift critical)", show=False, id="home.retrain"),
        Binding("R", "rollback", "Rollback", key_display="R", id="home.rollback"),
        # not R: undoing a rollback sends traffic back to what was bad, so it asks first
        Binding("F", "roll_forward", "Roll forward", key_display="F", show=False, id="home.roll_forward"),
        # all traffic to the fallback (or, once broken, the split back): asks first, ctrl+y confirms
        Binding("G", "break_glass", "Break glass / restore", key_display="G", show=False, id="home.break_glass"),
        Binding("c", "canary", "Canary", id="home.canary"),
        Binding("C", "start_canary", "Start canary", key_display="C", id="home.start_canary"),
        Binding("l", "audit", "Audit", id="home.audit"),
        Binding("slash", "filter", "Filter", key_display="/", id="home.filter"),
        Binding("r", "reload", "Refresh", show=False, id="home.refresh"),
        Binding("tab", "app.focus_next", "Next pane", show=False, id="home.next_pane"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="home.clear_filter"),
    ]

    class Loaded(Message):
        def __init__(self, rows: list[HomeRow], version_rows: list, version_keys: list, search_keys: list,
                     error: str = "", *, total_versions: int | None = None) -> None:
            super().__init__()
            self.rows = rows
            self.version_rows = version_rows
            self.version_keys = version_keys
            self.search_keys = search_keys
            self.error = error
            self.total_versions = total_versions  # set on a first page: the rest of the versions follow

    class RolledBack(Message):
        def __init__(self, text: str, ok: bool, *, reload: bool = True) -> None:
            super().__init__()
            self.text = text
            self.ok = ok
            self.reload = reload  # False: a note that follows a result (the target's health)

    def __init__(self) -> None:
        super().__init__(id="home")
        self.title = "home"
        self.rows: list[HomeRow] = []
        self.version_rows: list = []
        self.version_keys: list = []
        self.search_keys: list[str] = []
        self.filter_text = ""
        self.loads = 0
        self._first_page = False  # the last Loaded was a first page; the rest of the versions follow
        self._first_painted = threading.Event()  # set after the first page's refresh
        self._poll_timer = None
        self._last_rollback = 0.0
        self._rolling_back: str | None = None  # the model a rollback is running for
        self._shown_models: list[str] = []
        self._matches: list[int] | None = None  # indices of versions matching filter_text
        self._matched_text = ""
        self._models_timer = None
        self.last_canary_start: dict[str, Any] = {}
        self._truth: dict[str, list[str]] = {}  # model -> what disagrees (registry, log, router, canary)
        self._truth_asked: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="home-body"):
            yield Static("loading models…", id="home-status")
            yield HealthPanel(id="health")
            # virtual too: cheaper to start than a VirtualTable, and no re-layout when the filter narrows it
            models = VirtualTable(list(HOME_COLUMNS), id="models")
            models.empty_text = "no models"
            yield models
            box = FilterLine("filter: words, e.g. breast approved  (enter: to the list, esc: clear)", id="filter")
            box.display = False
            yield box
            yield Static("versions", id="versions-title", classes="pane-title")
            versions = VirtualTable([(name, width) for name, width in VERSION_COLUMNS], id="versions")
            versions.empty_text = "no versions yet — press t to train one, or run `mrc demo`"
            yield versions
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#models", VirtualTable).focus()
        # paint first, load second: the loader's imports would otherwise hold the GIL over the first frame
        self.call_after_refresh(self.load)

    # -- loading: one poll at a time; the next is scheduled only when this one is done ----
    def load(self) -> None:
        if self._poll_timer is not None:
            self._poll_timer.stop()
            self._poll_timer = None
        self._load_worker()

    @work(thread=True, exclusive=True, group="home-load", exit_on_error=False)
    def _load_worker(self) -> None:
        self.app.record_call(f"{_registry_reads(self.app.workspace)} · drift.recorded_status"
                             " · canary_controller.current_states")
        try:
            if self.loads:
                data = load_home(self.app.workspace, self.app.gate_reports)
            else:  # first paint: every model row and a screenful of versions, then the rest
                data = load_home(self.app.workspace, self.app.gate_reports, with_versions=False)
                registry = self.app.workspace.registry()
                pending = [row.model for row in data.rows]
                while pending and len(data.versions) < FIRST_PAGE_VERSIONS:
                    data.versions.extend(registry.list_versions(pending.pop(0)))
                if pending:
                    self._post_versions(data, total_versions=sum(row.versions for row in data.rows))
                    self._first_painted.wait(FIRST_PAINT_WAIT_S)
                    if isinstance(registry, ListsAllVersions):  # one read for all, the first page's models again included
                        listed = registry.list_all_versions()
                        data.versions = [mv for row in data.rows for mv in listed.get(row.model, [])]
                    else:
                        for model in pending:
                            data.versions.extend(registry.list_versions(model))
        except Exception as exc:  # shown in the status line; the next poll tries again
            self.post_message(self.Loaded(self.rows, self.version_rows, self.version_keys, self.search_keys,
                                          f"{type(exc).__name__}: {exc}"))
            return
        self._post_versions(data)

    def _post_versions(self, data, *, total_versions: int | None = None) -> None:
        cells = [version_cells(mv) for mv in data.versions]
        keys = [(mv.model, mv.version) for mv in data.versions]
        self.post_message(self.Loaded(data.rows, cells, keys, [search_key(c) for c in cells], data.error,
                                      total_versions=total_versions))

    def _schedule_poll(self) -> None:
        if self._poll_timer is None and self.app.poll_s > 0:
            self._poll_timer = self.set_timer(self.app.poll_s, self._poll)

    def _poll(self) -> None:
        self._poll_timer = None
        if self.app.screen is not self:  # a dialog or another view is on top: skip, try later
            self._schedule_poll()
            return
        self._load_worker()

    def on_screen_resume(self) -> None:
        if self.loads:
            self.load()

    @on(Loaded)
    def _on_loaded(self, message: Loaded) -> None:
        first_page = message.total_versions is not None
        if first_page:
            self.app.trace(f"home loaded: {len(message.rows)} models, first page of {len(message.version_rows)} "
                           f"of {message.total_versions} versions")
        elif self._first_page:
            self.app.trace(f"home all versions: {len(message.version_rows)}")
        elif self.loads == 0:
            self.app.trace(f"home loaded: {len(message.rows)} models, {len(message.version_rows)} versions"
                           + (f", error {message.error}" if message.error else ""))
        self._first_page = first_page
        if not first_page:
            self.loads += 1
        self.rows = message.rows
        if not first_page:  # a fresh load: what disagreed is asked again
            self._truth, self._truth_asked = {}, set()
        self.version_rows = message.version_rows
        self.version_keys = message.version_keys
        self.search_keys = message.search_keys
        self._matches = None  # new rows: the next filter scans them all
        table = self.query_one("#models", VirtualTable)
        self._apply_filter()
        self._fill_models(table)
        if self.focused is None:
            table.focus()
        if message.error:
            self.query_one("#home-status", Static).update(Text(f"⚠ {message.error}", style="bold red"))
        else:
            self._update_status()
        if first_page:
            self.call_after_refresh(self._first_painted.set)
        else:
            self._schedule_poll()

    def _fill_models(self, table: VirtualTable, *, only_if_changed: bool = False) -> None:
        visible = self._visible_models()
        if only_if_changed and [r.model for r in visible] == self._shown_models:
            return  # same models: nothing to repaint
        self._shown_models = [r.model for r in visible]
        now = self.app.clock()
        table.set_rows([row.cells(now) for row in visible], [row.model for row in visible])

    def _visible_models(self) -> list[HomeRow]:
        if not self.filter_text:
            return self.rows
        keys = [f"{r.model} {r.production} {r.candidate} {r.candidate_approval}".lower() for r in self.rows]
        matched = set(filter_indices(keys, self.filter_text))
        version_models = {self.version_keys[i][0] for i in (self._matches or [])}
        return [r for i, r in enumerate(self.rows) if i in matched or r.model in version_models]

    def _apply_filter(self) -> None:
        versions = self.query_one("#versions", VirtualTable)
        narrowing = self._matches is not None and self._matched_text and self.filter_text.startswith(self._matched_text)
        indices = self._matches = filter_indices(self.search_keys, self.filter_text,
                                                 self._matches if narrowing else None)
        self._matched_text = self.filter_text
        versions.set_rows([self.version_rows[i] for i in indices], [self.version_keys[i] for i in indices])
        total = len(self.version_rows)
        title = f"versions: {len(indices):,} of {total:,}" + (f" matching “{self.filter_text}”" if self.filter_text else "")
        self.query_one("#versions-title", Static).update(title, layout=False)  # one line, fixed height

    # -- selection ------------------------------------------------------------------------
    def selected_row(self) -> HomeRow | None:
        key = self.query_one("#models", VirtualTable).current_key
        return next((r for r in self.rows if r.model == key), None) if key else None

    def selected_model(self) -> str | None:
        row = self.selected_row()
        return row.model if row else None

    @on(VirtualTable.Highlighted, "#models")
    def _on_model_highlighted(self) -> None:
        self._update_status()
        self.refresh_bindings()  # w follows the highlighted row's drift

    def _update_status(self) -> None:
        row = self.selected_row()
        status = self.query_one("#home-status", Static)
        if not self.rows:
            status.update(Text("empty registry: no models yet. Run `mrc demo`, or press t to train one.", style="dim"))
            self._set_rollback_label(None)
            return
        if row is None:
            status.update("")
            return
        text = Text()
        if self.app.read_only:
            text.append(" 🔒 READ-ONLY ", style="bold black on yellow")
            text.append("  ")
            text.append(f"{row.model}: production {row.production or '—'}, candidate {row.candidate or '—'}")
        else:
            text.append(rollback_hint(row.model, row.production, row.rollback_to, row.canary_candidate))
        disagree = self._truth.get(row.model)
        if disagree:  # the registry, the log, the router or the canary say different things: first
            text = Text(f"⚠ DISAGREES: {disagree[0]}" + (f" (+{len(disagree) - 1} more: mrc audit verify)"
                                                            if len(disagree) > 1 else ""), style="bold white on red")
        elif row.model not in self._truth_asked:
            self._truth_asked.add(row.model)
            self._truth_worker(row.model)
        status.update(text, layout=False)  # one line, fixed height
        self._set_rollback_label(row.rollback_to)
        self.query_one("#health", HealthPanel).show_model(row.model, row.production)

    class TruthChecked(Message):
        def __init__(self, model: str, lines: list[str]) -> None:
            super().__init__()
            self.model, self.lines = model, lines

    @work(thread=True, exclusive=True, group="home-truth", exit_on_error=False)
    def _truth_worker(self, model: str) -> None:
        """Pointers against their last audited move, the router against registry and canary."""
        ws = self.app.workspace
        try:
            lines = model_disagreements(ws, ws.registry(), ws.audit(), model)
        except Exception:  # noqa: BLE001  (a check that cannot run must not hide the home screen)
            return
        self.post_message(self.TruthChecked(model, lines))

    @on(TruthChecked)
    def _on_truth_checked(self, message: TruthChecked) -> None:
        self._truth[message.model] = message.lines
        if message.lines:
            self._update_status()

    def _set_rollback_label(self, target: str | None) -> None:
        """The footer names the version the rollback key returns to."""
        description = f"Rollback → {target}" if target else "Rollback"
        changed = False
        for key, bindings in self._bindings.key_to_bindings.items():
            for i, binding in enumerate(bindings):
                if binding.id == "home.rollback" and binding.description != description:
                    bindings[i] = dataclasses.replace(binding, description=description)
                    changed = True
        if changed:
            self.refresh_bindings()

    # -- actions --------------------------------------------------------------------------
    @on(VirtualTable.Selected, "#models")
    def _on_model_selected(self) -> None:
        self.action_review()

    @on(VirtualTable.Selected, "#versions")
    def _on_version_selected(self, message: VirtualTable.Selected) -> None:
        if message.key:
            model, version = message.key
            self.post_message(OpenReview(model, version))

    def action_review(self) -> None:
        if self.focused is self.query_one("#filter", FilterLine):
            self._on_filter_submitted()
            return
        versions = self.query_one("#versions", VirtualTable)
        if versions.has_focus and versions.current_key:
            versions.action_select()
            return
        row = self.selected_row()
        if row is None:
            return
        if not row.candidate:
            self.notify(f"{row.model}: no candidate to review; opening its history")
            self.action_history()
            return
        self.post_message(OpenReview(row.model, row.candidate))

    def action_history(self) -> None:
        model = self._model_for_action()
        if model:
            self.post_message(OpenHistory(model))

    def _model_for_action(self) -> str | None:
        versions = self.query_one("#versions", VirtualTable)
        if versions.has_focus and versions.current_key:
            return versions.current_key[0]
        return self.selected_model()

    def action_train(self) -> None:
        model = self._model_for_action()
        if not model:
            self.notify("no model selected: use `:train NAME` to train a new one", severity="warning")
            return
        self.post_message(OpenTraining(model))

    def action_retrain_newest(self) -> None:
        row = self.selected_row()
        if row is None or row.drift != "critical" or not self.app.can_write("training"):
            return
        self.post_message(OpenRetrainOnNewestData(row.model))

    def action_canary(self) -> None:
        model = self._model_for_action()
        if model:
            self.post_message(OpenCanary(model))

    # -- starting a canary: C, confirmed in a dialog with ctrl+y ----------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start_canary" and self.app.read_only:
            return False  # a write: absent in read-only, like the others
        if action == "retrain_newest":
            row = self.selected_row()
            if self.app.read_only or row is None or row.drift != "critical":
                return False
        return super().check_action(action, parameters)

    def action_start_canary(self) -> None:
        row = self.selected_row()
        if row is None or not self.app.can_write("canary start"):
            return
        if row.canary_candidate:
            self.notify(f"{row.model}: canary {row.canary_candidate} is live; c opens it", severity="warning")
            return
        if not row.candidate or not row.production:
            self.notify(f"{row.model}: a canary needs a candidate and a production version", severity="warning")
            return

        def started(choice) -> None:
            if choice is not None:
                self.notify(f"{row.model}: starting a canary of {row.candidate} ({choice.plan}) …")
                self._start_canary_worker(row.model, row.candidate, choice)

        self.app.push_screen(CanaryStartDialog(row.model, row.candidate, row.production, row.candidate_approval), started)

    @work(thread=True, exclusive=True, group="home-canary-start", exit_on_error=False)
    def _start_canary_worker(self, model: str, candidate: str, choice) -> None:
        self.app.record_call(f"mrc canary start {model} {candidate} --plan {choice.plan} (console.rollout.controller"
                             f".launch_controller, actor={self.app.actor!r})")
        try:
            state, pid = launch_controller(self.app.workspace, model, candidate, actor=self.app.actor, plan=choice.plan,
                                           reason=choice.reason, override=choice.override)
        except Exception as exc:  # noqa: BLE001  (shown; nothing went live when the start failed)
            self.app.call_from_thread(self.notify, f"canary of {model} {candidate} not started: {exc}",
                                      severity="error", timeout=8)
            return
        self.app.call_from_thread(self._canary_started, model, candidate, state, pid)

    def _canary_started(self, model: str, candidate: str, state, pid: int) -> None:
        self.last_canary_start = {"model": model, "candidate": candidate, "id": state.id, "pid": pid}
        self.notify(f"{model}: canary {candidate} started against stable {state.stable} (controller pid {pid})")
        self.load()
        self.post_message(OpenCanary(model))

    def action_audit(self) -> None:
        self.post_message(OpenAudit())

    def action_reload(self) -> None:
        self.load()

    def action_filter(self) -> None:
        box = self.query_one("#filter", FilterLine)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", FilterLine)
        if box.display or self.filter_text:
            box.value = ""
            box.display = False
            self.query_one("#models", VirtualTable).focus()

    @on(FilterLine.Changed, "#filter")
    def _on_filter_changed(self, event: FilterLine.Changed) -> None:
        if isinstance(event, FilterLine.Submitted):
            self._on_filter_submitted()
            return
        self.filter_text = event.value.strip()
        self._apply_filter()
        # the model table follows once typing pauses: re-laying it out per key would cost the list its 50 ms
        if self._models_timer is not None:
            self._models_timer.stop()
        self._models_timer = self.set_timer(
            MODEL_FILTER_DELAY_S, lambda: self._fill_models(self.query_one("#models", VirtualTable), only_if_changed=True))

    def _on_filter_submitted(self) -> None:
        self.query_one("#versions", VirtualTable).focus()

    def action_rollback(self) -> None:
        row = self.selected_row()
        if row is None or not self.app.can_write("rollback"):
            return
        now = time.monotonic()
        if self._rolling_back:  # a second R while the first runs: said, never silently dropped
            self.notify(f"rollback of {self._rolling_back} in progress — wait for its result", severity="warning",
                        timeout=3)
            return
        if now - self._last_rollback < ROLLBACK_DEBOUNCE_S:
            return  # held key or a double press: one rollback per deliberate press
        if not row.rollback_to:
            self.notify(rollback_hint(row.model, row.production, None), severity="warning")
            return
        self._rolling_back = row.model
        self._last_rollback = now
        # at once, before any server starts (that can take seconds): the key was heard
        self.notify(f"rolling back {row.model}: production {row.production} → {row.rollback_to} …", timeout=3)
        self._rollback_worker(row.model, row.production, row.rollback_to, row.canary_candidate)

    @work(thread=True, exclusive=True, group="home-rollback", exit_on_error=False)
    def _rollback_worker(self, model: str, seen_production: str, target: str, canary: str | None) -> None:
        ws = self.app.workspace
        live = live_canary(ws.db_path, model)  # read now: the row may be older than a canary started since
        end_canary = None
        if live is not None:  # a live canary: ended through its controller, the one writer of its traffic

            def end_canary():
                self.app.record_call(f"console.rollout.controller.rollback_live_canary(ws, {model!r}, "
                                     f"actor={self.app.actor!r})")
                return rollback_live_canary(ws, model, actor=self.app.actor, reason="rollback from the console")

            try:
                production = ws.registry().get_pointers(model).get("production")
                if production == live.stable:  # the fast path: all traffic back to stable is the whole rollback
                    state = end_canary()
                    if state is not None:
                        self.post_message(self.RolledBack(f"{model}: canary {live.candidate} rolled back, stable "
                                                          f"{live.stable} at 100%", True))
                        _deliver_alerts(ws, self.app.actor)
                        return
                else:  # production moved off the canary's stable outside it: pointer and traffic back together
                    seen_production, target = production, live.stable
            except Exception as exc:
                self.post_message(self.RolledBack(f"canary rollback of {model} failed: {exc}", False))
                return
        self.app.record_call(f"console.release.actions.rollback(registry, audit, {model!r}, to={target!r}, "
                             f"expected={seen_production!r}, actor={self.app.actor!r})")
        warning = None
        try:
            policy, warning = _rollback_policy(ws)
            outcome = rollback(ws.registry(), ws.audit(), model, actor=self.app.actor, to=target,
                               reason=f"rollback from the console (production was {seen_production})",
                               expected=seen_production, expected_given=True, traffic=live_traffic(ws, model),
                               options=_model_options(ws, model), policy=policy, end_canary=end_canary)
        except Exception as exc:  # a lost race (ConflictError) is shown, never retried blindly
            self.post_message(self.RolledBack(f"rollback of {model} refused: {exc}", False))
            return
        message = outcome.detail.get("message") or (
            f"{model}: production {outcome.detail.get('from')} → {outcome.detail.get('to')} (rolled back)")
        self.post_message(self.RolledBack(message + (f" ({warning})" if warning else ""), True))
        _deliver_alerts(ws, self.app.actor)
        if outcome.changed and outcome.detail.get("traffic") is not None:
            # after the move (never before it): whether the version now serving is healthy by the thresholds
            facts = _target_facts(ws, model, str(outcome.detail.get("to")))
            self.post_message(self.RolledBack(" · ".join(f for f in (facts.get("health"), facts.get("fault")) if f),
                                              not facts.get("unhealthy"), reload=False))

    # -- roll forward: a different, confirmed action ---------------------------------------
    def action_roll_forward(self) -> None:
        row = self.selected_row()
        if row is None or not row.production or not self.app.can_write("roll forward"):
            return
        self._roll_forward_lookup(row.model, row.production)

    @work(thread=True, exclusive=True, group="home-rollback", exit_on_error=False)
    def _roll_forward_lookup(self, model: str, production: str) -> None:
        self.app.record_call(f"registry.pointer_history({model!r}, 'production')")
        try:
            last = rolled_back_from(self.app.workspace.registry().pointer_history(model, "production"))
        except Exception as exc:
            self.post_message(self.RolledBack(f"{model}: {exc}", False))
            return
        if last is None or last.to_version != production:
            self.post_message(self.RolledBack(f"{model}: production {production} was not reached by a rollback; "
                                              "nothing to roll forward to", False))
            return
        facts = _target_facts(self.app.workspace, model, last.from_version)
        why = f"rolled back from {last.from_version} by {last.actor} at {last.at[:19]}: {last.reason or 'no reason given'}"
        self.app.call_from_thread(self._confirm_roll_forward, model, production, last.from_version, why, facts)

    def _confirm_roll_forward(self, model: str, production: str, target: str, why: str = "",
                              facts: dict | None = None) -> None:
        def done(confirmed: bool | None) -> None:
            if confirmed:
                self._roll_forward_worker(model, production, target)

        facts = facts or {}
        self.app.push_screen(RollForwardDialog(model, production, target, why=why, health=facts.get("health", ""),
                                               unhealthy=facts.get("unhealthy"), fault=facts.get("fault", "")), done)

    @work(thread=True, exclusive=True, group="home-rollback", exit_on_error=False)
    def _roll_forward_worker(self, model: str, seen_production: str, target: str) -> None:
        ws = self.app.workspace
        self.app.record_call(f"console.release.actions.promote(registry, audit, {model!r}, {target!r}, "
                             f"expected={seen_production!r}, actor={self.app.actor!r})")
        try:
            outcome = promote(ws.registry(), ws.audit(), model, target, actor=self.app.actor,
                              reason=f"roll forward from the console (production was {seen_production})",
                              expected=seen_production, expected_given=True, traffic=live_traffic(ws, model),
                              options=_model_options(ws, model), policy=_production_policy(ws))
        except Exception as exc:
            self.post_message(self.RolledBack(f"roll forward of {model} refused: {exc}", False))
            return
        self.post_message(self.RolledBack(outcome.detail.get("message") or
                                          f"{model}: production {seen_production} → {target} (rolled forward)", True))

    # -- break glass: all traffic to the fallback, confirmed; again: the split back ---------------
    def action_break_glass(self) -> None:
        row = self.selected_row()
        if row is None or not self.app.can_write("break glass"):
            return
        self._break_glass_lookup(row.model)

    @work(thread=True, exclusive=True, group="home-rollback", exit_on_error=False)
    def _break_glass_lookup(self, model: str) -> None:
        ws = self.app.workspace
        self.app.record_call(f"traffic.get_split({model!r}) · audit.events(model={model!r})")
        try:
            traffic = live_traffic(ws, model)
            if traffic is None:
                raise ValueError("not served here; break glass moves served traffic")
            now = _split_text(traffic.get_split(model).weights.items())
            live = active_break(ws.audit(), model)
            if live is not None:
                saved = (live.details or {}).get("from_split") or []
                why = f"broken by {live.actor} at {live.at[:19]}: {(live.details or {}).get('reason', '')}"
                self.app.call_from_thread(self._confirm_break_glass, model, now, _split_text(saved), True, why)
                return
            target, skipped = fallback_version(ws.registry(), model)
        except Exception as exc:
            self.post_message(self.RolledBack(f"break glass of {model}: {exc}", False))
            return
        why = "fallback: the newest earlier production version that is fit" + (
            " (skipped " + "; ".join(f"{s['version']}: {s['why']}" for s in skipped) + ")" if skipped else "")
        self.app.call_from_thread(self._confirm_break_glass, model, now, f"{target} 100%", False, why, target)

    def _confirm_break_glass(self, model: str, now: str, after: str, restoring: bool, why: str,
                             target: str | None = None) -> None:
        def done(confirmed: bool | None) -> None:
            if confirmed:
                self._break_glass_worker(model, restoring, target)

        self.app.push_screen(BreakGlassDialog(model, now=now, after=after, restoring=restoring, why=why), done)

    @work(thread=True, exclusive=True, group="home-rollback", exit_on_error=False)
    def _break_glass_worker(self, model: str, restoring: bool, target: str | None) -> None:
        ws = self.app.workspace
        try:
            traffic = live_traffic(ws, model)
            if restoring:
                self.app.record_call(f"console.release.break_glass.restore(traffic, audit, {model!r}, "
                                     f"actor={self.app.actor!r})")
                outcome = restore(traffic, ws.audit(), model, actor=self.app.actor, reason="restore from the console")
            else:
                self.app.record_call(f"console.release.break_glass.break_glass(registry, traffic, audit, {model!r}, "
                                     f"fallback_seen={target!r}, actor={self.app.actor!r})")
                outcome = break_glass(ws.registry(), traffic, ws.audit(), model, actor=self.app.actor,
                                      reason="break glass from the console", fallback_seen=target,
                                      options=_model_options(ws, model))
        except Exception as exc:  # a lost race (ConflictError) is shown, never retried blindly
            self.post_message(self.RolledBack(f"{'restore' if restoring else 'break glass'} of {model} refused: "
                                              f"{exc}", False))
            return
        self.post_message(self.RolledBack(outcome.detail.get("message") or f"{model}: done", True))
        _deliver_alerts(ws, self.app.actor)

    @on(RolledBack)
    def _on_rolled_back(self, message: RolledBack) -> None:
        if not message.reload:  # a note after the result (the target's health): the rollback is over already
            self.notify(message.text, severity="information" if message.ok else "error", timeout=8)
            return
        self._rolling_back = None
        self._last_rollback = time.monotonic()
        self.notify(message.text, severity="information" if message.ok else "error", timeout=6)
        self.load()


def _split_text(weights) -> str:
    return ", ".join(f"{v} {w}%" for v, w in weights if w) or "nothing"


def _registry_reads(ws) -> str:
    """What home's load asks the registry, for the `@` log."""
    try:
        local = ws.backend_name("registry") == "local"
    except Exception:  # a broken mrc.toml: the load itself reports it
        local = False
    return ("registry.model_overviews() · list_all_versions()" if local else
            "registry.list_models(); per model: pointer_history, get_version, list_versions")


def _target_facts(ws, model: str, version: str) -> dict:
    """{"health", "unhealthy", "fault"}: the version's last window judged by the team's [alerts]
    thresholds and any drill it still carries. Never raises (a dialog must open)."""
    try:
        verdict = measure(ws, model, version)
        traffic = live_traffic(ws, model)
        fault = fault_line(version, active_fault(traffic, model, version)) if traffic is not None else ""
    except Exception as exc:  # noqa: BLE001
        return {"health": f"{version}: health unknown ({exc})", "unhealthy": None, "fault": ""}
    unhealthy = None if verdict.healthy is None else not verdict.healthy
    return {"health": verdict.line(), "unhealthy": unhealthy, "fault": fault}


def _model_options(ws, model: str) -> dict:
    try:
        return ws.model_config(model)
    except Exception:  # a broken [models] table must not stop a rollback
        return {}


def _production_policy(ws):
    """[policy.production] of the workspace, None when production is not protected."""
    return workspace_policy(ws)


def _rollback_policy(ws):
    """(the rule the rollback key follows, a warning or None): a malformed [policy] table is read
    leniently and said so, never a blocked rollback (console/release/policy.py rollback_policy)."""
    return rollback_policy(ws)


def _deliver_alerts(ws, actor: str) -> None:
    """On-call alerts out once the rollback has committed and the banner has its message (best
    effort, under one deadline; a receiver that is down is retried by the next write or flush).
    Nothing is imported where mrc.toml has no [alerts]."""
    deliver_alerts(ws, actor)
