"""What every figure shares: the Agg backend, the box colours, the overlay of a score map with
predicted and ground-truth boxes, an original image with its predicted boxes and scores, and
atomic PNG writing with fixed metadata (so reruns write the same bytes)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from PIL import Image  # noqa: E402

from rpsloc.boxes import threshold_boxes  # noqa: E402
from rpsloc.io import atomic_path  # noqa: E402

PREDICTED_COLOUR = "#e6194b"
GROUND_TRUTH_COLOUR = "#3cb44b"
SUPPORT_COLOUR = "#4363d8"
OPPOSE_COLOUR = "#f58231"
PICTURE_SIDE = 480  # pixels of the longer side an original image is drawn from


def save_figure(figure, out: str | Path, tight: bool = True) -> None:
    """Save a figure atomically as PNG (fixed metadata, so reruns write the same bytes)."""
    if tight:
        figure.tight_layout()
    with atomic_path(out) as temporary:
        figure.savefig(temporary, format="png", dpi=110, metadata={"Software": None})
    plt.close(figure)


def unnormalise(picture) -> np.ndarray:
    # imported here: the plots of numbers use this module without torch (rpsloc.transforms)
    from rpsloc.transforms import IMAGENET_MEAN, IMAGENET_STD

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


def draw_predictions(
    axis,
    picture: Image.Image,
    boxes: pd.DataFrame,
    gt_boxes: np.ndarray,
    title: str,
) -> None:
    """One image in its original pixels (drawn from a copy at most PICTURE_SIDE pixels wide)
    with its predicted boxes (x0..y1 inclusive, a `score` each) in PREDICTED_COLOUR, each
    labelled with its score, and the ground truth in GROUND_TRUTH_COLOUR."""
    width, height = picture.size
    shown = picture.copy()
    shown.thumbnail((PICTURE_SIDE, PICTURE_SIDE))
    axis.imshow(np.asarray(shown), extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    for box in gt_boxes:
        draw_box(axis, box, GROUND_TRUTH_COLOUR)
    for row in boxes.itertuples():
        draw_box(axis, (row.x0, row.y0, row.x1, row.y1), PREDICTED_COLOUR)
        axis.text(
            row.x0,
            row.y0,
            f"{row.score:.2f}",
            ha="left",
            va="bottom",
            fontsize=7,
            color="white",
            bbox={"facecolor": PREDICTED_COLOUR, "alpha": 0.8, "linewidth": 0, "pad": 1},
        )
    axis.set_xlim(-0.5, width - 0.5)
    axis.set_ylim(height - 0.5, -0.5)
    axis.set_title(title, fontsize=7)
    axis.axis("off")


def save_with_box_legend(figure, out: str | Path) -> None:
    """Save with a legend of the box colours below the panels."""
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    handles = [
        Patch(facecolor="none", edgecolor=PREDICTED_COLOUR, linewidth=1.8, label="predicted"),
        Patch(facecolor="none", edgecolor=GROUND_TRUTH_COLOUR, linewidth=1.8, label="ground truth"),
    ]
    figure.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    save_figure(figure, out, tight=False)
