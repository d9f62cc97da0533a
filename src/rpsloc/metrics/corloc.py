"""One box per image: CorLoc, the object-discovery protocol of LOST and TokenCut, and BoxAcc
at a method's own box (docs/method.md "CorLoc and the peers").

CorLoc is the percentage of images whose single predicted box has IoU >= 0.5 with at least
one ground-truth box (crowd boxes left out, `ImageRecord.scored`). Boxes are compared as the
peers compare them: in the original image's pixels, as continuous rectangles between pixel
edges, so a manifest box `x0, y0, x1, y1` (`x1`, `y1` inclusive) is the rectangle
`[x0, x1 + 1) x [y0, y1 + 1)` (`pixel_edges`), its area `(x1 + 1 - x0)(y1 + 1 - y0)`. LOST's
IoU adds 1e-7 to the heights and the union; here the IoU is exact, so a box at IoU exactly 0.5
counts (for LOST it falls a hair short); no other case differs. An image without a predicted
box, or without ground truth, is a miss and stays in the denominator, as every image the peers
process counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rpsloc.boxes import box_iou
from rpsloc.datasets.records import ImageRecord, read_manifest
from rpsloc.errors import InputError
from rpsloc.io import write_json_atomic
from rpsloc.readers import (
    MapsFile,
    PredictedBoxes,
    read_box_threshold,
    read_maps,
    read_predicted_boxes,
)
from rpsloc.transforms import boxes_to_crop

CORLOC_IOU = 0.5


def pixel_edges(boxes: np.ndarray) -> np.ndarray:
    """(k, 4) inclusive pixel boxes -> the rectangles between their pixel edges, float64."""
    edges = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    edges[:, 2:] += 1
    return edges


def edge_iou(box: np.ndarray, truths: np.ndarray) -> np.ndarray:
    """(k,) IoU of one rectangle `x0, y0, x1, y1` (edges) with each of `truths` (k, 4)."""
    box = np.asarray(box, dtype=np.float64)
    truths = np.asarray(truths, dtype=np.float64).reshape(-1, 4)
    width = np.clip(np.minimum(box[2], truths[:, 2]) - np.maximum(box[0], truths[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], truths[:, 3]) - np.maximum(box[1], truths[:, 1]), 0, None)
    inter = width * height
    union = (
        (box[2] - box[0]) * (box[3] - box[1])
        + (truths[:, 2] - truths[:, 0]) * (truths[:, 3] - truths[:, 1])
        - inter
    )
    iou = np.zeros(len(truths))
    np.divide(inter, union, out=iou, where=union > 0)
    return iou


def corloc_hits(predicted: Sequence[np.ndarray | None], truths: Sequence[np.ndarray]) -> np.ndarray:
    """(n,) whether each image's box (edges, or None for no box) locates one of its truths
    (edges, (k, 4)): IoU >= 0.5, compared as `2 inter >= union` so that 0.5 is exact."""
    if len(predicted) != len(truths):
        raise ValueError(f"{len(predicted)} predicted boxes for {len(truths)} images")
    hits = np.zeros(len(predicted), dtype=bool)
    for index, (box, truth) in enumerate(zip(predicted, truths, strict=True)):
        if box is None or len(truth) == 0:
            continue
        hits[index] = bool((edge_iou(box, truth) >= CORLOC_IOU).any())
    return hits


def corloc(predicted: Sequence[np.ndarray | None], truths: Sequence[np.ndarray]) -> dict[str, Any]:
    """CorLoc (percent) of one box per image, with the counts behind it."""
    hits = corloc_hits(predicted, truths)
    count = len(hits)
    return {
        "corloc": 100.0 * hits.sum() / count if count else float("nan"),
        "corloc_n_located": int(hits.sum()),
        "corloc_n_images": count,
        "corloc_n_without_box": sum(box is None for box in predicted),
        "corloc_n_without_truth": sum(len(truth) == 0 for truth in truths),
    }


def own_box_accuracy(
    boxes: np.ndarray, truths: Sequence[np.ndarray], iou_thresholds: Sequence[int]
) -> dict[str, float]:
    """BoxAcc of a box-only method at its own box, no threshold sweep (the WSOL benchmark's
    +1 pixel IoU, METHOD.md 3): `own_box_acc_<iou>`, the percentage of images with ground
    truth whose box (inclusive crop pixels, (n, 4)) reaches the IoU with one of theirs."""
    best = np.array(
        [
            box_iou(box[None], truth).max()
            for box, truth in zip(boxes, truths, strict=True)
            if len(truth)
        ]
    )
    return {
        f"own_box_acc_{iou}": 100.0 * float((best >= iou / 100).mean())
        if len(best)
        else float("nan")
        for iou in iou_thresholds
    }


def crop_edges_to_image(
    edges: np.ndarray, width: int, height: int, image_size: int, crop_size: int
) -> np.ndarray:
    """A rectangle in crop pixels (edges) -> the original image's pixels, undoing the resize
    to `image_size` and the centre crop (METHOD.md 1), clipped to the image."""
    offset = (image_size - crop_size) / 2
    scale = np.array([width, height, width, height]) / image_size
    moved = (np.asarray(edges, dtype=np.float64) + offset) * scale
    return np.clip(moved, 0, [width, height, width, height])


def split_corloc(
    maps: MapsFile,
    records: Mapping[str, ImageRecord],
    predicted: PredictedBoxes | None,
    iou_thresholds: Sequence[int],
) -> dict[str, Any]:
    """CorLoc of one split against the manifest: each image's box is the method's own (a
    box-only method's `own_boxes`, feature cells scaled by the output stride, back to the
    original pixels) or the boxes stage's first (`predicted`, original pixels, none where it
    found no region). Box-only methods add BoxAcc at their own box in crop pixels
    (`own_box_accuracy`)."""
    image_size, crop_size = int(maps.attrs["image_size"]), int(maps.attrs["crop_size"])
    stride = crop_size / maps.maps.shape[-1]
    if maps.own_boxes is None and predicted is None:
        raise ValueError(f"{maps.path}: a map method's CorLoc needs the boxes stage's boxes")
    first = {} if predicted is None else _first_boxes(predicted)
    boxes, truths, crop_truths = [], [], []
    for row, image_id in enumerate(maps.image_ids):
        if image_id not in records:
            raise InputError(f"{maps.path}: image {image_id!r} is not in the split's manifest")
        record = records[image_id]
        truth = record.boxes[record.scored]
        truths.append(pixel_edges(truth))
        crop_truths.append(boxes_to_crop(truth, record.width, record.height, image_size, crop_size))
        if maps.own_boxes is None:
            boxes.append(first.get(image_id))
            continue
        edges = maps.own_boxes[row] * stride
        boxes.append(crop_edges_to_image(edges, record.width, record.height, image_size, crop_size))
    result: dict[str, Any] = corloc(boxes, truths)
    if maps.own_boxes is None:
        return {**result, "corloc_box": "boxes stage, first box"}
    own = np.floor(maps.own_boxes * stride).astype(np.int64) - [0, 0, 1, 1]
    return {**result, "corloc_box": "own box", **own_box_accuracy(own, crop_truths, iou_thresholds)}


def _first_boxes(predicted: PredictedBoxes) -> dict[str, np.ndarray]:
    """Each image's best-ranked box as pixel edges (`pixel_edges`)."""
    best = predicted.boxes.sort_values(["image_id", "rank"]).drop_duplicates("image_id")
    corners = pixel_edges(best[["x0", "y0", "x1", "y1"]].to_numpy())
    return dict(zip(best["image_id"], corners, strict=True))


def write_split_corloc(
    maps: str | Path,
    manifest: str | Path,
    out: str | Path,
    iou_thresholds: Sequence[int] = (30, 50, 70),
    boxes: str | Path | None = None,
    box_images: str | Path | None = None,
    box_coco: str | Path | None = None,
) -> None:
    """The corloc stage: CorLoc of one split (JSON). A map method's box is the boxes stage's
    first (its `boxes`, `box_images` and `box_coco` files; the threshold it was cut at is
    recorded); a box-only method's is its own."""
    loaded = read_maps(maps)
    records = {record.image_id: record for record in read_manifest(manifest)}
    predicted = None if boxes is None else read_predicted_boxes(boxes, box_images)
    result = split_corloc(loaded, records, predicted, iou_thresholds)
    if box_coco is not None:
        result["corloc_box"] += f", {read_box_threshold(box_coco).label}"
    write_json_atomic(result, out)
