"""Fixtures of the widget tests: a folder of synthetic images, a viewer, a batch widget, a builder."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_batch_pipeline.core.synthetic import nuclei_image, write_nuclei_folder


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Six synthetic 256 x 256 nuclei TIFFs in ``tmp_path / 'images'``."""
    folder = tmp_path / "images"
    write_nuclei_folder(folder, count=6)
    return folder


@pytest.fixture
def make_batch_widget(make_napari_viewer, pipeline_file, tmp_path):
    """``make_batch_widget(input_dir, executor='serial')``: a docked BatchWidget in a new
    viewer, the DESIGN pipeline on ``input_dir`` into ``tmp_path / 'out'``."""
    from napari_batch_pipeline._widgets.batch.widget import BatchWidget

    def make(input_dir: Path, executor: str = "serial"):
        viewer = make_napari_viewer()
        widget = BatchWidget(viewer)
        viewer.window.add_dock_widget(widget)
        widget.input_dir.value = input_dir
        widget.output_dir.value = tmp_path / "out"
        widget.pipeline.value = pipeline_file
        widget.executor.value = executor
        return widget

    return make


@pytest.fixture
def batch_widget(make_batch_widget, image_folder):
    """A docked BatchWidget with its fields set: the DESIGN pipeline on ``image_folder``.

    Two threads keep the tests quick and run a pool inside the widget's worker thread;
    the output folder is ``tmp_path / 'out'``.
    """
    widget = make_batch_widget(image_folder, executor="threads")
    widget.workers.value = 2
    return widget


@pytest.fixture
def run_to_end(qtbot):
    """``run_to_end(widget)``: start a batch widget's run, wait for its end, return the report."""

    def run(widget, timeout: int = 300_000):  # a loaded CI machine starts napari slowly
        with qtbot.waitSignal(widget.run_finished, timeout=timeout) as blocker:
            widget.start()
        return blocker.args[0]

    return run


@pytest.fixture
def builder(make_napari_viewer):
    """A docked builder in a viewer holding the synthetic image 'nuclei' (selected)."""
    viewer = make_napari_viewer()
    viewer.add_image(nuclei_image(), name="nuclei")
    from napari_batch_pipeline._widgets.builder.widget import PipelineBuilder

    widget = PipelineBuilder(viewer)
    viewer.window.add_dock_widget(widget)
    return widget


@pytest.fixture
def wait_run(qtbot):
    """``wait_run(action)``: do ``action()`` and wait for the builder run it causes to end."""

    def wait(builder, action, timeout=30_000):
        with qtbot.waitSignal(builder.run_finished, timeout=timeout) as blocker:
            action()
        assert blocker.args[0] is not None, builder.status.value  # None: the run failed
        return blocker.args[0]

    return wait
