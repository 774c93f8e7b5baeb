"""Microscopy files of every kind the engine reads, made by the tests.

Each maker writes a file into ``folder`` and returns an :class:`Expected`: what the file
holds, scene by scene, as (T, C, Z, Y, X) arrays with the channel names and pixel sizes
the file stores. Pixel data are random 16-bit values from a seeded generator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile


@dataclass
class Scene:
    data: np.ndarray  # (T, C, Z, Y, X)
    channel_names: tuple[str, ...] = ()
    pixel_size: tuple[float | None, float | None, float | None] = (None, None, None)


@dataclass
class Expected:
    path: Path
    scenes: list[Scene] = field(default_factory=list)


def pixels(shape: tuple[int, ...], seed: int = 0, dtype: type = np.uint16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, shape).astype(dtype)


def _tczyx(data: np.ndarray, axes: str) -> np.ndarray:
    for letter in "TCZ":
        if letter not in axes:
            data = data[np.newaxis]
            axes = letter + axes
    return np.transpose(data, [axes.index(letter) for letter in "TCZYX"])


def imagej(folder: Path, axes: str, shape: tuple[int, ...], name: str | None = None) -> Expected:
    """An ImageJ hyperstack with channel labels, a pixel size of 0.65 um and z spacing 2 um."""
    data = pixels(shape, seed=len(axes))
    path = folder / (name or f"imagej_{axes.lower()}.tif")
    channels = shape[axes.index("C")] if "C" in axes else 1
    labels = [f"ch{i}" for i in range(channels)]
    metadata = {"axes": axes, "unit": "um"}
    if "Z" in axes:
        metadata["spacing"] = 2.0
    if channels > 1:
        planes = data.size // (shape[-1] * shape[-2])
        metadata["Labels"] = labels * (planes // channels)  # one label per plane, C fastest
    tifffile.imwrite(path, data, imagej=True, metadata=metadata, resolution=(1 / 0.65, 1 / 0.65))
    names = tuple(labels) if channels > 1 else ()
    z = 2.0 if "Z" in axes else None
    return Expected(path, [Scene(_tczyx(data, axes), names, (z, 0.65, 0.65))])


def ome_two_series(folder: Path) -> Expected:
    """An OME-TIFF with two series: a 2D image, then a 2-channel image with named channels."""
    first, second = pixels((40, 48), 1), pixels((2, 40, 48), 2)
    path = folder / "two_series.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as writer:
        writer.write(first, metadata={"axes": "YX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
        writer.write(second, metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}})
    return Expected(
        path,
        [Scene(_tczyx(first, "YX"), (), (None, 0.5, 0.5)), Scene(_tczyx(second, "CYX"), ("DAPI", "GFP"))],
    )


def compressed(folder: Path, compression: str) -> Expected:
    data = pixels((40, 48), 3)
    path = folder / f"{compression}.tif"
    tifffile.imwrite(path, data, compression=compression)
    return Expected(path, [Scene(_tczyx(data, "YX"))])


def samples_16bit(folder: Path) -> Expected:
    """A 16-bit TIFF with 3 samples per pixel (an RGB-like colour image)."""
    data = pixels((40, 48, 3), 4)
    path = folder / "rgb16.tif"
    tifffile.imwrite(path, data, photometric="rgb")
    return Expected(path, [Scene(_tczyx(np.moveaxis(data, -1, 0), "CYX"), ("red", "green", "blue"))])


def rgb_png(folder: Path) -> Expected:
    import imageio.v3 as iio

    data = pixels((40, 48, 3), 5, np.uint8)
    path = folder / "rgb.png"
    iio.imwrite(path, data)
    return Expected(path, [Scene(_tczyx(np.moveaxis(data, -1, 0), "CYX"), ("red", "green", "blue"))])


def ome_zarr(folder: Path) -> Expected:
    """An OME-Zarr image (a folder): 2 channels, 3 z planes, pixel size 1 x 0.25 x 0.25 um."""
    from bioio_ome_zarr.writers import OMEZarrWriter

    data = pixels((1, 2, 3, 40, 48), 6)
    path = folder / "volume.ome.zarr"
    writer = OMEZarrWriter(
        str(path),
        level_shapes=[data.shape],
        dtype=data.dtype,
        axes_names=["t", "c", "z", "y", "x"],
        axes_types=["time", "channel", "space", "space", "space"],
        axes_units=[None, None, "micrometer", "micrometer", "micrometer"],
        physical_pixel_size=[1.0, 1.0, 1.0, 0.25, 0.25],
    )
    writer.write_full_volume(data)
    return Expected(path, [Scene(data, (), (1.0, 0.25, 0.25))])


def czi(folder: Path) -> Expected:
    """A CZI written by Zeiss's own library: 2 named channels, 3 z planes."""
    from pylibCZIrw import czi as pyczi

    data = pixels((2, 3, 40, 48), 7)
    path = folder / "stack.czi"
    with pyczi.create_czi(str(path), exist_ok=True) as document:
        for c in range(2):
            for z in range(3):
                document.write(data=data[c, z][..., np.newaxis], plane={"C": c, "Z": z, "T": 0})
        document.write_metadata(
            document_name="stack",
            channel_names={0: "DAPI", 1: "GFP"},
            scale_x=0.2e-6,
            scale_y=0.2e-6,
            scale_z=1e-6,
        )
    return Expected(path, [Scene(data[np.newaxis], ("DAPI", "GFP"), (1.0, 0.2, 0.2))])


MAKERS: dict[str, Callable[[Path], Expected]] = {
    "plain 2D": lambda f: _plain(f),
    "ImageJ CYX": lambda f: imagej(f, "CYX", (3, 40, 48)),
    "ImageJ TYX": lambda f: imagej(f, "TYX", (4, 40, 48)),
    "ImageJ ZYX": lambda f: imagej(f, "ZYX", (5, 40, 48)),
    "ImageJ TCZYX": lambda f: imagej(f, "TZCYX", (2, 3, 2, 40, 48)),
    "OME-TIFF 2 series": ome_two_series,
    "LZW TIFF": lambda f: compressed(f, "lzw"),
    "zstd TIFF": lambda f: compressed(f, "zstd"),
    "16-bit 3-sample TIFF": samples_16bit,
    "RGB PNG": rgb_png,
    "OME-Zarr": ome_zarr,
    "CZI": czi,
}


def _plain(folder: Path) -> Expected:
    data = pixels((40, 48), 8)
    path = folder / "plain.tif"
    tifffile.imwrite(path, data)
    return Expected(path, [Scene(_tczyx(data, "YX"))])
