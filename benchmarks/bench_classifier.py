"""pixel_classifier's per-image predict vs skimage.future.predict_segmenter on the same forest
(DESIGN: at most 1.1x the time).

    .venv/bin/python benchmarks/bench_classifier.py               # 1024 x 1024, 100 trees, 5 rounds
    .venv/bin/python benchmarks/bench_classifier.py --size 256 --trees 20 --rounds 2 --markdown

A forest is trained once from strokes painted on one synthetic 16-bit nuclei image (the
seed's workload) and saved as a training file; then each round classes another image
twice, in alternating order: through the engine's stage call (``Pipeline.run_stage``,
the path a task takes, the forest already trained) and by hand, as a scikit-image user
writes it: the same percentile scaling, ``multiscale_basic_features`` and
``predict_segmenter`` with the very same forest object. The ratio is the median of the
per-round ratios; both classings are checked equal. Training time is shown for
information.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from skimage import filters
from skimage.feature import multiscale_basic_features
from skimage.future import predict_segmenter

from napari_batch_pipeline.core.pipeline.model import Pipeline
from napari_batch_pipeline.core.stages import forests
from napari_batch_pipeline.core.stages.training import write_training
from napari_batch_pipeline.core.synthetic import nuclei_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import ForeignLoad, Result, at_most, median, print_table

TARGET = 1.1
FEATURES = {"sigma_min": 1.0, "sigma_max": 16.0}


def _strokes(image: np.ndarray, step: int) -> np.ndarray:
    """Sparse painting: a grid of single pixels, class 2 in the nuclei and 1 around them."""
    truth = filters.gaussian(image, 2, preserve_range=True) > filters.threshold_otsu(image)
    painted = np.zeros(image.shape, dtype=np.uint8)
    painted[::step, ::step] = np.where(truth[::step, ::step], 2, 1)
    return painted


def by_hand(image: np.ndarray, forest: object) -> np.ndarray:
    """What a scikit-image user writes: scale by the percentiles, features, predict."""
    pixels = image.astype(np.float32)
    low, high = np.percentile(pixels, (1, 99.8))
    scaled = ((pixels - np.float32(low)) / np.float32(high - low)).astype(np.float32)
    return predict_segmenter(multiscale_basic_features(scaled, **FEATURES), forest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    shape = (args.size, args.size)
    count = max(6, args.size * args.size // 8000)
    trained_on = nuclei_image(shape, n_nuclei=count, radius=9.0, seed=0)
    image = nuclei_image(shape, n_nuclei=count, radius=9.0, seed=1)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        path = Path(tmp) / "training.npz"
        painted = _strokes(trained_on, max(4, args.size // 32))
        sha = write_training(path, [{"image": trained_on, "labels": painted}])
        stage = {"training": path.name, "training_sha256": sha, "trees": args.trees, "features": FEATURES}
        pipeline = Pipeline([{"name": "cells", "function": "pixel_classifier", "params": stage}], folder=tmp)
        start = time.perf_counter()
        (forest,) = pipeline.train().values()
        training = time.perf_counter() - start
    assert forests.recall(forests.training_key("pixels", pipeline["cells"].params)) is forest
    pipeline.run_stage("cells", {"input": image})  # warm both paths (imports, caches)
    by_hand(image, forest)
    ratios, engine_times, hand_times = [], [], []
    with ForeignLoad() as load:
        for round_ in range(args.rounds):
            load.wait_quiet(timeout=20)
            order = ("engine", "hand") if round_ % 2 == 0 else ("hand", "engine")
            times, outputs = {}, {}
            for which in order:
                start = time.perf_counter()
                if which == "engine":
                    outputs[which] = pipeline.run_stage("cells", {"input": image})
                else:
                    outputs[which] = by_hand(image, forest)
                times[which] = time.perf_counter() - start
            assert np.array_equal(outputs["engine"], outputs["hand"]), "the two classings differ"
            engine_times.append(times["engine"])
            hand_times.append(times["hand"])
            ratios.append(times["engine"] / times["hand"])
            print(
                f"round {round_ + 1}: stage {times['engine']:.3f} s, predict_segmenter {times['hand']:.3f} s",
                file=sys.stderr,
            )
    painted_pixels = int((painted > 0).sum())
    rows = [
        at_most(
            "pixel_classifier predict / predict_segmenter, same forest",
            median(ratios),
            TARGET,
            "x",
            f"{args.size}x{args.size} uint16, {args.trees} trees; median of {args.rounds} rounds: "
            f"stage {median(engine_times):.2f} s, by hand {median(hand_times):.2f} s",
        ),
        Result(
            "training (features of the training image + fit), once per run",
            f"{training:.2f} s",
            "info",
            None,
            f"{painted_pixels} painted pixels",
        ),
    ]
    print_table("pixel classifier", rows, markdown=args.markdown, load=load)
    return 0 if median(ratios) <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
