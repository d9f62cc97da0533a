"""The straightforward per-threshold evaluation loop, written the way the WSOL benchmark's
`BoxEvaluator` runs it (clovaai/wsolevaluation, METHOD.md section 3): for every image and every
threshold, threshold the uint8 map, trace its contours, box them and compare with the ground
truth. `rpsloc evaluate` must give exactly these numbers, faster; the benchmark
`bench/evaluation_speed.py` and `tests/test_parallel_evaluation.py` compare the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rpsloc.datasets.wsol import read_wsol_metadata
from rpsloc.metrics.folder import RESIZE_LENGTH, _resize_box


def _boxes_at_threshold(image: np.ndarray, tau: float, multi_contour: bool) -> np.ndarray:
    """Boxes of one thresholded uint8 map, clipped to W-1, H-1 (the benchmark's steps 1-4)."""
    _, binary = cv2.threshold(image, int(tau * np.max(image)), 255, cv2.THRESH_BINARY)
    contours, _ = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if len(contours) == 0:
        return np.zeros((1, 4), dtype=np.int64)
    if not multi_contour:
        contours = [max(contours, key=cv2.contourArea)]
    height, width = image.shape
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
    return np.array(boxes, dtype=np.int64)


def _multiple_iou(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """The benchmark's `calculate_multiple_iou`: (M, G) IoU with the +1 pixel convention."""
    a, b = boxes[:, None, :], gt[None, :, :]
    inter_w = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    inter_h = np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    intersection = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    union = area_a + area_b - intersection
    return np.where(union > 0, intersection / np.where(union > 0, union, 1), 0.0)


def reference_evaluate_folder(
    metadata_dir: Path,
    scoremap_dir: Path,
    contours: str = "multi",
    interval: float = 0.01,
    iou_thresholds: Sequence[int] = (30, 50, 70),
) -> dict[str, Any]:
    """MaxBoxAcc per IoU, MaxBoxAccV2 and the best thresholds of a folder of 224 x 224 maps,
    one image and one threshold at a time (box splits only)."""
    metadata = read_wsol_metadata(Path(metadata_dir), labels=False, mask_localization=False)
    thresholds = np.arange(0, 1, interval)
    correct = np.zeros((len(iou_thresholds), len(thresholds)))
    for image_id in metadata.ids:
        score_map = np.load(Path(scoremap_dir) / f"{image_id}.npy").astype(np.float64)
        image = (score_map * 255).astype(np.uint8)
        ground_truth = metadata.image(image_id)
        gt = np.array(
            [_resize_box(box, ground_truth.size, RESIZE_LENGTH) for box, _, _ in ground_truth.boxes]
        )
        for index, tau in enumerate(thresholds):
            boxes = _boxes_at_threshold(image, float(tau), contours == "multi")
            best = _multiple_iou(boxes, gt).max()
            for row, d in enumerate(iou_thresholds):
                correct[row, index] += best >= d / 100
    box_acc = correct * 100.0 / float(len(metadata.ids))
    per_iou = list(zip(iou_thresholds, box_acc, strict=True))
    return {
        "n_images": len(metadata.ids),
        "contours": contours,
        "interval": float(interval),
        "max_box_acc": {str(d): float(row.max()) for d, row in per_iou},
        "max_box_acc_v2": float(np.mean([row.max() for row in box_acc])),
        "best_threshold": {str(d): float(thresholds[int(np.argmax(row))]) for d, row in per_iou},
    }


def random_score_map(rng: np.random.Generator) -> np.ndarray:
    """A smooth random 224 x 224 score map in [0, 1] attaining both ends (float64): blurred
    noise with one or two bumps."""
    noise = cv2.GaussianBlur(rng.random((224, 224)), (0, 0), float(rng.uniform(2.0, 12.0)))
    ys, xs = np.mgrid[0:224, 0:224]
    for _ in range(int(rng.integers(1, 3))):
        cy, cx, sigma = rng.uniform(30, 194), rng.uniform(30, 194), rng.uniform(10, 60)
        noise += rng.uniform(0.2, 1.0) * np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / sigma**2)
    return (noise - noise.min()) / (noise.max() - noise.min())


def write_random_box_split(folder: Path, n_images: int, seed: int = 0) -> tuple[Path, Path]:
    """A WSOL metadata folder of `n_images` with random sizes and 1-3 random boxes, and a folder
    of smooth random 224 x 224 score maps (blurred noise with one or two bumps)."""
    rng = np.random.default_rng(seed)
    metadata, scoremaps = Path(folder) / "metadata", Path(folder) / "scoremaps"
    metadata.mkdir(parents=True, exist_ok=True)
    scoremaps.mkdir(parents=True, exist_ok=True)
    ids, sizes, boxes = [], [], []
    for index in range(n_images):
        image_id = f"val/random_{index:06d}.jpg"
        width, height = (int(v) for v in rng.integers(120, 500, size=2))
        ids.append(image_id)
        sizes.append(f"{image_id},{width},{height}")
        for _ in range(int(rng.integers(1, 4))):
            x0, y0 = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
            x1, y1 = int(rng.integers(x0, width)), int(rng.integers(y0, height))
            boxes.append(f"{image_id},{x0},{y0},{x1},{y1}")
        path = scoremaps / f"{image_id}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, random_score_map(rng).astype(np.float32))
    (metadata / "image_ids.txt").write_text("\n".join(ids) + "\n")
    (metadata / "class_labels.txt").write_text("".join(f"{i},0\n" for i in ids))
    (metadata / "image_sizes.txt").write_text("\n".join(sizes) + "\n")
    (metadata / "localization.txt").write_text("\n".join(boxes) + "\n")
    return metadata, scoremaps
