"""Pictures of single results: the first images of a split, the best and the worst by IoU,
training images with their representer values, test images beside the training images that
support and oppose their foreground most (METHOD.md sections 1 and 3), and the boxes stage's
predictions in original pixels: the first images and those of highest and lowest objectness
(docs/boxes.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rpsloc.datasets.records import ImageRecord, read_manifest
from rpsloc.errors import InputError
from rpsloc.figures.drawing import (
    OPPOSE_COLOUR,
    SUPPORT_COLOUR,
    draw_overlay,
    draw_predictions,
    plt,
    save_figure,
    save_with_box_legend,
    unnormalise,
)
from rpsloc.io import open_h5, read_json, read_strings
from rpsloc.readers import (
    PredictedBoxes,
    iter_eval_shards,
    read_box_threshold,
    read_explanations,
    read_image_ious,
    read_predicted_boxes,
)
from rpsloc.scoremaps import score_map
from rpsloc.transforms import load_rgb, preprocess


@dataclass(frozen=True)
class TestImage:
    """One evaluated image as the figures draw it, in crop pixels."""

    image_id: str
    picture: np.ndarray  # (crop, crop, 3) RGB in [0, 1]
    scores: np.ndarray  # (crop, crop) score map in [0, 1]
    boxes: np.ndarray  # (k, 4) ground-truth boxes x0, y0, x1, y1


def plot_overlays(
    maps: str | Path,
    summary: str | Path,
    eval_shard: str | Path,
    manifest: str | Path,
    out: str | Path,
    count: int = 8,
) -> None:
    """The first images of a split: heatmap, predicted boxes at the best IoU-50 threshold of
    the benchmark protocol (red), and ground-truth boxes (green)."""
    threshold = float(read_json(summary).get("best_threshold_50", 0.5))
    records = {record.image_id: record for record in read_manifest(manifest)}
    with open_h5(maps) as handle:
        position = {image_id: i for i, image_id in enumerate(read_strings(handle["image_ids"]))}
        activations = handle["maps"][()]
        image_size = int(handle.attrs["image_size"])
        label = f"{handle.attrs['backbone']} / {handle.attrs['variant']}"
    shard = next(iter_eval_shards([eval_shard], with_features=False))
    count = min(count, len(shard.image_ids))
    columns = max(1, min(count, 4))
    rows = max(1, int(np.ceil(count / columns)))
    figure, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.2 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for index, axis in zip(range(count), axes.flat[:count], strict=True):
        image_id = shard.image_ids[index]
        picture = preprocess(load_rgb(records[image_id].path), image_size, shard.crop_size)
        scores = score_map(activations[position[image_id]], shard.crop_size)
        draw_overlay(axis, unnormalise(picture), scores, threshold, shard.boxes[index], image_id)
    figure.suptitle(
        f"{label}: predicted (red) and ground-truth (green) boxes at tau = {threshold:.2f}",
        fontsize=9,
    )
    save_figure(figure, out)


def plot_representer_values(
    representer: str | Path, manifest: str | Path, out: str | Path, count: int = 4
) -> None:
    """The `count` most and least supportive training images (by r_n . w*) with their
    per-position representer values alpha_{n,p} (red pushes towards w*, blue away)."""
    records = {record.image_id: record for record in read_manifest(manifest)}
    with open_h5(representer) as handle:
        image_ids = read_strings(handle["image_ids"])
        values = handle["image_values"][()]
        alphas = handle["representer_values"][()]
        image_size = int(handle.attrs["image_size"])
        crop_size = int(handle.attrs["crop_size"])
    order = np.argsort(-values, kind="stable")
    count = max(1, min(count, len(order) // 2 or 1))
    chosen = list(order[:count]) + list(order[::-1][:count])
    figure, axes = plt.subplots(2, count, figsize=(3 * count, 6.4), squeeze=False)
    limit = float(np.percentile(np.abs(alphas[chosen]), 99)) or 1.0
    for axis, index in zip(axes.flat, chosen, strict=True):
        picture = preprocess(load_rgb(records[image_ids[index]].path), image_size, crop_size)
        axis.imshow(unnormalise(picture))
        heat = axis.imshow(
            alphas[index],
            cmap="coolwarm",
            vmin=-limit,
            vmax=limit,
            alpha=0.55,
            extent=(0, crop_size, crop_size, 0),
            interpolation="nearest",
        )
        axis.set_title(f"{image_ids[index]}\nr.w* = {values[index]:.3g}", fontsize=7)
        axis.axis("off")
    figure.colorbar(heat, ax=axes, shrink=0.6, label="representer value alpha_{n,p}")
    figure.suptitle("Most (top) and least (bottom) supportive training images", fontsize=9)
    save_figure(figure, out, tight=False)


def load_test_images(
    maps: str | Path,
    eval_shards: Sequence[str | Path],
    manifest: str | Path,
    image_ids: Sequence[str],
) -> list[TestImage]:
    """The images `image_ids` of an evaluated split, in that order, with their score maps."""
    wanted = set(image_ids)
    with open_h5(maps) as handle:
        position = {image_id: i for i, image_id in enumerate(read_strings(handle["image_ids"]))}
        missing = [image_id for image_id in image_ids if image_id not in position]
        if missing:
            raise InputError(f"{maps}: no map for image {missing[0]!r}")
        activations = {image_id: handle["maps"][position[image_id]] for image_id in wanted}
        image_size = int(handle.attrs["image_size"])
    records = _records(manifest, wanted)
    found = {}
    for shard in iter_eval_shards(eval_shards, with_features=False):
        for image_id, boxes in zip(shard.image_ids, shard.boxes, strict=True):
            if image_id in wanted:
                picture = preprocess(load_rgb(records[image_id].path), image_size, shard.crop_size)
                scores = score_map(activations[image_id], shard.crop_size)
                found[image_id] = TestImage(image_id, unnormalise(picture), scores, boxes)
    return [found[image_id] for image_id in image_ids]


def _records(manifest: str | Path, image_ids: set[str]) -> dict[str, ImageRecord]:
    records = {r.image_id: r for r in read_manifest(manifest) if r.image_id in image_ids}
    missing = sorted(image_ids - records.keys())
    if missing:
        raise InputError(f"{manifest}: image {missing[0]!r} is not in this manifest")
    return records


def best_and_worst(images: pd.DataFrame, count: int) -> tuple[list[str], list[str]]:
    """The ids of the `count` images with the highest and the lowest best IoU (ties keep the
    split's order)."""
    best = images.sort_values("iou", ascending=False, kind="stable")["image_id"][:count]
    worst = images.sort_values("iou", ascending=True, kind="stable")["image_id"][:count]
    return list(best), list(worst)


def plot_best_and_worst(
    maps: str | Path,
    images: str | Path,
    eval_shards: Sequence[str | Path],
    manifest: str | Path,
    out: str | Path,
    count: int = 4,
) -> None:
    """Two rows of overlays: the `count` best and the `count` worst images by best IoU at the
    benchmark protocol's best threshold, with the IoU in each corner."""
    table, threshold = read_image_ious(images)
    best, worst = best_and_worst(table, max(1, count))
    ious = dict(zip(table["image_id"], table["iou"], strict=True))
    shown = load_test_images(maps, eval_shards, manifest, list(dict.fromkeys(best + worst)))
    pictures = {image.image_id: image for image in shown}
    columns = max(len(best), 1)
    figure, axes = plt.subplots(2, columns, figsize=(2.9 * columns, 6.6), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for row, (name, image_ids) in enumerate((("best", best), ("worst", worst))):
        for column, image_id in enumerate(image_ids[:columns]):
            axis = axes[row][column]
            image = pictures[image_id]
            title = f"{name}: {image_id}"
            draw_overlay(
                axis, image.picture, image.scores, threshold, image.boxes, title, ious[image_id]
            )
    figure.suptitle(
        f"{_label(maps)}\nbest and worst images by IoU at tau = {threshold:.2f}", fontsize=9
    )
    save_with_box_legend(figure, out)


def write_representer_gallery(
    explanations: str | Path,
    tests: Sequence[TestImage],
    train_manifest: str | Path,
    out: str | Path,
    threshold: float,
    ious: Mapping[str, float],
    per_side: int = 3,
) -> None:
    """One row per test image: its overlay, then its `per_side` most supporting and most
    opposing training images, each titled with its contribution."""
    rows = read_explanations(explanations, [test.image_id for test in tests], per_side)
    with open_h5(explanations) as handle:
        image_size, crop_size = int(handle.attrs["image_size"]), int(handle.attrs["crop_size"])
    training_ids = {image_id for row in rows for image_id, _ in row.support + row.oppose}
    records = _records(train_manifest, training_ids)
    columns = 1 + 2 * per_side
    figure, axes = plt.subplots(
        len(rows), columns, figsize=(2.2 * columns, 2.9 * len(rows) + 0.6), squeeze=False
    )
    for axis in axes.flat:
        axis.axis("off")
    for axes_row, test, row in zip(axes, tests, rows, strict=True):
        draw_overlay(
            axes_row[0],
            test.picture,
            test.scores,
            threshold,
            test.boxes,
            f"test: {test.image_id}",
            ious.get(test.image_id),
        )
        sides = [(SUPPORT_COLOUR, "supports", row.support), (OPPOSE_COLOUR, "opposes", row.oppose)]
        cells = [(colour, verb, *entry) for colour, verb, entries in sides for entry in entries]
        shown_cells = cells[: len(axes_row) - 1]
        cell_axes = axes_row[1 : 1 + len(shown_cells)]
        for axis, (colour, verb, image_id, value) in zip(cell_axes, shown_cells, strict=True):
            picture = preprocess(load_rgb(records[image_id].path), image_size, crop_size)
            axis.imshow(unnormalise(picture))
            axis.set_title(f"{verb} {value:+.3g}\n{image_id}", fontsize=7, color=colour)
            axis.axis("on")
            axis.set_xticks([])
            axis.set_yticks([])
            for spine in axis.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(3)
    figure.suptitle(
        "Test images (left) and the training images whose representer points support "
        "(blue) and oppose (orange) their foreground most; value = mean contribution to "
        "the map over the predicted region",
        fontsize=9,
    )
    save_with_box_legend(figure, out)


def plot_representer_gallery(
    explanations: str | Path,
    maps: str | Path,
    images: str | Path,
    eval_shards: Sequence[str | Path],
    manifest: str | Path,
    train_manifest: str | Path,
    out: str | Path,
    count: int = 4,
    per_side: int = 3,
) -> None:
    """The representer gallery of the split's best ceil(count/2) and worst floor(count/2)
    images by IoU."""
    table, threshold = read_image_ious(images)
    count = max(1, count)
    best, _ = best_and_worst(table, (count + 1) // 2)
    _, worst = best_and_worst(table, count // 2)
    chosen = list(dict.fromkeys(best + worst))
    tests = load_test_images(maps, eval_shards, manifest, chosen)
    ious = dict(zip(table["image_id"], table["iou"], strict=True))
    write_representer_gallery(explanations, tests, train_manifest, out, threshold, ious, per_side)


def _label(maps: str | Path) -> str:
    with open_h5(maps) as handle:
        attrs = handle.attrs
        return f"{attrs['backbone']} / {attrs['variant']}, {attrs['split']}"


def _prediction_panels(
    axes: Sequence, image_ids: Sequence[str], predicted: PredictedBoxes, manifest: str | Path
) -> None:
    """Each image's predictions on its axis, titled with its id and objectness."""
    records = _records(manifest, set(image_ids))
    images = predicted.images
    objectness = dict(zip(images["image_id"], images["objectness"], strict=True))
    for axis, image_id in zip(axes, image_ids, strict=True):
        record = records[image_id]
        title = f"{image_id}\nobjectness {objectness[image_id]:.2f}"
        draw_predictions(axis, load_rgb(record.path), predicted.of(image_id), record.boxes, title)


def plot_predictions(
    boxes: str | Path,
    images: str | Path,
    coco: str | Path,
    manifest: str | Path,
    out: str | Path,
    count: int = 8,
) -> None:
    """The first `count` images of a split in their original pixels with their predicted
    boxes and scores (red), the ground truth where there is (green), each image's
    objectness in its title: what the boxes stage hands out (docs/boxes.md)."""
    predicted = read_predicted_boxes(boxes, images)
    shown = list(predicted.images["image_id"][: max(1, count)])
    columns = min(len(shown), 4)
    rows = int(np.ceil(len(shown) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.2 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    _prediction_panels(axes.flat[: len(shown)], shown, predicted, manifest)
    figure.suptitle(
        f"Predicted boxes (red, with scores)\nat {read_box_threshold(coco).label}", fontsize=9
    )
    save_with_box_legend(figure, out)


def plot_objectness(
    boxes: str | Path,
    images: str | Path,
    coco: str | Path,
    manifest: str | Path,
    out: str | Path,
    count: int = 4,
) -> None:
    """Two rows: the `count` images of a split with the highest objectness and the `count`
    with the lowest, with their predicted boxes and scores: where filtering images by
    objectness would cut (docs/boxes.md, "Scores")."""
    predicted = read_predicted_boxes(boxes, images)
    order = predicted.images.sort_values("objectness", ascending=False, kind="stable")
    count = max(1, min(count, (len(order) + 1) // 2))
    highest = list(order["image_id"][:count])
    lowest = list(order["image_id"][::-1][:count])
    figure, axes = plt.subplots(2, count, figsize=(3 * count, 6.6), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    _prediction_panels(axes[0], highest, predicted, manifest)
    _prediction_panels(axes[1][: len(lowest)], lowest, predicted, manifest)
    figure.suptitle(
        f"Highest (top) and lowest (bottom) objectness\nboxes at {read_box_threshold(coco).label}",
        fontsize=9,
    )
    save_with_box_legend(figure, out)
