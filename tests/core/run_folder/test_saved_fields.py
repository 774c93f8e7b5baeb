"""RunResults.saved_inputs reads each row's own field: its scene and time point of the file."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_batch_pipeline import run_batch
from napari_batch_pipeline.core.run_folder.reader import RunResults
from napari_batch_pipeline.core.synthetic import nuclei_image


def test_saved_inputs_are_each_rows_scene_and_time_point(tmp_path, pipeline):
    folder = tmp_path / "images"
    folder.mkdir()
    scenes = [
        np.stack([nuclei_image(shape=(64, 64), n_nuclei=4, radius=5, seed=10 * s + t) for t in range(3)])
        for s in range(2)
    ]
    with tifffile.TiffWriter(folder / "plate.ome.tif", ome=True) as writer:
        for data in scenes:
            writer.write(data, metadata={"axes": "TYX"}, photometric="minisblack")
    report = run_batch(pipeline, folder, tmp_path / "run", executor="serial")
    assert report.done == 6

    results = RunResults(tmp_path / "run")
    inputs = results.saved_inputs()
    assert inputs.stack.shape == (6, 64, 64) and inputs.left_out == 0
    fields = [results.row_field(index) for index in results.done_rows()]
    assert sorted(fields) == [(s, t) for s in range(2) for t in range(3)]
    for position, (scene, t) in enumerate(fields):
        np.testing.assert_array_equal(np.asarray(inputs.stack[position]), scenes[scene][t])
        assert inputs.names[position] == f"plate.ome.tif s{scene} t{t}"
