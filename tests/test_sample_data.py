"""The sample data contribution: File > Open Sample > Batch Pipeline > Synthetic nuclei."""

from __future__ import annotations

import numpy as np

from napari_batch_pipeline._sample_data import make_nuclei_sample
from napari_batch_pipeline.core.synthetic import nuclei_image


def test_sample_is_one_image_layer_of_synthetic_nuclei():
    [(data, meta, layer_type)] = make_nuclei_sample()
    assert layer_type == "image"
    assert meta == {"name": "nuclei"}
    assert data.dtype == np.uint16
    assert data.shape == (256, 256)
    np.testing.assert_array_equal(data, nuclei_image())


def test_sample_opens_in_the_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-batch-pipeline", "nuclei")
    assert [layer.name for layer in viewer.layers] == ["nuclei"]
    np.testing.assert_array_equal(viewer.layers["nuclei"].data, nuclei_image())
