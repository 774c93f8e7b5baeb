"""Plots of a finished sweep: a measurement against a swept parameter.

The data preparation is plain pandas; the figure is a matplotlib ``Figure`` made
without pyplot (no GUI backend), saved as PNG by the command line and embedded in
napari by the results view.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from ..run_folder.layout import RunLayout
from ..run_folder.tables import read_table

__all__ = ["default_measurement", "save_sweep_plot", "sweep_figure", "sweep_table"]


def default_measurement(images: pd.DataFrame) -> str:
    """The first object count column (``<stage>.count``), else the first summary column."""
    counts = [c for c in images.columns if c.endswith(".count")]
    if counts:
        return counts[0]
    means = [c for c in images.columns if ".mean_" in c]
    if not means:
        raise ValueError("images.csv has no measurement columns: the pipeline has no table stage")
    return means[0]


def sweep_table(images: pd.DataFrame, parameter: str, measurement: str) -> pd.DataFrame:
    """Per-image values of ``measurement`` at each value of ``parameter`` (done tasks only).

    Returns
    -------
    pandas.DataFrame
        Columns ``image``, ``parameter``, ``value``, sorted by image and parameter value;
        other swept parameters are averaged over.
    """
    for column in (parameter, measurement):
        if column not in images.columns:
            raise ValueError(f"column {column!r} is not in images.csv; columns are {list(images.columns)}")
    done = images[images["status"] == "done"]
    table = done.groupby(["image", parameter], sort=True)[measurement].mean().reset_index()
    return table.rename(columns={parameter: "parameter", measurement: "value"})


def sweep_figure(images: pd.DataFrame, parameter: str, measurement: str | None = None) -> Figure:
    """One thin line per image, and the mean across images with its standard deviation."""
    measurement = measurement or default_measurement(images)
    table = sweep_table(images, parameter, measurement)
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    numeric = pd.api.types.is_numeric_dtype(table["parameter"])
    order = sorted(table["parameter"].unique()) if numeric else list(dict.fromkeys(table["parameter"]))
    position = {value: (value if numeric else index) for index, value in enumerate(order)}
    for image, rows in table.groupby("image", sort=True):
        axes.plot(
            [position[v] for v in rows["parameter"]], rows["value"], color="0.7", lw=0.8, gid=f"image:{image}"
        )
    summary = table.groupby("parameter", sort=False)["value"].agg(["mean", "std"]).reindex(order)
    x = [position[v] for v in order]
    axes.errorbar(x, summary["mean"], yerr=summary["std"].fillna(0), fmt="none", ecolor="C0", capsize=3)
    axes.plot(x, summary["mean"], color="C0", lw=2, marker="o", gid="mean", label="mean ± sd")
    if not numeric:
        axes.set_xticks(x, [str(v) for v in order])
    axes.set_xlabel(parameter)
    axes.set_ylabel(measurement)
    axes.set_title(f"{measurement} against {parameter} ({table['image'].nunique()} images; mean ± sd)")
    return figure


def save_sweep_plot(run_dir: str | Path, parameters: Sequence[str], measurement: str | None = None) -> Path:
    """Draw the sweep of the first swept parameter (a grid's others averaged) into ``sweep.png``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from ..files import atomic_path

    run_dir = Path(run_dir)
    layout = RunLayout.at(run_dir)
    images = read_table(layout.images_table)
    figure = sweep_figure(images, parameters[0], measurement)
    target = layout.sweep_plot
    with atomic_path(target) as temporary:
        FigureCanvasAgg(figure).print_png(str(temporary))
    return target
