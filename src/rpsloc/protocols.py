"""The evaluation protocols every number is labelled with (METHOD.md section 3):

- `benchmark`: thresholds `np.arange(0, 1, interval)`, all contours, boxes clipped to W-1/H-1;
  MaxBoxAccV2 is the mean of its MaxBoxAcc over the IoU thresholds.
- `benchmark_largest`: the same with the largest contour only; MaxBoxAcc (v1) is its IoU-50 value.
- `authors`: thresholds 0.01..0.99, largest contour, no clipping. The threshold is chosen on the
  dataset's threshold split and applied to the others (`authors_protocol`).

The metrics stage evaluates each split under every protocol; the summary applies the authors'
cross-split threshold choice to the metrics tables.
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


def authors_protocol(threshold_split_table: pd.DataFrame, table: pd.DataFrame) -> dict[str, float]:
    """The authors' numbers: the threshold maximising mean BoxAcc over IoUs on the threshold
    split (largest contour, no clip, 0.01..0.99), applied to `table`'s split."""
    chosen = _authors_rows(threshold_split_table).groupby("threshold")["box_acc"].mean()
    threshold = float(chosen.idxmax())
    rows = _authors_rows(table)
    at_threshold = rows[np.isclose(rows["threshold"], threshold)]
    result = {"authors_threshold": threshold}
    for iou, accuracy in zip(at_threshold["iou"], at_threshold["box_acc"], strict=True):
        result[f"authors_box_acc_{iou}"] = float(accuracy)
    result["authors_box_acc_mean"] = float(at_threshold["box_acc"].mean())
    return result


def _authors_rows(table: pd.DataFrame) -> pd.DataFrame:
    rows = table[table["protocol"] == "authors"]
    if rows.empty:
        raise InputError("metrics table has no 'authors' protocol rows")
    return rows
