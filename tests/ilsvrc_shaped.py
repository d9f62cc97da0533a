"""An ImageNet-shaped image set for the parity test with the authors' released code.

Val (ImageNetV2) and test (the original val) are evenly spread subsets of the real WSOL
metadata (../shared/wsol-metadata/ILSVRC): their ids, labels, sizes and boxes, several boxes
per image included. The shared metadata has no train split, so the training images are made up
here (`train/n<label>/...` ids, seeded sizes and one box each). Images are drawn as
tests/cub_shaped.py draws them, under one root with ImageNet's relative paths, which rpsloc's
`ilsvrc` adapter and the authors' `ILSVRC` dataset both read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from cub_shaped import chosen_ids, draw_split, subset_metadata, workload_config

SPLITS = ("train", "val", "test")


def _write_train_metadata(folder: Path, count: int, seed: int) -> list[str]:
    """`count` made-up training images over 1,000 classes, each with a seeded size and box."""
    rng = np.random.default_rng(seed)
    lines: dict[str, list[str]] = {"ids": [], "labels": [], "sizes": [], "boxes": []}
    for index in range(count):
        label = index * 1000 // count
        image_id = f"train/n{label:08d}/n{label:08d}_{index}.JPEG"
        width, height = (int(v) for v in rng.integers(150, 500, size=2))
        x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
        x1, y1 = int(rng.integers(x0 + 20, width)), int(rng.integers(y0 + 20, height))
        lines["ids"].append(image_id)
        lines["labels"].append(f"{image_id},{label}")
        lines["sizes"].append(f"{image_id},{width},{height}")
        lines["boxes"].append(f"{image_id},{x0},{y0},{x1},{y1}")
    folder.mkdir(parents=True)
    for name, key in (
        ("image_ids.txt", "ids"),
        ("class_labels.txt", "labels"),
        ("image_sizes.txt", "sizes"),
        ("localization.txt", "boxes"),
    ):
        (folder / name).write_text("".join(f"{line}\n" for line in lines[key]))
    return lines["ids"]


def write_ilsvrc_shaped(
    root: Path, metadata: Path, counts: dict[str, int], seed: int = 0
) -> dict[str, list[str]]:
    """Write the set under `root` (`images/<id>`, `metadata/<split>/`) from the real
    metadata folder `metadata`; the ids of each split."""
    chosen = {"train": _write_train_metadata(root / "metadata" / "train", counts["train"], seed)}
    for split in ("val", "test"):
        chosen[split] = chosen_ids(metadata, split, counts[split])
        subset_metadata(metadata / split, root / "metadata" / split, chosen[split])
    for split in SPLITS:
        draw_split(root / "images", root / "metadata" / split, seed)
    return chosen


def ilsvrc_parity_config(root: Path, checkpoint: Path, features: dict) -> dict:
    """The ImageNet workload: the `ilsvrc` adapter's defaults (resize 256, crop 224, output
    stride 16, the threshold chosen on val)."""
    images, metadata = str(root / "images"), str(root / "metadata")
    dataset = {"adapter": "ilsvrc", "root": images, "metadata": metadata}
    return workload_config("ilsvrc", dataset, checkpoint, features)
