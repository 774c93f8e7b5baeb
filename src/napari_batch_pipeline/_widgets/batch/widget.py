"""The *Batch processing* widget: a folder through a pipeline, watched from napari.

The engine (:class:`~napari_batch_pipeline.core.batch.BatchRun`) runs in a napari
thread worker whose generator yields the engine's events; the widget turns them into a
progress bar, one table row per finished task, and at the end the saved outputs as
lazy layers. Events are shown in batches, at most every :data:`SHOW_EVERY` seconds
(the first at once), the table, the status and the progress bar in one turn of the event
loop: a repaint of the dock composes the whole window with the canvas (50 ms and more
on a software-OpenGL display, Xvfb or a remote desktop), so a run costs the viewer two
repaints a second, not one per task nor one per bar; nothing repaints at once
(synchronously), so the viewer stays responsive. Cancel calls ``BatchRun.cancel()``
and lets the engine finish cleanly (tables written, nothing half-written left). A click
on a row shows that task's input image with its saved outputs.

Driven from Python as a user's script would::

    widget = BatchWidget(viewer)
    widget.input_dir.value = "images/"
    widget.output_dir.value = "results/"
    widget.pipeline.value = "nuclei.yaml"
    worker = widget.start()          # a napari GeneratorWorker
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from magicgui.widgets import Container, Label, ProgressBar, PushButton
from napari.layers import Layer
from napari.qt.threading import FunctionWorker, GeneratorWorker, create_worker
from napari.utils.notifications import show_error, show_info
from napari.viewer import Viewer
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import QWidget

from ...core.batch import BatchRun
from ...core.engine.events import Event, RunFinished, RunStarted, StageProgress, TaskFinished
from ...core.engine.measure import estimate_plan
from ...core.engine.report import Report
from ...core.errors import PipelineError
from ...core.pipeline.model import Pipeline
from ...core.plan.batch_plan import BatchPlan, plan_batch
from ...core.plan.estimate import Estimate
from ..results.run_layers import LayerQueue, LoadedLayers, events_then_layers, task_layers
from ..results.view import ResultsView, show_results
from ..viewer.dock_layout import scrolling_layout, wrapping
from ..viewer.home import join_home_later, mark_page, show_page
from ..viewer.responsive import call_responsively, disabled
from ..viewer.session import session_for
from ..viewer.workers import generator_worker, unwrapped
from .batch_fields import BatchFields, field_hint, path_of
from .batch_progress import BAR_EVERY, RunProgress
from .batch_status import CloseGuard, VersionFolderOffer, offer_version_folder, summary_text
from .collector import hold_collector
from .task_table import TaskTable
from .warm_up import WarmUp, warm_up

__all__ = ["SHOW_EVERY", "BatchWidget"]

#: seconds between two updates of the table, status and progress bar (each a repaint)
SHOW_EVERY = BAR_EVERY


class BatchWidget(QWidget):
    """Run a pipeline over a folder; watch progress, results and failures in napari.

    Emits, in the main thread, ``engine_event(event)`` for each event of the engine
    (:mod:`napari_batch_pipeline.core.engine.events`) once the widget has shown it, and
    ``run_finished(report)`` (Report, or None after an error) once a run has ended and
    its results are in the viewer.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer results are shown in.

    Attributes
    ----------
    input_dir, pattern, recursive, metadata, limit, output_dir, pipeline, params, group_by, \
    annotations, negative_control, positive_control, table_format, well_aggregate, \
    executor, workers, scheduler, strategy, memory_budget, task_timeout, sweep, fresh
        The fields, magicgui widgets: set ``.value`` from Python (see
        :class:`.batch_fields.BatchFields`).
    fields : BatchFields
        The same fields, and the batch options they make.
    table : TaskTable
        One row per finished task: image, parameter set, status, seconds, summary
        values, error.
    worker, report : GeneratorWorker or None, Report or None
        The worker of the current (or last) run; the engine's report of the last one.
    warming : WarmUp or None
        The worker processes and imports of the first run, started in the background
        once shown (:mod:`.warm_up`); a run that starts before a worker is ready runs on
        threads (executor ``auto``) rather than wait.
    """

    engine_event = Signal(object)
    run_finished = Signal(object)

    def __init__(self, napari_viewer: Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.fields = fields = BatchFields()
        self.input_dir, self.pattern, self.output_dir = fields.input_dir, fields.pattern, fields.output_dir
        self.recursive, self.metadata, self.limit = fields.recursive, fields.metadata, fields.limit
        self.pipeline, self.params, self.group_by = fields.pipeline, fields.params, fields.group_by
        self.executor, self.workers, self.scheduler = fields.executor, fields.workers, fields.scheduler
        self.strategy, self.memory_budget = fields.strategy, fields.memory_budget
        self.task_timeout, self.table_format = fields.task_timeout, fields.table_format
        self.well_aggregate = fields.well_aggregate
        self.annotations, self.negative_control = fields.annotations, fields.negative_control
        self.sweep, self.fresh, self.positive_control = fields.sweep, fields.fresh, fields.positive_control
        self.estimate_button = PushButton(text="Estimate")
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.results_button = PushButton(text="Tables and plots", enabled=False)
        self.estimate_text = Label(value="")
        self.progress_bar = ProgressBar(value=0, min=0, max=1, label="images")
        self.status = Label(value="")
        buttons = [self.estimate_button, self.run_button, self.cancel_button, self.results_button]
        row = Container(widgets=buttons, layout="horizontal", labels=False)
        self.form = Container(widgets=[row, self.estimate_text, self.progress_bar, self.status])
        wrapping(self.estimate_text, self.status)
        self.table = TaskTable()
        self.table.cellClicked.connect(self._on_cell_clicked)
        layout = scrolling_layout(self)
        layout.addWidget(fields.form())
        layout.addWidget(self.form.native)
        layout.addWidget(self.table, stretch=1)

        self.estimate_button.changed.connect(self._on_estimate_clicked)
        self.run_button.changed.connect(self._on_run_clicked)
        self.cancel_button.changed.connect(self.cancel)
        self.results_button.changed.connect(self.show_tables)

        self.worker: GeneratorWorker | None = None
        self.warming: WarmUp | None = None
        self.results_view: ResultsView | None = None
        self.estimate_worker: FunctionWorker | None = None
        self.batch: BatchRun | None = None
        self.report: Report | None = None
        self.failures: list[tuple[str, str]] = []
        self.layer_queue = LayerQueue(self.viewer, self._end_if_done)
        self.row_layers: list[Layer] = []
        self.run_progress = RunProgress(self.progress_bar)
        self._pending: list[Event] = []  # engine events not yet shown (_show_pending)
        self._shown_at = 0.0  # when events were last shown
        self._show_timer = QTimer(self)
        self._show_timer.setSingleShot(True)
        self._show_timer.timeout.connect(self._show_pending)
        # a run is over when its worker has finished and its result layers are all added
        self._active = self._worker_finished = False
        self._release_collector: Callable[[], None] = lambda: None
        # closing the viewer mid-run cancels the run and waits for its clean end
        self._worker_done, self._closing = threading.Event(), False  # set: the worker has ended
        self.close_guard = CloseGuard(lambda: self.running, self._close_run, self._worker_done.is_set, self)
        self._fields_message = False  # a message about the fields goes once they change
        for widget in fields.widgets:
            widget.changed.connect(self._on_field_changed)
        mark_page(self, "batch")

    # -- what to run --------------------------------------------------------------------

    def current_pipeline(self) -> Pipeline:
        """The pipeline file's pipeline, else the pipeline being tuned in this viewer (the builder's).

        Raises
        ------
        PipelineError
            If there is neither, or the file or the tuned pipeline is invalid.
        """
        path = path_of(self.pipeline)
        if path:
            return Pipeline.from_yaml(path)
        session = session_for(self.viewer)
        if not session.stages:
            raise PipelineError("choose a pipeline file, or open the Pipeline builder and add stages")
        return session.pipeline()

    def make_batch(self) -> BatchRun:
        """A BatchRun of the fields' values; validated, nothing written yet.

        Raises
        ------
        PipelineError
            For a missing folder, an invalid pipeline or sweep, or unusable options.
        """
        return self._planned(BatchRun, command="napari: Batch processing widget")

    def make_plan(self) -> BatchPlan:
        """The fields' plan, with a run's options (its estimate is the run's); writes nothing."""
        return self._planned(plan_batch)

    def beside_viewer(self) -> dict[str, bool]:
        """A run's options here: niced workers; threads for ``auto`` while they start."""
        starting = self.warming is not None and self.warming.workers_starting
        return {"low_priority": True, "workers_starting": starting}

    def _planned(self, make: Callable[..., Any], **extra: Any) -> Any:
        """``make(pipeline, input, output, **options)``: planning opens every file's header
        (0.3 s for 1,000 files), so in a thread, the viewer's event loop turning meanwhile,
        Run and Estimate held off."""
        input_dir, output_dir = self.fields.folders()
        pipeline, options = self.current_pipeline(), {**self.fields.options(), **self.beside_viewer()}
        with disabled(self.run_button, self.estimate_button):
            return call_responsively(make, pipeline, input_dir, output_dir, **extra, **options)

    # -- running ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """From :meth:`start` until the results are shown (``run_finished``)."""
        return self._active

    def start(self) -> GeneratorWorker:
        """Start the batch in a thread worker and return it.

        Raises
        ------
        PipelineError
            If the fields do not make a valid batch (nothing is started then).
        RuntimeError
            If a batch is already running.
        """
        if self.running:
            raise RuntimeError("a batch is already running; cancel it first")
        self._offer_version_folder()
        batch = self.make_batch()
        self.batch, self.report = batch, None
        self.table.clear_tasks()
        self.failures, self._pending = [], []
        self.status.value = f"starting {len(batch.tasks)} task(s)..."
        self.run_progress.start(len(batch.tasks))
        self._worker_done.clear()
        worker = generator_worker(self._worker_events, batch)
        worker.yielded.connect(self._on_event)
        worker.errored.connect(unwrapped(self._on_error))
        worker.finished.connect(self._on_finished)
        self.worker, self._active = worker, True
        self._worker_finished = self._closing = False
        self._fields_message = False
        if self.window() is not self:  # docked: the viewer's main window
            self.window().installEventFilter(self.close_guard)
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        # until the results are in, no long pauses of the garbage collector; given back
        # also if the viewer closes mid-run (a docked widget is deleted, never closed)
        self._release_collector = release = hold_collector()
        self.destroyed.connect(lambda *_: release())
        worker.start()
        return worker

    def _worker_events(self, batch: BatchRun) -> Iterator[Event | LoadedLayers]:
        """In the worker thread: the engine's events, then its layers unless the viewer closes."""
        try:
            for event in events_then_layers(batch):
                if not (self._closing and isinstance(event, LoadedLayers)):
                    yield event
        finally:
            self._worker_done.set()

    def cancel(self) -> None:
        """Ask the engine to stop; it finishes cleanly and the worker then ends."""
        if self.batch is not None and self.running:
            self.batch.cancel()
            self.status.value = "cancelling..."
            self.cancel_button.enabled = False

    def estimate(self) -> FunctionWorker:
        """Measure the first image in a thread worker (and worker process); writes nothing."""
        plan = self.make_plan()
        worker = create_worker(estimate_plan, plan, _ignore_errors=True)
        worker.returned.connect(self._on_estimate)
        worker.errored.connect(self._on_error)
        self.estimate_text.value = "estimating..."
        self.estimate_worker = worker
        worker.start()
        return worker

    def _offer_version_folder(self) -> None:
        """Into a folder of another pipeline's run (tuned since): offer this version's own."""
        if not self.fresh.value:
            offer_version_folder(self.output_dir, self.fields.folders()[1], self.current_pipeline())

    def _close_run(self) -> None:
        self._closing = True
        self.cancel()

    def _on_run_clicked(self) -> None:
        try:
            self.start()
        except (PipelineError, RuntimeError) as error:
            message = field_hint(error) if isinstance(error, PipelineError) else str(error)
            self.status.value = message
            self._fields_message = True
            # an offer of this pipeline's own folder is a notice; the rest, errors
            (show_info if isinstance(error, VersionFolderOffer) else show_error)(message)

    def _on_field_changed(self) -> None:
        """A message about the fields, or an estimate of other fields, is out of date."""
        if self.running:
            return
        self.estimate_text.value = ""
        if self._fields_message:
            self.status.value, self._fields_message = "", False

    def _on_estimate_clicked(self) -> None:
        try:
            self.estimate()
        except PipelineError as error:
            self.estimate_text.value = field_hint(error)
            show_error(field_hint(error))

    def _on_estimate(self, estimate: Estimate) -> None:
        self.estimate_text.value = estimate.summary()

    def _on_error(self, error: Exception) -> None:
        message = field_hint(error) if isinstance(error, PipelineError) else str(error)
        self.status.value = f"error: {message}"
        show_error(message)

    def _on_event(self, event: Event | LoadedLayers) -> None:
        """Queue a task's or a stage's progress for the next batch; show the rest at once."""
        if isinstance(event, (TaskFinished, StageProgress)):
            self._pending.append(event)
            if not self._show_timer.isActive():
                wait = SHOW_EVERY - (time.monotonic() - self._shown_at)
                self._show_timer.start(max(0, int(wait * 1000)))
            return
        self._show_pending()
        if isinstance(event, LoadedLayers):
            self.layer_queue.show(event.layers, event.tables)
            if event.problem:
                show_info(event.problem)
            return
        if isinstance(event, RunStarted):
            self.table.add_resumed(event.resumed, self.batch.tasks if self.batch else [])
            self.run_progress.ended = event.skipped
            self.run_progress.advance(event.skipped, flush=True)
            resumed = f", {event.skipped} already done" if event.skipped else ""
            auto = " (auto)" if event.executor_reason else ""
            if event.executor_reason and self.batch is not None and self.batch.options.workers_starting:
                auto = " (auto: the worker processes are still starting)"
            self.status.value = (
                f"running {event.total} task(s){resumed}: {event.strategy}, "
                f"{event.executor} x {event.workers}{auto}"
            )
            if event.estimate is not None:
                self.estimate_text.value = event.estimate.summary()
        elif isinstance(event, RunFinished):
            self.run_progress.advance(0, flush=True)
            self.report = event.report
            self.status.value = summary_text(event.report, self.failures)
        self.engine_event.emit(event)

    def _show_pending(self) -> None:
        """Show the queued events in one go: their rows, the progress, the last stage's
        progress; then emit ``engine_event`` for each, in order."""
        self._show_timer.stop()
        events, self._pending = self._pending, []
        self._shown_at = time.monotonic()
        if not events:
            return
        finished = [event for event in events if isinstance(event, TaskFinished)]
        if finished:
            assert self.batch is not None  # set by start(), before any event
            tasks = self.batch.tasks
            self.table.add_records([(event.record, tasks[event.record.index]) for event in finished])
            self.run_progress.ended = finished[-1].done + finished[-1].failed
            self.run_progress.advance(len(finished))
            self.failures += [(event.image, event.error) for event in finished if event.status == "failed"]
        stages = [event for event in events if isinstance(event, StageProgress)]
        if stages:
            last = stages[-1]
            self.status.value = f"stage {last.stage}: {last.done} of {last.total}"
        for event in events:
            self.engine_event.emit(event)

    def _on_finished(self) -> None:
        self._show_pending()
        self.cancel_button.enabled = False
        self.run_progress.close()
        self._worker_finished = True
        self._end_if_done()

    def _end_if_done(self) -> None:
        """Once the worker has finished and the result layers are in: the run is over."""
        if not self._active or not self._worker_finished or self.layer_queue.loading:
            return
        self.run_button.enabled = True
        self._active = False
        self._release_collector()
        self.results_button.enabled = self.report is not None
        self.table.show_flags(self.report)  # the quality flags: once the tables are written
        if self.report is not None and self.results_view is not None:
            self._load_tables()  # an open results view follows the latest run, in its tab
        self.run_finished.emit(self.report)

    # -- the table ----------------------------------------------------------------------

    def _on_cell_clicked(self, row: int, _column: int) -> None:
        self.show_row(row)

    def show_row(self, row: int) -> list[Layer]:
        """Show the task of table row ``row``: its input image and saved outputs as layers.

        The layers of the previous click are removed; the new ones are named
        ``"<image> [<parameter set>]"`` and ``"... <stage>"`` (see
        :func:`.run_layers.task_layers`), at the pixel size's scale, and the canvas's corner
        text names the image clicked (until the stacks' slider moves). Returns them.
        """
        if self.batch is None or not 0 <= row < len(self.table.tasks):
            return []
        for layer in self.row_layers:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        batch = self.batch
        self.row_layers = task_layers(self.viewer, batch.folder.path, batch.pipeline, self.table.tasks[row])
        if self.row_layers:  # the corner names what is on top now, until the slider moves
            overlay = self.viewer.canvas.overlays["text"]
            overlay.text = f"{self.row_layers[0].name.partition(': ')[2]} (table row {row + 1}, clicked)"
            overlay.visible = True
        return self.row_layers

    def show_tables(self) -> ResultsView | None:
        """Open (or refresh) the Batch results view of the last run, tables and plots, and
        bring its page up."""
        view = self._load_tables()
        if view is not None:
            show_page(view)
        return view

    def _load_tables(self) -> ResultsView | None:
        if self.batch is not None:
            self.results_view = show_results(self.viewer, self.results_view, self.batch.folder.path)
        return self.results_view if self.batch is not None else None

    def showEvent(self, event: Any) -> None:
        join_home_later(self)
        if self.warming is None:  # the first run as quick as the next
            self.warming = warm_up(self.executor.value, self.workers.value)
        super().showEvent(event)

    def closeEvent(self, event: Any) -> None:
        self.cancel()
        self._release_collector()
        super().closeEvent(event)
