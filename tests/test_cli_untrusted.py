"""Opening a run folder someone else made runs none of its code: summarize, the reader
and a run into that folder import no module its pipeline names; re-running it names the
modules and needs --trust-code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tifffile

from napari_batch_pipeline.core.run_folder.reader import RunResults
from napari_batch_pipeline.core.synthetic import nuclei_image

#: a module whose import leaves a mark: what a received pipeline could name
_MARKING_MODULE = """
from pathlib import Path
Path(__file__).with_name("imported.txt").write_text("code ran")


def scaled(image: "napari.types.ImageData") -> "napari.types.ImageData":
    return image * 2
"""

_PIPELINE = """\
version: 1
name: received
stages:
  - {name: scaled, function: "marking_stages:scaled"}
  - {name: mask, function: threshold, params: {method: otsu}}
  - {name: labels, function: label, save: true}
  - name: nuclei
    function: measure
    inputs: {labels: labels, intensity: scaled}
    params: {properties: [area]}
"""

_OURS = """\
version: 1
name: ours
stages:
  - {name: mask, function: threshold, params: {method: otsu}}
  - {name: labels, function: label, save: true}
"""


def _cli(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "napari_batch_pipeline.cli", *map(str, args)]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def received(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, dict[str, str]]:
    """A finished run folder whose pipeline names a module that marks its import; the
    module importable (on PYTHONPATH, and on sys.path here); the mark removed."""
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "marking_stages.py").write_text(_MARKING_MODULE, encoding="utf-8")
    images = tmp_path / "images"
    images.mkdir()
    for number in range(2):
        tifffile.imwrite(images / f"img{number}.tif", nuclei_image(shape=(96, 96), n_nuclei=4, seed=number))
    (tmp_path / "received.yaml").write_text(_PIPELINE, encoding="utf-8")
    (tmp_path / "ours.yaml").write_text(_OURS, encoding="utf-8")
    path = os.pathsep.join(filter(None, [str(modules), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}
    made = _cli("run", "received.yaml", "images", "-o", "run", "--executor", "serial", cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    mark = modules / "imported.txt"
    assert mark.exists()
    mark.unlink()
    monkeypatch.syspath_prepend(str(modules))
    yield tmp_path, mark, env
    sys.modules.pop("marking_stages", None)


def test_summarize_imports_nothing(received: tuple[Path, Path, dict[str, str]]) -> None:
    folder, mark, env = received
    result = _cli("summarize", "run", "--group-by", "image", cwd=folder, env=env)
    assert result.returncode == 0, result.stderr
    assert not mark.exists()


def test_reading_the_results_imports_nothing(received: tuple[Path, Path, dict[str, str]]) -> None:
    folder, mark, _ = received
    results = RunResults(folder / "run")
    assert "marking_stages" not in sys.modules and not mark.exists()
    assert results.pipeline.table_stages == ["nuclei"]
    assert results.pipeline.saved_stages == ["labels"]
    assert results.pipeline["labels"].returns == "labels"
    assert len(results.table("nuclei")) > 0 and list(results.images["status"]) == ["done", "done"]
    assert results.pipeline["scaled"].returns == "image"  # recorded by the run
    with pytest.raises(Exception, match="was not imported"):
        results.pipeline.run(nuclei_image(shape=(32, 32), n_nuclei=1))
    assert not mark.exists()


def test_the_napari_reader_imports_nothing(received: tuple[Path, Path, dict[str, str]]) -> None:
    from napari_batch_pipeline._reader import napari_get_reader

    folder, mark, _ = received
    reader = napari_get_reader(str(folder / "run"))
    assert reader is not None
    layers = reader(str(folder / "run"))
    assert "labels" in [kind for _, _, kind in layers]
    assert "marking_stages" not in sys.modules and not mark.exists()


@pytest.mark.parametrize("fresh", [False, True])
def test_a_run_into_the_folder_imports_nothing_of_it(
    received: tuple[Path, Path, dict[str, str]], fresh: bool
) -> None:
    folder, mark, env = received
    extra = ["--fresh"] if fresh else []
    result = _cli(
        "run", "ours.yaml", "images", "-o", "run", "--executor", "serial", *extra, cwd=folder, env=env
    )
    if fresh:
        assert result.returncode == 0, result.stderr
        assert not (folder / "run" / "nuclei.csv").exists()  # the received run's table went
    else:
        assert result.returncode == 2 and "different pipeline" in result.stderr
    assert not mark.exists()


def test_a_rerun_names_the_modules_and_needs_consent(received: tuple[Path, Path, dict[str, str]]) -> None:
    folder, mark, env = received
    refused = _cli("rerun", "run", "-o", "again", "--executor", "serial", cwd=folder, env=env)
    assert refused.returncode == 2
    assert "'marking_stages'" in refused.stderr and "--trust-code" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not mark.exists() and not (folder / "again").exists()
    trusted = _cli("rerun", "run", "-o", "again", "--executor", "serial", "--trust-code", cwd=folder, env=env)
    assert trusted.returncode == 0, trusted.stderr
    assert mark.exists()
