"""A CUB-shaped image set for the parity tests with the authors' released code.

Real CUB-200-2011 WSOL metadata (../shared/wsol-metadata/CUB) gives the ids, labels, image
sizes and boxes of an evenly spread subset of each split; the images are drawn here, at those
sizes, with a textured object filling each ground-truth box on a smooth noisy background. The
layout is CUB's own (`images/<class dir>/<file>.jpg`) plus a `metadata/<split>/` folder, so
both rpsloc's `cub` adapter and the authors' `Cub2011` dataset read it. Same seed, same bytes
(with the pinned Pillow): `image_digest` lets a test tell a changed generator from a changed
rpsloc.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

METADATA_FILES = ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def chosen_ids(metadata: Path, split: str, count: int) -> list[str]:
    """`count` ids of a split spread evenly over its file order (so over its classes)."""
    ids = _lines(metadata / split / "image_ids.txt")
    step = len(ids) / count
    return [ids[int(i * step)] for i in range(count)]


def subset_metadata(source: Path, out: Path, ids: list[str]) -> None:
    """The lines of `ids` from each WSOL metadata file in `source`, written to `out`."""
    wanted = set(ids)
    out.mkdir(parents=True, exist_ok=True)
    for name in METADATA_FILES:
        kept = [line for line in _lines(source / name) if line.split(",", 1)[0] in wanted]
        (out / name).write_text("".join(f"{line}\n" for line in kept))


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    coarse = rng.uniform(0, 1, size=(cells, cells, 3)).astype(np.float32)
    image = Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height), Image.BICUBIC)
    return np.asarray(image, dtype=np.float32) / 255.0


def draw_image(image_id: str, label: int, size: tuple[int, int], boxes, seed: int) -> Image.Image:
    """A noisy background with one textured ellipse per box, its hue set by the label."""
    width, height = size
    rng = np.random.default_rng([seed, zlib.crc32(image_id.encode())])
    picture = 0.35 + 0.3 * _smooth_noise(rng, width, height, 6)
    ys, xs = np.mgrid[0:height, 0:width]
    hue = (label * 0.137) % 1.0
    colour = np.array([np.cos(2 * np.pi * (hue + k / 3)) * 0.35 + 0.55 for k in range(3)])
    for x0, y0, x1, y1 in boxes:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        rx, ry = max((x1 - x0) / 2, 1), max((y1 - y0) / 2, 1)
        inside = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1
        stripes = 0.75 + 0.25 * np.sin((xs + ys) / max(3.0, rx / 6))
        picture[inside] = colour * stripes[inside, None]
    picture += rng.normal(0, 0.03, size=picture.shape)
    return Image.fromarray((np.clip(picture, 0, 1) * 255).astype(np.uint8))


def draw_split(images: Path, folder: Path, seed: int) -> None:
    """Draw every image a WSOL metadata `folder` lists, at its size, under `images`."""
    labels = dict(line.split(",") for line in _lines(folder / "class_labels.txt"))
    sizes = {
        line.split(",")[0]: tuple(int(v) for v in line.split(",")[1:])
        for line in _lines(folder / "image_sizes.txt")
    }
    boxes: dict[str, list[tuple[int, ...]]] = {}
    for line in _lines(folder / "localization.txt"):
        image_id, *values = line.split(",")
        boxes.setdefault(image_id, []).append(tuple(int(v) for v in values))
    for image_id, size in sizes.items():
        path = images / image_id
        path.parent.mkdir(parents=True, exist_ok=True)
        image = draw_image(image_id, int(labels[image_id]), size, boxes[image_id], seed)
        image.save(path, format="JPEG", quality=90)


def write_cub_shaped(
    root: Path, metadata: Path, counts: dict[str, int], seed: int = 0
) -> dict[str, list[str]]:
    """Write the set under `root` (`images/`, `metadata/<split>/`); the ids of each split."""
    chosen = {}
    for split, count in counts.items():
        ids = chosen_ids(metadata, split, count)
        folder = root / "metadata" / split
        subset_metadata(metadata / split, folder, ids)
        draw_split(root / "images", folder, seed)
        chosen[split] = ids
    return chosen


def image_digest(root: Path, ids: list[str]) -> str:
    """SHA-256 over the image files of `ids`, in order."""
    digest = hashlib.sha256()
    for image_id in ids:
        digest.update((root / "images" / image_id).read_bytes())
    return digest.hexdigest()


def workload_config(name: str, dataset: dict, checkpoint: Path, features: dict) -> dict:
    """rpsloc's configuration of a parity workload: the dataset entry `dataset` under `name`
    (its adapter's defaults, train on `train`, evaluate `val` and `test`), the MoCo v2
    converted ResNet-50 at `checkpoint`, global `w*` only."""
    return {
        "datasets": {
            name: {
                **dataset,
                "train_split": "train",
                "eval_splits": ["val", "test"],
                "backbones": ["r50"],
                "variants": ["rps"],
            }
        },
        "backbones": {
            "r50": {
                "arch": "resnet50",
                "weights": str(checkpoint),
                "checkpoint_format": "moco_v2_converted",
            }
        },
        "features": features,
    }


def fidelity_config(root: Path, checkpoint: Path, features: dict) -> dict:
    """The CUB workload: the `cub` adapter's defaults (the authors' CUB geometry)."""
    dataset = {"adapter": "cub", "root": str(root), "metadata": str(root / "metadata")}
    return workload_config("cub", dataset, checkpoint, features)
