"""Training data of the classifier stages: a plain ``.npz`` file and its hash, never a model.

A training file holds, for each training image ``k`` (0, 1, ...), arrays only (it is
read with ``allow_pickle=False``):

- pixels (``pixel_classifier``): ``image_k``, the pixels as painted on, and ``labels_k``,
  of the image's spatial shape, 0 where nothing was painted and 1..n the classes;
- objects (``object_classifier``): ``objects_k``, a labels image, ``classes_k``, one
  class per object *label* (``classes_k[j]`` is the class of object ``j``; 0 for an object
  not chosen, and for the background at index 0), and optionally ``image_k``, the
  intensities its measurements are taken from.

A pipeline names the file in the stage's ``training`` parameter (relative to the
pipeline file) and its SHA-256 in ``training_sha256``: a file that no longer matches
its hash is refused, so that a pipeline's identity (which holds the hash) always says
which training made its results.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_path

__all__ = [
    "TrainingFileError",
    "file_sha256",
    "read_training",
    "resolve_training",
    "training_bytes",
    "write_training",
]

_KEY = re.compile(r"^(image|labels|objects|classes)_(\d+)$")
#: the arrays each kind of training image needs
_NEEDED = {"pixels": ("image", "labels"), "objects": ("objects", "classes")}


class TrainingFileError(ValueError):
    """A training file that is missing, unreadable, malformed or not the one its hash names."""


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_training(training: str, folder: str | Path | None = None) -> Path:
    """Where the training file ``training`` is: an absolute path as it is, a relative one
    inside ``folder`` (the pipeline file's folder; None: the working folder)."""
    path = Path(training).expanduser()
    if path.is_absolute() or folder is None:
        return path
    return Path(folder) / path


def read_training(path: str | Path, sha256: str, kind: str) -> list[dict[str, np.ndarray]]:
    """The training images of a training file, after checking its hash.

    Parameters
    ----------
    path : path
        The ``.npz`` file.
    sha256 : str
        The hash the pipeline gives for it (``training_sha256``).
    kind : {'pixels', 'objects'}
        What the file trains.

    Returns
    -------
    list of dict
        One mapping per training image, in order: ``{'image': ..., 'labels': ...}``
        for pixels, ``{'objects': ..., 'classes': ..., 'image': ... (optional)}`` for
        objects.

    Raises
    ------
    TrainingFileError
        If there is no such file, its hash differs from ``sha256``, or it is not a
        training file of that kind; the message names the file and what to do.
    """
    path = Path(path)
    if not sha256:
        raise TrainingFileError(
            f"training file {str(path)!r} has no training_sha256 beside it in the stage's params; "
            f"add training_sha256: {_hash_or_missing(path)}"
        )
    try:
        actual = file_sha256(path)
    except OSError as error:
        raise TrainingFileError(
            f"cannot read the training file {str(path)!r}: {error.strerror or error}"
        ) from None
    if actual != sha256.lower():
        raise TrainingFileError(
            f"the training file {str(path)!r} does not match its hash: the pipeline says "
            f"training_sha256 {sha256}, the file has {actual}. It was changed since the pipeline "
            "was saved; save the training again from the builder, or put the hash of the file "
            "you mean to use in the pipeline"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as error:
        raise TrainingFileError(f"{str(path)!r} is not a training file (a .npz of arrays): {error}") from None
    return _examples(path, arrays, kind)


def _hash_or_missing(path: Path) -> str:
    try:
        return file_sha256(path)
    except OSError:
        return "<the file's SHA-256> (the file cannot be read now)"


def _examples(path: Path, arrays: Mapping[str, np.ndarray], kind: str) -> list[dict[str, np.ndarray]]:
    """The training images of a file's arrays, checked."""
    found: dict[int, dict[str, np.ndarray]] = {}
    for name, array in arrays.items():
        match = _KEY.match(name)
        if match is None:
            raise TrainingFileError(
                f"{str(path)!r}: unexpected array {name!r}; a training file holds image_k and "
                "labels_k (pixels) or objects_k and classes_k (objects) for k = 0, 1, ..."
            )
        found.setdefault(int(match.group(2)), {})[match.group(1)] = array
    needed = _NEEDED[kind]
    if not found:
        raise TrainingFileError(
            f"{str(path)!r} holds no training image; expected {needed[0]}_0 and {needed[1]}_0"
        )
    if sorted(found) != list(range(len(found))):
        raise TrainingFileError(
            f"{str(path)!r}: training images are numbered {sorted(found)}; expected 0, 1, ..."
        )
    examples = [found[k] for k in range(len(found))]
    for k, example in enumerate(examples):
        missing = [f"{name}_{k}" for name in needed if name not in example]
        if missing:
            raise TrainingFileError(
                f"{str(path)!r} has no {', '.join(missing)}: is it a training file for "
                f"{'objects' if kind == 'pixels' else 'pixels'}?"
            )
        marks = example[needed[1]]
        if not np.issubdtype(marks.dtype, np.integer):
            raise TrainingFileError(
                f"{str(path)!r}: {needed[1]}_{k} must hold whole numbers, got {marks.dtype}"
            )
        if marks.size and marks.min() < 0:
            raise TrainingFileError(f"{str(path)!r}: {needed[1]}_{k} holds negative classes")
    if not any(np.any(example[needed[1]] > 0) for example in examples):
        raise TrainingFileError(
            f"{str(path)!r} marks no {'pixel' if kind == 'pixels' else 'object'} with a class; "
            "paint some and save the training again"
        )
    return examples


def training_bytes(examples: Sequence[Mapping[str, np.ndarray]]) -> bytes:
    """The bytes of a training file holding ``examples`` (see :func:`write_training`)."""
    arrays: dict[str, Any] = {}
    for k, example in enumerate(examples):
        for name, array in example.items():
            arrays[f"{name}_{k}"] = np.ascontiguousarray(array)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def write_training(path: str | Path, examples: Sequence[Mapping[str, np.ndarray]] | bytes) -> str:
    """Write training images as a training file, whole or not at all; its SHA-256.

    Parameters
    ----------
    path : path
        The ``.npz`` file to write.
    examples : sequence of mapping, or bytes
        Per training image, the arrays named as in the module docstring (``image`` and
        ``labels``, or ``objects``, ``classes`` and optionally ``image``); or the bytes
        :func:`training_bytes` made of them.

    Returns
    -------
    str
        The file's SHA-256, for the stage's ``training_sha256``.
    """
    data = examples if isinstance(examples, bytes) else training_bytes(examples)
    target = Path(path)
    with atomic_path(target) as temporary:
        temporary.write_bytes(data)
    return hashlib.sha256(data).hexdigest()
