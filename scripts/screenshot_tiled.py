"""Make docs/screenshot_tiled.png: a large image's labels in napari, read from a tiled run.

An 8192 x 8192 synthetic image of about 40,000 nuclei is run tile by tile (tiles of
1024, ``run_batch(..., tile=1024)``) in a temporary folder; its labels are saved as an
OME-Zarr multiscale store, which the plugin's reader opens as one multiscale labels
layer, read lazily, with the objects of ``nuclei.csv`` as its features. The picture has
two views of that layer: the whole image (napari draws a small level of the store), and
a 4-tile junction at full resolution with the tile grid drawn over it, where objects cut
by the seams have one label (one colour) each.

Run it under a virtual display (Xvfb), from the repository root:

    xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python scripts/screenshot_tiled.py [OUTPUT.png]

napari's settings are kept in a temporary file for the run, so yours are untouched.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

# before napari loads: a throwaway settings file (notifications are turned off below)
_SETTINGS = tempfile.TemporaryDirectory()
os.environ["NAPARI_CONFIG"] = str(Path(_SETTINGS.name) / "settings.yaml")

import napari  # noqa: E402
import numpy as np  # noqa: E402
import tifffile  # noqa: E402
from napari._qt import qt_main_window  # noqa: E402
from napari.settings import get_settings  # noqa: E402
from qtpy.QtCore import QEventLoop, QTimer  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402

from napari_batch_pipeline import run_batch  # noqa: E402
from napari_batch_pipeline.core.pipeline.model import Pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZE = 8192
TILE = 1024
#: the seed of the section's shape and of the nuclei
SEED = 1
#: the window on a 1600 x 1200 screen, less a task bar
WINDOW = (1300, 1000)

PIPELINE = """\
version: 1
name: nuclei
stages:
  - {name: blurred, function: gaussian, params: {sigma: 2}}
  - {name: mask, function: threshold, params: {method: otsu}}
  - {name: labels, function: label, save: true}
  - name: nuclei
    function: measure
    inputs: {labels: labels, intensity: input}
    params: {properties: [area, intensity_mean]}
"""


def tissue(size: int = SIZE, seed: int = SEED) -> np.ndarray:
    """A (size // 128, size // 128) map of where the section is, as a whole-slide scan
    shows one: a smooth random shape, 1 inside, 0 outside."""
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.normal(size=(size // 128,) * 2), 5)
    rows, cols = np.indices(field.shape) / (field.shape[0] - 1) - 0.5
    field -= 8 * field.std() * (rows**2 + cols**2)  # the section lies in the middle
    return (field > np.quantile(field, 0.5)).astype(np.float32)


def large_image(size: int = SIZE, count: int = 60_000, seed: int = SEED) -> np.ndarray:
    """A (size, size) uint16 image of nuclei (ellipses, some touching) in a section
    (:func:`tissue`) on an uneven, noisy background; each nucleus is drawn in its own
    box, so it is quick."""
    rng = np.random.default_rng(seed)
    section = tissue(size, seed)
    signal = np.zeros((size, size), np.float32)
    rows, cols = np.mgrid[-16:17, -16:17].astype(np.float32)
    centres = rng.uniform(16, size - 17, (count, 2)).astype(int)
    for r0, c0 in centres[section[centres[:, 0] // 128, centres[:, 1] // 128] > 0]:
        a = rng.uniform(6, 13)
        b = a * rng.uniform(0.7, 1.0)
        angle = rng.uniform(0, np.pi)
        u = rows * np.cos(angle) + cols * np.sin(angle)
        v = -rows * np.sin(angle) + cols * np.cos(angle)
        inside = (u / a) ** 2 + (v / b) ** 2 <= 1.0
        box = signal[r0 - 16 : r0 + 17, c0 - 16 : c0 + 17]
        box[inside] = np.maximum(box[inside], rng.uniform(0.5, 1.0))
    signal = ndi.gaussian_filter(signal, 1.0, output=signal)
    ramp = np.linspace(0.0, 0.06, size, dtype=np.float32)
    signal += 0.08 + ramp[:, None] + ramp[None, :]
    signal += rng.normal(0.0, 0.02, (size, size)).astype(np.float32)
    return np.clip(signal * 4095, 0, 4095).astype(np.uint16)


def settle(milliseconds: int = 800) -> None:
    """Let Qt lay out and paint (and napari load the chunks in view)."""
    loop = QEventLoop()
    QTimer.singleShot(milliseconds, loop.quit)
    loop.exec_()


def main(output: Path) -> Path:
    get_settings().application.gui_notification_level = "none"
    qt_main_window.SHOW_QT_WARNING = False
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        images.mkdir()
        tifffile.imwrite(images / "section.tif", large_image(), tile=(512, 512), compression="zlib")
        start = time.perf_counter()
        report = run_batch(
            Pipeline.from_text(PIPELINE), images, Path(tmp) / "run", tile=TILE, executor="serial"
        )
        print(f"tiled run: {time.perf_counter() - start:.1f} s, exit code {report.exit_code}")

        viewer = napari.Viewer(title="napari-batch-pipeline: a tiled run")
        viewer.window.resize(*WINDOW)
        layers = viewer.open(str(Path(tmp) / "run"), plugin="napari-batch-pipeline")
        labels = viewer.layers["run: labels section.tif"]
        for layer in layers:
            layer.visible = layer is labels
        labels.opacity = 1.0
        levels = " ".join("x".join(str(n) for n in level.shape) for level in labels.data)
        viewer.text_overlay.visible = True
        viewer.text_overlay.font_size = 11
        viewer.text_overlay.color = "white"
        viewer.text_overlay.text = (
            f"section.tif labels: {len(labels.features):,} objects, tiles of {TILE}\n"
            f"OME-Zarr levels {levels}, read lazily"
        )
        viewer.window._qt_viewer.dockLayerControls.setVisible(False)
        viewer.window._qt_window.statusBar().hide()
        viewer.reset_view()
        settle(1500)
        whole = viewer.screenshot(canvas_only=False, flash=False)

        # a 4-tile junction in the section at full resolution, with the tile grid
        seam = _junction(tissue())
        grid = [np.array([[seam[0], 0], [seam[0], SIZE]]), np.array([[0, seam[1]], [SIZE, seam[1]]])]
        viewer.add_shapes(grid, shape_type="line", edge_color="yellow", edge_width=2, name="tile seams")
        viewer.camera.center = seam
        viewer.camera.zoom = whole.shape[0] / 400
        settle(1500)
        viewer.text_overlay.text = f"tile seams at {seam}, level {labels.data_level}: one label per object"
        settle(300)
        junction = viewer.screenshot(canvas_only=True, flash=False)
        viewer.close()

    picture = _side_by_side(whole, junction)
    output.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.fromarray(picture).save(output)
    return output


def _junction(section: np.ndarray) -> tuple[int, int]:
    """The corner of four tiles deepest in the section."""
    depth = ndi.distance_transform_edt(section)
    corners = [(r * TILE, c * TILE) for r in range(1, SIZE // TILE) for c in range(1, SIZE // TILE)]
    return max(corners, key=lambda rc: depth[rc[0] // 128, rc[1] // 128])


def _side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left`` and ``right`` (RGBA) in one picture, ``right`` scaled to ``left``'s height."""
    from PIL import Image

    height = left.shape[0]
    width = round(right.shape[1] * height / right.shape[0])
    right = np.asarray(Image.fromarray(right).resize((width, height)))
    gap = np.full((height, 8, left.shape[2]), 255, np.uint8)
    return np.concatenate([left, gap, right], axis=1)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshot_tiled.png"
    print(main(target))
