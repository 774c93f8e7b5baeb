"""Two tasks never share an output: collisions are refused before anything is written.

Files whose names differ only by suffix or case, and sweep values that print alike in
output names, would write one output file (the last one wins) and, in horizontal runs,
one intermediate; the run is refused up front, naming both.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_batch_pipeline.core.batch import BatchRun, run_batch
from napari_batch_pipeline.core.errors import PipelineError
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.synthetic import nuclei_image

TAGGED = """
def tag(image: "napari.types.ImageData", note: str = "") -> "napari.types.ImageData":
    return image
"""

TAGGED_PIPELINE = """
version: 1
name: tagged
stages:
  - {name: tagged, function: "tagging_stages:tag", params: {note: plain}}
  - {name: mask, function: threshold}
  - {name: labels, function: label, save: true}
"""


def _write(folder: Path, names: list[str]) -> Path:
    folder.mkdir(exist_ok=True)
    for number, name in enumerate(names):
        tifffile.imwrite(folder / name, nuclei_image(shape=(48, 48), n_nuclei=3, radius=4, seed=number))
    return folder


@pytest.mark.parametrize(
    ("names", "named"),
    [
        (["a.tif", "a.tiff"], "'a.tif' and 'a.tiff'"),
        (["a.tif", "A.TIF"], "'a.tif' and 'A.TIF'"),
        (["b.ome.tif", "b.tif"], "'b.ome.tif' and 'b.tif'"),
    ],
)
@pytest.mark.parametrize("strategy", ["vertical", "horizontal"])
def test_files_that_would_share_outputs_are_refused_before_anything_is_written(
    names: list[str], named: str, strategy: str, pipeline: Pipeline, tmp_path: Path
) -> None:
    folder = _write(tmp_path / "images", names)
    with pytest.raises(PipelineError, match="would write the same output files") as error:
        BatchRun(pipeline, folder, tmp_path / "out", strategy=strategy)
    assert named in str(error.value)
    assert not (tmp_path / "out").exists()


def test_sweep_values_that_print_alike_are_refused(
    user_module: Callable[[str, str], str], tmp_path: Path
) -> None:
    user_module("tagging_stages", TAGGED)
    folder = _write(tmp_path / "images", ["a.tif"])
    pipeline = Pipeline.from_text(TAGGED_PIPELINE)
    with pytest.raises(PipelineError, match="would write the same output files") as error:
        BatchRun(pipeline, folder, tmp_path / "out", sweep={"tagged.note": ["a b", "a-b"]})
    assert "'a.tif'" in str(error.value)
    assert not (tmp_path / "out").exists()


def test_distinct_sweep_values_give_distinct_outputs_and_rows(
    user_module: Callable[[str, str], str], tmp_path: Path
) -> None:
    user_module("tagging_stages", TAGGED)
    folder = _write(tmp_path / "images", ["a.tif", "b.tif"])
    pipeline = Pipeline.from_text(TAGGED_PIPELINE)
    report = run_batch(pipeline, folder, tmp_path / "out", sweep={"tagged.note": ["x", "y", "z"]})
    assert report.done == 6
    assert len(report.images) == 6 and not report.images.duplicated(["image", "tagged.note"]).any()
    saved = sorted(path.name for path in (tmp_path / "out" / "labels").iterdir())
    assert len(saved) == 6 and len(set(saved)) == 6
    labels = [tifffile.imread(path) for path in sorted((tmp_path / "out" / "labels").iterdir())]
    assert all(np.array_equal(labels[0], other) for other in labels[:3])  # same image, same labels
