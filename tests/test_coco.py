"""COCO20k from the COCO 2014 instances JSON and LOST's image list (docs/datasets.md
"COCO20k"): boxes rounded as the peers round them, crowd objects flagged, on a tiny fake
layout checked against values computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from layouts import write_image, write_text

from rpsloc.datasets.records import read_manifest, write_manifest
from rpsloc.errors import InputError
from rpsloc.manifest import build_manifest

IMAGES = [
    {"id": 9, "width": 60, "height": 40, "file_name": "COCO_train2014_000000000009.jpg"},
    {"id": 25, "width": 30, "height": 20, "file_name": "COCO_train2014_000000000025.jpg"},
]
ANNOTATIONS = [
    {"image_id": 9, "bbox": [2.4, 3.5, 10.2, 20.0], "iscrowd": 0, "category_id": 1},
    {"image_id": 25, "bbox": [0.0, 0.0, 30.0, 20.0], "iscrowd": 0, "category_id": 2},
    {"image_id": 9, "bbox": [10.0, 10.0, 50.3, 30.4], "iscrowd": 1, "category_id": 1},
    {"image_id": 7, "bbox": [1, 1, 2, 2], "iscrowd": 0, "category_id": 1},
]


def make_coco(root: Path, annotations=ANNOTATIONS, lines=None) -> dict[str, str]:
    for entry in IMAGES:
        name = f"train2014/COCO_train2014_{entry['id']:012d}.jpg"
        write_image(root / "images" / name, (entry["width"], entry["height"]))
    instances = {"images": IMAGES, "annotations": annotations, "categories": []}
    write_text(root / "instances_train2014.json", json.dumps(instances))
    default = "".join(f"train2014/COCO_train2014_{e['id']:012d}.jpg\n" for e in IMAGES)
    write_text(root / "coco_20k_filenames.txt", default if lines is None else lines)
    return {
        "adapter": "coco20k",
        "root": str(root / "images" / "train2014"),
        "annotations": str(root / "instances_train2014.json"),
        "image_list": str(root / "coco_20k_filenames.txt"),
    }


def test_coco20k_rounds_boxes_as_the_peers_and_stores_them_inclusive(tmp_path):
    nine, twenty_five = build_manifest(make_coco(tmp_path), "coco20k")
    assert (nine.image_id, nine.width, nine.height, nine.label) == ("9", 60, 40, -1)
    # round(2.4)=2, round(3.5)=4 (half to even), round(12.6)=13, round(23.5)=24 -> x1, y1 - 1
    # crowd: round(10), round(10), round(60.3)=60 -> 59, round(40.4)=40 -> 39
    assert nine.boxes.tolist() == [[2, 4, 12, 23], [10, 10, 59, 39]]
    assert twenty_five.boxes.tolist() == [[0, 0, 29, 19]]
    assert nine.path == tmp_path / "images" / "train2014" / "COCO_train2014_000000000009.jpg"


def test_coco20k_flags_crowd_objects_and_leaves_them_out_of_the_ground_truth(tmp_path):
    nine, _ = build_manifest(make_coco(tmp_path), "coco20k")
    assert nine.box_flags == ((), ("crowd",))
    assert nine.scored.tolist() == [True, False]


def test_coco20k_flags_survive_the_manifest_file(tmp_path):
    records = build_manifest(make_coco(tmp_path), "coco20k")
    write_manifest(records, tmp_path / "coco20k.csv")
    assert read_manifest(tmp_path / "coco20k.csv") == records


def test_coco20k_reads_only_the_listed_images(tmp_path):
    dataset = make_coco(tmp_path, lines="train2014/COCO_train2014_000000000025.jpg\n")
    assert [r.image_id for r in build_manifest(dataset, "coco20k")] == ["25"]


def test_coco20k_a_box_past_the_border_is_clipped_and_a_sliver_is_one_pixel(tmp_path):
    annotations = [
        {"image_id": 25, "bbox": [20.0, 5.0, 10.7, 15.2], "iscrowd": 0},
        {"image_id": 25, "bbox": [4.0, 4.0, 0.2, 3.0], "iscrowd": 0},
    ]
    dataset = make_coco(tmp_path, annotations, "train2014/COCO_train2014_000000000025.jpg\n")
    (record,) = build_manifest(dataset, "coco20k")
    assert record.boxes.tolist() == [[20, 5, 29, 19], [4, 4, 4, 6]]


def test_coco20k_a_bad_bbox_names_the_file_and_the_annotation_index(tmp_path):
    annotations = [*ANNOTATIONS[:2], {"image_id": 9, "bbox": [1, 2, 3], "iscrowd": 0}]
    with pytest.raises(InputError, match=r"instances_train2014\.json: annotations\[2\]: expected"):
        build_manifest(make_coco(tmp_path, annotations), "coco20k")


def test_coco20k_an_image_missing_from_the_json_names_the_list_and_line(tmp_path):
    lines = "train2014/COCO_train2014_000000000009.jpg\ntrain2014/COCO_train2014_000000000011.jpg\n"
    with pytest.raises(InputError, match=r"coco_20k_filenames\.txt, line 2: image 11 is not in"):
        build_manifest(make_coco(tmp_path, lines=lines), "coco20k")


def test_coco20k_a_json_syntax_error_names_the_line(tmp_path):
    dataset = make_coco(tmp_path)
    Path(dataset["annotations"]).write_text('{"images": [\n  1,\n  oops]}')
    with pytest.raises(InputError, match=r"instances_train2014\.json, line 3: not valid JSON"):
        build_manifest(dataset, "coco20k")


def test_coco20k_train_is_every_image_of_the_json_in_its_order(tmp_path):
    dataset = make_coco(tmp_path, lines="train2014/COCO_train2014_000000000025.jpg\n")
    assert [r.image_id for r in build_manifest(dataset, "train")] == ["9", "25"]
