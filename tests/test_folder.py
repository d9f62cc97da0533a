"""A folder of images and nothing else (docs/datasets.md, "A folder of images"): every image
Pillow opens below it, recursively, ids relative to the root, labels unknown, no boxes."""

from __future__ import annotations

from pathlib import Path

import pytest
from layouts import SQUARE, WIDE, write_image, write_text

from rpsloc.errors import InputError
from rpsloc.manifest import build_manifest, build_split


@pytest.fixture
def photos(tmp_path) -> Path:
    write_image(tmp_path / "a.jpg", WIDE)
    write_image(tmp_path / "trip/b.PNG", SQUARE)
    write_image(tmp_path / "trip/day 2/c.webp", SQUARE)
    write_image(tmp_path / "trip/.hidden.jpg", SQUARE)
    write_image(tmp_path / ".thumbnails/d.jpg", SQUARE)
    write_text(tmp_path / "notes.txt", "not an image")
    return tmp_path


def test_every_image_below_the_folder_is_a_record_with_unknown_label_and_no_box(photos):
    records = build_manifest({"adapter": "folder", "root": str(photos)}, "all")
    assert [r.image_id for r in records] == ["a.jpg", "trip/b.PNG", "trip/day 2/c.webp"]
    assert [(r.width, r.height) for r in records] == [WIDE, SQUARE, SQUARE]
    assert {r.label for r in records} == {-1}
    assert all(r.boxes.shape == (0, 4) for r in records)


def test_a_split_can_be_one_folder_below_the_root_keeping_ids_relative_to_the_root(photos):
    dataset = {"adapter": "folder", "root": str(photos), "folders": {"holiday": "trip"}}
    records = build_manifest(dataset, "holiday")
    assert [r.image_id for r in records] == ["trip/b.PNG", "trip/day 2/c.webp"]


def test_a_file_with_an_image_extension_that_does_not_open_is_a_bad_image(photos):
    write_text(photos / "broken.jpg", "not a jpeg")
    dataset = {"adapter": "folder", "root": str(photos)}
    with pytest.raises(InputError, match=r"cannot read the header of image broken.jpg"):
        build_manifest(dataset, "all")
    skipped = build_split({**dataset, "on_bad_image": "skip"}, "all").skipped
    assert [item.image_id for item in skipped] == ["broken.jpg"]


def test_a_folder_without_images_is_an_error_naming_it(tmp_path):
    write_text(tmp_path / "notes.txt", "nothing to see")
    with pytest.raises(InputError, match=r"no image files below it"):
        build_manifest({"adapter": "folder", "root": str(tmp_path)}, "all")


def test_a_split_folder_escaping_the_root_is_an_error(photos):
    dataset = {"adapter": "folder", "root": str(photos), "folders": {"x": "../elsewhere"}}
    with pytest.raises(InputError, match=r"escapes its root"):
        build_manifest(dataset, "x")
