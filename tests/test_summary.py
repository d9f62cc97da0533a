"""The summary stage: one row per backbone, variant and split, every number labelled with its
protocol; the authors' threshold chosen on the threshold split and applied to the others; the
images each split left out; and the paper-style table across datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from rpsloc.io import atomic_h5
from rpsloc.paths import result_files
from rpsloc.protocols import authors_protocol
from rpsloc.summary import (
    SUMMARY_COLUMNS,
    paper_table,
    summary_table,
    write_summary,
)

#: Images of 10 the authors' protocol locates per (split, threshold) at IoU 30/50/70: val
#: peaks at 0.3, test at 0.2, so the test row must report its accuracy at val's 0.3.
AUTHORS_HITS = {
    ("val", 0.2): (6, 4, 2),
    ("val", 0.3): (8, 5, 2),
    ("test", 0.2): (9, 7, 5),
    ("test", 0.3): (7, 4, 1),
}


def authors_row(iou: int, threshold: float, hits: int, seen: int) -> dict:
    return {
        "protocol": "authors",
        "iou": iou,
        "threshold": threshold,
        "box_acc": hits * 100 / seen,
        "n_correct": hits,
        "n_images": seen,
    }


def write_result(root: Path, split: str, max_box_acc_v2: float) -> None:
    """The metrics and maps files of one evaluated split of backbone `b`, variant `rps`."""
    files = result_files("d", "b", "rps", split, root=root)
    files.table.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        authors_row(iou, threshold, hits, 10)
        for (name, threshold), counts in AUTHORS_HITS.items()
        if name == split
        for iou, hits in zip((30, 50, 70), counts, strict=True)
    ]
    pd.DataFrame(rows).to_csv(files.table, index=False)
    files.summary.write_text(json.dumps({"n_images": 10, "max_box_acc_v2": max_box_acc_v2}))
    attrs = {"backbone_arch": "resnet50", "backbone_weights": "random", "n_images": 12}
    with atomic_h5(files.maps, attrs):
        pass


@pytest.fixture
def results(tmp_path):
    write_result(tmp_path, "val", 50.0)
    write_result(tmp_path, "test", 65.0)
    return [result_files("d", "b", "rps", split, root=tmp_path) for split in ("val", "test")]


def test_there_is_one_row_per_result_with_the_columns_in_order(results):
    table = summary_table("d", results, threshold_split="val")
    assert table[["split", "max_box_acc_v2"]].values.tolist() == [["val", 50.0], ["test", 65.0]]
    assert list(table.columns) == [c for c in SUMMARY_COLUMNS if c in table.columns]
    assert (table["arch"] == "resnet50").all() and (table["weights"] == "random").all()


def test_the_authors_threshold_comes_from_the_threshold_split(results):
    test = summary_table("d", results, threshold_split="val").iloc[1]
    assert (test["authors_threshold_split"], test["authors_threshold"]) == ("val", 0.3)
    assert test["authors_box_acc_mean"] == pytest.approx((70 + 40 + 10) / 3)


def test_without_a_threshold_split_each_split_chooses_its_own_threshold(results):
    test = summary_table("d", results, threshold_split=None).iloc[1]
    assert (test["authors_threshold_split"], test["authors_threshold"]) == ("test", 0.2)
    assert test["authors_box_acc_mean"] == pytest.approx((90 + 70 + 50) / 3)


def test_a_split_choosing_for_itself_reports_each_ious_best_as_the_authors_do():
    rows = [authors_row(30, 0.2, 9, 10), authors_row(70, 0.2, 1, 10)]
    rows += [authors_row(30, 0.3, 6, 10), authors_row(70, 0.3, 5, 10)]
    numbers = authors_protocol(pd.DataFrame(rows))
    assert (numbers["authors_box_acc_30"], numbers["authors_box_acc_70"]) == (90.0, 50.0)
    assert numbers["authors_box_acc_mean"] == 55.0  # at 0.3; the IoUs' best are at 0.2 and 0.3
    assert numbers["authors_threshold"] == 0.3


def test_ties_between_thresholds_break_as_the_authors_float_arithmetic_breaks_them():
    """With 3 images, (1, 1, 1) and (3, 0, 0) located at IoU 30/50/70 have the same mean, but
    the authors' `(iou70 + iou50 + iou30) / 3.` of `(hits / seen) * 100` gives the second one
    the last bit more, so their argmax takes the later threshold."""
    rows = [authors_row(iou, 0.2, 1, 3) for iou in (30, 50, 70)]
    rows += [authors_row(30, 0.3, 3, 3), authors_row(50, 0.3, 0, 3), authors_row(70, 0.3, 0, 3)]
    assert authors_protocol(pd.DataFrame(rows))["authors_threshold"] == 0.3


def test_each_row_counts_the_images_its_split_left_out(results):
    table = summary_table("d", results, threshold_split="val", skipped={"test": 3})
    assert table["n_skipped"].tolist() == [0, 3]


def test_the_summary_is_written_with_four_decimals(results, tmp_path):
    write_summary("d", results, "val", tmp_path / "summary.csv")
    last = (tmp_path / "summary.csv").read_text().splitlines()[-1]
    assert (
        last
        == "d,b,resnet50,random,rps,test,boxes,12,10,0,65.0000,val,0.3000,70.0000,40.0000,10.0000,"
        "40.0000,40.0000"
    )


def test_the_paper_table_has_a_row_per_backbone_and_variant(tmp_path):
    rows = [
        ("cub", "moco", "rps", "test", "boxes", 70.0),
        ("cub", "moco", "caam", "test", "boxes", 50.0),
        ("cub", "moco", "rps", "val", "boxes", 99.0),
        ("ilsvrc", "moco", "rps", "test", "boxes", 60.0),
    ]
    paths = []
    for dataset in ("cub", "ilsvrc"):
        path = tmp_path / f"{dataset}.csv"
        lines = ["dataset,backbone,variant,split,ground_truth,max_box_acc_v2"]
        lines += [",".join(map(str, row)) for row in rows if row[0] == dataset]
        lines.sort(key=lambda line: "test" in line)
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    table = paper_table(paths)
    assert table.columns.tolist() == [
        "backbone",
        "variant",
        "cub MaxBoxAccV2",
        "ilsvrc MaxBoxAccV2",
    ]
    rps = table[table.variant == "rps"].iloc[0]
    assert (rps["cub MaxBoxAccV2"], rps["ilsvrc MaxBoxAccV2"]) == (70.0, 60.0)


def test_a_split_without_ground_truth_has_a_row_saying_so_without_metrics(results, tmp_path):
    files = result_files("d", "b", "rps", "photos", root=tmp_path)
    attrs = {"backbone_arch": "resnet50", "backbone_weights": "random", "n_images": 30}
    with atomic_h5(files.maps, attrs):
        pass
    table = summary_table("d", [*results, files], "val", labelled=("val", "test"))
    row = table.iloc[-1]
    assert (row["split"], row["ground_truth"], row["n_localized"]) == ("photos", "none", 30)
    assert pd.isna(row["max_box_acc_v2"]) and pd.isna(row["n_images"])


def test_the_paper_table_leaves_out_splits_without_ground_truth(tmp_path):
    path = tmp_path / "own.csv"
    path.write_text(
        "dataset,backbone,variant,split,ground_truth,max_box_acc_v2\n"
        "own,moco,rps,test,boxes,70.0\nown,moco,rps,photos,none,\n"
    )
    table = paper_table([path])
    assert table.to_dict("records") == [
        {"backbone": "moco", "variant": "rps", "own MaxBoxAccV2": 70.0}
    ]
