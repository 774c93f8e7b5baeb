"""summary.csv by group against the contract computed by hand, group by group."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_batch_pipeline.core.results.summary import (
    MAX_FIGURE_GROUPS,
    STATISTICS,
    summary_figure,
    summary_table,
)


def _images(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "image": [f"img{i}.tif" for i in range(rows)],
            "plate": rng.choice(["007", "7", None], rows),
            "well": rng.choice(["A1", "B2"], rows),
            "status": rng.choice(["done", "done", "done", "failed", "pending"], rows),
            "nuclei.count": rng.integers(0, 30, rows).astype(float),
            "nuclei.mean_area": rng.random(rows) * 100,
        }
    )
    frame.loc[frame["status"] != "done", ["nuclei.count", "nuclei.mean_area"]] = np.nan
    frame.loc[rng.random(rows) < 0.1, "nuclei.mean_area"] = np.nan  # an image without objects
    return frame


def _by_hand(images: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Every group in order of first appearance: counts, and the statistics of the done
    images' means, each computed on its own."""
    rows = []
    labels = images[keys].astype(object).where(images[keys].notna(), "<missing>")
    for values in dict.fromkeys(map(tuple, labels.to_numpy())):
        members = images[(labels == list(values)).all(axis=1)]
        done = members[members["status"] == "done"]
        means = done["nuclei.mean_area"].dropna().to_numpy()
        row = dict(zip(keys, members[keys].iloc[0], strict=True))
        row |= {"tasks_done": len(done), "tasks_failed": int((members["status"] == "failed").sum())}
        row["objects"] = int(done["nuclei.count"].fillna(0).sum())
        row["nuclei.area.mean"] = means.mean() if len(means) else np.nan
        row["nuclei.area.sd"] = means.std(ddof=1) if len(means) > 1 else np.nan
        row["nuclei.area.sem"] = means.std(ddof=1) / np.sqrt(len(means)) if len(means) > 1 else np.nan
        row["nuclei.area.median"] = np.median(means) if len(means) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("keys", [["plate"], ["plate", "well"], ["image"]])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_summary_equals_the_contract_by_hand(keys: list[str], seed: int) -> None:
    images = _images(60, seed)
    table = summary_table(images, ["nuclei"], keys)
    expected = _by_hand(images, keys)
    assert list(table.columns) == [*keys, "tasks_done", "tasks_failed", "objects"] + [
        f"nuclei.area.{name}" for name in STATISTICS
    ]
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)


def test_one_group_without_grouping_columns_and_no_table_stage() -> None:
    images = _images(20, 3)
    table = summary_table(images, [], [])
    assert table.to_dict("records") == [
        {
            "group": "all",
            "tasks_done": int((images["status"] == "done").sum()),
            "tasks_failed": int((images["status"] == "failed").sum()),
            "objects": 0,
        }
    ]


def test_many_groups_are_summarised_at_once_and_the_figure_shows_the_first() -> None:
    # summarize --group-by image over 20,000 images took 4 minutes (a loop over groups,
    # and a box per group in summary.png)
    images = _images(5_000, 4)
    table = summary_table(images, ["nuclei"], ["image"])
    assert len(table) == 5_000 and list(table["image"][:3]) == ["img0.tif", "img1.tif", "img2.tif"]
    figure = summary_figure(images, ["nuclei"], ["image"])
    axes = figure.axes[0]
    assert len(axes.get_xticks()) == MAX_FIGURE_GROUPS
    done = int((images["status"] == "done").sum())  # the figure plots the done images
    assert f"the first {MAX_FIGURE_GROUPS} of {done} groups" in axes.get_title()


def test_a_run_mixing_2d_and_3d_images_never_pools_areas_with_volumes(tmp_path, pipeline) -> None:
    # A folder of 2D and 3D images put areas and volumes in one column, and summary.csv
    # averaged them together.
    import tifffile

    from napari_batch_pipeline.core.batch import run_batch
    from napari_batch_pipeline.core.synthetic import nuclei_image

    folder = tmp_path / "images"
    folder.mkdir()
    flat = nuclei_image(shape=(64, 64), n_nuclei=3, seed=1)
    tifffile.imwrite(folder / "a_flat.tif", flat)
    tifffile.imwrite(folder / "b_flat.tif", nuclei_image(shape=(64, 64), n_nuclei=3, seed=2))
    tifffile.imwrite(folder / "c_stack.tif", np.stack([flat] * 5))
    report = run_batch(pipeline, folder, tmp_path / "run", executor="serial")
    assert report.exit_code == 0
    images = report.images.set_index("image")
    assert images["dims"].to_dict() == {"a_flat.tif": "2D", "b_flat.tif": "2D", "c_stack.tif": "3D"}
    summary = pd.read_csv(tmp_path / "run" / "summary.csv").set_index("dims")
    flat_areas = images.loc[["a_flat.tif", "b_flat.tif"], "nuclei.mean_area"]
    assert summary.loc["2D", "nuclei.area.mean"] == pytest.approx(flat_areas.mean())
    assert summary.loc["3D", "nuclei.area.mean"] == pytest.approx(
        images.loc["c_stack.tif", "nuclei.mean_area"]
    )
    assert summary.loc["3D", "tasks_done"] == 1 and summary.loc["2D", "tasks_done"] == 2
    # a run of one kind has no such column
    only_flat = run_batch(pipeline, folder, tmp_path / "flat", pattern="*_flat.tif", executor="serial")
    assert "dims" not in only_flat.images.columns
