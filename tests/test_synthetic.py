"""The built-in synthetic dataset: layout, determinism, the colourfulness property of the grey
style that the localization tests rely on, and the mosaic style where colourfulness fails
(METHOD.md section 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from rpsloc.datasets.records import ImageRecord
from rpsloc.manifest import build_manifest
from rpsloc.synthetic import CUB_IMAGE_SIZES, generate_synthetic_dataset


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    """The default synthetic dataset (64 train, 32 val, 32 test images)."""
    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic_dataset(root)
    return root


@pytest.fixture(scope="module")
def records(synthetic_root) -> list[ImageRecord]:
    dataset = {"adapter": "synthetic", "root": str(synthetic_root)}
    return [r for split in ("train", "val", "test") for r in build_manifest(dataset, split)]


@pytest.fixture(scope="module")
def mosaic_records(tmp_path_factory) -> list[ImageRecord]:
    """The default splits in the mosaic style."""
    root = tmp_path_factory.mktemp("mosaic")
    generate_synthetic_dataset(root, style="mosaic")
    dataset = {"adapter": "synthetic", "root": str(root)}
    return [r for split in ("train", "val", "test") for r in build_manifest(dataset, split)]


def _files(root: Path) -> dict[Path, bytes]:
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _rgb(record: ImageRecord) -> np.ndarray:
    return np.asarray(Image.open(record.path).convert("RGB")).astype(np.int16)


def _masks(record: ImageRecord) -> list[np.ndarray]:
    return [np.asarray(Image.open(path)) for path in record.mask_paths]


def _saturation(image: np.ndarray) -> np.ndarray:
    return (image.max(axis=-1) - image.min(axis=-1)) / 255


def test_each_split_has_the_requested_number_of_images_with_balanced_classes(records):
    splits = [r.image_id.split("/")[0] for r in records]
    assert [splits.count(s) for s in ("train", "val", "test")] == [64, 32, 32]
    train_labels = [r.label for r in records if r.image_id.startswith("train/")]
    assert [train_labels.count(k) for k in range(4)] == [16, 16, 16, 16]


def test_ids_name_the_split_class_and_index(records):
    assert records[7].image_id == "train/3/0007.jpg" and records[7].label == 3
    assert records[7].path.parts[-4:] == ("images", "train", "3", "0007.jpg")
    assert records[7].mask_paths[0].parts[-4:] == ("masks", "train", "3", "0007_0.png")
    assert all(r.ignore_path is None for r in records)


def test_the_same_seed_writes_byte_identical_files(tmp_path):
    generate_synthetic_dataset(tmp_path / "a", {"train": 6, "test": 3}, seed=5)
    generate_synthetic_dataset(tmp_path / "b", {"train": 6, "test": 3}, seed=5)
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    assert len(files) >= 9 + 9 + 10  # images, masks, five metadata files per split
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_another_seed_draws_other_images(tmp_path):
    generate_synthetic_dataset(tmp_path / "a", {"train": 2}, seed=0)
    generate_synthetic_dataset(tmp_path / "b", {"train": 2}, seed=1)
    image = "images/train/0/0000.jpg"
    assert (tmp_path / "a" / image).read_bytes() != (tmp_path / "b" / image).read_bytes()


def test_images_take_cub_shapes_scaled_to_a_longer_side_of_320(records):
    cub_ratios = {round(w / h, 1) for w, h in CUB_IMAGE_SIZES}
    for record in records:
        assert max(record.width, record.height) == 320
        assert round(record.width / record.height, 1) in cub_ratios
        assert Image.open(record.path).size == (record.width, record.height)


def test_a_sizes_file_sets_the_image_shapes(tmp_path):
    (tmp_path / "sizes.txt").write_text("x/1.jpg,400,200\nx/2.jpg,800,400")
    generate_synthetic_dataset(tmp_path / "d", {"val": 4}, sizes_file=tmp_path / "sizes.txt")
    lines = (tmp_path / "d/metadata/val/image_sizes.txt").read_text().split("\n")
    assert [line.split(",", 1)[1] for line in lines] == ["320,160"] * 4


def test_boxes_are_the_tight_inclusive_boxes_of_the_instance_masks(records):
    for record in records:
        masks = _masks(record)
        assert len(masks) == len(record.boxes)
        for mask, box in zip(masks, record.boxes, strict=True):
            assert set(np.unique(mask).tolist()) == {0, 255}
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            assert box.tolist() == [cols[0], rows[0], cols[-1], rows[-1]]


def test_about_a_quarter_of_images_hold_two_objects_that_do_not_touch(records):
    two = [r for r in records if len(r.mask_paths) == 2]
    assert all(1 <= len(r.mask_paths) <= 2 for r in records)
    assert 0.15 <= len(two) / len(records) <= 0.40
    for record in two:
        first, second = (m > 0 for m in _masks(record))
        assert not (ndimage.binary_dilation(first, iterations=4) & second).any()


def test_each_object_covers_roughly_ten_to_forty_five_percent_of_the_image(records):
    areas = np.array([(m > 0).mean() for r in records for m in _masks(r)])
    assert areas.min() >= 0.05 and areas.max() <= 0.50
    assert 0.15 <= areas.mean() <= 0.30


def test_foreground_is_saturated_and_background_is_near_grey(records):
    for record in records:
        saturation = _saturation(_rgb(record))
        foreground = np.any([m > 0 for m in _masks(record)], axis=0)
        # JPEG ringing may tint background pixels within a block (8 px) of an object edge
        far = ndimage.distance_transform_edt(~foreground) > 10
        assert saturation[foreground].min() >= 0.5, record.image_id
        assert saturation[far].max() <= 0.15, record.image_id


def test_a_centre_box_localizes_only_a_minority_of_the_objects(records):
    # the centred box of half the width and height, the best fixed guess for centred objects
    hits = 0
    for record in records:
        w, h = record.width, record.height
        centre = np.array([w / 4, h / 4, 3 * w / 4, 3 * h / 4])
        for box in record.boxes:
            iw = min(box[2], centre[2]) - max(box[0], centre[0]) + 1
            ih = min(box[3], centre[3]) - max(box[1], centre[1]) + 1
            inter = max(iw, 0) * max(ih, 0)
            union = np.prod(box[2:] - box[:2] + 1) + np.prod(centre[2:] - centre[:2] + 1) - inter
            if inter / union >= 0.5:
                hits += 1
                break
    assert hits / len(records) <= 0.35


def test_object_centres_spread_over_the_image(records):
    centres = np.array(
        [
            ((b[0] + b[2]) / 2 / r.width, (b[1] + b[3]) / 2 / r.height)
            for r in records
            for b in r.boxes
        ]
    )
    offsets = np.hypot(centres[:, 0] - 0.5, centres[:, 1] - 0.5)
    assert (offsets > 0.2).mean() >= 0.3
    assert (centres[:, 0] < 0.4).any() and (centres[:, 0] > 0.6).any()
    assert (centres[:, 1] < 0.4).any() and (centres[:, 1] > 0.6).any()


def test_the_grey_style_is_the_default(tmp_path):
    generate_synthetic_dataset(tmp_path / "default", {"train": 4, "test": 2}, seed=3)
    generate_synthetic_dataset(tmp_path / "grey", {"train": 4, "test": 2}, seed=3, style="grey")
    assert _files(tmp_path / "default") == _files(tmp_path / "grey")


def test_the_grey_style_draws_the_boxes_it_drew_before_styles_existed(synthetic_root):
    boxes = (synthetic_root / "metadata/train/localization.txt").read_text().splitlines()
    assert boxes[:3] == [
        "train/0/0000.jpg,4,120,233,272",
        "train/1/0001.jpg,16,160,220,291",
        "train/2/0002.jpg,61,107,162,240",
    ]


def test_the_mosaic_style_writes_byte_identical_files_for_the_same_arguments(tmp_path):
    for name in ("a", "b"):
        generate_synthetic_dataset(tmp_path / name, {"train": 4, "test": 2}, style="mosaic")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_the_mosaic_style_draws_other_images_than_the_grey_one(tmp_path):
    for style in ("grey", "mosaic"):
        generate_synthetic_dataset(tmp_path / style, {"train": 1}, style=style)
    image = "images/train/0/0000.jpg"
    assert (tmp_path / "grey" / image).read_bytes() != (tmp_path / "mosaic" / image).read_bytes()


def test_an_unknown_style_is_an_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match="found 'plaid'"):
        generate_synthetic_dataset(tmp_path, {"train": 1}, style="plaid")


def test_mosaic_backgrounds_are_about_as_saturated_as_the_objects(mosaic_records):
    foreground, background = [], []
    for record in mosaic_records:
        saturation = _saturation(_rgb(record))
        mask = np.any([m > 0 for m in _masks(record)], axis=0)
        foreground.append(saturation[mask])
        background.append(saturation[~mask])
        # most background pixels pass the saturation every grey-style object pixel passes
        assert (saturation[~mask] >= 0.5).mean() >= 0.5, record.image_id
    assert np.concatenate(background).mean() >= 0.75 * np.concatenate(foreground).mean()


def test_mosaic_boxes_are_the_tight_inclusive_boxes_of_the_instance_masks(mosaic_records):
    for record in mosaic_records:
        for mask, box in zip(_masks(record), record.boxes, strict=True):
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            assert box.tolist() == [cols[0], rows[0], cols[-1], rows[-1]]


def test_mosaic_objects_cover_roughly_five_to_thirty_percent_of_the_image(mosaic_records):
    areas = np.array([(m > 0).mean() for r in mosaic_records for m in _masks(r)])
    assert areas.min() >= 0.04 and areas.max() <= 0.32
    assert 0.10 <= areas.mean() <= 0.20


def test_mosaic_images_keep_the_class_balance_and_the_share_of_two_object_images(mosaic_records):
    labels = [r.label for r in mosaic_records if r.image_id.startswith("train/")]
    assert [labels.count(k) for k in range(4)] == [16, 16, 16, 16]
    two = [r for r in mosaic_records if len(r.mask_paths) == 2]
    assert 0.15 <= len(two) / len(mosaic_records) <= 0.40
