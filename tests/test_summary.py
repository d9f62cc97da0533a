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
from rpsloc.summary import (
    SUMMARY_COLUMNS,
    paper_table,
    summary_table,
    write_summary,
)

#: BoxAcc of the authors' protocol per (split, threshold) at IoU 30/50/70: val peaks at 0.3,
#: test at 0.2, so the test row must report its accuracy at val's 0.3.
AUTHORS_BOX_ACC = {
    ("val", 0.2): (60.0, 40.0, 20.0),
    ("val", 0.3): (80.0, 50.0, 20.0),
    ("test", 0.2): (90.0, 70.0, 50.0),
    ("test", 0.3): (70.0, 40.0, 10.0),
}


def write_result(root: Path, split: str, max_box_acc_v2: float) -> None:
    """The metrics and maps files of one evaluated split of backbone `b`, variant `rps`."""
    files = result_files("d", "b", "rps", split, root=root)
    files.table.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {"protocol": "authors", "iou": iou, "threshold": threshold, "box_acc": accuracy}
        for (name, threshold), accuracies in AUTHORS_BOX_ACC.items()
        if name == split
        for iou, accuracy in zip((30, 50, 70), accuracies, strict=True)
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


def test_each_row_counts_the_images_its_split_left_out(results):
    table = summary_table("d", results, threshold_split="val", skipped={"test": 3})
    assert table["n_skipped"].tolist() == [0, 3]


def test_the_summary_is_written_with_four_decimals(results, tmp_path):
    write_summary("d", results, "val", tmp_path / "summary.csv")
    last = (tmp_path / "summary.csv").read_text().splitlines()[-1]
    assert (
        last == "d,b,resnet50,random,rps,test,boxes,12,10,0,65.0000,val,0.3000,70.0000,40.0000,"
        "10.0000,40.0000"
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
