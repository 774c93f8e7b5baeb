"""The runtime of an exported script: find the images, run the pipeline on each, write the tables.

:mod:`.export` copies these functions, with the run-folder helpers and constants they
import from the package, into the standalone script it writes; the script adds its
``process`` (every stage on one image) and its stage lists and calls :func:`main`. So
this module may use only the standard library, numpy, pandas, tifffile and scikit-image,
and from the package only pure functions and constants (their source and values are
copied; the package import lines are not).

What a script writes is what the engine writes for the same pipeline: ``images.csv``
(one row per image: ``image``, ``status``, ``error``, ``seconds``, then the summary),
``<stage>.csv`` for each table stage and ``<stage>/<image stem>.tif`` for each saved one.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tifffile

from .images.sources import IMAGE_SUFFIXES, TIFF_SUFFIXES, natural_key
from .run_folder.layout import IMAGES_TABLE, OUTPUT_SUFFIX, TABLE_SUFFIX, output_stem
from .run_folder.tables import ERROR, IMAGE, LABEL, SECONDS, STATUS, summarize

__all__ = ["find_images", "main", "read_image", "run_image", "save_tiff", "write_table_rows"]


def find_images(folder: Path, pattern: str | None = None, output: Path | None = None) -> list[str]:
    """The input images of ``folder``, as relative ``/``-separated paths in natural order.

    Parameters
    ----------
    folder : Path
        The input folder (absolute).
    pattern : str, optional
        A glob pattern on file names; default: every file with an image suffix.
    output : Path, optional
        The output folder (absolute); files inside it are never inputs.

    Returns
    -------
    list of str
        Hidden files and folders left out; empty if nothing matches.
    """
    found = []
    for path in folder.glob(pattern or "*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if pattern is None and path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if output is not None and path.resolve().is_relative_to(output):
            continue
        found.append(relative.as_posix())
    return sorted(found, key=natural_key)


def read_image(path: Path) -> np.ndarray:
    """Read one 2D image: TIFF with tifffile, the rest with ``skimage.io``; singleton axes dropped.

    Raises
    ------
    ValueError
        If the image is not 2D once squeezed; the message names the file and its shape.
    """
    if path.suffix.lower() in TIFF_SUFFIXES:
        image = tifffile.imread(path)
    else:
        from skimage import io

        image = io.imread(path)
    image = np.squeeze(np.asarray(image))
    if image.ndim != 2:
        raise ValueError(f"{path.name} has shape {image.shape}; 2D images are expected")
    return image


def save_tiff(path: Path, data: np.ndarray) -> None:
    """Write ``data`` as a TIFF file (a mask as uint8), making the folder first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, data.astype(np.uint8) if data.dtype == bool else data)


def write_table_rows(path: Path, table: pd.DataFrame, header: bool) -> None:
    """Append ``table``'s rows to the CSV file ``path``, with its header line if ``header``."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(table.to_csv(index=False, header=header))


def run_image(
    folder: Path,
    relative: str,
    output: Path,
    process: Callable[[np.ndarray], dict[str, Any]],
    saved_stages: Sequence[str],
    table_stages: Sequence[str],
    parts: dict[str, Path],
) -> dict[str, Any]:
    """Run the pipeline on one image; save its outputs, append its table rows.

    Parameters
    ----------
    folder, output : Path
        The input and output folders.
    relative : str
        The image, relative to ``folder``.
    process : callable
        ``process(image)`` gives ``{stage name: output}``.
    saved_stages, table_stages : sequence of str
        The stages whose outputs are saved as TIFF files, and those that give tables.
    parts : dict of str to Path
        The CSV file each table stage's rows are appended to; a missing one is started
        with a header line.

    Returns
    -------
    dict
        The image's row of ``images.csv``: ``image``, ``status`` (``'done'`` or
        ``'failed'``), ``error``, ``seconds``, then the summary of each table stage.
        An error fails this image alone.
    """
    start = time.perf_counter()
    row: dict[str, Any] = {IMAGE: relative}
    summary: dict[str, Any] = {}
    try:
        outputs = process(read_image(folder / relative))
        for stage in saved_stages:
            save_tiff(output / stage / f"{output_stem(relative)}{OUTPUT_SUFFIX}", outputs[stage])
        for stage in table_stages:
            table = outputs[stage].copy()
            table.insert(0, IMAGE, [relative] * len(table))
            write_table_rows(parts[stage], table, header=not parts[stage].exists())
            summary.update(summarize(stage, outputs[stage]))
        row.update({STATUS: "done", ERROR: ""})
    except Exception as error:
        row.update({STATUS: "failed", ERROR: f"{type(error).__name__}: {error}"})
        summary = {}
    row[SECONDS] = round(time.perf_counter() - start, 4)
    row.update(summary)
    return row


def main(
    process: Callable[[np.ndarray], dict[str, Any]],
    saved_stages: Sequence[str],
    table_stages: Sequence[str],
    argv: Sequence[str] | None = None,
    description: str | None = None,
) -> int:
    """The command line ``INPUT_DIR OUTPUT_DIR [--pattern GLOB]``: run over a folder, write the tables.

    Parameters
    ----------
    process : callable
        ``process(image)`` gives ``{stage name: output}``.
    saved_stages, table_stages : sequence of str
        The stages whose outputs are saved, and those that give tables.
    argv : sequence of str, optional
        The arguments; default ``sys.argv[1:]``.
    description : str, optional
        The help text's description (its first line is used).

    Returns
    -------
    int
        0 if every image is done, 1 if any failed.

    Raises
    ------
    SystemExit
        If the input folder holds no image (or the arguments are wrong).
    """
    parser = argparse.ArgumentParser(description=(description or "").strip().partition("\n")[0])
    parser.add_argument("input", type=Path, help="folder of input images")
    parser.add_argument("output", type=Path, help="folder for the tables and saved outputs")
    parser.add_argument("--pattern", default=None, help="file name pattern (default: image files)")
    args = parser.parse_args(argv)
    folder, output = args.input.resolve(), args.output.resolve()
    images = find_images(folder, args.pattern, output)
    if not images:
        sys.exit(f"no images in {folder}")
    output.mkdir(parents=True, exist_ok=True)
    parts = {stage: output / f"{stage}{TABLE_SUFFIX}.part" for stage in table_stages}
    for part in parts.values():
        part.unlink(missing_ok=True)
    rows = []
    for relative in images:
        row = run_image(folder, relative, output, process, saved_stages, table_stages, parts)
        rows.append(row)
        print(f"{row[STATUS]}: {relative}", file=sys.stderr)
    pd.DataFrame(rows).to_csv(output / IMAGES_TABLE, index=False)
    for stage, part in parts.items():
        if not part.exists():
            part.write_text(f"{IMAGE},{LABEL}\n", encoding="utf-8")
        part.replace(output / f"{stage}{TABLE_SUFFIX}")
    failed = sum(row[STATUS] == "failed" for row in rows)
    print(f"{len(rows) - failed} done, {failed} failed; tables in {output}", file=sys.stderr)
    return 1 if failed else 0
