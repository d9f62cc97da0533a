"""Ground-truth masks under the workflow's protocol (the authors': resized to the image's square
bilinearly for CUB, nearest-neighbour for OpenImages, cropped, `> 0.5`; METHOD.md sections 1
and 3) and the WSOL benchmark's (nearest-neighbour to the evaluation grid)."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from rpsloc.datasets.records import ImageRecord
from rpsloc.errors import InputError
from rpsloc.masks import benchmark_mask, crop_mask, read_mask_image, resized_mask

# ---------------------------------------------------------------------------------------------
# read_mask_image and crop_mask: the workflow's


def test_openimages_real_test_masks_are_0_255_pngs_read_as_foreground(wsol_metadata):
    folder = wsol_metadata / "OpenImages/test_masks"
    mask_file = next(p for p in sorted(folder.rglob("*.png")) if "ignore" not in p.name)
    values = read_mask_image(mask_file)
    assert set(np.unique(values)) <= {0.0, 255.0} and values.max() == 255.0


def test_crop_mask_marks_ignored_pixels_outside_the_foreground_255(tmp_path):
    left = np.zeros((4, 4), dtype=np.uint8)
    left[:, :2] = 255
    Image.fromarray(left).save(tmp_path / "left.png")
    Image.fromarray(np.full((4, 4), 255, dtype=np.uint8)).save(tmp_path / "all.png")
    record = ImageRecord(
        image_id="a.jpg",
        path=tmp_path / "a.jpg",
        width=4,
        height=4,
        label=0,
        boxes=np.zeros((0, 4)),
        mask_paths=(tmp_path / "left.png",),
        ignore_path=tmp_path / "all.png",
    )
    assert crop_mask(record, 4, 4).tolist() == [[1, 1, 255, 255]] * 4


def test_linear_masks_are_resized_bilinearly_as_the_authors_cub_masks_then_cropped(tmp_path):
    mask = np.zeros((50, 50), dtype=np.uint8)
    mask[:, :25] = 255  # left half
    Image.fromarray(mask).save(tmp_path / "m.png")
    cropped = resized_mask(tmp_path / "m.png", 100, 80, "linear")
    values = cv2.resize(np.float32(mask) / 255, (100, 100), interpolation=cv2.INTER_LINEAR)
    assert cropped.shape == (80, 80) and cropped.dtype == bool
    assert np.array_equal(cropped, values[10:90, 10:90] > 0.5)
    assert cropped[:, 39].all() and not cropped[:, 40].any()


def test_a_soft_mask_at_exactly_one_half_is_background_as_the_authors_threshold_it(tmp_path):
    Image.fromarray(np.full((8, 8), 128, dtype=np.uint8)).save(tmp_path / "above.png")
    Image.fromarray(np.full((8, 8), 127, dtype=np.uint8)).save(tmp_path / "below.png")
    assert resized_mask(tmp_path / "above.png", 8, 8, "linear").all()  # 128/255 > 0.5
    assert not resized_mask(tmp_path / "below.png", 8, 8, "linear").any()


def test_nearest_masks_keep_every_non_zero_value_as_the_authors_openimages_masks(tmp_path):
    mask = np.zeros((6, 6), dtype=np.uint8)
    mask[2:4, 2:4] = 1  # a value of 1 (not 255) is foreground too: > 0.5 on the raw value
    Image.fromarray(mask).save(tmp_path / "m.png")
    resized = resized_mask(tmp_path / "m.png", 12, 12, "nearest")
    assert resized.sum() == 16 and resized[4:8, 4:8].all()


def test_an_unknown_mask_resize_is_refused(tmp_path):
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(ValueError, match="mask resize must be one of"):
        resized_mask(tmp_path / "m.png", 4, 4, "cubic")


# ---------------------------------------------------------------------------------------------
# benchmark_mask: the WSOL benchmark's get_mask


def _write_png(path: Path, array: np.ndarray) -> Path:
    cv2.imwrite(str(path), array.astype(np.uint8))
    return path


def test_instance_masks_are_ored_and_ignore_excludes_the_foreground(tmp_path):
    first = _write_png(tmp_path / "a.png", np.array([[255, 0, 0], [0, 0, 0]]))
    second = _write_png(tmp_path / "b.png", np.array([[0, 0, 0], [0, 0, 255]]))
    ignore = _write_png(tmp_path / "ignore.png", np.array([[255, 255, 0], [0, 0, 255]]))
    mask = benchmark_mask([first, second], ignore, size=(2, 3))
    assert mask.dtype == np.uint8
    assert mask.tolist() == [[1, 255, 0], [0, 0, 1]]


def test_masks_are_resized_with_nearest_neighbour_to_height_by_width(tmp_path):
    small = _write_png(tmp_path / "m.png", np.array([[255, 0], [0, 255]]))
    mask = benchmark_mask([small], None, size=(4, 2))
    assert mask.tolist() == [[1, 0], [1, 0], [0, 1], [0, 1]]


def test_a_missing_mask_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(InputError, match="nowhere.png"):
        benchmark_mask([tmp_path / "nowhere.png"], None, size=(4, 4))
