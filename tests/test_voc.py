"""PASCAL VOC 2007 / 2012 from the native layout (docs/datasets.md "PASCAL VOC"): every box
and flag of a tiny fake VOCdevkit checked against values computed by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from layouts import write_image, write_text

from rpsloc.datasets import source_files
from rpsloc.datasets.records import read_manifest, write_manifest
from rpsloc.errors import InputError
from rpsloc.manifest import build_manifest, build_split


def voc_object(box, difficult=None, truncated=None) -> str:
    flags = "".join(
        f"<{tag}>{value}</{tag}>"
        for tag, value in (("difficult", difficult), ("truncated", truncated))
        if value is not None
    )
    x0, y0, x1, y1 = box
    return (
        f"<object><name>cat</name>{flags}<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
    )


def voc_xml(width: int, height: int, *objects: str) -> str:
    return (
        f"<annotation><filename>x.jpg</filename><size><width>{width}</width>"
        f"<height>{height}</height><depth>3</depth></size>{''.join(objects)}</annotation>"
    )


def make_voc(root: Path, annotations: dict[str, str], split_lines: str) -> Path:
    for image_id, xml in annotations.items():
        write_text(root / "Annotations" / f"{image_id}.xml", xml)
        write_image(root / "JPEGImages" / f"{image_id}.jpg", (50, 40))
    write_text(root / "ImageSets" / "Main" / "trainval.txt", split_lines)
    return root


@pytest.fixture
def voc(tmp_path) -> Path:
    return make_voc(
        tmp_path / "VOC2007",
        {
            "000005": voc_xml(
                50,
                40,
                voc_object((1, 1, 50, 40), difficult=0, truncated=1),
                voc_object((11, 21, 30, 35), difficult=1, truncated=0),
            ),
            "000007": voc_xml(50, 40, voc_object((5, 6, 7, 8))),
        },
        "000005\n000007\n",
    )


def read(root: Path, **keys):
    return build_manifest({"adapter": "voc", "root": str(root), **keys}, "trainval")


def test_voc_boxes_are_the_xml_pixels_shifted_to_0_based(voc):
    first, second = read(voc)
    assert (first.image_id, first.width, first.height, first.label) == ("000005", 50, 40, -1)
    assert first.boxes.tolist() == [[0, 0, 49, 39], [10, 20, 29, 34]]
    assert first.path == voc / "JPEGImages" / "000005.jpg"
    assert second.boxes.tolist() == [[4, 5, 6, 7]]
    assert first.native_boxes.tolist() == [[1, 1, 50, 40], [11, 21, 30, 35]]


def test_voc_keeps_the_difficult_and_truncated_flags_of_every_object(voc):
    first, second = read(voc)
    assert first.box_flags == (("truncated",), ("difficult",))
    assert second.box_flags == ((),)  # absent flags are 0, as the peers read them
    assert first.scored.tolist() == [True, True]  # difficult and truncated boxes count


def test_voc_flags_survive_the_manifest_file(voc, tmp_path):
    records = read(voc)
    write_manifest(records, tmp_path / "trainval.csv")
    assert read_manifest(tmp_path / "trainval.csv") == records


def test_voc_lists_the_split_file_as_its_source(voc):
    assert source_files({"adapter": "voc", "root": str(voc)}, "trainval") == [
        str(voc / "ImageSets" / "Main" / "trainval.txt")
    ]


def test_voc_a_missing_split_file_names_it(voc):
    with pytest.raises(InputError, match=r"ImageSets/Main/test\.txt"):
        build_manifest({"adapter": "voc", "root": str(voc)}, "test")


def test_voc_a_flag_that_is_not_0_or_1_names_the_file_and_the_object(tmp_path):
    root = make_voc(
        tmp_path / "VOC2012",
        {"a": voc_xml(50, 40, voc_object((1, 1, 5, 5)), voc_object((1, 1, 5, 5), difficult=2))},
        "a\n",
    )
    with pytest.raises(InputError, match=r"a\.xml: expected 0 or 1 in object 2/difficult"):
        read(root)


def test_voc_a_box_coordinate_that_is_not_a_number_names_the_object(tmp_path):
    root = make_voc(tmp_path / "VOC2012", {"a": voc_xml(50, 40, voc_object((1, "x", 5, 5)))}, "a\n")
    with pytest.raises(InputError, match=r"a\.xml: expected a number in object 1/bndbox/ymin"):
        read(root)


def test_voc_a_box_outside_the_image_names_the_xml(tmp_path):
    root = make_voc(tmp_path / "VOC2012", {"a": voc_xml(50, 40, voc_object((1, 1, 51, 5)))}, "a\n")
    with pytest.raises(
        InputError, match=r"a\.xml: box \(1, 1, 51, 5\) \(1-based\) of a is outside"
    ):
        read(root)


def test_voc_an_id_without_annotation_names_the_split_file_and_line(voc):
    write_text(voc / "ImageSets" / "Main" / "trainval.txt", "000005\n000009\n")
    with pytest.raises(InputError, match=r"000009\.xml: no annotation file"):
        read(voc)
    split = build_split({"adapter": "voc", "root": str(voc), "on_bad_image": "skip"}, "trainval")
    assert [r.image_id for r in split.records] == ["000005"]


def test_voc_a_duplicated_id_names_both_lines(voc):
    write_text(voc / "ImageSets" / "Main" / "trainval.txt", "000005\n000005\n")
    with pytest.raises(InputError, match=r"trainval\.txt, line 2: duplicated image id .* line 1"):
        read(voc)
