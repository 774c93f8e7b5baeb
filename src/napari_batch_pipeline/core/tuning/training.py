"""Training a classifier by painting: the paintings of one stage, and its training file.

In the builder a person paints classes (1, 2, ...) on a training layer of each image the
chain runs on (the main one, and the second one of test mode): on pixels for a pixel
classifier, over objects for an object classifier (an object takes the class painted
most over it; objects left unpainted are not chosen). A :class:`PaintedTraining`
keeps, per image, the stage's inputs as the stage sees them and what was painted; from
them it makes the bytes of the stage's training file (:mod:`..stages.training`), their
SHA-256, and the forest, trained at once and kept in memory by its training key
(:func:`..stages.forests.remember`), so that the preview finds it without any file. The
stage then names the file and its hash (:meth:`PaintedTraining.train` gives both); *Save*
writes the very bytes hashed (:meth:`PaintedTraining.save`) beside the pipeline file.
Qt- and napari-free; :meth:`~PaintedTraining.train` is meant for a worker thread.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..stages.forests import remember, train_objects, train_pixels, training_key
from ..stages.training import training_bytes, write_training

__all__ = ["PaintedTraining", "training_file_name"]


def training_file_name(stage: str) -> str:
    """The training file a stage's paintings are saved to, beside the pipeline file."""
    return f"{stage}_training.npz"


class PaintedTraining:
    """The paintings of one classifier stage, by image, and what they train.

    Parameters
    ----------
    stage : str
        The stage's name (it names the training file).
    kind : {'pixels', 'objects'}
        What the stage classes (``StageSpec.trains``).

    Attributes
    ----------
    data : bytes or None
        The training file's bytes, as of the last :meth:`train`.
    sha256 : str
        Their SHA-256 (empty before the first :meth:`train`).
    """

    def __init__(self, stage: str, kind: str = "pixels"):
        self.stage, self.kind = stage, kind
        self.data: bytes | None = None
        self.sha256 = ""
        self._examples: dict[str, dict[str, np.ndarray]] = {}
        self._lock = threading.Lock()

    @property
    def file_name(self) -> str:
        return training_file_name(self.stage)

    def paint(self, image_key: str, image: np.ndarray, labels: np.ndarray) -> None:
        """Keep the painting ``labels`` (0: not painted; 1..n: classes) of the image
        ``image_key``, whose stage input is ``image``; copies are kept.

        Raises
        ------
        ValueError
            If ``labels`` is not the shape of ``image``.
        """
        if np.shape(labels) != np.shape(image):
            raise ValueError(
                f"{self.stage}: the training layer is {np.shape(labels)} and the stage's image "
                f"{np.shape(image)}; paint on a layer of the image's shape"
            )
        with self._lock:
            self._examples[image_key] = {
                "image": np.array(image),
                "labels": np.asarray(labels).astype(np.uint8),
            }

    def paint_objects(
        self, image_key: str, objects: np.ndarray, intensity: np.ndarray | None, painted: np.ndarray
    ) -> None:
        """Keep the objects of the image ``image_key`` (a labels image, and the intensities
        its measurements take, if any) with the class painted most over each.

        Raises
        ------
        ValueError
            If ``painted`` is not the shape of ``objects``.
        """
        objects = np.asarray(objects)
        if np.shape(painted) != objects.shape:
            raise ValueError(
                f"{self.stage}: the training layer is {np.shape(painted)} and the objects "
                f"{objects.shape}; paint on a layer of the image's shape"
            )
        example = {"objects": np.array(objects), "classes": _object_classes(objects, np.asarray(painted))}
        if intensity is not None:
            example["image"] = np.array(intensity)
        with self._lock:
            self._examples[image_key] = example

    @property
    def painted(self) -> bool:
        """Whether any pixel (or object) of any image has a class."""
        return bool(self.examples())

    def examples(self) -> list[dict[str, np.ndarray]]:
        """The training images in the order first painted: those with a class somewhere."""
        marks = "labels" if self.kind == "pixels" else "classes"
        with self._lock:
            return [example for example in self._examples.values() if example[marks].any()]

    def train(self, params: Mapping[str, Any]) -> tuple[str, str]:
        """Make the training file's bytes, and train the stage's forest on them (kept in
        this process by training key); return the stage's ``training`` and
        ``training_sha256``.

        Parameters
        ----------
        params : mapping
            The stage's parameters (its features and forest settings).

        Raises
        ------
        ValueError
            If nothing is painted, or a class is above 255.
        """
        examples = self.examples()
        if not examples:
            raise ValueError(
                f"{self.stage}: nothing is painted yet; paint classes 1, 2, ... on its training layer"
            )
        data = training_bytes(examples)
        sha = hashlib.sha256(data).hexdigest()
        settings = {**params, "training": self.file_name, "training_sha256": sha}
        forest = (train_pixels if self.kind == "pixels" else train_objects)(examples, settings)
        remember({training_key(self.kind, settings): forest})
        self.data, self.sha256 = data, sha
        return self.file_name, sha

    def save(self, folder: str | Path) -> Path | None:
        """Write the training file (the bytes last trained on) into ``folder``; None when
        nothing was trained yet."""
        if self.data is None:
            return None
        path = Path(folder) / self.file_name
        write_training(path, self.data)
        return path


def _object_classes(objects: np.ndarray, painted: np.ndarray) -> np.ndarray:
    """The class painted most over each object, by label (0: none painted over it)."""
    count = int(objects.max()) + 1 if objects.size else 1
    over = (objects > 0) & (painted > 0)
    if not over.any():
        return np.zeros(count, dtype=np.int64)
    votes = np.zeros((count, int(painted.max()) + 1), dtype=np.int64)
    np.add.at(votes, (objects[over].astype(np.int64), painted[over].astype(np.int64)), 1)
    classes = votes.argmax(axis=1)
    classes[votes.sum(axis=1) == 0] = 0
    return classes
