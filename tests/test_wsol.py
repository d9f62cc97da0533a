"""The WSOL metadata format and its adapters (METHOD.md section 2): the real benchmark metadata
in ../shared, a tiny split written here, and the wsol, cub, ilsvrc and openimages layouts."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from layouts import (
    FULL_CROP,
    WIDE_BOX_CROP,
    crop_boxes,
    cub_dataset,
    make_cub,
    write_image,
    wsol_split,
)
from PIL import Image

from rpsloc.datasets import ADAPTERS
from rpsloc.datasets.policy import ReadOptions
from rpsloc.datasets.records import ImageRecord
from rpsloc.datasets.wsol import wsol_records
from rpsloc.errors import InputError
from rpsloc.manifest import build_manifest
from rpsloc.masks import resized_mask

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


def test_build_manifest_dispatches_the_wsol_adapter_on_a_split_folder(tiny):
    (tiny / "meta" / "val").mkdir()
    for name in ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt"):
        (tiny / "meta" / name).rename(tiny / "meta" / "val" / name)
    dataset = {"adapter": "wsol", "metadata": str(tiny / "meta"), "images": str(tiny / "img")}
    assert [r.image_id for r in build_manifest(dataset, "val")] == list(SIZES)
    assert {"wsol", "synthetic"} <= set(ADAPTERS)


# ----------------------------------------------------------------------------- CUB


@pytest.fixture
def cub(tmp_path) -> Path:
    return make_cub(tmp_path)


def test_cub_reads_ids_labels_sizes_and_boxes_from_the_wsol_metadata(cub):
    first, second = build_manifest(cub_dataset(cub), "test")
    assert (first.image_id, first.label, first.width, first.height) == (
        "001.A/a_1.jpg",
        0,
        240,
        120,
    )
    assert first.path == cub / "CUB_200_2011/images/001.A/a_1.jpg"
    assert (second.image_id, second.label, second.width, second.height) == (
        "002.B/b_2.jpg",
        1,
        96,
        96,
    )
    assert crop_boxes(first, 480, 448) == [WIDE_BOX_CROP]
    assert crop_boxes(second, 480, 448) == [FULL_CROP]
    assert first.mask_paths == ()


def test_cub_reads_the_benchmark_copy_with_class_folders_at_the_top(cub):
    (cub / "CUB_200_2011/images").rename(cub / "flat")
    records = build_manifest(cub_dataset(cub, root=str(cub / "flat")), "test")
    assert records[1].path == cub / "flat/002.B/b_2.jpg"


def test_cub_segmentation_masks_are_named_after_the_image_ids(cub):
    first, second = build_manifest(
        cub_dataset(cub, segmentations=str(cub / "segmentations")), "test"
    )
    assert first.mask_paths == (cub / "segmentations/001.A/a_1.png",)
    assert second.mask_paths == (cub / "segmentations/002.B/b_2.png",)


def test_cub_segmentation_masks_are_resized_like_the_image_and_binarised_at_one_half(cub):
    (record, _) = build_manifest(cub_dataset(cub, segmentations=str(cub / "segmentations")), "test")
    mask = resized_mask(record.mask_paths[0], 480, 448, "linear")
    # grey 153 = 0.6 >= 0.5 on the left half (resized columns 0..239, crop columns 0..223)
    assert mask.shape == (448, 448)
    assert mask[:, :222].all() and not mask[:, 226:].any()


def test_a_missing_cub_segmentation_mask_is_an_error_naming_the_image(cub):
    (cub / "segmentations/002.B/b_2.png").unlink()
    with pytest.raises(InputError, match=r"image 002.B/b_2.jpg: mask file not found"):
        build_manifest(cub_dataset(cub, segmentations=str(cub / "segmentations")), "test")


# ----------------------------------------------------------------------------- ILSVRC


def test_ilsvrc_reads_imagenetv2_val_and_the_original_val_as_test(tmp_path):
    # 128x64 at resize 256, crop 224 (o = 16): s_x = 2, s_y = 4; (10, 5, 60, 50) ->
    # (20-16, 20-16, 120-16, 200-16) = (4, 4, 104, 184)
    write_image(tmp_path / "ILSVRC/val2/0/0.jpeg", (128, 64))
    write_image(tmp_path / "ILSVRC/val/ILSVRC2012_val_00000001.JPEG", (128, 64))
    wsol_split(
        tmp_path / "meta/val", [("val2/0/0.jpeg", 0, (128, 64), "val2/0/0.jpeg,10,5,60,50\n")]
    )
    test_id = "val/ILSVRC2012_val_00000001.JPEG"
    wsol_split(
        tmp_path / "meta/test",
        [(test_id, 999, (128, 64), f"{test_id},10,5,60,50\n{test_id},0,0,127,63\n")],
    )
    dataset = {
        "adapter": "ilsvrc",
        "root": str(tmp_path / "ILSVRC"),
        "metadata": str(tmp_path / "meta"),
    }
    (val,) = build_manifest(dataset, "val")
    (test,) = build_manifest(dataset, "test")
    assert (val.image_id, val.label, test.label) == ("val2/0/0.jpeg", 0, 999)
    assert crop_boxes(val, 256, 224) == [[4, 4, 104, 184]]
    # (0, 0, 127, 63) -> (-16 -> 0, -16 -> 0, 254-16, 252-16) = (0, 0, 238 -> 223, 236 -> 223)
    assert crop_boxes(test, 256, 224) == [[4, 4, 104, 184], [0, 0, 223, 223]]


# ----------------------------------------------------------------------------- OpenImages


def test_openimages_reads_sizes_from_headers_and_instance_and_ignore_masks(tmp_path):
    write_image(tmp_path / "OpenImages/test/01/a.jpg", (100, 50))
    for name in ("test/01/a_m01_0.png", "test/01/a_m01_1.png", "test/01/a_ignore.png"):
        write_image(tmp_path / "OpenImages" / name, (100, 50))
    wsol_split(
        tmp_path / "meta/test",
        [
            (
                "test/01/a.jpg",
                7,
                None,  # image_sizes.txt is empty in the real OpenImages metadata
                "test/01/a.jpg,test/01/a_m01_0.png,test/01/a_ignore.png\n"
                "test/01/a.jpg,test/01/a_m01_1.png,test/01/a_ignore.png\n",
            )
        ],
    )
    dataset = {
        "adapter": "openimages",
        "root": str(tmp_path / "OpenImages"),
        "metadata": str(tmp_path / "meta"),
    }
    (record,) = build_manifest(dataset, "test")
    masks = tmp_path / "OpenImages/test/01"
    assert (record.width, record.height, record.label) == (100, 50, 7)
    assert record.mask_paths == (masks / "a_m01_0.png", masks / "a_m01_1.png")
    assert record.ignore_path == masks / "a_ignore.png"
    assert record.boxes.shape == (0, 4)
