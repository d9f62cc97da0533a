"""WSOL metadata parsing, manifests and adapters (METHOD.md section 2, docs/architecture.md)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rpsloc.datasets import (
    ADAPTERS,
    ImageRecord,
    ReadOptions,
    build_manifest,
    read_manifest,
    write_manifest,
    wsol_records,
)
from rpsloc.errors import InputError

# ----------------------------------------------------------------------------- real metadata

NO_FILES = ReadOptions(check_files=False)  # the real images are not on disk

# split -> (images, boxes or mask instances, number of classes)
REAL_SPLITS = {
    "CUB/train": (5994, 5994, 200),
    "CUB/val": (1000, 1000, 200),
    "CUB/test": (5794, 5794, 200),
    "ILSVRC/val": (10000, 18532, 1000),
    "ILSVRC/test": (50000, 80477, 1000),
    "OpenImages/val": (2500, 3854, 100),
    "OpenImages/test": (5000, 7632, 100),
}


@functools.cache
def _real_records(root: Path, split: str) -> list[ImageRecord]:
    """Records of a real split, parsed once per test session; no image is on disk."""
    return wsol_records(root / split, Path("/images"), options=NO_FILES)


@pytest.mark.parametrize("split", sorted(REAL_SPLITS))
def test_real_wsol_metadata_parses_with_the_published_counts(wsol_metadata, split):
    n_images, n_instances, n_classes = REAL_SPLITS[split]
    records = _real_records(wsol_metadata, split)
    assert len(records) == n_images
    assert len({r.image_id for r in records}) == n_images
    labels = np.array([r.label for r in records])
    assert labels.min() == 0 and labels.max() == n_classes - 1
    if split.startswith("OpenImages"):
        assert sum(len(r.mask_paths) for r in records) == n_instances
        assert all(r.ignore_path is not None for r in records)
        assert all(len(r.boxes) == 0 for r in records)
    else:
        assert sum(len(r.boxes) for r in records) == n_instances
        boxes = np.concatenate([r.boxes for r in records])
        widths = np.concatenate([[r.width] * len(r.boxes) for r in records])
        heights = np.concatenate([[r.height] * len(r.boxes) for r in records])
        assert (boxes[:, :2] >= 0).all()
        assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
        assert (boxes[:, 2] <= widths - 1).all() and (boxes[:, 3] <= heights - 1).all()


def test_the_first_ilsvrc_test_record_matches_its_metadata_lines(wsol_metadata):
    record = _real_records(wsol_metadata, "ILSVRC/test")[0]
    assert record.image_id == "val/ILSVRC2012_val_00000001.JPEG"
    assert record.path == Path("/images/val/ILSVRC2012_val_00000001.JPEG")
    assert (record.width, record.height, record.label) == (500, 375, 65)
    assert record.boxes.tolist() == [[111, 108, 441, 193]]


def test_openimages_mask_paths_are_relative_to_the_mask_root(wsol_metadata):
    records = wsol_records(
        wsol_metadata / "OpenImages/val", Path("/img"), Path("/masks"), options=NO_FILES
    )
    first = records[0]
    assert first.mask_paths == (Path("/masks/val/01226z/32fdab44f6e415f1_m01226z_7dab3053.png"),)
    assert first.ignore_path == Path("/masks/val/01226z/32fdab44f6e415f1_ignore.png")


# ----------------------------------------------------------------------------- a tiny split

SIZES = {"a/1.jpg": (40, 30), "a/2.jpg": (50, 20), "b/3.jpg": (30, 30)}


def _write(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)


@pytest.fixture
def tiny(tmp_path) -> Path:
    """A three-image WSOL split with its images: metadata in tmp/meta, images in tmp/img."""
    for image_id, size in SIZES.items():
        path = tmp_path / "img" / image_id
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (90, 90, 90)).save(path)
    _write(
        tmp_path / "meta",
        {
            "image_ids.txt": "a/1.jpg\na/2.jpg\nb/3.jpg",
            "class_labels.txt": "a/1.jpg,0\na/2.jpg,0\nb/3.jpg,1",
            "image_sizes.txt": "a/1.jpg,40,30\na/2.jpg,50,20\nb/3.jpg,30,30",
            "localization.txt": "a/1.jpg,0,0,39,29\na/2.jpg,5,5,10,10\na/2.jpg,20,1,49,19\n"
            "b/3.jpg,3,4,5,6\n",  # a final newline is accepted too
        },
    )
    return tmp_path


def _records(tiny: Path, **kwargs) -> list[ImageRecord]:
    return wsol_records(tiny / "meta", tiny / "img", options=ReadOptions(**kwargs))


def test_a_valid_split_gives_one_record_per_image_with_all_its_boxes(tiny):
    records = _records(tiny)
    assert [r.image_id for r in records] == ["a/1.jpg", "a/2.jpg", "b/3.jpg"]
    assert records[1].boxes.tolist() == [[5, 5, 10, 10], [20, 1, 49, 19]]
    assert records[1].boxes.dtype == np.int64
    assert (records[1].width, records[1].height, records[2].label) == (50, 20, 1)
    assert records[0].path == (tiny / "img" / "a/1.jpg").absolute()


def test_an_id_missing_from_class_labels_is_an_error_naming_it(tiny):
    _write(tiny / "meta", {"class_labels.txt": "a/1.jpg,0\nb/3.jpg,1"})
    with pytest.raises(InputError, match=r"class_labels.txt: no line for image id 'a/2.jpg'"):
        _records(tiny)


def test_an_id_in_class_labels_but_not_in_image_ids_is_an_error_with_its_line(tiny):
    _write(tiny / "meta", {"class_labels.txt": "a/1.jpg,0\na/2.jpg,0\nb/3.jpg,1\nc/9.jpg,2"})
    with pytest.raises(InputError, match=r"class_labels.txt, line 4: image id 'c/9.jpg'"):
        _records(tiny)


def test_a_duplicated_image_id_is_an_error_naming_both_lines(tiny):
    _write(tiny / "meta", {"image_ids.txt": "a/1.jpg\na/2.jpg\na/1.jpg\nb/3.jpg"})
    with pytest.raises(
        InputError,
        match=r"image_ids.txt, line 3: duplicated image id 'a/1.jpg' \(first on line 1\)",
    ):
        _records(tiny)


def test_a_malformed_localization_line_is_an_error_with_its_line_number(tiny):
    _write(
        tiny / "meta", {"localization.txt": "a/1.jpg,0,0,39,29\na/2.jpg,5,5,10\nb/3.jpg,3,4,5,6"}
    )
    with pytest.raises(InputError, match=r"localization.txt, line 2: expected 'id,x0,y0,x1,y1'"):
        _records(tiny)


def test_a_non_integer_size_is_an_error_with_its_line_number(tiny):
    _write(tiny / "meta", {"image_sizes.txt": "a/1.jpg,40,30\na/2.jpg,50,2O\nb/3.jpg,30,30"})
    with pytest.raises(InputError, match=r"image_sizes.txt, line 2: expected integers"):
        _records(tiny)


def test_a_box_with_x1_before_x0_is_an_error_with_its_line_number(tiny):
    _write(
        tiny / "meta", {"localization.txt": "a/1.jpg,0,0,39,29\na/2.jpg,9,5,8,10\nb/3.jpg,3,4,5,6"}
    )
    with pytest.raises(InputError, match=r"localization.txt, line 2: .* x1 < x0"):
        _records(tiny)


def test_a_box_reaching_the_image_width_is_outside_the_image(tiny):
    # real CUB and ILSVRC boxes all have x1 <= width - 1; x1 == width is rejected
    _write(
        tiny / "meta", {"localization.txt": "a/1.jpg,0,0,40,29\na/2.jpg,5,5,8,10\nb/3.jpg,3,4,5,6"}
    )
    with pytest.raises(InputError, match=r"line 1: box \(0, 0, 40, 29\) of a/1.jpg is outside"):
        _records(tiny)


def test_a_negative_label_is_an_error_with_its_line_number(tiny):
    _write(tiny / "meta", {"class_labels.txt": "a/1.jpg,0\na/2.jpg,-1\nb/3.jpg,1"})
    with pytest.raises(InputError, match=r"class_labels.txt, line 2: expected a label >= 0"):
        _records(tiny)


def test_an_id_escaping_the_image_root_is_an_error(tiny):
    _write(tiny / "meta", {"image_ids.txt": "a/1.jpg\n../a/2.jpg\nb/3.jpg"})
    with pytest.raises(InputError, match=r"image_ids.txt, line 2: path '../a/2.jpg' escapes"):
        _records(tiny)


def test_an_absolute_id_is_an_error(tiny):
    _write(tiny / "meta", {"image_ids.txt": "a/1.jpg\n/etc/2.jpg\nb/3.jpg"})
    with pytest.raises(InputError, match=r"line 2: path '/etc/2.jpg' escapes"):
        _records(tiny)


def test_a_missing_image_file_is_an_error_naming_the_id_and_path(tiny):
    (tiny / "img" / "a/2.jpg").unlink()
    with pytest.raises(InputError, match=r"line 2: image a/2.jpg: file not found: .*img/a/2.jpg"):
        _records(tiny)


def test_an_image_without_a_box_is_an_error_when_localization_exists(tiny):
    _write(tiny / "meta", {"localization.txt": "a/1.jpg,0,0,39,29\nb/3.jpg,3,4,5,6"})
    with pytest.raises(InputError, match=r"localization.txt: no line for image id 'a/2.jpg'"):
        _records(tiny)


def test_a_split_without_localization_gives_records_without_boxes(tiny):
    (tiny / "meta" / "localization.txt").unlink()
    assert all(r.boxes.shape == (0, 4) for r in _records(tiny))


def test_sizes_are_read_from_image_headers_when_image_sizes_is_empty(tiny):
    _write(tiny / "meta", {"image_sizes.txt": ""})
    assert [(r.width, r.height) for r in _records(tiny)] == list(SIZES.values())


def test_a_listed_size_that_disagrees_with_the_image_header_is_an_error_when_checked(tiny):
    _write(tiny / "meta", {"image_sizes.txt": "a/1.jpg,40,30\na/2.jpg,50,21\nb/3.jpg,30,30"})
    assert _records(tiny, check_images="none")[1].height == 21  # no header read
    with pytest.raises(InputError, match=r"image_sizes.txt, line 2: size of a/2.jpg is 50x21"):
        _records(tiny)  # check_images="header", the default


def test_openimages_style_localization_gives_mask_and_ignore_paths(tiny):
    masks = tiny / "masks"
    for name in ("a/1_m0.png", "a/1_m1.png", "a/1_ignore.png", "a/2_m0.png", "b/3_m0.png"):
        (masks / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (4, 4)).save(masks / name)
    _write(
        tiny / "meta",
        {
            "localization.txt": "a/1.jpg,a/1_m0.png,a/1_ignore.png\na/1.jpg,a/1_m1.png,\n"
            "a/2.jpg,a/2_m0.png,\nb/3.jpg,b/3_m0.png,"
        },
    )
    first, second, _ = wsol_records(tiny / "meta", tiny / "img", masks)  # default options
    assert first.mask_paths == (masks.absolute() / "a/1_m0.png", masks.absolute() / "a/1_m1.png")
    assert first.ignore_path == masks.absolute() / "a/1_ignore.png"
    assert second.ignore_path is None and len(second.boxes) == 0


def test_a_missing_mask_file_is_an_error_naming_the_image(tiny):
    _write(
        tiny / "meta",
        {"mask_localization.txt": "a/1.jpg,m1.png,\na/2.jpg,m2.png,\nb/3.jpg,m3.png,"},
    )
    with pytest.raises(InputError, match=r"image a/1.jpg: mask file not found"):
        _records(tiny)


def test_mask_localization_adds_masks_to_a_split_with_boxes(tiny):
    _write(
        tiny / "meta",
        {"mask_localization.txt": "a/1.jpg,m1.png,\na/2.jpg,m2.png,\nb/3.jpg,m3.png,"},
    )
    records = _records(tiny, check_files=False)
    assert records[2].mask_paths == ((tiny / "img" / "m3.png").absolute(),)
    assert records[2].boxes.tolist() == [[3, 4, 5, 6]]


# ----------------------------------------------------------------------------- manifest CSV


def _record(image_id: str = "a/1.jpg", boxes=((1, 2, 3, 4), (5, 6, 7, 8))) -> ImageRecord:
    return ImageRecord(
        image_id=image_id,
        path=Path("/data") / image_id,
        width=40,
        height=30,
        label=3,
        boxes=np.array(boxes, dtype=np.int64),
        mask_paths=(Path("/masks/a_0.png"), Path("/masks/a_1.png")),
        ignore_path=Path("/masks/a_ignore.png"),
    )


def test_records_with_equal_fields_and_boxes_are_equal():
    assert _record() == _record()
    assert _record() != _record(boxes=((1, 2, 3, 5),))
    assert _record().boxes.flags.writeable is False


def test_a_manifest_round_trips_every_field(tmp_path):
    records = [
        _record(),
        ImageRecord("b/2.jpg", Path("/data/b/2.jpg"), 10, 20, -1, np.zeros((0, 4), np.int64)),
    ]
    write_manifest(records, tmp_path / "manifest" / "test.csv")
    assert read_manifest(tmp_path / "manifest" / "test.csv") == records
    assert [p.name for p in (tmp_path / "manifest").iterdir()] == ["test.csv"]  # no temp files


def test_the_manifest_csv_has_the_documented_columns_and_formats(tmp_path):
    write_manifest([_record()], tmp_path / "m.csv")
    header, row = (tmp_path / "m.csv").read_text().splitlines()
    assert header == "image_id,path,width,height,label,boxes,mask_paths,ignore_path"
    assert row == (
        "a/1.jpg,/data/a/1.jpg,40,30,3,1 2 3 4;5 6 7 8,/masks/a_0.png;/masks/a_1.png,"
        "/masks/a_ignore.png"
    )


def test_a_bad_manifest_row_is_an_error_naming_the_file_and_line(tmp_path):
    write_manifest([_record(), _record("a/2.jpg")], tmp_path / "m.csv")
    text = (tmp_path / "m.csv").read_text().replace("1 2 3 4;5 6 7 8", "1 2 3;5 6 7 8", 2)
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(InputError, match=r"m.csv, line 2: expected boxes"):
        read_manifest(tmp_path / "m.csv")


def test_a_manifest_with_a_wrong_header_is_an_error(tmp_path):
    (tmp_path / "m.csv").write_text("image_id,path\n")
    with pytest.raises(InputError, match=r"m.csv, line 1: expected header"):
        read_manifest(tmp_path / "m.csv")


# ----------------------------------------------------------------------------- adapters


def test_build_manifest_dispatches_the_wsol_adapter_on_a_split_folder(tiny):
    (tiny / "meta" / "val").mkdir()
    for name in ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt"):
        (tiny / "meta" / name).rename(tiny / "meta" / "val" / name)
    dataset = {"adapter": "wsol", "metadata": str(tiny / "meta"), "images": str(tiny / "img")}
    assert [r.image_id for r in build_manifest(dataset, "val")] == list(SIZES)
    assert {"wsol", "synthetic"} <= set(ADAPTERS)


def test_build_manifest_rejects_an_unknown_adapter():
    with pytest.raises(InputError, match=r"unknown adapter 'voc'"):
        build_manifest({"adapter": "voc"}, "test")


def test_build_manifest_names_a_missing_configuration_key():
    with pytest.raises(InputError, match=r"key 'images' is missing"):
        build_manifest({"adapter": "wsol", "metadata": "/nowhere"}, "test")
