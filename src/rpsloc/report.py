"""Summary tables and figures from the metrics stage's files.

`summary.csv` has one row per (backbone, map variant, evaluated split) of a dataset, with every
number labelled by its protocol (see `rpsloc.evaluation`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from rpsloc.boxes import threshold_boxes  # noqa: E402
from rpsloc.datasets.records import read_manifest  # noqa: E402
from rpsloc.evaluation import authors_protocol  # noqa: E402
from rpsloc.io import (  # noqa: E402
    atomic_path,
    open_h5,
    read_attrs,
    read_csv,
    read_json,
    read_strings,
    write_csv_atomic,
)
from rpsloc.readers import iter_eval_shards  # noqa: E402
from rpsloc.scoremaps import score_map  # noqa: E402
from rpsloc.transforms import IMAGENET_MEAN, IMAGENET_STD, load_rgb, preprocess  # noqa: E402

SUMMARY_COLUMNS = [
    "dataset",
    "backbone",
    "arch",
    "weights",
    "variant",
    "split",
    "n_images",
    "n_skipped",
    "max_box_acc_v2",
    "max_box_acc_30",
    "max_box_acc_50",
    "max_box_acc_70",
    "max_box_acc_v1",
    "authors_threshold_split",
    "authors_threshold",
    "authors_box_acc_30",
    "authors_box_acc_50",
    "authors_box_acc_70",
    "authors_box_acc_mean",
    "pxap",
    "piou",
    "loc_protocol",  # Top-k Loc: datasets with a classifier (rpsloc.evaluation.top_k_headline)
    "loc_threshold",
    "gt_known_loc",
    "top1_loc",
    "top5_loc",
]
PREDICTED_COLOUR = "#e6194b"
GROUND_TRUTH_COLOUR = "#3cb44b"


@dataclass(frozen=True)
class SplitResult:
    """Where one evaluated (backbone, variant, split) left its files."""

    backbone: str
    variant: str
    split: str
    maps: Path
    table: Path
    summary: Path
    images: Path  # per-image best IoUs
    curve: Path  # pixel precision-recall points (no rows without masks)


def split_results(entries: Sequence[dict[str, str]]) -> list[SplitResult]:
    """SplitResults from the workflow's plain dicts (backbone, variant, split and paths)."""
    return [
        SplitResult(
            entry["backbone"],
            entry["variant"],
            entry["split"],
            Path(entry["maps"]),
            Path(entry["table"]),
            Path(entry["summary"]),
            Path(entry["images"]),
            Path(entry["curve"]),
        )
        for entry in entries
    ]


def summary_table(
    dataset: str,
    results: Sequence[SplitResult],
    threshold_split: str | None,
    skipped: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """One row per result; the authors' threshold comes from `threshold_split` of the same
    backbone and variant (or from the split itself when there is none). `n_skipped` is the
    number of images the split's manifest left out (`skipped`, per split; 0 when absent)."""
    by_key = {(r.backbone, r.variant, r.split): r for r in results}
    rows = []
    for result in results:
        headline = read_json(result.summary)
        attrs = read_attrs(result.maps)
        chooser_split = (
            threshold_split
            if (result.backbone, result.variant, threshold_split) in by_key
            else result.split
        )
        chooser = by_key[(result.backbone, result.variant, chooser_split)]
        row = {
            "dataset": dataset,
            "backbone": result.backbone,
            "arch": attrs.get("backbone_arch", ""),
            "weights": attrs.get("backbone_weights", ""),
            "variant": result.variant,
            "split": result.split,
            **headline,
            "n_skipped": (skipped or {}).get(result.split, 0),
        }
        if headline.get("n_images", 0):
            row["authors_threshold_split"] = chooser_split
            row.update(authors_protocol(read_csv(chooser.table), read_csv(result.table)))
        rows.append(row)
    table = pd.DataFrame(rows)
    columns = [c for c in SUMMARY_COLUMNS if c in table.columns]
    return table[columns]


def write_summary(
    dataset: str,
    results: Sequence[SplitResult],
    threshold_split: str | None,
    out: str | Path,
    skipped: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    table = summary_table(dataset, results, threshold_split, skipped)
    write_csv_atomic(table, out, float_format="%.4f")
    return table


def plot_box_accuracy(results: Sequence[SplitResult], split: str, out: str | Path) -> None:
    """BoxAcc (%) versus threshold per IoU, one line per backbone and variant (benchmark)."""
    chosen = [r for r in results if r.split == split]
    tables = {(r.backbone, r.variant): read_csv(r.table) for r in chosen}
    ious = sorted(next(iter(tables.values()))["iou"].unique()) if tables else []
    figure, axes = plt.subplots(
        1, max(len(ious), 1), figsize=(4.2 * max(len(ious), 1), 3.6), sharey=True, squeeze=False
    )
    for axis, iou in zip(axes[0][: len(ious)], ious, strict=True):
        for (backbone, variant), table in tables.items():
            rows = table[(table["protocol"] == "benchmark") & (table["iou"] == iou)]
            axis.plot(rows["threshold"], rows["box_acc"], label=f"{backbone} / {variant}")
        axis.set_title(f"IoU >= {iou / 100:.1f} ({split})")
        axis.set_xlabel("score-map threshold tau")
        axis.set_ylim(0, 100)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("BoxAcc (% of images)")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    save_figure(figure, out)


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


def unnormalise(picture) -> np.ndarray:
    mean = np.array(IMAGENET_MEAN)[:, None, None]
    std = np.array(IMAGENET_STD)[:, None, None]
    return np.clip(picture.numpy() * std + mean, 0, 1).transpose(1, 2, 0)


def draw_box(axis, box: np.ndarray, colour: str) -> None:
    x0, y0, x1, y1 = (int(v) for v in box)
    axis.add_patch(
        plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=1.8)
    )


def draw_overlay(
    axis,
    picture: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    gt_boxes: np.ndarray,
    title: str,
    iou: float | None = None,
) -> None:
    """One image with its score map, the boxes of the benchmark protocol (all contours) at
    `threshold` in PREDICTED_COLOUR, the ground truth in GROUND_TRUTH_COLOUR and, when given,
    the image's best IoU in the top-left corner."""
    axis.imshow(picture)
    axis.imshow(scores, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    for box in threshold_boxes(scores, np.array([threshold]), multi_contour=True)[0]:
        draw_box(axis, box, PREDICTED_COLOUR)
    for box in gt_boxes:
        draw_box(axis, box, GROUND_TRUTH_COLOUR)
    if iou is not None:
        axis.text(
            3,
            3,
            f"IoU {iou:.2f}",
            ha="left",
            va="top",
            fontsize=8,
            color="white",
            bbox={"facecolor": "black", "alpha": 0.65, "linewidth": 0, "pad": 1.5},
        )
    axis.set_title(title, fontsize=7)
    axis.axis("off")


def plot_precision_recall(results: Sequence[SplitResult], split: str, out: str | Path) -> None:
    """Pixel precision versus recall behind PxAP, one line per backbone and variant, on
    `split` (a note instead of lines when the dataset has no masks)."""
    figure, axis = plt.subplots(figsize=(5.5, 4.2))
    for result in (r for r in results if r.split == split):
        curve = read_csv(result.curve)
        if curve.empty:
            continue
        pxap = read_json(result.summary).get("pxap", float("nan"))
        label = f"{result.backbone} / {result.variant} (PxAP {pxap:.1f})"
        axis.plot(100 * curve["recall"], 100 * curve["precision"], label=label)
    if axis.lines:
        axis.legend(fontsize=7, loc="lower left")
    else:
        axis.text(50, 50, "no ground-truth masks: PxAP undefined", ha="center", va="center")
    axis.set(
        xlim=(0, 100),
        ylim=(0, 100),
        xlabel="pixel recall (%)",
        ylabel="pixel precision (%)",
        title=f"Pixel precision-recall ({split})",
    )
    axis.grid(alpha=0.3)
    save_figure(figure, out)


def plot_pretraining_loss(losses: pd.DataFrame, out: str | Path) -> None:
    """InfoNCE loss per pretraining step (`step`, `loss` columns), with a 20-step mean."""
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot(losses["step"], losses["loss"], color="#bbbbbb", linewidth=0.8, label="per step")
    smooth = losses["loss"].rolling(20, min_periods=1).mean()
    axis.plot(losses["step"], smooth, color="#4363d8", label="mean of 20 steps")
    axis.set(xlabel="step", ylabel="InfoNCE loss", title="Self-supervised pretraining")
    axis.legend()
    save_figure(figure, out)


def save_figure(figure, out: str | Path, tight: bool = True) -> None:
    """Save a figure atomically as PNG (fixed metadata, so reruns write the same bytes)."""
    if tight:
        figure.tight_layout()
    with atomic_path(out) as temporary:
        figure.savefig(temporary, format="png", dpi=110, metadata={"Software": None})
    plt.close(figure)


def plot_selection_curves(curves: dict[str, str | Path], out: str | Path) -> None:
    """MaxBoxAccV2 versus the number m of top training images `w*` is rebuilt from."""
    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    for backbone, path in curves.items():
        curve = read_csv(path)
        axis.plot(curve["m"], curve["max_box_acc_v2"], marker="o", label=backbone)
    axis.set_xscale("log", base=2)
    axis.set_xlabel("training images kept, m (top by representer value)")
    axis.set_ylabel("MaxBoxAccV2 (%)")
    axis.set_ylim(0, 100)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    axis.set_title("Representer point selection")
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


PAPER_METRICS = {
    "max_box_acc_v2": "MaxBoxAccV2",
    "authors_box_acc_mean": "authors mean BoxAcc",
    "pxap": "PxAP",
}


def paper_table(summaries: Sequence[str | Path]) -> pd.DataFrame:
    """Rows backbone x variant, columns dataset x metric, on each dataset's last split."""
    frames = []
    for path in summaries:
        summary = read_csv(path)
        last_split = summary["split"].iloc[-1]
        frames.append(summary[summary["split"] == last_split])
    rows = pd.concat(frames, ignore_index=True)
    metrics = [metric for metric in PAPER_METRICS if metric in rows.columns]
    table = rows.pivot_table(
        index=["backbone", "variant"], columns="dataset", values=metrics, sort=False
    )
    table = table.swaplevel(0, 1, axis=1).sort_index(axis=1, level=0, sort_remaining=False)
    table.columns = [f"{dataset} {PAPER_METRICS[metric]}" for dataset, metric in table.columns]
    return table.reset_index()


def write_paper_table(
    summaries: Sequence[str | Path], out_csv: str | Path, out_markdown: str | Path
) -> None:
    table = paper_table(summaries)
    write_csv_atomic(table, out_csv, float_format="%.2f")
    with atomic_path(out_markdown) as temporary:
        temporary.write_text(table.to_markdown(index=False, floatfmt=".1f") + "\n")
