"""Bring your own (docs/datasets.md): one CSV file lists every image with its split, label and
boxes."""

from __future__ import annotations

from pathlib import Path

import pytest
from layouts import CSV_HEADER, FULL_CROP, WIDE_BOX_CROP, crop_boxes, make_own, write_text

from rpsloc.errors import InputError
from rpsloc.manifest import build_manifest

# ----------------------------------------------------------------------------- bring your own


@pytest.fixture
def own(tmp_path) -> Path:
    return make_own(tmp_path)


def test_a_bring_your_own_csv_gives_one_record_per_image_with_all_its_boxes(own):
    first, second = build_manifest({"adapter": "csv", "csv": str(own / "dataset.csv")}, "test")
    assert (first.image_id, first.label, first.width, first.height) == ("photos/a.jpg", 4, 240, 120)
    assert first.path == own / "photos/a.jpg"
    assert crop_boxes(first, 480, 448) == [WIDE_BOX_CROP, FULL_CROP]
    # at the csv adapter's default 256/224 (o = 16), 96x96 (s = 8/3): 95 * 8/3 - 16 = 237 -> 223
    assert (second.image_id, crop_boxes(second, 256, 224)) == ("photos/b.png", [[0, 0, 223, 223]])


def test_a_csv_line_with_empty_label_and_box_is_an_unlabelled_image_without_boxes(own):
    (record,) = build_manifest({"adapter": "csv", "csv": str(own / "dataset.csv")}, "train")
    assert (record.image_id, record.label, record.boxes.shape) == ("photos/c.jpg", -1, (0, 4))


def test_csv_paths_are_relative_to_the_configured_root(own):
    write_text(own / "lists/d.csv", CSV_HEADER + "test,a.jpg,1,0,0,1,1\n")
    dataset = {"adapter": "csv", "csv": str(own / "lists/d.csv"), "root": str(own / "photos")}
    (record,) = build_manifest(dataset, "test")
    assert record.path == own / "photos/a.jpg"


def test_an_image_in_two_csv_splits_is_an_error_naming_both_lines(own):
    write_text(own / "d.csv", CSV_HEADER + "train,photos/a.jpg,1,,,,\ntest,photos/a.jpg,1,,,,\n")
    with pytest.raises(
        InputError, match=r"d.csv, line 3: image photos/a.jpg is in split 'train' on line 2"
    ):
        build_manifest({"adapter": "csv", "csv": str(own / "d.csv")}, "test")


def test_a_csv_with_another_header_is_an_error_naming_the_expected_columns(own):
    write_text(own / "d.csv", "path,label\nphotos/a.jpg,1\n")
    with pytest.raises(InputError, match=r"d.csv, line 1: expected the header split,image_path"):
        build_manifest({"adapter": "csv", "csv": str(own / "d.csv")}, "test")
