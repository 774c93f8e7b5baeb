"""Links in a run folder, from the command line: a run never writes or deletes through one.

A received run folder may hold links: a folder named in ``groups.csv`` that leads
elsewhere, a group stage's folder or ``intermediate/`` replaced by a link. Whatever
``run`` (``--fresh`` or a resume) writes or deletes is inside the output folder, never
through a link, and named by the run itself.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import tifffile

from napari_batch_pipeline.core.synthetic import nuclei_image

GROUPED = """\
version: 1
stages:
  - name: illum
    function: illumination
    params: {statistic: mean, smoothing: 4}
  - name: flat
    function: correct_illumination
    inputs: {image: input, illumination: illum}
  - {name: mask, function: threshold}
  - {name: labels, function: label, save: true}
  - name: nuclei
    function: measure
    inputs: {labels: labels, intensity: flat}
"""


@pytest.fixture
def grouped(tmp_path: Path) -> tuple[Path, Path]:
    """A folder of three images and a pipeline with one group stage (group ``all``)."""
    folder = tmp_path / "images"
    folder.mkdir()
    for number in range(3):
        tifffile.imwrite(
            folder / f"img{number}.tif", nuclei_image((64, 64), n_nuclei=5, radius=5.0, seed=number)
        )
    pipeline = tmp_path / "grouped.yaml"
    pipeline.write_text(GROUPED, encoding="utf-8")
    return folder, pipeline


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("strategy", ["vertical", "horizontal"])
def test_fresh_deletes_no_file_groups_csv_names_behind_a_link_or_outside_a_group_stage(
    tmp_path: Path, grouped: tuple[Path, Path], cli_here, strategy: str
) -> None:
    folder, pipeline = grouped
    out = tmp_path / "out"
    options = ["--executor", "serial", "--strategy", strategy]
    assert cli_here("run", pipeline, folder, "-o", out, *options).returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.tif").write_bytes(b"a file outside the run folder")
    (out / "evil").symlink_to(elsewhere, target_is_directory=True)
    (out / "labels" / "notes.tif").write_bytes(b"a user's file in a stage folder")
    groups = pd.read_csv(out / "groups.csv")
    forged = pd.DataFrame({"stage": ["evil", "labels"], "group": ["precious", "notes"], "images": [1, 1]})
    pd.concat([groups, forged]).to_csv(out / "groups.csv", index=False)

    fresh = cli_here("run", pipeline, folder, "-o", out, *options, "--fresh")
    assert fresh.returncode == 0, fresh.stderr
    assert (elsewhere / "precious.tif").read_bytes() == b"a file outside the run folder"
    assert (out / "labels" / "notes.tif").read_bytes() == b"a user's file in a stage folder"
    assert list(pd.read_csv(out / "groups.csv")["group"]) == ["all"]


@pytest.mark.parametrize("link", ["illum", "intermediate", "intermediate/input"])
@pytest.mark.parametrize("fresh", [True, False])
def test_a_folder_the_run_writes_in_that_is_a_link_is_refused(
    tmp_path: Path, grouped: tuple[Path, Path], cli_here, link: str, fresh: bool
) -> None:
    folder, pipeline = grouped
    out = tmp_path / "out"
    assert cli_here("run", pipeline, folder, "-o", out, "--executor", "serial").returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "all.tif").write_bytes(b"a file outside the run folder")
    moved = tmp_path / "moved"
    (out / link).rename(moved)
    (out / link).symlink_to(elsewhere, target_is_directory=True)
    # a changed input: a resume computes the group again, and its intermediates
    tifffile.imwrite(folder / "img3.tif", nuclei_image((64, 64), n_nuclei=5, radius=5.0, seed=9))
    before = _files(elsewhere)

    again = cli_here(
        "run", pipeline, folder, "-o", out, "--executor", "serial", *(["--fresh"] if fresh else [])
    )
    assert again.returncode == 2, again.stdout + again.stderr
    assert f"{link!r} is a link" in again.stderr and "Traceback" not in again.stderr
    assert _files(elsewhere) == before
