"""The boxes stage: every image's predicted boxes at one explicit threshold, in the original
image's pixels, ranked by a confidence score, with an image-level objectness score
(docs/boxes.md; METHOD.md sections 1 and 3).

Per image, the score map the metrics threshold (`rpsloc.scoremaps.score_map`) is cut at the
threshold exactly as the benchmark cuts it (`rpsloc.boxes`, step 1); every connected region of
at least `min_area` of the map's pixels is one box (step 4's convention), whose **score** is the
mean activation `A[p] = max(0, w* . g[p])` over the region's pixels, and the image's
**objectness** is its best box's score (0 without a box). The map is min-max normalised per
image before it is thresholded, so the threshold says where an image's foreground is relative to
its own peak; the activation, a cosine between `w*` and the local feature, says how much
foreground there is on a scale all images share, which is what ranks boxes across images and
tells an image without an object from one with (docs/boxes.md, "Scores").

The threshold is one number per split, chosen by a rule (`box_threshold`): fixed, read from the
metrics stage's BoxAcc table of a labelled split (`rpsloc.protocols.chosen_threshold`), or
Otsu's threshold of the split's pooled score maps, which needs no ground truth.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from rpsloc.boxes import binary_image, box_extents, score_image, threshold_level
from rpsloc.boxes.coco import coco_file
from rpsloc.datasets.records import ImageRecord, read_manifest
from rpsloc.errors import InputError
from rpsloc.io import atomic_path, write_csv_atomic, write_json_atomic
from rpsloc.protocols import chosen_threshold, on_grid, protocol_thresholds
from rpsloc.readers import MapsFile, read_box_accuracy, read_box_threshold, read_maps
from rpsloc.scoremaps import score_map
from rpsloc.transforms import boxes_from_crop, mask_from_crop

LOGGER = logging.getLogger(__name__)

BOX_COLUMNS = ("image_id", "rank", "x0", "y0", "x1", "y1", "score")
IMAGE_COLUMNS = ("image_id", "width", "height", "n_boxes", "objectness")


@dataclass(frozen=True)
class Regions:
    """The kept foreground regions of one score map at one threshold, best first."""

    boxes: np.ndarray  # (k, 4) int64 x0, y0, x1, y1 in the map's pixels (step 4's convention)
    scores: np.ndarray  # (k,) mean activation over each region's pixels
    areas: np.ndarray  # (k,) pixels of each region
    labels: np.ndarray  # (H, W) int32: region i + 1 at its pixels, 0 elsewhere

    @property
    def objectness(self) -> float:
        """The best region's score: how much foreground the image holds; 0 without a region."""
        return float(self.scores[0]) if len(self.scores) else 0.0

    def foreground(self) -> np.ndarray:
        """(H, W) bool: the pixels of the kept regions."""
        return self.labels > 0


def activation_map(activation: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The activation at the score map's pixels, before normalisation: `low + (high - low) s`,
    exact because min-max normalisation is affine and commutes with bilinear upsampling."""
    low, high = float(activation.min()), float(activation.max())
    return low + (high - low) * scores.astype(np.float64)


def foreground_regions(
    activation: np.ndarray, crop_size: int, threshold: float, min_area: float
) -> Regions:
    """The connected regions (8-connected, as OpenCV's contours) of an activation map's score
    map above `threshold` (METHOD.md section 3, step 1) with at least `min_area` of its pixels,
    ranked by score (ties: the larger region, then the upper left one first)."""
    scores = score_map(activation, crop_size)
    image = score_image(scores)
    binary = binary_image(image, threshold_level(threshold, int(image.max())))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA].astype(np.int64)
    sums = np.bincount(
        labels.ravel(), weights=activation_map(activation, scores).ravel(), minlength=count
    )[1:]
    means = sums / np.maximum(areas, 1)
    corners = stats[1:, :2].astype(np.int64)
    kept = np.flatnonzero(areas >= max(min_area * binary.size, 1))
    order = kept[np.lexsort((corners[kept, 0], corners[kept, 1], -areas[kept], -means[kept]))]
    boxes = box_extents(corners[order], corners[order] + stats[1:, 2:4][order], binary.shape, True)
    relabelled = np.zeros(count, dtype=np.int32)
    relabelled[order + 1] = np.arange(1, len(order) + 1)
    return Regions(boxes, means[order], areas[order], relabelled[labels])


def otsu_threshold(score_maps: Iterable[np.ndarray]) -> float:
    """Otsu's threshold of the pooled uint8 score maps of a split: the level k maximising the
    between-class variance of the pooled histogram, as a tau whose `int(tau * 255)` is k (so
    the foreground is m > k); no ground truth needed (docs/boxes.md, "Threshold")."""
    counts = np.zeros(256)
    for scores in score_maps:
        counts += np.bincount(score_image(scores).ravel(), minlength=256)
    if counts[1:].sum() == 0:
        raise InputError("every score map of the split is constant: Otsu's threshold is undefined")
    weights = np.cumsum(counts) / counts.sum()
    means = np.cumsum(counts * np.arange(256)) / counts.sum()
    inside = (weights > 0) & (weights < 1)
    between = np.zeros(256)
    between[inside] = (means[-1] * weights[inside] - means[inside]) ** 2 / (
        weights[inside] * (1 - weights[inside])
    )
    level = int(np.argmax(between[:255]))
    return (level + 0.5) / 255


def box_threshold(
    rule: Mapping[str, Any], maps: MapsFile, table: str | Path | None = None
) -> dict[str, Any]:
    """The threshold of a split's boxes by its rule (`BoxSettings.threshold_rule`): `fixed`
    (its value), `labelled` (the threshold `protocols.chosen_threshold` picks in the metrics
    BoxAcc `table` of the rule's split, as the exact float of the protocol's grid) or `otsu`
    (of these maps); the rule with its value."""
    name = rule["rule"]
    if name == "fixed":
        value = float(rule["value"])
    elif name == "labelled":
        if table is None:
            raise ValueError(f"threshold rule {dict(rule)}: needs a labelled split's BoxAcc table")
        chosen = chosen_threshold(read_box_accuracy(table), rule["protocol"])
        value = on_grid(chosen, protocol_thresholds(rule["protocol"], rule["interval"]))
    elif name == "otsu":
        crop_size = int(maps.attrs["crop_size"])
        value = otsu_threshold(score_map(activation, crop_size) for activation in maps.maps)
    else:
        raise ValueError(f"unknown threshold rule {name!r}")
    return {**rule, "value": value}


def predicted_boxes(
    maps: MapsFile, records: Mapping[str, ImageRecord], threshold: float, min_area: float
) -> Iterable[tuple[ImageRecord, Regions, np.ndarray]]:
    """Per image of a maps file, in its order: its record, its regions in crop pixels and its
    boxes in the original image's pixels (`transforms.boxes_from_crop`)."""
    image_size, crop_size = int(maps.attrs["image_size"]), int(maps.attrs["crop_size"])
    for image_id, activation in zip(maps.image_ids, maps.maps, strict=True):
        if image_id not in records:
            raise InputError(f"{maps.path}: image {image_id!r} is not in the split's manifest")
        record = records[image_id]
        regions = foreground_regions(activation, crop_size, threshold, min_area)
        boxes = boxes_from_crop(regions.boxes, record.width, record.height, image_size, crop_size)
        yield record, regions, boxes


def write_split_boxes(
    maps: str | Path,
    manifest: str | Path,
    out_boxes: str | Path,
    out_images: str | Path,
    out_coco: str | Path,
    threshold_rule: Mapping[str, Any],
    min_area: float,
    table: str | Path | None = None,
) -> dict[str, Any]:
    """The boxes stage: a split's predicted boxes (CSV, one row per box, best first per
    image), its images with their objectness (CSV) and both as a COCO file with the split's
    ground truth where it has any (docs/boxes.md). Returns the threshold rule with its value."""
    loaded = read_maps(maps)
    records = {record.image_id: record for record in read_manifest(manifest)}
    threshold = box_threshold(threshold_rule, loaded, table)
    LOGGER.info("boxes of %s at threshold %.4f (%s)", maps, threshold["value"], threshold)
    box_rows, image_rows = [], []
    predictions = []
    for record, regions, boxes in predicted_boxes(loaded, records, threshold["value"], min_area):
        for rank, (box, score) in enumerate(zip(boxes, regions.scores, strict=True), start=1):
            box_rows.append((record.image_id, rank, *box.tolist(), float(score)))
        image_rows.append(
            (record.image_id, record.width, record.height, len(boxes), regions.objectness)
        )
        predictions.append((record, boxes, regions.scores, regions.objectness))
    write_csv_atomic(pd.DataFrame(box_rows, columns=list(BOX_COLUMNS)), out_boxes)
    write_csv_atomic(pd.DataFrame(image_rows, columns=list(IMAGE_COLUMNS)), out_images)
    info = {
        **{key: loaded.attrs.get(key, "") for key in ("dataset", "backbone", "variant", "split")},
        "threshold": threshold,
        "min_area": min_area,
        "maps": str(maps),
    }
    write_json_atomic(coco_file(predictions, info), out_coco)
    return threshold


def write_split_masks(
    maps: str | Path, manifest: str | Path, coco: str | Path, out: str | Path
) -> None:
    """Each image's binary mask of its kept regions, at the original size
    (`transforms.mask_from_crop`), as 0/255 PNG `<out>/<image id>.png`, at the threshold and
    minimum area the boxes stage recorded in its COCO file."""
    loaded = read_maps(maps)
    records = {record.image_id: record for record in read_manifest(manifest)}
    threshold = read_box_threshold(coco)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    image_size = int(loaded.attrs["image_size"])
    for record, regions, _ in predicted_boxes(loaded, records, threshold.value, threshold.min_area):
        mask = mask_from_crop(regions.foreground(), record.width, record.height, image_size)
        path = out / f"{record.image_id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temporary:
            Image.fromarray(mask.astype(np.uint8) * 255).save(temporary, format="PNG")
