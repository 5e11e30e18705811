"""Training: launch a run through the workspace's training backend (data version, params,
GPU or not), follow its log and progress live, and see the new version land as the candidate.

The screen says before the launch that the new version will take the `candidate` alias (and
from which version), and after it that it did; when the run ends, focus leaves the form so that
`v` reviews the new version instead of being typed into a field."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Checkbox, Footer, Header, Input, Label, ProgressBar, RichLog, Static

from backends.base import BadInputError, TrainingSpec
from backends import capabilities
from console.monitor.watch_run import handled_versions, newest_data_ref, production_of
from console.training import train_and_register
from screens.base import ConsoleScreen
from screens.messages import OpenReview
from screens.presenters import fmt_number, parse_params, training_progress_text

LOG_LINES = 500  # a bounded buffer: a long run must not grow the console without end


class TrainingScreen(ConsoleScreen):
    BINDINGS = [
        Binding("ctrl+t", "launch", "Launch training", key_display="ctrl+t", id="training.launch"),
        Binding("v", "review", "Review new version", id="training.review"),
        Binding("ctrl+g", "cancel_run", "Cancel run", key_display="ctrl+g", id="training.cancel"),
        Binding("escape", "back", "Back", id="training.back"),
    ]

    class Event(Message):
        """One training event; a newer progress event replaces one not yet handled."""

        def __init__(self, event: dict[str, Any]) -> None:
            super().__init__()
            self.event = event

        def can_replace(self, message: Message) -> bool:
            return (isinstance(message, TrainingScreen.Event) and message.event.get("event") == "progress"
                    and self.event.get("event") == "progress")

    class Pointers(Message):
        def __init__(self, candidate: str | None) -> None:
            super().__init__()
            self.candidate = candidate

    class Finished(Message):
        def __init__(self, version: Any, error: str = "") -> None:
            super().__init__()
            self.version = version
            self.error = error

    def __init__(self, model: str, data: str | None = None, reason: str = "") -> None:
        super().__init__()
        self.model = model
        self.prefilled_data = data  # set when opened from a critical drift: the newest data version
        self.reason = reason
        self.title = f"train {model}"
        self.running = False
        self.job_id: str | None = None  # the run under way, once the backend has launched it
        self.new_version: Any = None
        self.candidate_before: str | None = None  # the candidate alias the run will move

    def selected_model(self) -> str:
        return self.model

    def compose(self) -> ComposeResult:
        cfg = self.app.workspace.model_config(self.model)
        yield Header()
        with Vertical(id="training-body"):
            yield Static(f"launch a training run of {self.model} through the "
                         f"`{self.app.workspace.backend_name('training')}` training backend", classes="pane-title")
            if self.reason:
                yield Static(self.reason, id="training-reason")
            with Horizontal(classes="form-row"):
                yield Label("data version ", classes="form-label")
                yield Input(self.prefilled_data or cfg.get("train_data", ""), placeholder="dataset@version", id="data")
            with Horizontal(classes="form-row"):
                yield Label("params       ", classes="form-label")
                # a retrain from drift starts from the parameters `mrc watch` would use
                params = (cfg.get("watch_params") if self.prefilled_data else None) or "epochs=20 hidden=16"
                yield Input(str(params), placeholder="key=value …", id="params")
            yield Checkbox("train on a GPU (CUDA) when one is there", id="gpu")
            yield Static("enter or ctrl+t launches · the new version becomes the candidate", id="training-status")
            yield ProgressBar(total=1.0, show_eta=False, id="progress")
            yield RichLog(id="training-log", max_lines=LOG_LINES, wrap=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#data", Input).focus()
        self._read_candidate()

    @work(thread=True, exclusive=True, group="training-pointers", exit_on_error=False)
    def _read_candidate(self) -> None:
        try:
            candidate = self.app.workspace.registry().get_pointers(self.model).get("candidate")
        except Exception:  # noqa: BLE001  (a new model has no pointers: nothing to replace)
            candidate = None
        self.post_message(self.Pointers(candidate))

    @on(Pointers)
    def _on_pointers(self, message: Pointers) -> None:
        self.candidate_before = message.candidate
        if not self.running and self.new_version is None:
            self._status(f"enter or ctrl+t launches · {self._alias_note()}")

    def _alias_note(self) -> str:
        if self.candidate_before:
            return f"the new version moves the candidate alias from {self.candidate_before}"
        return "the new version becomes the candidate (the model has none now)"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "review":
            return self.new_version is not None
        if action == "cancel_run":
            return bool(self.running and self.job_id)  # hidden unless there is a launched run to cancel
        if action == "launch" and self.running:
            return None  # shown greyed while a run is going
        return super().check_action(action, parameters)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_launch()

    def action_launch(self) -> None:
        if self.running or not self.app.can_write("training"):
            return

        data = self.query_one("#data", Input).value.strip()
        try:
            params = parse_params(self.query_one("#params", Input).value)
        except ValueError as exc:
            self._status(f"params: {exc}", "bold red")
            return
        if not data:
            self._status("data version: required (dataset@version)", "bold red")
            return
        cfg = self.app.workspace.model_config(self.model)
        spec = TrainingSpec(self.model, data, params, gpu=self.query_one("#gpu", Checkbox).value,
                            label=cfg.get("label", ""), test_data=cfg.get("test_data", ""),
                            golden_data=cfg.get("golden_data", ""))
        self.running = True
        self.job_id = None
        self.new_version = None
        self.refresh_bindings()
        self.query_one("#progress", ProgressBar).update(progress=0)
        self._status(f"launching: {data} {params} gpu={spec.gpu} · {self._alias_note()}", "yellow")
        self._train(spec)

    @work(thread=True, exclusive=True, group="training", exit_on_error=False)
    def _train(self, spec) -> None:
        ws = self.app.workspace
        self.app.record_call(f"console.training.train_and_register(ws, TrainingSpec({spec.model!r}, "
                             f"{spec.data_version!r}, {spec.params!r}, gpu={spec.gpu}), actor={self.app.actor!r})")
        try:
            try:
                spec.parent_version = ws.registry().get_pointers(self.model).get("production")
            except BadInputError:
                spec.parent_version = None  # a new model has no production yet
            version = train_and_register(ws, spec, actor=self.app.actor,
                                         on_event=lambda event: self.post_message(self.Event(event)))
        except Exception as exc:
            self.post_message(self.Finished(None, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(self.Finished(version))

    @on(Event)
    def _on_event(self, message: Event) -> None:
        event = message.event
        if event.get("event") == "launched" and self.running:
            self.job_id = str(event.get("job"))
            self.refresh_bindings()
        if event.get("event") == "progress":
            self.query_one("#progress", ProgressBar).update(progress=float(event.get("progress", 0.0)))
        text = training_progress_text(event)
        if text:
            self.query_one("#training-log", RichLog).write(text)
            self._status(text, "yellow")

    def action_cancel_run(self) -> None:
        if not (self.running and self.job_id) or not self.app.can_write("training"):
            return
        self._status(f"cancelling {self.job_id} …", "yellow")
        self._cancel(self.job_id)

    @work(thread=True, group="training-cancel", exit_on_error=False)
    def _cancel(self, job_id: str) -> None:
        """Cancel through the backend (local: the trainer is killed; Kubernetes: the Job is deleted). The
        run's own worker then sees the end of the log and reports the run cancelled."""
        self.app.record_call(f"ws.training().cancel({job_id!r})")
        training = self.app.workspace.training()
        try:
            training.cancel(job_id)
        except Exception as exc:
            self.post_message(self.Event({"event": "error", "message": f"cancel failed: {type(exc).__name__}: {exc}"}))
        finally:
            capabilities.close(training)

    @on(Finished)
    def _on_finished(self, message: Finished) -> None:
        self.running = False
        self.job_id = None
        if message.error:
            self._status(f"training failed: {message.error}", "bold red")
        else:
            mv = self.new_version = message.version
            self.query_one("#progress", ProgressBar).update(progress=1.0)
            moved = (f"candidate alias moved {self.candidate_before} → {mv.version}" if self.candidate_before
                     else f"candidate alias set to {mv.version}") if "candidate" in mv.aliases else "candidate alias unchanged"
            self._status(f"✔ version {mv.version} registered as {', '.join(mv.aliases) or 'a version'} of {self.model}"
                         f" (auc_roc {fmt_number(mv.metrics.get('auc_roc'))}) · {moved} — press v to review it", "bold green")
            self.notify(f"{self.model}: version {mv.version} landed · {moved}")
            if "candidate" in mv.aliases:
                self.candidate_before = mv.version
            # hand focus back: a form field would swallow `v` (after a failure it stays, to fix the params)
            self.query_one("#training-log", RichLog).focus()
        self.refresh_bindings()

    def _status(self, text: str, style: str = "") -> None:
        self.query_one("#training-status", Static).update(Text(text, style=style))

    def action_review(self) -> None:
        if self.new_version is not None:
            self.post_message(OpenReview(self.model, self.new_version.version))


def open_with_newest_data(screen, model: str) -> None:
    """From a critical drift: the training screen for `model`, its data version prefilled with the
    newest version of the model's dataset (the one `mrc watch` would retrain on), read in a worker.
    Where that version is already handled (a candidate trained on it, a watch retrain), it says
    which candidate instead of opening the screen."""
    app = screen.app
    app.record_call(f"console.monitor.watch_run.newest_data_ref(ws, {model!r}) → TrainingScreen({model!r}, data=…)")

    def find_newest() -> None:
        try:
            _, production_mv = production_of(app.workspace, model)
            newest = newest_data_ref(app.workspace, model, production_mv=production_mv)
        except Exception as exc:  # noqa: BLE001  (no dataset named anywhere: say so, stay here)
            app.call_from_thread(app.notify, f"{model}: no newest data version: {exc}", severity="error")
            return
        try:
            done = handled_versions(app.workspace, model).get(newest)
        except Exception as exc:  # noqa: BLE001  (registry down: say so, do not offer a retrain blind)
            app.call_from_thread(app.notify, f"{model}: cannot tell whether {newest} was trained on: {exc}",
                                 severity="error")
            return
        if done:  # a second retrain on one data version is what watch itself never does
            app.call_from_thread(app.notify, f"{model}: candidate {done.get('candidate') or '?'} is already "
                                 f"trained on {newest} (the newest data version): review it instead of retraining",
                                 severity="warning")
            return
        reason = (f"drift is critical: retrain on the newest data version {newest} "
                  "(the new version becomes the candidate; nothing is promoted)")
        app.call_from_thread(app.push_screen, TrainingScreen(model, data=newest, reason=reason))

    screen.run_worker(find_newest, thread=True, group="retrain-newest", exclusive=True, exit_on_error=False)
