"""Score map -> boxes at each threshold, and box IoU, as the WSOL benchmark computes them; the
boxes stage that hands predicted boxes to the user is `rpsloc.boxes.predicted` (its COCO file
`rpsloc.boxes.coco`), built on the same steps.

METHOD.md section 3 (Choe et al., CVPR 2020, `evaluation.py` of clovaai/wsolevaluation):

1. `m = (s * 255).astype(uint8)`; foreground = `m > int(tau * m.max())` (OpenCV THRESH_BINARY).
2. Contours by `cv2.findContours(RETR_TREE, CHAIN_APPROX_SIMPLE)`; none gives the box (0, 0, 0, 0).
3. Largest-contour mode keeps the first contour of largest `cv2.contourArea`; multi-contour mode
   keeps all of them (the inner contours of holes included, as RETR_TREE returns them).
4. `boundingRect` (x, y, w, h) -> (x, y, min(x + w, W - 1), min(y + h, H - 1)); the authors' code
   does not clip (`clip_to_image=False`).
5. IoU with the +1 pixel convention; a non-positive denominator gives 0.

Score maps are evaluated in float64, as the benchmark does after loading them (`t2n`), so a
float32 map gives the same boxes as in the benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from rpsloc.errors import InputError


def check_score_map(score_map: np.ndarray, where: str = "score map") -> np.ndarray:
    """The map as a float64 (H, W) array; InputError unless it is 2-D, finite and in [0, 1].

    `where` names the map in the message (e.g. the file and image id).
    """
    array = np.asarray(score_map)
    if array.dtype.kind not in "fiub":
        raise InputError(f"{where}: expected a real-valued array, found dtype {array.dtype}")
    if array.ndim != 2:
        raise InputError(f"{where}: expected a 2-D (H, W) array, found shape {array.shape}")
    if array.size == 0:
        raise InputError(f"{where}: expected a non-empty array, found shape {array.shape}")
    array = array.astype(np.float64, copy=False)
    if np.isnan(array).any():
        raise InputError(f"{where}: contains NaN values ({int(np.isnan(array).sum())} pixels)")
    low, high = float(array.min()), float(array.max())
    if low < 0.0 or high > 1.0:
        raise InputError(f"{where}: values must lie in [0, 1], found min {low}, max {high}")
    return array


def _as_thresholds(thresholds: np.ndarray) -> np.ndarray:
    values = np.asarray(thresholds, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise InputError(f"thresholds: expected a non-empty 1-D array, found shape {values.shape}")
    return values


@dataclass(frozen=True)
class TracedMap:
    """The contours of every distinct binary image of one score map over a threshold grid
    (steps 1-2), traced once and shared by every contour mode and clipping rule."""

    thresholds: np.ndarray  # (T,) the grid traced
    binary_of_threshold: np.ndarray  # (T,) index into `contours` of each threshold's image
    contours: list[Sequence[np.ndarray]]  # per distinct binary image, as findContours gives
    shape: tuple[int, int]  # (H, W)

    def restricted(self, thresholds: np.ndarray) -> TracedMap:
        """The same tracing seen through a sub-grid of its thresholds (e.g. the authors'
        0.01..0.99 inside the benchmark's 0..0.99)."""
        thresholds = _as_thresholds(thresholds)
        positions = np.searchsorted(self.thresholds, thresholds).clip(0, len(self.thresholds) - 1)
        if not np.array_equal(self.thresholds[positions], thresholds):
            raise ValueError("TracedMap.restricted: thresholds outside the traced grid")
        return replace(
            self, thresholds=thresholds, binary_of_threshold=self.binary_of_threshold[positions]
        )


def score_image(score_map: np.ndarray) -> np.ndarray:
    """Step 1's uint8 image `m = (s * 255).astype(uint8)` of a checked score map."""
    return (check_score_map(score_map) * 255).astype(np.uint8)


def threshold_level(threshold: float, peak: int) -> int:
    """`int(tau * m.max())`: the pixels of `m` above it are foreground (step 1)."""
    return int(float(threshold) * peak)


def binary_image(image: np.ndarray, level: int) -> np.ndarray:
    """THRESH_BINARY: uint8 1 where `image > level`, else 0 (a level < 0 keeps every pixel)."""
    return cv2.threshold(image, float(level), 1, cv2.THRESH_BINARY)[1]


def box_extents(
    lower: np.ndarray, upper: np.ndarray, shape: tuple[int, int], clip: bool
) -> np.ndarray:
    """Step 4's boxes (k, 4) x0, y0, x1, y1 from each region's first pixel `lower` (k, 2) and
    one past its last `upper` (k, 2): boundingRect's (x, y, x + w, y + h), clipped to
    (W - 1, H - 1) when `clip`."""
    if clip:
        height, width = shape
        upper = np.minimum(upper, [width - 1, height - 1])
    return np.concatenate([lower, upper], axis=1).astype(np.int64)


def trace_map(score_map: np.ndarray, thresholds: np.ndarray) -> TracedMap:
    """Threshold the uint8 map at each tau and trace the contours of each distinct result.

    Two thresholds give the same binary image exactly when as many pixels exceed both, so each
    distinct image is traced once. The product `s * 255` is taken in float64, as the benchmark
    does after `t2n`; the authors keep float32, which gives the same uint8 image for every
    float32 value in [0, 1] (checked exhaustively, docs/method.md).
    """
    thresholds = _as_thresholds(thresholds)
    image = score_image(score_map)
    peak = int(image.max())
    levels = np.array([threshold_level(tau, peak) for tau in thresholds])
    counts_at_or_below = np.cumsum(np.bincount(image.ravel(), minlength=256))
    n_above = image.size - counts_at_or_below[np.clip(levels, 0, 255)]
    n_above[levels < 0] = image.size
    _, first, index = np.unique(n_above, return_index=True, return_inverse=True)
    contours = []
    for level in levels[first].tolist():
        foreground = binary_image(image, level)
        contours.append(cv2.findContours(foreground, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0])
    return TracedMap(thresholds, index.reshape(-1), contours, image.shape)


def traced_boxes(
    traced: TracedMap, multi_contour: bool, clip_to_image: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(B, 4) int64 boxes x0, y0, x1, y1 of every distinct binary image, concatenated, and the
    row where each image's boxes start (steps 3-4); an image without contours has the one box
    (0, 0, 0, 0). All boxes come from one pass over the concatenated contour points:
    boundingRect of a point set is (min x, min y, max x - min x + 1, max y - min y + 1)."""
    if multi_contour:
        chosen = traced.contours
    else:
        chosen = [[max(found, key=cv2.contourArea)] if found else [] for found in traced.contours]
    counts = np.array([len(found) for found in chosen])
    box_counts = np.maximum(counts, 1)
    starts = np.concatenate([[0], np.cumsum(box_counts[:-1])]).astype(np.int64)
    boxes = np.zeros((int(box_counts.sum()), 4), dtype=np.int64)
    flat = [contour for found in chosen for contour in found]
    if flat:
        points = np.concatenate(flat, axis=0).reshape(-1, 2).astype(np.int64)
        point_starts = np.cumsum([0] + [len(c) for c in flat[:-1]])
        lower = np.minimum.reduceat(points, point_starts, axis=0)
        upper = np.maximum.reduceat(points, point_starts, axis=0) + 1
        rows = np.repeat(starts, counts) + np.concatenate(
            [np.arange(count) for count in counts]
        ).astype(np.int64)
        boxes[rows] = box_extents(lower, upper, traced.shape, clip_to_image)
    return boxes, starts


def threshold_boxes(
    score_map: np.ndarray,
    thresholds: np.ndarray,
    multi_contour: bool,
    clip_to_image: bool = True,
) -> list[np.ndarray]:
    """Per threshold tau, the (k, 4) int64 boxes x0, y0, x1, y1 of the map (METHOD.md section 3).

    k = 1 in largest-contour mode (and when nothing exceeds the threshold: box (0, 0, 0, 0)).
    """
    traced = trace_map(score_map, thresholds)
    boxes, starts = traced_boxes(traced, multi_contour, clip_to_image)
    per_binary = np.split(boxes, starts[1:])
    return [per_binary[i].copy() for i in traced.binary_of_threshold]


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """(M, G) float64 IoU of x0, y0, x1, y1 boxes, +1 pixel convention (METHOD.md section 3).

    Areas are (x1 - x0 + 1)(y1 - y0 + 1), the intersection max(0, .. + 1) per axis; where the
    denominator is not positive the IoU is 0.
    """
    a = _as_boxes(boxes_a, "boxes_a")[:, None, :]
    b = _as_boxes(boxes_b, "boxes_b")[None, :, :]
    inter_w = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    inter_h = np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    intersection = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    denominator = area_a + area_b - intersection
    positive = denominator > 0
    iou = np.zeros(denominator.shape, dtype=np.float64)
    np.divide(intersection, denominator, out=iou, where=positive)
    return iou


def _as_boxes(boxes: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(boxes)
    if array.ndim != 2 or array.shape[1] != 4:
        raise InputError(f"{name}: expected a (k, 4) array x0, y0, x1, y1, found {array.shape}")
    return array.astype(np.int64, copy=False)


def best_iou_per_threshold(
    score_map: np.ndarray,
    gt_boxes: np.ndarray,
    thresholds: np.ndarray,
    multi_contour: bool,
    clip_to_image: bool = True,
) -> np.ndarray:
    """(T,) best IoU over predicted boxes x ground-truth boxes at each threshold (METHOD.md 3)."""
    return traced_best_ious(
        trace_map(score_map, thresholds), gt_boxes, multi_contour, clip_to_image
    )


def traced_best_ious(
    traced: TracedMap,
    gt_boxes: np.ndarray,
    multi_contour: bool,
    clip_to_image: bool = True,
    empty_is_miss: bool = False,
) -> np.ndarray:
    """(T,) best IoU at each threshold of a traced map (see `best_iou_per_threshold`).

    Where nothing exceeds a threshold the benchmark scores the box (0, 0, 0, 0); with
    `empty_is_miss` the image has no box there and its IoU is 0, as in the authors' code."""
    gt = _as_boxes(gt_boxes, "gt_boxes")
    if len(gt) == 0:
        raise InputError("gt_boxes: expected at least one ground-truth box, found none")
    invalid = (gt < 0).any(axis=1) | (gt[:, 2] < gt[:, 0]) | (gt[:, 3] < gt[:, 1])
    if invalid.any():
        raise InputError(
            "gt_boxes: expected 0 <= x0 <= x1 and 0 <= y0 <= y1, found "
            f"{gt[np.flatnonzero(invalid)[0]].tolist()}"
        )
    boxes, starts = traced_boxes(traced, multi_contour, clip_to_image)
    best_per_box = box_iou(boxes, gt).max(axis=1)
    best = np.maximum.reduceat(best_per_box, starts)
    if empty_is_miss:
        best[[not found for found in traced.contours]] = 0.0
    return best[traced.binary_of_threshold]
