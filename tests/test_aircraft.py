"""FGVC-Aircraft (METHOD.md section 2): id lists, 1-based boxes and variant labels."""

from __future__ import annotations

from pathlib import Path

import pytest
from layouts import FULL_CROP, WIDE_BOX_CROP, crop_boxes, make_aircraft, write_text

from rpsloc.errors import InputError
from rpsloc.manifest import build_manifest

# ----------------------------------------------------------------------------- FGVC-Aircraft


@pytest.fixture
def aircraft(tmp_path) -> Path:
    return make_aircraft(tmp_path)


def test_aircraft_reads_1_based_boxes_sizes_from_headers_and_the_variant_label(aircraft):
    (record,) = build_manifest({"adapter": "aircraft", "root": str(aircraft)}, "train")
    assert (record.image_id, record.label, record.width, record.height) == ("0000001", 1, 240, 120)
    assert record.path == aircraft / "data/images/0000001.jpg"
    assert record.boxes.tolist() == [[10, 20, 100, 80]]
    assert crop_boxes(record, 480, 448) == [WIDE_BOX_CROP]


def test_aircraft_without_a_variant_file_gives_unknown_labels(aircraft):
    (record,) = build_manifest({"adapter": "aircraft", "root": str(aircraft)}, "test")
    assert (record.label, crop_boxes(record, 480, 448)) == (-1, [FULL_CROP])


def test_an_aircraft_id_missing_from_images_box_is_an_error_naming_both_files(aircraft):
    write_text(aircraft / "data/images_box.txt", "0000002 1 1 96 96\n")
    with pytest.raises(
        InputError,
        match=r"images_box.txt: no line for image id '0000001' \(.*images_train.txt, line 1\)",
    ):
        build_manifest({"adapter": "aircraft", "root": str(aircraft)}, "train")
