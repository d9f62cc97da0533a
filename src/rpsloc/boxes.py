"""Score map -> boxes at each threshold, and box IoU, as the WSOL benchmark computes them.

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

import cv2
import numpy as np

from rpsloc.errors import InputError

_NO_BOX = np.zeros((1, 4), dtype=np.int64)


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


def _contour_boxes(foreground: np.ndarray, multi_contour: bool, clip_to_image: bool) -> np.ndarray:
    """(k, 4) int64 boxes x0, y0, x1, y1 of the contours of one binary image (steps 2-4)."""
    contours, _ = cv2.findContours(foreground, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if len(contours) == 0:
        return _NO_BOX
    if not multi_contour:
        contours = [max(contours, key=cv2.contourArea)]
    # boundingRect of a point set is (min x, min y, max x - min x + 1, max y - min y + 1):
    # computed for all contours at once from their concatenated points (exactly the same ints).
    points = np.concatenate(contours, axis=0).reshape(-1, 2).astype(np.int64)
    starts = np.cumsum([0] + [len(contour) for contour in contours[:-1]])
    lower = np.minimum.reduceat(points, starts, axis=0)
    upper = np.maximum.reduceat(points, starts, axis=0) + 1
    if clip_to_image:
        height, width = foreground.shape
        upper = np.minimum(upper, [width - 1, height - 1])
    return np.concatenate([lower, upper], axis=1)


def _boxes_per_level(
    score_map: np.ndarray, thresholds: np.ndarray, multi_contour: bool, clip_to_image: bool
) -> tuple[list[np.ndarray], np.ndarray]:
    """Boxes of each distinct binary image, and for each threshold the index of its binary image.

    Two thresholds give the same binary image exactly when as many pixels exceed both, so each
    distinct image is traced once.
    """
    image = (check_score_map(score_map) * 255).astype(np.uint8)
    peak = int(image.max())
    levels = np.array([int(float(tau) * peak) for tau in _as_thresholds(thresholds)])
    counts_at_or_below = np.cumsum(np.bincount(image.ravel(), minlength=256))
    n_above = image.size - counts_at_or_below[np.clip(levels, 0, 255)]
    n_above[levels < 0] = image.size
    _, first, index = np.unique(n_above, return_index=True, return_inverse=True)
    boxes = []
    for level in levels[first]:
        # THRESH_BINARY: 1 where image > level, as `image > level` (levels < 0 keep every pixel).
        _, foreground = cv2.threshold(image, float(level), 1, cv2.THRESH_BINARY)
        boxes.append(_contour_boxes(foreground, multi_contour, clip_to_image))
    return boxes, index.reshape(-1)


def threshold_boxes(
    score_map: np.ndarray,
    thresholds: np.ndarray,
    multi_contour: bool,
    clip_to_image: bool = True,
) -> list[np.ndarray]:
    """Per threshold tau, the (k, 4) int64 boxes x0, y0, x1, y1 of the map (METHOD.md section 3).

    k = 1 in largest-contour mode (and when nothing exceeds the threshold: box (0, 0, 0, 0)).
    """
    boxes, index = _boxes_per_level(score_map, thresholds, multi_contour, clip_to_image)
    return [boxes[i].copy() for i in index]


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
    gt = _as_boxes(gt_boxes, "gt_boxes")
    if len(gt) == 0:
        raise InputError("gt_boxes: expected at least one ground-truth box, found none")
    invalid = (gt < 0).any(axis=1) | (gt[:, 2] < gt[:, 0]) | (gt[:, 3] < gt[:, 1])
    if invalid.any():
        raise InputError(
            "gt_boxes: expected 0 <= x0 <= x1 and 0 <= y0 <= y1, found "
            f"{gt[np.flatnonzero(invalid)[0]].tolist()}"
        )
    boxes, index = _boxes_per_level(score_map, thresholds, multi_contour, clip_to_image)
    starts = np.cumsum([0] + [len(b) for b in boxes[:-1]])
    best_per_box = box_iou(np.concatenate(boxes, axis=0), gt).max(axis=1)
    best_per_level = np.maximum.reduceat(best_per_box, starts)
    return best_per_level[index]
