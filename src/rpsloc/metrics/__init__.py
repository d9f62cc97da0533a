"""The metrics stage: BoxAcc of one evaluation split's maps against its ground truth (METHOD.md
section 3) under every protocol of `rpsloc.protocols`, MaxBoxAccV2, MaxBoxAcc, PxAP, pIoU and,
with a classifier's predictions, Top-1 / Top-5 / GT-known Loc. The accumulators are
`rpsloc.metrics.accumulators`; the benchmark's own evaluator of score-map folders is
`rpsloc.metrics.folder`."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from rpsloc.boxes import trace_map
from rpsloc.datasets.records import ImageRecord, read_manifest
from rpsloc.errors import InputError
from rpsloc.io import open_h5, read_strings, write_csv_atomic, write_json_atomic
from rpsloc.masks import crop_mask
from rpsloc.metrics.accumulators import (
    BoxAccuracy,
    PixelPrecisionRecall,
    top_k_counts,
    top_k_loc,
)
from rpsloc.parallel import map_in_chunks
from rpsloc.protocols import PROTOCOLS, thresholds
from rpsloc.readers import iter_eval_shards, read_top5
from rpsloc.scoremaps import score_map

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitDetails:
    """What the report draws besides the tables: each image's best IoU at the benchmark
    protocol's best threshold (IoU 50 when evaluated, else the first IoU; images without boxes
    have none) and the pixel precision-recall curve behind PxAP (None without masks)."""

    images: pd.DataFrame
    precision_recall: pd.DataFrame | None


def evaluate_split(
    maps: str | Path,
    eval_shards: Sequence[str | Path],
    manifest: str | Path,
    interval: float = 0.01,
    iou_thresholds: Sequence[int] = (30, 50, 70),
    workers: int = 1,
    with_details: bool = False,
    predictions: str | Path | None = None,
    mask_resize: str = "linear",
) -> tuple[pd.DataFrame, dict[str, Any]] | tuple[pd.DataFrame, dict[str, Any], SplitDetails]:
    """BoxAcc per protocol, IoU and threshold (a tidy table) and the split's headline numbers,
    for a maps file of the maps stage; `workers` processes share the images; `with_details`
    adds the split's `SplitDetails`; a classify-stage `predictions` file adds Top-1, Top-5 and
    GT-known Loc (`top_k_headline`); `mask_resize` is how masks reach the crop
    (rpsloc.masks)."""
    with open_h5(maps) as handle:
        map_ids = read_strings(handle["image_ids"])
        activations = handle["maps"][()]
        image_size = int(handle.attrs["image_size"])
        labels = handle["labels"][()]
    classes = None if predictions is None else (labels, read_top5(predictions, map_ids))
    records = {record.image_id: record for record in read_manifest(manifest)}
    return evaluate_activations(
        activations,
        map_ids,
        eval_shards,
        records,
        image_size,
        interval,
        iou_thresholds,
        source=maps,
        workers=workers,
        with_details=with_details,
        classes=classes,
        mask_resize=mask_resize,
    )


def evaluate_activations(
    activations: np.ndarray,
    image_ids: Sequence[str],
    eval_shards: Sequence[str | Path],
    records: Mapping[str, ImageRecord] | None,
    image_size: int,
    interval: float = 0.01,
    iou_thresholds: Sequence[int] = (30, 50, 70),
    source: str | Path = "maps",
    workers: int = 1,
    with_details: bool = False,
    classes: tuple[np.ndarray, np.ndarray] | None = None,
    mask_resize: str = "linear",
) -> tuple[pd.DataFrame, dict[str, Any]] | tuple[pd.DataFrame, dict[str, Any], SplitDetails]:
    """Evaluate `(n, h, w)` activation maps, in features order, against the ground truth of
    the evaluation shards (boxes) and, when `records` are given, their masks (PxAP).
    `workers` processes share the images; the numbers are the same for any number of them.
    `with_details` adds the split's `SplitDetails`; `classes` (labels `(n,)` and a
    classifier's top-5 `(n, 5)`, in the maps' order) add Top-1/Top-5/GT-known Loc."""
    with_masks = records is not None and any(r.mask_paths for r in records.values())
    images = []
    boxed_ids = []
    position = 0
    for shard in iter_eval_shards(eval_shards, with_features=False):
        for image_id, boxes, native in zip(
            shard.image_ids, shard.boxes, shard.authors_boxes, strict=True
        ):
            if position >= len(image_ids) or image_ids[position] != image_id:
                found = image_ids[position] if position < len(image_ids) else "nothing"
                raise InputError(
                    f"{source}: map {position} is for {found!r} but the features list "
                    f"{image_id!r} there"
                )
            if not np.isfinite(activations[position]).all():
                raise InputError(f"{source}: map of image {image_id!r} has non-finite values")
            masked = with_masks and bool(records[image_id].mask_paths)
            record = records[image_id] if masked else None
            images.append((activations[position], shard.crop_size, boxes, native, record))
            if len(boxes):
                boxed_ids.append(image_id)
            position += 1
    if position != len(image_ids):
        raise InputError(f"{source}: holds {len(image_ids)} maps, the features {position} images")
    if not boxed_ids and not with_masks:
        raise InputError(
            f"{source}: no image of this split has ground truth (boxes or masks), so it has no "
            "metrics; its predictions are the boxes stage's (docs/boxes.md)"
        )
    if 0 < len(boxed_ids) < position:
        LOGGER.warning(
            "%s: %d of %d images have no ground-truth box and are left out of BoxAcc",
            source,
            position - len(boxed_ids),
            position,
        )
    evaluate_images = partial(
        _evaluate_images,
        interval=interval,
        iou_thresholds=iou_thresholds,
        with_masks=with_masks,
        image_size=image_size,
        mask_resize=mask_resize,
    )
    parts = map_in_chunks(evaluate_images, images, workers)
    accumulators, pixels = parts[0]
    for part_accumulators, part_pixels in parts[1:]:
        for name, accumulator in accumulators.items():
            accumulator.merge(part_accumulators[name])
        if pixels is not None:
            pixels.merge(part_pixels)
    boxed_classes = None
    if classes is not None and boxed_ids:
        row = {image_id: i for i, image_id in enumerate(image_ids)}
        boxed = [row[image_id] for image_id in boxed_ids]
        labels, top5 = classes
        boxed_classes = (labels[boxed], top5[boxed])
    table = pd.concat(
        [
            _box_acc_table(name, accumulator, iou_thresholds, boxed_classes)
            for name, accumulator in accumulators.items()
        ],
        ignore_index=True,
    )
    summary = _headline(accumulators, iou_thresholds)
    summary["n_without_boxes"] = position - len(boxed_ids)
    if pixels is not None:
        summary["pxap"] = pixels.pxap()
        summary["piou"] = pixels.piou()
    if boxed_classes is not None:
        summary.update(top_k_headline(accumulators["benchmark_largest"], *boxed_classes))
    if not with_details:
        return table, summary
    return table, summary, _details(accumulators["benchmark"], pixels, boxed_ids)


def _details(
    benchmark: BoxAccuracy, pixels: PixelPrecisionRecall | None, image_ids: Sequence[str]
) -> SplitDetails:
    images = pd.DataFrame({"image_id": list(image_ids)})
    if benchmark.n_images:
        iou = 50 if 50 in benchmark.iou_thresholds else benchmark.iou_thresholds[0]
        row = benchmark.box_acc()[benchmark.iou_thresholds.index(iou)]
        column = int(np.argmax(row))
        images["threshold"] = round(float(benchmark.thresholds[column]), 6)
        images["iou"] = benchmark.best_ious[:, column]
    curve = None
    if pixels is not None:
        precision, recall = pixels.precision_recall()
        curve = pd.DataFrame({"recall": recall, "precision": precision})
    return SplitDetails(images, curve)


def _evaluate_images(
    images: Sequence[tuple[np.ndarray, int, np.ndarray, np.ndarray, ImageRecord | None]],
    interval: float,
    iou_thresholds: Sequence[int],
    with_masks: bool,
    image_size: int,
    mask_resize: str,
) -> tuple[dict[str, BoxAccuracy], PixelPrecisionRecall | None]:
    """Each protocol's accumulator, and the pixel one, over some images given as (activation,
    crop size, boxes, the boxes from the annotation's own coordinates, the record when its
    masks count), in order.

    A map is traced once, on the union of the protocols' grids, and every protocol reads its
    boxes from that tracing."""
    accumulators = {
        protocol.name: BoxAccuracy(
            protocol.thresholds(interval),
            iou_thresholds,
            multi_contour=protocol.multi_contour,
            clip_to_image=protocol.clip_to_image,
            empty_is_miss=protocol.empty_is_miss,
        )
        for protocol in PROTOCOLS
    }
    grid = np.unique(np.concatenate([p.thresholds(interval) for p in PROTOCOLS]))
    pixels = PixelPrecisionRecall(thresholds(interval)) if with_masks else None
    progress = tqdm(images, desc="evaluating", unit="image", mininterval=5)
    for activation, crop_size, boxes, native, record in progress:
        scores = score_map(activation, crop_size)
        if len(boxes):
            traced = trace_map(scores, grid)
            for protocol in PROTOCOLS:
                truth = native if protocol.native_boxes else boxes
                accumulators[protocol.name].add_traced(traced, truth)
        if pixels is not None and record is not None:
            pixels.add(scores, crop_mask(record, image_size, crop_size, mask_resize))
    return accumulators, pixels


def _box_acc_table(
    protocol: str,
    accumulator: BoxAccuracy,
    iou_thresholds: Sequence[int],
    classes: tuple[np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """One row per IoU and threshold: BoxAcc and the counts behind it (`n_correct` of
    `n_images`), so a protocol's cross-split choice can redo the authors' arithmetic exactly;
    with a classifier's `classes`, the IoU-50 rows also count the images located with the
    right top-1 class (`n_top1`) and within the top 5 (`n_top5`)."""
    if accumulator.n_images == 0:
        return pd.DataFrame(
            columns=["protocol", "iou", "threshold", "box_acc", "n_correct", "n_images"]
        )
    counts = accumulator.correct_counts()
    top_k = None if classes is None else top_k_counts(accumulator.best_ious, *classes)
    rows = []
    for iou, accuracies, correct in zip(iou_thresholds, accumulator.box_acc(), counts, strict=True):
        for column, threshold in enumerate(accumulator.thresholds):
            row = {
                "protocol": protocol,
                "iou": iou,
                "threshold": round(float(threshold), 6),
                "box_acc": float(accuracies[column]),
                "n_correct": int(correct[column]),
                "n_images": accumulator.n_images,
            }
            if top_k is not None:
                located = iou == 50
                row["n_top1"] = int(top_k[0][column]) if located else pd.NA
                row["n_top5"] = int(top_k[1][column]) if located else pd.NA
            rows.append(row)
    table = pd.DataFrame(rows)
    if top_k is not None:
        table = table.astype({"n_top1": "Int64", "n_top5": "Int64"})
    return table


def _headline(
    accumulators: dict[str, BoxAccuracy], iou_thresholds: Sequence[int]
) -> dict[str, Any]:
    benchmark = accumulators["benchmark"]
    summary: dict[str, Any] = {"n_images": benchmark.n_images}
    if benchmark.n_images == 0:
        return summary
    summary["max_box_acc_v2"] = benchmark.max_box_acc_v2()
    for iou, value in benchmark.max_box_acc().items():
        summary[f"max_box_acc_{iou}"] = value
    for iou, value in benchmark.best_thresholds().items():
        summary[f"best_threshold_{iou}"] = value
    if 50 in iou_thresholds:
        summary["max_box_acc_v1"] = accumulators["benchmark_largest"].max_box_acc()[50]
    return summary


def top_k_headline(largest: BoxAccuracy, labels: np.ndarray, top5: np.ndarray) -> dict[str, Any]:
    """Top-1, Top-5 and GT-known Loc (METHOD.md 3) at the one threshold maximising BoxAcc at
    IoU 50 of the largest-contour benchmark protocol (`benchmark_largest`, whose maximum is
    MaxBoxAcc v1, so `gt_known_loc == max_box_acc_v1`), from its per-image best IoUs."""
    if 50 not in largest.iou_thresholds:
        raise InputError(
            "config: evaluation.iou_thresholds must include 50 for Top-1/Top-5 Loc, found "
            f"{list(largest.iou_thresholds)}"
        )
    column = int(np.argmax(largest.box_acc()[largest.iou_thresholds.index(50)]))
    return {
        **top_k_loc(largest.best_ious[:, column], labels, top5),
        "loc_protocol": "benchmark_largest",
        "loc_threshold": float(largest.thresholds[column]),
    }


def write_split_metrics(
    maps: str | Path,
    eval_shards: Sequence[str | Path],
    manifest: str | Path,
    out_table: str | Path,
    out_summary: str | Path,
    out_images: str | Path,
    out_curve: str | Path,
    interval: float = 0.01,
    iou_thresholds: Sequence[int] = (30, 50, 70),
    workers: int = 1,
    predictions: str | Path | None = None,
    mask_resize: str = "linear",
) -> None:
    """The metrics stage: per-threshold table (CSV) and headline numbers (JSON) of one split,
    its per-image best IoUs and its pixel precision-recall curve (CSV, no rows without masks);
    with a classifier's `predictions`, Top-1/Top-5/GT-known Loc in the JSON."""
    table, summary, details = evaluate_split(
        maps,
        eval_shards,
        manifest,
        interval,
        iou_thresholds,
        workers=workers,
        with_details=True,
        predictions=predictions,
        mask_resize=mask_resize,
    )
    write_csv_atomic(table, out_table)
    write_json_atomic(summary, out_summary)
    write_csv_atomic(details.images, out_images)
    curve = details.precision_recall
    if curve is None:
        curve = pd.DataFrame(columns=["recall", "precision"])
    write_csv_atomic(curve, out_curve)
