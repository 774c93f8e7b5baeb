"""The plugin's one home: its pages tabbed together, each with its controls whole on a
laptop's screen as on a large one."""

from __future__ import annotations

from pathlib import Path

import pytest
from qtpy.QtWidgets import QApplication, QWidget

from napari_batch_pipeline._widgets.viewer.home import dock_of
from napari_batch_pipeline.core.synthetic import nuclei_image

PLUGIN = "napari-batch-pipeline"
#: controls shorter than this are squeezed, not shown
MIN_CONTROL = 20


def _whole(widget) -> int:
    """Pixels of ``widget``'s height in view (0: hidden, scrolled away or squeezed)."""
    native: QWidget = getattr(widget, "native", widget)
    if not native.isVisible():
        return 0
    return native.visibleRegion().boundingRect().height()


def _assert_whole(page_name: str, controls: dict[str, object], tall: dict[str, tuple[object, int]]) -> None:
    for name, control in controls.items():
        native = getattr(control, "native", control)
        shown = _whole(control)
        assert native.height() >= MIN_CONTROL, f"{page_name}: {name} squeezed to {native.height()} px"
        assert shown == native.height(), f"{page_name}: {name} shows {shown} of {native.height()} px"
    for name, (control, least) in tall.items():
        assert _whole(control) >= least, f"{page_name}: {name} shows only {_whole(control)} px"


@pytest.mark.parametrize("size", [(1280, 800), (1600, 1200)], ids=["1280x800", "1600x1200"])
def test_every_page_shows_its_controls_whole(
    make_napari_viewer, image_folder, pipeline_file, tmp_path: Path, run_to_end, qtbot, size
):
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(size[0], size[1] - 50)  # less a task bar
    viewer.add_image(nuclei_image((256, 256)), name="nuclei")
    _, builder = viewer.window.add_plugin_dock_widget(PLUGIN, "Pipeline builder")
    for stage in ("gaussian", "threshold", "label", "measure"):
        builder.add_stage(stage)
    _, batch = viewer.window.add_plugin_dock_widget(PLUGIN, "Batch processing")
    batch.input_dir.value, batch.output_dir.value = image_folder, tmp_path / "out"
    batch.pipeline.value, batch.executor.value = pipeline_file, "threads"
    run_to_end(batch)
    results = batch.show_tables()
    assert results is not None
    sweep = builder.open_sweep()
    QApplication.processEvents()

    # one home: the four pages are tabs of one dock area, the last one opened in front
    docks = [dock_of(page) for page in (builder, batch, results, sweep)]
    assert all(dock is not None for dock in docks)
    for dock in docks[:-1]:
        assert set(window.tabifiedDockWidgets(dock)) == set(docks) - {dock}
    assert [dock.windowTitle() for dock in docks] == [
        "Pipeline builder",
        "Batch processing",
        "Batch results",
        "Parameter sweep",
    ]

    pages = {
        "builder": (
            builder,
            {"Add stage": builder.add_button, "Run": builder.run_button, "stage": builder.stage_choice},
            {"stage list": (builder.stage_list, 200)},
        ),
        "batch": (
            batch,
            {"Run": batch.run_button, "Cancel": batch.cancel_button, "progress": batch.progress_bar},
            {"task table": (batch.table, 150)},
        ),
        "results": (
            results,
            {"table": results.table_choice, "plot": results.plot_kind},
            {"table view": (results.table, 100), "plot": (results.canvas, 180)},
        ),
        "sweep": (
            sweep,
            {"Run sweep": sweep.run_button, "Apply": sweep.apply_button, "plot choice": sweep.measurement},
            {"plot": (sweep.canvas, 150)},
        ),
    }
    for name, (page, controls, tall) in pages.items():
        dock_of(page).raise_()
        qtbot.waitUntil(lambda page=page: page.isVisible(), timeout=5_000)
        QApplication.processEvents()
        _assert_whole(name, controls, tall)


def test_a_page_opened_alone_stays_a_dock_of_its_own(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    _, batch = viewer.window.add_plugin_dock_widget(PLUGIN, "Batch processing")
    QApplication.processEvents()
    dock = dock_of(batch)
    assert dock is not None
    assert viewer.window._qt_window.tabifiedDockWidgets(dock) == []
    assert _whole(batch.run_button) == batch.run_button.native.height()
