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

import numpy as np
import pytest
import skimage.data

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
