"""The results view of a screen: the plate map, a click on a well, and Z' per plate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import tifffile
from matplotlib.backend_bases import MouseEvent

from napari_batch_pipeline._widgets.results.view import PLATE_MAP, ResultsView


def test_the_plate_map_shows_wells_and_a_click_shows_a_well(
    make_napari_viewer, qtbot, screen, run_screen, tmp_path
):
    run = tmp_path / "run"
    run_screen(run)
    viewer = make_napari_viewer()
    view = ResultsView(viewer, run_folder=run)
    qtbot.addWidget(view)

    # Z' per plate and the z-scores are tables of the view
    assert {"assay", "normalized", "wells"} <= set(view.table_choice.choices)
    view.table_choice.value = "assay"
    assert set(view.frame["plate"]) == {"P1", "P2"} and "z_prime" in view.frame.columns
    view.table_choice.value = "wells"
    assert len(view.frame) == 16 and {"fields", "fields_flagged"} <= set(view.frame.columns)

    view.plot_kind.value = PLATE_MAP
    assert not view.plate.native.isHidden() and list(view.plate.choices) == ["P1", "P2"]
    view.plate.value = "P2"
    view.measurement.value = "nuclei.mean_area"
    axes = view.figure.axes[0]
    (wells,) = [image for image in axes.images if image.get_gid() == "wells"]
    data = np.ma.filled(wells.get_array().astype(float), np.nan)
    assert data.shape == (8, 12)
    images = pd.read_csv(run / "images.csv", keep_default_na=False)
    a01 = images[(images["plate"] == "P2") & (images["well"] == "A01")]
    assert data[0, 0] == float(a01["nuclei.mean_area"].iloc[0])
    assert np.isnan(data[7, 11])  # P2_H12 is flagged: not shown
    assert np.isnan(data[3, 0])  # no image in D01
    # the title wraps in a dock's narrow canvas, never cut ("ate P1: ...")
    view.canvas.resize(380, 300)
    view.canvas.draw()
    box = axes.title.get_window_extent(view.canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= view.figure.bbox.width, (box, view.figure.bbox)

    # a click on A01 shows its input and its saved labels
    x, y = axes.transData.transform((0, 0))
    view.canvas.callbacks.process(
        "button_press_event", MouseEvent("button_press_event", view.canvas, x, y, 1)
    )
    names = [layer.name for layer in view.well_layers]
    assert names == ["run: P2_A01.tif", "run: P2_A01.tif kept"]
    np.testing.assert_array_equal(view.well_layers[0].data, tifffile.imread(screen.images / "P2_A01.tif"))
    assert view.well_layers[1].data.max() > 0
    # the labels have the well's objects as features, as after a row click
    kept = view.well_layers[1]
    objects = pd.read_csv(run / f"{kept.metadata['table']}.csv", keep_default_na=False)
    mine = objects[(objects["image"] == "P2_A01.tif")]
    assert len(kept.features) == len(mine) > 0
    assert set(kept.features["index"]) <= set(np.unique(kept.data)) - {0}
    # another well replaces them
    view.show_well(1, 1)
    assert [layer.name for layer in viewer.layers] == ["run: P2_B02.tif", "run: P2_B02.tif kept"]


def test_the_plate_map_opens_on_the_screens_readout_and_says_so(
    make_napari_viewer, qtbot, run_screen, tmp_path
):
    run = tmp_path / "run"
    run_screen(run, readout="nuclei.mean_area")
    view = ResultsView(make_napari_viewer(), run_folder=run)
    qtbot.addWidget(view)
    view.plot_kind.value = PLATE_MAP
    assert next(iter(view.measurement.choices)) == "nuclei.mean_area"
    assert view.measurement.value == "nuclei.mean_area"
    assert "readout" in view.figure.axes[0].get_title()
    others = [c for c in view.measurement.choices if c != "nuclei.mean_area"]
    view.measurement.value = others[0]
    assert "readout" not in view.figure.axes[0].get_title()
