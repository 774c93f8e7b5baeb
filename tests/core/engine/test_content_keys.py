"""Horizontal intermediates are keyed by content: a replaced input is computed again.

Before, an intermediate was named by the image alone, so a re-run after an input file was
replaced (resumed, or even started fresh) served the old image's intermediate and reported
the old image's objects for the new one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import tifffile

from napari_batch_pipeline.core.batch import run_batch
from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.synthetic import nuclei_image


@pytest.mark.parametrize("fresh", [False, True], ids=["resumed", "fresh"])
@pytest.mark.parametrize("executor", ["serial", "processes"])
def test_a_replaced_input_is_never_served_a_stale_intermediate(
    fresh: bool, executor: str, pipeline: Pipeline, tmp_path: Path
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for number in range(2):
        tifffile.imwrite(folder / f"img{number}.tif", nuclei_image(shape=(128, 128), n_nuclei=4, seed=number))
    out = tmp_path / "out"
    options = {"strategy": "horizontal", "executor": executor, "workers": 2 if executor != "serial" else None}
    run_batch(pipeline, folder, out, **options)
    before = pd.read_csv(out / "images.csv").set_index("image")["nuclei.count"]

    replaced = folder / "img0.tif"
    tifffile.imwrite(replaced, nuclei_image(shape=(128, 128), n_nuclei=12, seed=7))
    stat = replaced.stat()
    os.utime(replaced, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    run_batch(pipeline, folder, out, fresh=fresh, **options)
    after = pd.read_csv(out / "images.csv").set_index("image")["nuclei.count"]

    clean = tmp_path / "clean"
    run_batch(pipeline, folder, clean, **options)
    expected = pd.read_csv(clean / "images.csv").set_index("image")["nuclei.count"]
    assert after.to_dict() == expected.to_dict()
    assert after["img0.tif"] != before["img0.tif"]  # the new image's own objects
    assert after["img1.tif"] == before["img1.tif"]
    objects = pd.read_csv(out / "nuclei.csv")
    assert (objects["image"] == "img0.tif").sum() == expected["img0.tif"]
