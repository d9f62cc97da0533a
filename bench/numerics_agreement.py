"""Benchmark 2b: what running a backbone the features stage's way changes in the numbers.

The stage runs a convolutional backbone in channels-last on the CPU and with its BatchNorms
folded into their convolutions (`backbones.build.for_inference`). For each backbone it does
either for (ResNet-50 at 448 with output stride 32 and at 224 with stride 16, VGG16 and
VGG16-BN at 224; VGG16 has no BatchNorm):
`w*` from a synthetic training split, then the evaluation split's features from the model as
published (default memory format, BatchNorms unfolded) and as the stage runs it, the method's
maps of both, their score maps (normalised, upsampled to the crop) and their numbers
(`rpsloc.metrics.evaluate_split`). The weights are a seeded random init whose BatchNorms get
statistics as training leaves them (a random init's are the identity, which folding would
barely touch). Prints the largest difference of the stored unit features and of the score
maps, how many of the maps' pixels fall on the other side of a threshold of the grid, and the
largest difference of the box numbers (MaxBoxAccV2, BoxAcc per IoU, the authors' protocol) and
of the pixel ones (PxAP, PIoU). Goal: fp32 noise, score maps within 1e-3 (the unit test's
tolerance), the same box numbers, PxAP and PIoU within 0.01 points.

    .venv/bin/python bench/numerics_agreement.py [--images 32] [--train-images 16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import torch
from _common import machine, result_row, synthetic_split, write_json

from rpsloc.backbones.build import build_backbone
from rpsloc.datasets.records import read_manifest
from rpsloc.features import extract_shard
from rpsloc.maps import write_maps
from rpsloc.metrics import evaluate_split
from rpsloc.representer import write_representer
from rpsloc.scoremaps import score_map

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from batch_norms import with_trained_batch_norms  # noqa: E402

#: (arch, image size, output stride) of the backbones the stage runs in channels-last on the
#: CPU; all but VGG16 have BatchNorms to fold.
MODELS = (("resnet50", 448, 32), ("resnet50", 224, 16), ("vgg16", 224, 8), ("vgg16_bn", 224, 8))
#: The unit test's tolerance on score maps (tests/test_features.py).
SCORE_MAP_TOLERANCE = 1e-3
#: The metrics' threshold grid.
INTERVAL = 0.01
#: The headline numbers read from pixels (masks), not boxes: continuous, so fp32 noise in the
#: maps moves them by a little instead of not at all.
PIXEL_METRICS = ("pxap", "piou")


def split_numbers(
    folder: Path,
    manifests: dict[str, Path],
    arch: str,
    size: int,
    stride: int,
    as_published: bool,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Unit features and score maps of the evaluation split, and its headline numbers, with
    the evaluation features from the model as published or as the stage runs it (`w*` always
    from the published one)."""
    backbone = {"arch": arch, "weights": str(trained_checkpoint(folder, arch, stride))}
    shared = {"batch_size": 16, "device": "cpu"}
    published = {"channels_last": False, "fold_batch_norms": False}
    tag = "published" if as_published else "stage"
    train, shard = folder / f"{arch}{size}-train.h5", folder / f"{arch}{size}-{tag}.h5"
    representer = folder / f"{arch}{size}-representer.h5"
    if not representer.exists():
        count = len(read_manifest(manifests["train"]))
        extract_shard(
            manifests["train"],
            "train",
            0,
            count,
            backbone,
            size,
            size,
            stride,
            train,
            **published,
            **shared,
        )
        write_representer([train], representer)
    count = len(read_manifest(manifests["val"]))
    extract_shard(
        manifests["val"],
        "eval",
        0,
        count,
        backbone,
        size,
        size,
        stride,
        shard,
        **(published if as_published else {}),
        **shared,
    )
    maps = folder / f"{arch}{size}-{tag}-maps.h5"
    write_maps("rps", [shard], maps, representer=representer)
    with h5py.File(shard) as handle:
        unit = handle["unit_features"][()].astype(np.float32)
    with h5py.File(maps) as handle:
        scores = np.stack([score_map(activation, size) for activation in handle["maps"][()]])
    _, headline = evaluate_split(maps, [shard], manifests["val"], interval=INTERVAL)
    return unit, scores, headline


def trained_checkpoint(folder: Path, arch: str, stride: int) -> Path:
    """A checkpoint of `arch`'s seeded random init with trained-looking BatchNorms
    (tests/batch_norms.py)."""
    path = folder / f"{arch}-trained-statistics.pth"
    if not path.exists():
        model = build_backbone({"arch": arch, "weights": "random", "seed": 0}, stride)
        torch.save(with_trained_batch_norms(model).state_dict(), path)
    return path


def numeric_items(headline: dict, prefix: str = "") -> dict[str, float]:
    """The headline's numbers, nested keys joined with '/'."""
    items = {}
    for key, value in headline.items():
        if isinstance(value, dict):
            items.update(numeric_items(value, f"{prefix}{key}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            items[f"{prefix}{key}"] = float(value)
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32, help="evaluation images")
    parser.add_argument("--train-images", type=int, default=16)
    parser.add_argument("--json", type=Path, help="write the table rows for run_all.py here")
    arguments = parser.parse_args()
    torch.set_num_threads(2)
    print(f"machine: {machine()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="rpsloc-bench-") as name:
        folder = Path(name)
        manifests = {
            "train": synthetic_split(folder / "train", arguments.train_images, "train", seed=1),
            "val": synthetic_split(folder / "val", arguments.images, "val", seed=2),
        }
        for arch, size, stride in MODELS:
            published = split_numbers(folder, manifests, arch, size, stride, as_published=True)
            stage = split_numbers(folder, manifests, arch, size, stride, as_published=False)
            feature_gap = float(np.abs(published[0] - stage[0]).max())
            score_gap = float(np.abs(published[1] - stage[1]).max())
            grid = np.arange(0, 1, INTERVAL)
            flipped = sum(int(((published[1] >= t) != (stage[1] >= t)).sum()) for t in grid)
            numbers = numeric_items(published[2]), numeric_items(stage[2])
            gaps = {key: abs(numbers[0][key] - numbers[1][key]) for key in numbers[0]}
            pixel_gap = max(gaps[key] for key in PIXEL_METRICS)
            box_gap = max(gap for key, gap in gaps.items() if key not in PIXEL_METRICS)
            label = f"{arch} at {size}, stride {stride}"
            print(
                f"{label}: unit features {feature_gap:.2e}, score maps {score_gap:.2e}, "
                f"{flipped} of {published[1].size * len(grid)} pixel-threshold pairs flipped; "
                f"box numbers {box_gap:.4g} points apart, PxAP and PIoU {pixel_gap:.2g}"
            )
            rows += [
                result_row(
                    "2b. stage numerics",
                    f"{label}: largest score-map difference to the published model's",
                    score_gap,
                    f"<= {SCORE_MAP_TOLERANCE:g}",
                    score_gap <= SCORE_MAP_TOLERANCE,
                ),
                result_row(
                    "2b. stage numerics",
                    f"{label}: largest difference of the box numbers, points "
                    f"({arguments.images} images)",
                    box_gap,
                    "0",
                    box_gap == 0,
                ),
                result_row(
                    "2b. stage numerics",
                    f"{label}: largest PxAP / PIoU difference, points",
                    pixel_gap,
                    "< 0.01",
                    pixel_gap < 0.01,
                ),
            ]
    write_json(arguments.json, rows)


if __name__ == "__main__":
    main()
