"""The Pipeline builder's outputs in the viewer: one layer per image and stage, tables as features.

Each stage output of a run becomes a layer named after the stage (labels for masks and
labels, images otherwise), at the scale of the image it was computed on; a second image
(test mode) is moved beside the first, its layers with it. A measurement table becomes the
``features`` of the labels layer it measured. Layers of stages no longer in the chain
are removed when a run ends.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from napari.layers import Image, Labels, Layer
from napari.viewer import Viewer

from ..._layer_steps import as_features
from ...core.pipeline.model import Pipeline
from ...core.tuning.session import ChainRun, TuningImage

__all__ = ["ChainLayers"]

#: test mode: the second image's layers start this many widths of the first to its right
_BESIDE = 1.1


class ChainLayers:
    """The output layers and tables of the builder's runs in ``viewer``.

    Attributes
    ----------
    layers : dict of (int, str) to Layer
        The layer of each (image number, stage name): 0 for the main image, 1 for the
        second one.
    tables : dict of (int, str) to DataFrame
        The outputs of table stages.
    """

    def __init__(self, viewer: Viewer):
        self.viewer = viewer
        self.layers: dict[tuple[int, str], Layer] = {}
        self.tables: dict[tuple[int, str], pd.DataFrame] = {}
        self._moved: list[tuple[Layer, np.ndarray]] = []  # layers place_second moved, and whence

    def place_second(self, first: Layer | None, second: Layer | None) -> None:
        """Test mode: move the second image's layer beside the first (its outputs, placed
        at its translate, come with it), so that each image lies under its own outputs.

        A layer moved before that is no longer the second image goes back where it was;
        ``second=None`` (test mode off) puts every moved layer back.
        """
        for layer, translate in list(self._moved):
            if layer is not second:
                layer.translate = translate
                self._moved.remove((layer, translate))
        if first is None or second is None or first is second or any(second is m for m, _ in self._moved):
            return
        self._moved.append((second, np.array(second.translate)))
        lower, upper = first.extent.world
        translate = np.array(second.translate, dtype=float)
        translate[-1] = lower[-1] + (upper[-1] - lower[-1]) * _BESIDE
        second.translate = translate

    def owns(self, layer: Layer) -> bool:
        """Whether ``layer`` shows an output (and so is no image to run on)."""
        return any(layer is ours for ours in self.layers.values())

    def show(self, chain: ChainRun, item: tuple[int, str, Any, bool]) -> None:
        """Show one output a run yielded: ``(image index, stage name, output, reused)``."""
        index, name, output, reused = item
        key = (index, name)
        if chain.pipeline[name].returns == "table":
            self.tables[key] = output
            self._attach_table(index, chain.pipeline, name, output)
            return
        layer = self.layers.get(key)
        if reused and layer is not None and layer in self.viewer.layers:
            return
        self._show(key, chain.pipeline[name].returns, output, chain.images)

    def clear(self) -> None:
        """Remove every output shown: nothing of a chain that can no longer run stays."""
        layers = list(self.layers.values())
        self.layers.clear()  # first: a removal makes the builder look at its images again
        self.tables.clear()
        for layer in layers:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)

    def drop_stale(self, chain: ChainRun) -> None:
        """Remove the layers of stages no longer in the chain, and of an image no longer run."""
        names, n_images = set(chain.pipeline.stage_names), len(chain.images)
        for key, layer in list(self.layers.items()):
            if key[1] not in names or key[0] >= n_images:
                del self.layers[key]
                self.tables.pop(key, None)
                if layer in self.viewer.layers:
                    self.viewer.layers.remove(layer)

    def _show(self, key: tuple[int, str], kind: str, data: np.ndarray, sources: list[TuningImage]) -> None:
        index, name = key
        source = sources[index]
        layer_name = name if index == 0 else f"{name} [{source.name}]"
        scale, translate = _placed(source, data.ndim)  # test mode: where its layer was placed
        layer_type: type[Layer] = Image if kind == "image" else Labels
        data = data.astype(np.uint8) if kind == "mask" else data
        layer = self.layers.get(key)
        if layer is not None and layer in self.viewer.layers and isinstance(layer, layer_type):
            if layer.ndim != data.ndim:  # 2D to 3D: a new layer, napari keeps dims per layer
                self.viewer.layers.remove(layer)
            else:
                layer.data = data
                layer.name = layer_name
                layer.scale = scale
                layer.translate = translate
                if isinstance(layer, Image):
                    layer.reset_contrast_limits()
                return
        if layer is not None and layer in self.viewer.layers:
            self.viewer.layers.remove(layer)
        new = layer_type(data, name=layer_name, scale=scale, translate=translate)
        self.layers[key] = new  # known as an output before the viewer says it was inserted
        self.viewer.add_layer(new)

    def _attach_table(self, index: int, pipeline: Pipeline, name: str, table: pd.DataFrame) -> None:
        """A measurement table becomes the features of the labels layer it measured."""
        stage = pipeline[name]
        measured = [s for a, s in stage.inputs.items() if stage.spec.data_args[a] == "labels"]
        layer = self.layers.get((index, measured[0])) if measured else None
        if isinstance(layer, Labels):
            layer.features = as_features(table)


def _placed(source: TuningImage, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """The scale and translate of an output of ``ndim`` axes computed on ``source``."""
    scale = np.ones(ndim)
    translate = np.zeros(ndim)
    n = min(ndim, len(source.scale))
    if n:
        scale[-n:] = source.scale[-n:]
        translate[-n:] = source.translate[-n:]
    return scale, translate
