"""The evaluation protocols every number is labelled with (METHOD.md section 3):

- `benchmark`: thresholds `np.arange(0, 1, interval)`, all contours, boxes clipped to W-1/H-1;
  MaxBoxAccV2 is the mean of its MaxBoxAcc over the IoU thresholds.
- `benchmark_largest`: the same with the largest contour only; MaxBoxAcc (v1) is its IoU-50 value.
- `authors`: the authors' released code: thresholds `np.arange(0.01, 1, 0.01)` as they build
  them, largest contour, no clipping, no box (IoU 0) where nothing exceeds the threshold, and
  the ground-truth boxes converted from the annotation's own coordinates (Stanford Cars, Dogs
  and FGVC-Aircraft are 1-based; the authors do not shift them). The
  threshold that maximises the mean BoxAcc over IoUs on the dataset's threshold split (val for
  CUB and ImageNet) is applied to the other splits; a split that chooses for itself (Cars, Dogs,
  Aircraft: no val) reports, as the authors do, each IoU's best BoxAcc and the best mean
  (`authors_protocol`).

The metrics stage evaluates each split under every protocol; the summary applies the authors'
cross-split threshold choice to the metrics tables, and the boxes stage makes the same choice
(`chosen_threshold`, under either protocol) for the boxes it hands out (docs/boxes.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rpsloc.errors import InputError

#: The authors' thresholds, built exactly as their code builds them: the floats differ from
#: `np.arange(0, 1, 0.01)[1:]` in the last bits, which moves some `int(tau * peak)`.
AUTHORS_THRESHOLDS = np.arange(0.01, 1, 0.01)


@dataclass(frozen=True)
class Protocol:
    """How a protocol turns a score map into boxes and counts them (METHOD.md section 3)."""

    name: str
    multi_contour: bool  # every contour's box, or the largest contour's only
    clip_to_image: bool  # x1, y1 clipped to W - 1, H - 1
    authors_grid: bool  # AUTHORS_THRESHOLDS, else the benchmark's np.arange(0, 1, interval)
    empty_is_miss: bool  # no contour: IoU 0 (authors), else the box (0, 0, 0, 0) (benchmark)
    native_boxes: bool  # ground truth from the annotation's own (1-based) coordinates, unshifted

    def thresholds(self, interval: float) -> np.ndarray:
        """The protocol's threshold grid."""
        return AUTHORS_THRESHOLDS if self.authors_grid else thresholds(interval)


PROTOCOLS = (
    Protocol("benchmark", True, True, False, empty_is_miss=False, native_boxes=False),
    Protocol("benchmark_largest", False, True, False, empty_is_miss=False, native_boxes=False),
    Protocol("authors", False, False, True, empty_is_miss=True, native_boxes=True),
)


def thresholds(interval: float) -> np.ndarray:
    """The benchmark's threshold grid (the exact floats of `np.arange`, as its code uses)."""
    return np.arange(0, 1, interval)


def protocol_thresholds(protocol: str, interval: float) -> np.ndarray:
    """The exact floats of a protocol's threshold grid, as its evaluation cut the maps."""
    (found,) = [entry for entry in PROTOCOLS if entry.name == protocol]
    return found.thresholds(interval)


def on_grid(threshold: float, grid: np.ndarray) -> float:
    """The grid's exact float that a BoxAcc table's rounded `threshold` stands for: a map cut
    again at the rounded value can give another `int(tau * peak)` (METHOD.md section 3)."""
    position = int(np.argmin(np.abs(grid - threshold)))
    if abs(grid[position] - threshold) > 1e-6:
        raise InputError(
            f"threshold {threshold} is not on the threshold grid {grid[0]}..{grid[-1]} "
            f"({len(grid)} values): the BoxAcc table comes from another cam_curve_interval"
        )
    return float(grid[position])


def chosen_threshold(table: pd.DataFrame, protocol: str) -> float:
    """A protocol's threshold choice on a labelled split: the threshold of `table` (a metrics
    BoxAcc table) maximising the mean BoxAcc over the IoUs of `protocol`'s rows; ties go to
    the lowest threshold. With `authors` it is the authors' choice on their threshold split, in
    their arithmetic (`_authors_accuracy`), as `authors_protocol` makes it."""
    rows = _protocol_rows(table, protocol)
    if protocol == "authors":
        return float(_authors_accuracy(rows)["mean"].idxmax())
    return float(rows.groupby("threshold")["box_acc"].mean().idxmax())


def authors_protocol(
    table: pd.DataFrame, threshold_table: pd.DataFrame | None = None
) -> dict[str, float]:
    """The authors' numbers of one split from its metrics table (METHOD.md section 3).

    With a `threshold_table` (the threshold split's, e.g. val for CUB and ImageNet), the
    threshold that maximises its mean BoxAcc over IoUs is applied to this split: BoxAcc per IoU,
    their mean, and Top-1 / Top-5 Loc at that threshold. Without one, the split chooses for
    itself as the authors' code does when it has no val split (Cars, Dogs, Aircraft) and on val
    itself: each IoU's best BoxAcc, the best mean, the best Top-1 and Top-5, each maximised
    separately over the thresholds. The arithmetic is the authors' (`_authors_accuracy`), so
    ties between thresholds break the same way."""
    rows = _protocol_rows(table, "authors")
    chooser = rows if threshold_table is None else _protocol_rows(threshold_table, "authors")
    chosen_accuracy = _authors_accuracy(chooser)
    threshold = float(chosen_accuracy["mean"].idxmax())
    accuracy = _authors_accuracy(rows)
    if threshold_table is None:
        picked = accuracy.max()
    else:
        picked = accuracy.loc[_closest(accuracy.index, threshold)]
    result = {"authors_threshold": threshold}
    for iou in sorted(rows["iou"].unique()):
        result[f"authors_box_acc_{iou}"] = float(picked[iou])
    result["authors_box_acc_mean"] = float(picked["mean"])
    if 50 in accuracy.columns:
        result["authors_gt_known_loc"] = float(picked[50])
    for name in ("top1", "top5"):
        if name in accuracy.columns:
            result[f"authors_{name}_loc"] = float(picked[name])
    return result


def _authors_accuracy(rows: pd.DataFrame) -> pd.DataFrame:
    """Per threshold (index): BoxAcc per IoU as `(hits / seen) * 100`, their mean summed from
    the largest IoU down and divided by their number (`(iou70 + iou50 + iou30) / 3.` in the
    authors' code), and Top-1 / Top-5 Loc where the table counts them."""
    hits = rows.pivot(index="threshold", columns="iou", values="n_correct").astype(np.float64)
    seen = rows.groupby("threshold")["n_images"].first().astype(np.float64)
    accuracy = hits.div(seen, axis=0) * 100
    total = sum(accuracy[iou] for iou in sorted(accuracy.columns, reverse=True))
    accuracy["mean"] = total / float(len(hits.columns))
    located = rows[rows["iou"] == 50].set_index("threshold")
    for name in ("top1", "top5"):
        column = f"n_{name}"
        if column in rows.columns and located[column].notna().all():
            accuracy[name] = located[column].astype(np.float64) / seen * 100
    return accuracy


def _closest(index: pd.Index, threshold: float) -> float:
    """The threshold of `index` equal to `threshold` within the tables' 6 decimals."""
    matches = [value for value in index if np.isclose(value, threshold)]
    if not matches:
        raise InputError(
            f"metrics table has no 'authors' row at threshold {threshold} (the threshold split's "
            "choice): the splits were evaluated on different grids"
        )
    return matches[0]


def _protocol_rows(table: pd.DataFrame, protocol: str) -> pd.DataFrame:
    rows = table[table["protocol"] == protocol]
    if rows.empty:
        raise InputError(f"metrics table has no {protocol!r} protocol rows")
    return rows
