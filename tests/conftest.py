"""Shared test set-up and fixtures.

GUI tests need a real X display: they fail without one, never skip.
Fixtures build on each other: ``pipeline_yaml`` -> ``pipeline_file`` -> ``pipeline``.
Everything is made on the fly in ``tmp_path``; nothing is downloaded.
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import skimage.data

from napari_batch_pipeline.core.demo import SCREEN_PIPELINE
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.stages import STAGES
from napari_batch_pipeline.core.synthetic import nuclei_image as make_nuclei_image

# fixtures that start Qt; a test using one is a GUI test
_GUI_FIXTURES = {"make_napari_viewer", "make_napari_viewer_proxy", "qtbot", "qapp"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _GUI_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.gui)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if item.get_closest_marker("gui") and sys.platform.startswith("linux") and headless:
        pytest.fail(
            "this GUI test needs a display: run `bash scripts/test.sh`, or install Xvfb "
            "(pytest-xvfb then starts it), or run pytest under `xvfb-run -a`",
            pytrace=False,
        )


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the process with pytest's exit status once pytest is done, when Qt was started.

    The interpreter's own teardown then destroys the remaining Qt objects (the session's
    QApplication, widgets napari keeps) in an order Qt does not expect; under PyQt6 that
    crashed with a segfault, at random, once in a CI run after every test had passed
    ("1119 passed", then exit status 139). Everything pytest reports is written by now;
    only that teardown is skipped.
    """
    if hasattr(config, "workerinput"):
        return  # a pytest-xdist worker: its controller still has to hear it end
    if _EXIT_STATUS and any(name in sys.modules for name in ("PyQt6", "PyQt5", "PySide6")):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])


#: The example pipeline of DESIGN.md ("Pipeline file"), verbatim.
DESIGN_PIPELINE_YAML = """\
version: 1
name: nuclei
stages:
  - name: blurred            # unique; names the stage's output
    function: gaussian       # a built-in stage, or "package.module:function"
    params: {sigma: 2}
  - name: mask
    function: threshold
    params: {method: otsu}
  - name: labels
    function: label
    save: true               # write this stage's output for every image
  - name: nuclei
    function: measure
    inputs: {labels: labels, intensity: input}
    params: {properties: [area, intensity_mean]}
"""


@pytest.fixture
def nuclei_image() -> np.ndarray:
    """A synthetic 256 x 256 uint16 fluorescence image of nuclei (fixed seed)."""
    return make_nuclei_image()


@pytest.fixture
def coins() -> np.ndarray:
    """scikit-image's bundled coins image, (303, 384) uint8."""
    return skimage.data.coins()


@pytest.fixture
def pipeline_yaml() -> str:
    """The text of the DESIGN example pipeline file."""
    return DESIGN_PIPELINE_YAML


@pytest.fixture
def pipeline_file(tmp_path: Path, pipeline_yaml: str) -> Path:
    """The DESIGN example written to ``tmp_path / 'nuclei.yaml'``."""
    path = tmp_path / "nuclei.yaml"
    path.write_text(pipeline_yaml, encoding="utf-8")
    return path


@pytest.fixture
def cli_here(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., subprocess.CompletedProcess]]:
    """``napari-batch-pipeline ARGS`` called in this process: ``cli_here(*args)``.

    The same ``main`` as the installed command, the same exit status and output (as
    text), without a new interpreter importing scikit-image, scipy and pandas (5 to 10 s
    on a busy 2-core machine). For refusals and small serial runs; whatever needs its own
    process (signals, worker processes, a lock held by another run) goes through a
    subprocess. Logging is put back as it was afterwards.
    """
    from napari_batch_pipeline import cli

    root, package = logging.getLogger(), logging.getLogger(cli.PACKAGE_LOGGER)
    handlers, root_level, package_level = list(root.handlers), root.level, package.level

    def call(*args: str | Path) -> subprocess.CompletedProcess:
        argv = [str(arg) for arg in args]
        capsys.readouterr()
        try:
            status = cli.main(argv)
        except SystemExit as exit:  # argparse's refusals and --help
            status = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["napari-batch-pipeline", *argv], status, out, err)

    yield call
    root.handlers[:] = handlers
    root.setLevel(root_level)
    package.setLevel(package_level)


@pytest.fixture
def pipeline(pipeline_file: Path) -> Pipeline:
    """The DESIGN example, loaded and validated."""
    return Pipeline.from_yaml(pipeline_file)


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], str]]:
    """Write importable Python modules for user stages: ``user_module(name, source)``.

    ``name`` may be dotted (``'my_pkg.stages'``); packages get an ``__init__.py``.
    Returns ``name``, so ``f"{name}:function"`` is a stage reference. The modules live
    in ``tmp_path / 'modules'`` (on ``sys.path`` for the test); afterwards they leave
    ``sys.modules``, and stages registered during the test leave the catalogue.
    """
    root = tmp_path / "modules"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    catalogue = dict(STAGES)
    written: list[str] = []

    def write(name: str, source: str) -> str:
        *packages, module = name.split(".")
        folder = root
        for package in packages:
            folder = folder / package
            folder.mkdir(exist_ok=True)
            (folder / "__init__.py").touch()
        (folder / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        importlib.invalidate_caches()
        written.append(name)
        return name

    yield write

    STAGES.clear()
    STAGES.update(catalogue)
    for name in written:
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            sys.modules.pop(".".join(parts[:end]), None)


# -- a screen: two plates with controls, one blurred and one saturated field ----------------

#: the metadata pattern of the screen's file names: ``P1_A01.tif``
SCREEN_METADATA = r"(?P<plate>P\d)_(?P<well>[A-H]\d\d)"
#: per plate: negative controls (many nuclei), positive controls (few, dim), two compounds
SCREEN_WELLS = {
    "A01": ("DMSO", "negative"),
    "A02": ("DMSO", "negative"),
    "A03": ("DMSO", "negative"),
    "B01": ("stauro", "positive"),
    "B02": ("stauro", "positive"),
    "B03": ("stauro", "positive"),
    "C05": ("cpd-1", ""),
    "H12": ("cpd-2", ""),
}
#: the fields that must be flagged: out of focus, saturated
SCREEN_BLURRED, SCREEN_SATURATED = "P1_B03.tif", "P2_H12.tif"


class Screen(NamedTuple):
    """A screen's input folder, pipeline file, plate map and metadata pattern."""

    images: Path
    pipeline: Path
    annotations: Path
    metadata: str


def _screen_image(name: str, seed: int) -> np.ndarray:
    from scipy import ndimage as ndi

    well = name.split("_")[1].removesuffix(".tif")
    positive = SCREEN_WELLS[well][1] == "positive"
    image = make_nuclei_image(
        shape=(64, 64),
        n_nuclei=3 if positive else 9,
        radius=5.0,
        seed=seed,
        brightness=0.5 if positive else 1.0,
    )
    if name == SCREEN_BLURRED:
        image = ndi.gaussian_filter(image.astype(np.float32), 3).astype(np.uint16)
    if name == SCREEN_SATURATED:
        image = np.minimum(image, np.percentile(image, 50)).astype(np.uint16)
    return image


@pytest.fixture
def screen(tmp_path: Path) -> Screen:
    """Two plates (P1, P2) of 8 wells, one field each: 3 negative and 3 positive control
    wells, two compounds; P1_B03 (a positive control) blurred, P2_H12 saturated. The focus rule's minimum lies
    halfway between the blurred field's PowerLogLogSlope and the lowest of the others'."""
    import tifffile

    import cellprofiler_focus

    folder = tmp_path / "plates"
    folder.mkdir()
    scores = {}
    for seed, (plate, well) in enumerate((p, w) for p in ("P1", "P2") for w in SCREEN_WELLS):
        name = f"{plate}_{well}.tif"
        image = _screen_image(name, seed)
        tifffile.imwrite(folder / name, image)
        scores[name] = cellprofiler_focus.power_log_log_slope(cellprofiler_focus.cellprofiler_scale(image))
    sharp = min(score for name, score in scores.items() if name not in (SCREEN_BLURRED, SCREEN_SATURATED))
    assert scores[SCREEN_BLURRED] < sharp
    pipeline = tmp_path / "screen.yaml"
    pipeline.write_text(SCREEN_PIPELINE.format(focus_min=repr(float((scores[SCREEN_BLURRED] + sharp) / 2))))
    annotations = tmp_path / "plate_map.csv"
    lines = ["plate,well,compound,control"]
    lines += [f"{p},{w},{c},{k}" for p in ("P1", "P2") for w, (c, k) in SCREEN_WELLS.items()]
    annotations.write_text("\n".join(lines) + "\n")
    return Screen(folder, pipeline, annotations, SCREEN_METADATA)


@pytest.fixture
def run_screen(screen: Screen) -> Callable[..., object]:
    """``run_screen(output, **options)``: ``screen`` run with its plate map and both
    controls (serial unless ``executor`` is given); the report."""
    from napari_batch_pipeline.core.batch import run_batch

    def run(output: Path, **options: object) -> object:
        options = {"executor": "serial", **options}
        return run_batch(
            str(screen.pipeline),
            screen.images,
            output,
            metadata=screen.metadata,
            annotations=screen.annotations,
            negative_control="control=negative",
            positive_control="control=positive",
            **options,
        )

    return run
