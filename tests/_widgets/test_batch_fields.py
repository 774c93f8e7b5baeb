"""The Batch processing widget on a multi-scene OME-TIFF: scene in the table, layers at the
pixel size's scale (the run's results and a clicked row)."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_batch_pipeline._widgets.batch import BatchWidget
from napari_batch_pipeline.core.pipeline import Pipeline
from napari_batch_pipeline.core.run_folder.reader import RunResults
from napari_batch_pipeline.core.synthetic import nuclei_image

#: the OME pixel size of both scenes, (y, x) in micrometres
PIXEL_SIZE = (0.5, 0.25)


def write_two_scenes(path):
    """An OME-TIFF with two series (scenes) of nuclei, each 96 x 96 at PIXEL_SIZE."""
    scenes = [nuclei_image(shape=(96, 96), n_nuclei=6, radius=6, seed=seed) for seed in (1, 2)]
    with tifffile.TiffWriter(path, ome=True) as writer:
        for index, data in enumerate(scenes):
            metadata = {"axes": "YX", "Name": f"position {index}"}
            metadata.update({"PhysicalSizeY": PIXEL_SIZE[0], "PhysicalSizeX": PIXEL_SIZE[1]})
            writer.write(data, metadata=metadata, photometric="minisblack")
    return scenes


def test_a_two_scene_file_shows_its_scenes_at_their_pixel_size(
    make_napari_viewer, qtbot, pipeline_file, tmp_path, run_to_end
):
    folder = tmp_path / "plate"
    folder.mkdir()
    scenes = write_two_scenes(folder / "plate.ome.tif")
    viewer = make_napari_viewer()
    widget = BatchWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.input_dir.value = folder
    widget.output_dir.value = tmp_path / "out"
    widget.pipeline.value = pipeline_file
    widget.executor.value = "serial"
    report = run_to_end(widget)
    assert report.done == 2 and report.failed == 0

    table = widget.table
    headers = [table.horizontalHeaderItem(i).text() for i in range(table.columnCount())]
    assert headers[:3] == ["image", "scene", "parameters"] and "t" not in headers
    assert sorted(table.item(row, 1).text() for row in range(2)) == ["0", "1"]

    # the run's layers: one stack per saved stage, at the pixel size (1 on the axis of tasks)
    labels = viewer.layers["out: labels"]
    assert labels.data.shape == (2, 96, 96)
    assert tuple(labels.scale) == (1.0, *PIXEL_SIZE)
    assert tuple(viewer.layers["out: input"].scale) == (1.0, *PIXEL_SIZE)

    # a clicked row: that scene's input and labels, at the pixel size
    row = next(r for r in range(2) if table.item(r, 1).text() == "1")
    layers = widget.show_row(row)
    assert [layer.name for layer in layers] == ["plate.ome.tif s1", "plate.ome.tif s1 labels"]
    image, labels = layers
    np.testing.assert_array_equal(image.data, scenes[1])
    results = RunResults(tmp_path / "out")
    index = next(i for i in range(2) if results.row_field(i)[0] == 1)
    np.testing.assert_array_equal(labels.data, tifffile.imread(results.task_outputs(index)["labels"]))
    expected = Pipeline.from_yaml(pipeline_file).run(scenes[1])["labels"]
    np.testing.assert_array_equal(labels.data, expected)
    assert tuple(image.scale) == tuple(labels.scale) == PIXEL_SIZE
    assert labels.metadata["scene"] == 1
