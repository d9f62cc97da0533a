"""Curves of the report: BoxAcc versus threshold, pixel precision-recall, the representer
selection curve and the pretraining loss (README "Looking at the results")."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from rpsloc.figures.drawing import plt, save_figure
from rpsloc.io import read_csv, read_json
from rpsloc.paths import ResultFiles


def plot_box_accuracy(results: Sequence[ResultFiles], split: str, out: str | Path) -> None:
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


def plot_precision_recall(results: Sequence[ResultFiles], split: str, out: str | Path) -> None:
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


def plot_pretraining_loss(losses: pd.DataFrame, out: str | Path) -> None:
    """InfoNCE loss per pretraining step (`step`, `loss` columns), with a 20-step mean."""
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot(losses["step"], losses["loss"], color="#bbbbbb", linewidth=0.8, label="per step")
    smooth = losses["loss"].rolling(20, min_periods=1).mean()
    axis.plot(losses["step"], smooth, color="#4363d8", label="mean of 20 steps")
    axis.set(xlabel="step", ylabel="InfoNCE loss", title="Self-supervised pretraining")
    axis.legend()
    save_figure(figure, out)
