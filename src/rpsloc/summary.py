"""The summary stage: one row per (backbone, map variant, evaluated split) of a dataset, every
number labelled with its protocol (`rpsloc.protocols`), and the paper-style table across
datasets (README "Metrics and protocols")."""

from __future__ import annotations

import csv
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rpsloc.datasets.policy import SKIPPED_COLUMNS, read_skipped
from rpsloc.io import atomic_path, read_attrs, read_csv, read_json, write_csv_atomic
from rpsloc.paths import ResultFiles
from rpsloc.protocols import authors_protocol

SUMMARY_COLUMNS = [
    "dataset",
    "backbone",
    "arch",
    "weights",
    "variant",
    "split",
    "ground_truth",  # boxes, masks, boxes and masks, or none (a prediction split)
    "n_localized",  # images with maps and predicted boxes
    "n_images",  # images the metrics scored
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
    "authors_gt_known_loc",
    "authors_top1_loc",
    "authors_top5_loc",
    "pxap",
    "piou",
    "loc_protocol",  # Top-k Loc: datasets with a classifier (rpsloc.metrics)
    "loc_threshold",
    "gt_known_loc",
    "top1_loc",
    "top5_loc",
]


def summary_table(
    dataset: str,
    results: Sequence[ResultFiles],
    threshold_split: str | None,
    skipped: Mapping[str, int] | None = None,
    labelled: Collection[str] | None = None,
) -> pd.DataFrame:
    """One row per result; the authors' threshold comes from `threshold_split` of the same
    backbone and variant (or from the split itself when there is none). `n_skipped` is the
    number of images the split's manifest left out (`skipped`, per split; 0 when absent).
    Results on splits outside `labelled` (default: all are) have no ground truth: their rows
    say so (`ground_truth` none) and hold counts only, no metrics."""
    scored = [r for r in results if labelled is None or r.split in labelled]
    by_key = {(r.backbone, r.variant, r.split): r for r in scored}
    rows = []
    for result in results:
        attrs = read_attrs(result.maps)
        row = {
            "dataset": dataset,
            "backbone": result.backbone,
            "arch": attrs.get("backbone_arch", ""),
            "weights": attrs.get("backbone_weights", ""),
            "variant": result.variant,
            "split": result.split,
            "ground_truth": "none",
            "n_localized": attrs.get("n_images", 0),
            "n_skipped": (skipped or {}).get(result.split, 0),
        }
        if result in scored:
            row.update(_metrics_row(result, by_key, threshold_split))
        rows.append(row)
    table = pd.DataFrame(rows)
    columns = [c for c in SUMMARY_COLUMNS if c in table.columns]
    return table[columns]


def _metrics_row(
    result: ResultFiles,
    by_key: Mapping[tuple[str, str, str], ResultFiles],
    threshold_split: str | None,
) -> dict[str, Any]:
    """The headline numbers of a result with ground truth, and the authors' protocol's."""
    headline = read_json(result.summary)
    kinds = [
        kind for kind, key in (("boxes", "max_box_acc_v2"), ("masks", "pxap")) if key in headline
    ]
    row = {**headline, "ground_truth": " and ".join(kinds)}
    chooser_split = (
        threshold_split
        if (result.backbone, result.variant, threshold_split) in by_key
        else result.split
    )
    chooser = by_key[(result.backbone, result.variant, chooser_split)]
    if headline.get("n_images", 0):
        row["authors_threshold_split"] = chooser_split
        threshold_table = None if chooser is result else read_csv(chooser.table)
        row.update(authors_protocol(read_csv(result.table), threshold_table))
    return row


def write_summary(
    dataset: str,
    results: Sequence[ResultFiles],
    threshold_split: str | None,
    out: str | Path,
    skipped: Mapping[str, int] | None = None,
    labelled: Collection[str] | None = None,
) -> pd.DataFrame:
    table = summary_table(dataset, results, threshold_split, skipped, labelled)
    write_csv_atomic(table, out, float_format="%.4f")
    return table


PAPER_METRICS = {
    "max_box_acc_v2": "MaxBoxAccV2",
    "authors_box_acc_mean": "authors mean BoxAcc",
    "pxap": "PxAP",
}


def paper_table(summaries: Sequence[str | Path]) -> pd.DataFrame:
    """Rows backbone x variant, columns dataset x metric, on each dataset's last split with
    ground truth (a dataset without any has no columns)."""
    frames = []
    for path in summaries:
        summary = read_csv(path)
        summary = summary[summary["ground_truth"] != "none"]
        if not summary.empty:
            frames.append(summary[summary["split"] == summary["split"].iloc[-1]])
    if not frames:
        return pd.DataFrame(columns=["backbone", "variant"])
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


def gather_skipped(by_split: Mapping[str, Path | str], out: Path | str) -> dict[str, int]:
    """Join the splits' skipped tables into one CSV (split first); the count per split."""
    counts = {}
    with atomic_path(out) as temporary, temporary.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(("split", *SKIPPED_COLUMNS))
        for split, path in by_split.items():
            items = read_skipped(path)
            counts[split] = len(items)
            for item in items:
                writer.writerow(
                    [
                        split,
                        item.image_id,
                        item.file,
                        "" if item.line is None else item.line,
                        item.reason,
                    ]
                )
    return counts
