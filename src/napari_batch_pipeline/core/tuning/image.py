"""The images the tuning session runs on: one image layer, or the pipeline's named channels
taken from several layers or from the channels of one.

A view describes its image layers as :class:`LayerImage` (plain data, no napari type).
A :class:`ChannelSource` is one choice for a named channel: a whole layer (a layer of
napari's ``channel_axis`` split, say), or one channel of a multi-channel layer: the
first axis of a (C, Y, X) or (C, Z, Y, X) layer, the last of an RGB one.
:func:`channel_sources` lists the choices, :func:`default_sources` picks one per
channel, and :func:`tuning_image` makes the :class:`TuningImage` a run computes: the
arrays, under a key that changes with any of them, at the layers' scale (which stages
that take a pixel size get as ``spacing``). A (Z, Y, X) layer runs the chain in 3D.
Qt- and napari-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "MAX_LAYER_CHANNELS",
    "ChannelSource",
    "LayerImage",
    "TuningImage",
    "channel_sources",
    "default_sources",
    "group_images",
    "group_known",
    "missing_channels",
    "same_group",
    "second_sources",
    "tuning_image",
]

#: a layer whose channel axis is longer than this is a stack of planes, not of channels
MAX_LAYER_CHANNELS = 16


@dataclass(frozen=True)
class TuningImage:
    """An image to tune on, as the session runs it.

    Attributes
    ----------
    key : str
        Identifies the image's current data and scale: the cache reuses outputs for the
        same key only, so new data needs a new key.
    data : (M, N) or (P, M, N) array_like, or mapping of str to array_like
        One image, or one per channel name when the pipeline names channels. Read
        (:meth:`read`) when a run or a sweep uses it, in its thread.
    name : str
        For people: names the outputs of a second image.
    scale, translate : tuple of float
        Where the image lies in the world, one value per axis of the image (of each
        channel), for views that show outputs beside it (default: unit pixels at the
        origin). The scale is the pixel size the stages get as ``spacing``.
    """

    key: str
    data: Any = field(repr=False)
    name: str = "image"
    scale: tuple[float, ...] = ()
    translate: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        ndim = len(self.shape)
        object.__setattr__(self, "scale", tuple(map(float, self.scale or (1.0,) * ndim)))
        object.__setattr__(self, "translate", tuple(map(float, self.translate or (0.0,) * ndim)))

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the image (with channels: of the first one, ``input``)."""
        data = self.data
        if isinstance(data, Mapping):
            data = next(iter(data.values()), ())
        return tuple(np.shape(data))

    def read(self) -> np.ndarray | dict[str, np.ndarray]:
        """The data as numpy arrays (this reads a lazy layer)."""
        if isinstance(self.data, Mapping):
            return {name: np.asarray(data) for name, data in self.data.items()}
        return np.asarray(self.data)


@dataclass(frozen=True)
class LayerImage:
    """An image layer as a view describes it.

    Attributes
    ----------
    key : str
        Identifies the layer's current data: a new key for new data.
    name : str
        The layer's name (unique among the view's layers).
    data : array_like
        (Y, X), (Z, Y, X), (C, Y, X), (C, Z, Y, X), or (Y, X, 3|4) when ``rgb``.
    scale, translate : tuple of float
        The layer's, one value per axis (an RGB layer's colour axis has none).
    rgb : bool
    group : mapping of str to str
        What is known of the columns a group stage groups by (``folder``: the folder of
        the layer's file; metadata fields the layer carries); empty when nothing is.
    """

    key: str
    name: str
    data: Any = field(repr=False, compare=False)
    scale: tuple[float, ...] = ()
    translate: tuple[float, ...] = ()
    rgb: bool = False
    group: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def channel_axis(self) -> int | None:
        """The axis a channel is taken from: the colours of RGB, the first of 3 or more."""
        if self.rgb:
            return -1
        return 0 if len(np.shape(self.data)) >= 3 else None

    @property
    def channels(self) -> int:
        """How many channels the layer offers (0: none, it is one image)."""
        axis = self.channel_axis
        count = np.shape(self.data)[axis] if axis is not None else 0
        return count if count <= MAX_LAYER_CHANNELS else 0

    def take(self, channel: int | None) -> tuple[Any, tuple[float, ...], tuple[float, ...]]:
        """The data, scale and translate of one channel (None: of the whole layer)."""
        if channel is None:
            return self.data, tuple(self.scale), tuple(self.translate)
        if not 0 <= channel < self.channels:
            raise ValueError(f"layer {self.name!r} has {self.channels} channel(s); got channel {channel}")
        if self.rgb:
            return self.data[..., channel], tuple(self.scale), tuple(self.translate)
        return self.data[channel], tuple(self.scale[1:]), tuple(self.translate[1:])


@dataclass(frozen=True)
class ChannelSource:
    """Where a named channel comes from: a layer, whole or one of its channels."""

    layer: str
    channel: int | None = None

    @property
    def label(self) -> str:
        return self.layer if self.channel is None else f"{self.layer}, channel {self.channel}"


def channel_sources(layers: Sequence[LayerImage]) -> list[ChannelSource]:
    """Every choice for a named channel: each layer whole, then each of its channels."""
    found = []
    for layer in layers:
        found.append(ChannelSource(layer.name))
        found += [ChannelSource(layer.name, index) for index in range(layer.channels)]
    return found


def default_sources(
    channels: Mapping[str, Any], image: LayerImage | None, layers: Sequence[LayerImage]
) -> dict[str, ChannelSource]:
    """A first guess of where each named channel comes from.

    A layer named like the channel (or like the name the file stores) is taken whole;
    else the channel's index (or its position in ``channels``) among the channels of
    ``image``; else ``image`` whole.

    Parameters
    ----------
    channels : mapping
        The pipeline's ``channels:`` section, name to index, stored name or file pattern.
    image : LayerImage or None
        The layer the chain runs on.
    layers : list of LayerImage
        The layers to choose from.

    Returns
    -------
    dict of str to ChannelSource
        One per channel; none at all without ``image``.
    """
    if image is None:
        return {}
    by_name = {layer.name.casefold(): layer for layer in layers}
    chosen = {}
    for position, (name, value) in enumerate(channels.items()):
        named = by_name.get(name.casefold()) or (
            by_name.get(value.casefold()) if isinstance(value, str) else None
        )
        index = value if isinstance(value, int) and not isinstance(value, bool) else position
        if named is not None:
            chosen[name] = ChannelSource(named.name)
        elif index < image.channels:
            chosen[name] = ChannelSource(image.name, index)
        else:
            chosen[name] = ChannelSource(image.name)
    return chosen


def missing_channels(
    channels: Mapping[str, Any], image: LayerImage | None, layers: Sequence[LayerImage]
) -> list[str]:
    """The named channels whose index ``image`` lacks (and no layer is named like them):
    ``["channel 'cyto' is index 7, but layer 'cells' has 3 channels (0 to 2)"]``."""
    if image is None:
        return []
    names = {layer.name.casefold() for layer in layers}
    return [
        f"channel {name!r} is index {value}, but layer {image.name!r} has {image.channels} "
        f"channel(s) (0 to {image.channels - 1}); fix the index or choose its image below"
        for name, value in channels.items()
        if isinstance(value, int)
        and not isinstance(value, bool)
        and value >= image.channels
        and name.casefold() not in names
    ]


def second_sources(
    sources: Mapping[str, ChannelSource], image: str, second: LayerImage
) -> dict[str, ChannelSource]:
    """The sources of test mode's second image: what came from ``image`` (whole, or a
    channel it also has) comes from ``second``; the other layers stay."""
    swapped = {}
    for name, source in sources.items():
        if source.layer == image and (source.channel is None or source.channel < second.channels):
            source = ChannelSource(second.name, source.channel)
        swapped[name] = source
    return swapped


def tuning_image(
    image: LayerImage,
    sources: Mapping[str, ChannelSource] | None = None,
    layers: Sequence[LayerImage] = (),
) -> TuningImage:
    """The image a run computes: ``image``, or with ``sources`` one array per channel.

    Parameters
    ----------
    image : LayerImage
        The layer chosen to run on: it names the image, and without ``sources`` it is
        the data.
    sources : dict of str to ChannelSource, optional
        Where each named channel comes from; the scale and translate are those of the
        first channel's.
    layers : list of LayerImage
        The layers ``sources`` name (``image`` among them or not).

    Raises
    ------
    ValueError
        If a source names a layer not in ``layers``, or a channel its layer lacks, or
        the channels differ in shape.
    """
    if not sources:
        key = f"{image.key}@{tuple(image.scale)}"
        return TuningImage(key, image.data, image.name, tuple(image.scale), tuple(image.translate))
    by_name = {layer.name: layer for layer in (image, *layers)}
    data: dict[str, Any] = {}
    parts, placed = [], None
    for name, source in sources.items():
        layer = by_name.get(source.layer)
        if layer is None:
            raise ValueError(f"channel {name!r}: no image layer named {source.layer!r}")
        array, scale, translate = layer.take(source.channel)
        data[name] = array
        parts.append(f"{name}={layer.key}:{source.channel}")
        placed = placed or (scale, translate)
    shapes = {name: tuple(np.shape(array)) for name, array in data.items()}
    if len(set(shapes.values())) > 1:
        listing = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"the channels differ in shape: {listing}; choose layers of one shape")
    assert placed is not None
    key = "|".join(parts) + f"@{placed[0]}"
    return TuningImage(key, data, image.name, *placed)


def group_images(
    image: LayerImage,
    sources: Mapping[str, ChannelSource] | None,
    layers: Sequence[LayerImage],
    group_by: Sequence[str] = (),
) -> list[TuningImage]:
    """The images a group stage learns from in a preview: ``image``, then every other
    layer of ``layers`` in its group, taken as :func:`second_sources` takes test mode's
    second image; a layer that cannot stand in for ``image`` (a channel it lacks, another
    shape) is left out. The group is the layers whose :attr:`LayerImage.group` matches
    ``image``'s on every column of ``group_by``, where ``image``'s are all known
    (:func:`group_known`); else every layer."""
    found = [tuning_image(image, sources, layers)]
    for layer in same_group(image, layers, group_by):
        if layer.name == image.name:
            continue
        try:
            found.append(
                tuning_image(layer, second_sources(sources, image.name, layer) if sources else None, layers)
            )
        except ValueError:
            continue
    return [f for f in found if f.shape == found[0].shape]


def group_known(image: LayerImage, group_by: Sequence[str]) -> bool:
    """Whether ``image``'s values of the ``group_by`` columns are all known (and there is one)."""
    return bool(group_by) and all(column in image.group for column in group_by)


def same_group(image: LayerImage, layers: Sequence[LayerImage], group_by: Sequence[str]) -> list[LayerImage]:
    """The ``layers`` in ``image``'s group by ``group_by`` (see :func:`group_images`)."""
    if not group_known(image, group_by):
        return list(layers)
    return [layer for layer in layers if all(layer.group.get(c) == image.group[c] for c in group_by)]
