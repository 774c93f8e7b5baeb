"""The runtime of exported scripts, called directly: finding, reading, running, writing the tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage import io, measure

from napari_batch_pipeline.core.export_runtime import (
    find_images,
    main,
    read_image,
    run_image,
    save_tiff,
    write_table_rows,
)
from napari_batch_pipeline.core.run_folder.layout import RunLayout
from napari_batch_pipeline.core.synthetic import nuclei_image


def _process(image: np.ndarray) -> dict[str, Any]:
    """A small pipeline: a mask, its labels, their areas."""
    mask = image > image.mean()
    labels = measure.label(mask).astype(np.int32)
    table = pd.DataFrame(measure.regionprops_table(labels, properties=["label", "area"]))
    return {"mask": mask, "labels": labels, "objects": table}


def _write(folder: Path, names: list[str]) -> None:
    for number, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, nuclei_image(shape=(64, 64), n_nuclei=4, radius=5.0, seed=number))


# -- finding and reading ---------------------------------------------------------------------


def test_find_images_in_natural_order_without_hidden_or_other_files(tmp_path: Path) -> None:
    for name in ["img10.tif", "img2.TIF", "img1.png", "notes.txt", ".hidden.tif", ".cache/a.tif"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.tif").write_bytes(b"x")
    assert find_images(tmp_path) == ["img1.png", "img2.TIF", "img10.tif"]
    assert find_images(tmp_path, "*.txt") == ["notes.txt"]
    assert find_images(tmp_path, "sub/*.tif") == ["sub/deep.tif"]
    assert find_images(tmp_path, "*.jpg") == []


def test_find_images_leaves_out_the_output_folder(tmp_path: Path) -> None:
    _write(tmp_path, ["a.tif", "out/labels/a.tif"])
    assert find_images(tmp_path, "**/*.tif", output=tmp_path / "out") == ["a.tif"]
    assert find_images(tmp_path, "**/*.tif") == ["a.tif", "out/labels/a.tif"]


def test_read_image_squeezes_tiff_and_reads_png(tmp_path: Path) -> None:
    image = np.arange(12, dtype=np.uint16).reshape(1, 3, 4)
    tifffile.imwrite(tmp_path / "a.tiff", image)
    read = read_image(tmp_path / "a.tiff")
    assert read.shape == (3, 4)
    assert read.dtype == np.uint16
    np.testing.assert_array_equal(read, image[0])
    io.imsave(tmp_path / "b.png", image[0].astype(np.uint8), check_contrast=False)
    np.testing.assert_array_equal(read_image(tmp_path / "b.png"), image[0])


def test_read_image_refuses_a_stack(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((2, 3, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"stack\.tif has shape \(2, 3, 4\); 2D images are expected"):
        read_image(tmp_path / "stack.tif")


# -- writing ---------------------------------------------------------------------------------


def test_save_tiff_writes_a_mask_as_uint8(tmp_path: Path) -> None:
    mask = np.eye(3, dtype=bool)
    save_tiff(tmp_path / "mask" / "plate 1" / "a.tif", mask)
    written = tifffile.imread(tmp_path / "mask" / "plate 1" / "a.tif")
    assert written.dtype == np.uint8
    np.testing.assert_array_equal(written, mask)


def test_write_table_rows_appends(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    write_table_rows(path, pd.DataFrame({"label": [1], "area": [3]}), header=True)
    write_table_rows(path, pd.DataFrame({"label": [2], "area": [5]}), header=False)
    assert path.read_text() == "label,area\n1,3\n2,5\n"


# -- one image, then a folder ----------------------------------------------------------------


def test_run_image_gives_the_row_and_writes_outputs(tmp_path: Path) -> None:
    _write(tmp_path / "in", ["plate 1/a.b.tif"])
    parts = {"objects": tmp_path / "objects.part"}
    row = run_image(tmp_path / "in", "plate 1/a.b.tif", tmp_path, _process, ["labels"], ["objects"], parts)
    assert list(row)[:4] == ["image", "status", "error", "seconds"]
    assert (row["image"], row["status"], row["error"]) == ("plate 1/a.b.tif", "done", "")
    table = pd.read_csv(parts["objects"])
    assert list(table.columns) == ["image", "label", "area"]
    assert row["objects.count"] == len(table) > 0
    assert row["objects.mean_area"] == pytest.approx(table["area"].mean())
    # named as the engine names a saved output
    assert RunLayout(tmp_path).task_output("labels", "plate 1/a.b.tif").is_file()


def test_run_image_fails_one_image_alone(tmp_path: Path) -> None:
    (tmp_path / "broken.tif").write_bytes(b"not a tiff")
    parts = {"objects": tmp_path / "objects.part"}
    row = run_image(tmp_path, "broken.tif", tmp_path, _process, [], ["objects"], parts)
    assert row["status"] == "failed"
    assert row["error"].split(":")[0].endswith("Error")
    assert "objects.count" not in row
    assert not parts["objects"].exists()


def test_main_writes_the_tables_and_outputs(tmp_path: Path) -> None:
    names = ["img1.tif", "img2.tif", "img10.tif"]
    _write(tmp_path / "in", names)
    out = tmp_path / "out"
    out.mkdir()
    (out / "objects.csv.part").write_text("left,over\n1,2\n")  # from an interrupted run
    assert main(_process, ["mask"], ["objects"], [str(tmp_path / "in"), str(out)]) == 0
    images = pd.read_csv(out / "images.csv")
    assert images["image"].tolist() == names
    assert (images["status"] == "done").all()
    assert list(images.columns) == [
        "image",
        "status",
        "error",
        "seconds",
        "objects.count",
        "objects.mean_area",
    ]
    objects = pd.read_csv(out / "objects.csv")
    assert list(objects.columns) == ["image", "label", "area"]
    assert objects.groupby("image", sort=False).size().tolist() == images["objects.count"].tolist()
    assert sorted(p.name for p in (out / "mask").iterdir()) == sorted(names)
    assert not list(out.glob("*.part"))


def test_main_counts_failures_and_writes_empty_tables(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.tif").write_bytes(b"nope")
    out = tmp_path / "out"
    assert main(_process, [], ["objects"], [str(tmp_path / "in"), str(out), "--pattern", "*.tif"]) == 1
    assert pd.read_csv(out / "images.csv")["status"].tolist() == ["failed"]
    assert (out / "objects.csv").read_text() == "image,label\n"


def test_main_without_images_exits_with_a_message(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    with pytest.raises(SystemExit, match="no images in"):
        main(_process, [], [], [str(tmp_path / "in"), str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
