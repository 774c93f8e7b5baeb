"""The builder's channels: the pipeline's ``channels:`` section, and a layer for each name.

When the pipeline names the channels of its inputs, the builder runs it on one image per
name. A :class:`ChannelMap` shows the section as one editable line (``dna: 0, cyto: 1``,
the flow form of a pipeline file's mapping) and, for each name, a chooser of where the
channel comes from: an image layer (one of napari's ``channel_axis`` split, say) or one
channel of a multi-channel layer. The choices and first guesses come from
:mod:`napari_batch_pipeline.core.tuning.image`; this view keeps a person's picks while
they are still offered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from magicgui.widgets import ComboBox, Container, Label, LineEdit
from psygnal import Signal

from ...core.errors import PipelineError
from ...core.tuning.draft import channels_from_text, channels_text
from ...core.tuning.image import ChannelSource, LayerImage, channel_sources, default_sources, missing_channels
from ...core.tuning.session import TuningSession

__all__ = ["ChannelMap"]


class ChannelMap(Container):
    """The channels of a session's pipeline, and the layer (or layer channel) of each.

    Parameters
    ----------
    session : TuningSession

    Attributes
    ----------
    text : LineEdit
        The ``channels:`` section in one line; applied to the session when editing ends.
    boxes : dict of str to ComboBox
        One chooser per channel name, of :class:`ChannelSource` values.
    message : Label
        Why the line was not applied.

    Emits ``sources_changed()`` when a chooser's value changes, by a person or because
    the channels or the layers changed (not when nothing did).
    """

    sources_changed = Signal()

    def __init__(self, session: TuningSession):
        self.session = session
        self.text = LineEdit(
            label="channels",
            tooltip="names for the channels of the image, as in a pipeline file's channels: section "
            "(dna: 0, cyto: 1); stages take the names as inputs",
        )
        self.text.native.setPlaceholderText("none (e.g. dna: 0, cyto: 1)")
        self.message = Label(value="")
        self.message.visible = False
        self.boxes: dict[str, ComboBox] = {}
        self._image: LayerImage | None = None
        self._layers: list[LayerImage] = []
        self._shown: dict[str, ChannelSource | None] = {}
        self._offered: list[tuple[str, ChannelSource]] = []
        super().__init__(widgets=[self.text, self.message], labels=True)
        self.margins = (0, 0, 0, 0)
        self.text.native.editingFinished.connect(self._on_text)
        session.channels_changed.connect(self._on_channels_changed)
        self._on_channels_changed()

    def sources(self) -> dict[str, ChannelSource]:
        """Where each named channel comes from now (those with a choice)."""
        return {name: box.value for name, box in self.boxes.items() if box.value is not None}

    def set_layers(self, image: LayerImage | None, layers: Sequence[LayerImage]) -> None:
        """Offer ``layers`` (and their channels); a pick no longer offered becomes the guess
        for ``image``. Emits ``sources_changed`` if a value changed."""
        self._image, self._layers = image, list(layers)
        self._refresh()

    def disconnect_session(self) -> None:
        """Stop following the session (the builder is closing)."""
        self.session.channels_changed.disconnect(self._on_channels_changed, missing_ok=True)

    def _on_channels_changed(self) -> None:
        channels = self.session.channels
        self.text.value = channels_text(channels)
        for box in self.boxes.values():
            self.remove(box)
        self.boxes = {name: self.boxes.get(name) or self._new_box(name) for name in channels}
        for position, box in enumerate(self.boxes.values()):
            self.insert(1 + position, box)
        self._show_message("")
        self._refresh()

    def _new_box(self, name: str) -> ComboBox:
        # choices from a callable: magicgui's reset_choices then keeps them
        box = ComboBox(
            label=f"{name} from",
            choices=self._choices,
            nullable=True,
            tooltip=f"the image of channel {name!r}",
        )
        box.changed.connect(self._on_box)
        return box

    def _refresh(self) -> None:
        """Choices from the layers; keep each pick that is still offered, else guess."""
        offered = channel_sources(self._layers)
        self._offered = [(source.label, source) for source in offered]
        guesses = default_sources(self.session.channels, self._image, self._layers)
        for name, box in self.boxes.items():
            with box.changed.blocked():
                current = box.value
                if list(box.choices) != offered:
                    box.reset_choices()
                box.value = current if current in offered else guesses.get(name)
        self._show_missing()
        shown = {name: box.value for name, box in self.boxes.items()}
        if shown != self._shown:
            self._shown = shown
            self.sources_changed.emit()

    def _choices(self, _widget: Any = None) -> list[tuple[str, ChannelSource]]:
        return self._offered

    def _on_box(self, _value: Any = None) -> None:
        self._shown = {name: box.value for name, box in self.boxes.items()}
        self.sources_changed.emit()

    def _on_text(self) -> None:
        try:
            self.session.set_channels(channels_from_text(self.text.value))
        except PipelineError as error:
            self._show_message(str(error))
        else:
            self._show_missing()

    def _show_missing(self) -> None:
        """Say which channels' indices the image lacks (no message if none)."""
        self._show_message("; ".join(missing_channels(self.session.channels, self._image, self._layers)))

    def _show_message(self, text: str) -> None:
        self.message.value = text
        self.message.visible = bool(text)
