"""The evaluation protocols every number is labelled with (METHOD.md section 3):

- `benchmark`: thresholds `np.arange(0, 1, interval)`, all contours, boxes clipped to W-1/H-1;
  MaxBoxAccV2 is the mean of its MaxBoxAcc over the IoU thresholds.
- `benchmark_largest`: the same with the largest contour only; MaxBoxAcc (v1) is its IoU-50 value.
- `authors`: thresholds 0.01..0.99, largest contour, no clipping. The threshold is chosen on the
  dataset's threshold split and applied to the others (`authors_protocol`).

The metrics stage evaluates each split under every protocol; the summary applies the authors'
cross-split threshold choice to the metrics tables, and the boxes stage makes the same choice
(`chosen_threshold`, under either protocol) for the boxes it hands out (docs/boxes.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rpsloc.errors import InputError


@dataclass(frozen=True)
class Protocol:
    name: str
    multi_contour: bool
    clip_to_image: bool
    first_threshold: int  # index into np.arange(0, 1, interval): the authors start at 0.01


PROTOCOLS = (
    Protocol("benchmark", multi_contour=True, clip_to_image=True, first_threshold=0),
    Protocol("benchmark_largest", multi_contour=False, clip_to_image=True, first_threshold=0),
    Protocol("authors", multi_contour=False, clip_to_image=False, first_threshold=1),
)


def thresholds(interval: float) -> np.ndarray:
    """The benchmark's threshold grid (the exact floats of `np.arange`, as its code uses)."""
    return np.arange(0, 1, interval)


def protocol_thresholds(protocol: str, interval: float) -> np.ndarray:
    """The exact floats of a protocol's threshold grid, as its evaluation cut the maps."""
    (found,) = [entry for entry in PROTOCOLS if entry.name == protocol]
    return thresholds(interval)[found.first_threshold :]


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
    the lowest threshold. With `authors` it is the authors' choice on their threshold split."""
    means = _protocol_rows(table, protocol).groupby("threshold")["box_acc"].mean()
    return float(means.idxmax())


def authors_protocol(threshold_split_table: pd.DataFrame, table: pd.DataFrame) -> dict[str, float]:
    """The authors' numbers: the threshold maximising mean BoxAcc over IoUs on the threshold
    split (largest contour, no clip, 0.01..0.99), applied to `table`'s split."""
    threshold = chosen_threshold(threshold_split_table, "authors")
    rows = _protocol_rows(table, "authors")
    at_threshold = rows[np.isclose(rows["threshold"], threshold)]
    result = {"authors_threshold": threshold}
    for iou, accuracy in zip(at_threshold["iou"], at_threshold["box_acc"], strict=True):
        result[f"authors_box_acc_{iou}"] = float(accuracy)
    result["authors_box_acc_mean"] = float(at_threshold["box_acc"].mean())
    return result


def _protocol_rows(table: pd.DataFrame, protocol: str) -> pd.DataFrame:
    rows = table[table["protocol"] == protocol]
    if rows.empty:
        raise InputError(f"metrics table has no {protocol!r} protocol rows")
    return rows
