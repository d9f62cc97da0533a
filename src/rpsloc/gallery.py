"""Pictures of single results: the best and the worst images by IoU, and test images beside the
training images that support and oppose their foreground most (METHOD.md sections 1 and 3).

The workflow's gallery rules and `rpsloc show` draw with the same functions; boxes use the
report's colours (predicted `PREDICTED_COLOUR`, ground truth `GROUND_TRUTH_COLOUR`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from rpsloc.datasets.records import ImageRecord, read_manifest
from rpsloc.errors import InputError
from rpsloc.io import open_h5, read_strings
from rpsloc.readers import iter_eval_shards, read_image_ious
from rpsloc.report import (
    GROUND_TRUTH_COLOUR,
    PREDICTED_COLOUR,
    draw_overlay,
    plt,
    save_figure,
    unnormalise,
)
from rpsloc.scoremaps import score_map
from rpsloc.transforms import load_rgb, preprocess

SUPPORT_COLOUR = "#4363d8"
OPPOSE_COLOUR = "#f58231"


@dataclass(frozen=True)
class TestImage:
    """One evaluated image as the figures draw it, in crop pixels."""

    image_id: str
    picture: np.ndarray  # (crop, crop, 3) RGB in [0, 1]
    scores: np.ndarray  # (crop, crop) score map in [0, 1]
    boxes: np.ndarray  # (k, 4) ground-truth boxes x0, y0, x1, y1


@dataclass(frozen=True)
class Explanation:
    """A test image's most supporting and most opposing training images with their
    contributions (mean over its predicted region of r_n . g[p] / ||w~||)."""

    image_id: str
    support: list[tuple[str, float]]
    oppose: list[tuple[str, float]]


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
    _save_with_box_legend(figure, out)


def read_explanations(
    path: str | Path, image_ids: Sequence[str], per_side: int
) -> list[Explanation]:
    """The top `per_side` supporting and opposing training images of each test image."""
    with open_h5(path) as handle:
        position = {image_id: i for i, image_id in enumerate(read_strings(handle["image_ids"]))}
        training = read_strings(handle["training_image_ids"])
        explanations = []
        for image_id in image_ids:
            if image_id not in position:
                raise InputError(f"{path}: no explanation for image {image_id!r}")
            row = position[image_id]
            sides = []
            for name in ("support", "oppose"):
                indices = handle[f"{name}_indices"][row][:per_side]
                values = handle[f"{name}_contributions"][row][:per_side]
                sides.append(
                    [(training[i], float(v)) for i, v in zip(indices, values, strict=True)]
                )
            explanations.append(Explanation(image_id, *sides))
    return explanations


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
    _save_with_box_legend(figure, out)


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


@dataclass(frozen=True)
class ResultFolder:
    """A `results/<dataset>` folder as the workflow leaves it (README: stages and files)."""

    root: Path

    def backbones(self) -> list[str]:
        return sorted(p.parent.name for p in self.root.glob("*/features"))

    def maps(self, backbone: str, variant: str, split: str) -> Path:
        return self.root / backbone / variant / "maps" / f"{split}.h5"

    def images(self, backbone: str, variant: str, split: str) -> Path:
        return self.root / backbone / variant / "metrics" / f"{split}-images.csv"

    def shards(self, backbone: str, split: str) -> list[Path]:
        folder = self.root / backbone / "features" / split
        return sorted(folder.glob("shard-*.h5"), key=lambda p: int(p.stem.split("-")[1]))

    def explanations(self, backbone: str, split: str) -> Path:
        return self.root / backbone / "explanations" / f"{split}.h5"

    def manifests(self) -> list[Path]:
        return sorted(p for p in self.root.glob("manifest/*.csv") if p.stem.count(".") == 0)


def show_image(
    results: str | Path,
    image_id: str,
    out: str | Path,
    backbone: str | None = None,
    variant: str = "rps",
    split: str | None = None,
) -> list[Path]:
    """`rpsloc show`: the overlay of one evaluated image and, where its split was explained,
    its representer gallery, written to `out`; returns the files written."""
    folder = ResultFolder(Path(results))
    backbone = backbone or _only_backbone(folder)
    split = split or _split_of(folder, backbone, variant, image_id)
    maps = folder.maps(backbone, variant, split)
    if not maps.is_file():
        raise InputError(f"{maps}: no maps for backbone {backbone!r}, variant {variant!r}")
    table, threshold = read_image_ious(folder.images(backbone, variant, split))
    ious = dict(zip(table["image_id"], table["iou"], strict=True))
    manifest = folder.root / "manifest" / f"{split}.csv"
    [test] = load_test_images(maps, folder.shards(backbone, split), manifest, [image_id])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = image_id.replace("/", "_")
    overlay = out / f"{stem}-overlay.png"
    figure, axis = plt.subplots(figsize=(4.2, 4.6))
    title = f"{image_id}\n{backbone} / {variant}, {split}, tau = {threshold:.2f}"
    draw_overlay(axis, test.picture, test.scores, threshold, test.boxes, title, ious.get(image_id))
    _save_with_box_legend(figure, overlay)
    written = [overlay]
    explanations = folder.explanations(backbone, split)
    if explanations.is_file():
        gallery = out / f"{stem}-representers.png"
        train_manifest = _training_manifest(folder, explanations)
        write_representer_gallery(explanations, [test], train_manifest, gallery, threshold, ious)
        written.append(gallery)
    return written


def _only_backbone(folder: ResultFolder) -> str:
    backbones = folder.backbones()
    if len(backbones) != 1:
        found = ", ".join(backbones) or "none"
        raise InputError(f"{folder.root}: choose a backbone with --backbone (found: {found})")
    return backbones[0]


def _split_of(folder: ResultFolder, backbone: str, variant: str, image_id: str) -> str:
    """The evaluated split (one with maps of this variant) whose manifest lists the image."""
    for manifest in folder.manifests():
        if not folder.maps(backbone, variant, manifest.stem).is_file():
            continue
        if any(record.image_id == image_id for record in read_manifest(manifest)):
            return manifest.stem
    raise InputError(
        f"{folder.root}: image {image_id!r} is in no evaluated split of {backbone}/{variant}"
    )


def _training_manifest(folder: ResultFolder, explanations: Path) -> Path:
    """The manifest that lists every training image of the explanations file."""
    with open_h5(explanations) as handle:
        training = set(read_strings(handle["training_image_ids"]))
    for manifest in folder.manifests():
        if training <= {record.image_id for record in read_manifest(manifest)}:
            return manifest
    raise InputError(f"{folder.root}/manifest: no manifest lists the training images")


def _label(maps: str | Path) -> str:
    with open_h5(maps) as handle:
        attrs = handle.attrs
        return f"{attrs['backbone']} / {attrs['variant']}, {attrs['split']}"


def _save_with_box_legend(figure, out: str | Path) -> None:
    """Save with a legend of the box colours below the panels."""
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    handles = [
        Patch(facecolor="none", edgecolor=PREDICTED_COLOUR, linewidth=1.8, label="predicted"),
        Patch(facecolor="none", edgecolor=GROUND_TRUTH_COLOUR, linewidth=1.8, label="ground truth"),
    ]
    figure.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    save_figure(figure, out, tight=False)
