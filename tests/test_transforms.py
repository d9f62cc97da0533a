"""Image loading, preprocessing and crop geometry (METHOD.md section 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import packages_imported_by
from PIL import Image

from rpsloc.errors import InputError
from rpsloc.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    boxes_from_crop,
    boxes_to_crop,
    center_crop_offset,
    load_rgb,
    mask_from_crop,
    preprocess,
)

# ----------------------------------------------------------------------------- boxes_to_crop


def test_boxes_inside_the_crop_are_scaled_shifted_and_rounded():
    # 500x375 image, resize 256, crop 224: s_x = 0.512, s_y = 0.68267, o = 16.
    boxes = np.array([[100, 50, 400, 300]])
    # x0: 51.2 - 16 = 35.2; y0: 34.13 - 16 = 18.13; x1: 204.8 - 16 = 188.8; y1: 204.8 - 16 = 188.8
    assert boxes_to_crop(boxes, 500, 375, 256, 224).tolist() == [[35, 18, 189, 189]]


def test_a_whole_image_box_is_clipped_to_the_crop():
    # x1: 499 * 0.512 - 16 = 239.5 -> 239 -> 223; x0: -16 -> 0.
    assert boxes_to_crop(np.array([[0, 0, 499, 374]]), 500, 375, 256, 224).tolist() == [
        [0, 0, 223, 223]
    ]


def test_a_box_left_of_the_crop_collapses_to_the_first_column_with_x1_at_least_x0():
    # x1: 10 * 0.512 - 16 = -10.88 -> -11, clipped up to x0' = 0.
    assert boxes_to_crop(np.array([[0, 0, 10, 10]]), 500, 375, 256, 224).tolist() == [[0, 0, 0, 0]]


def test_a_box_right_of_the_crop_collapses_to_the_last_column():
    # x0: 495 * 0.512 - 16 = 237.4 -> 223; y0: 360 * 0.68267 - 16 = 229.8 -> 223.
    assert boxes_to_crop(np.array([[495, 360, 499, 374]]), 500, 375, 256, 224).tolist() == [
        [223, 223, 223, 223]
    ]


def test_boxes_of_a_non_square_image_use_separate_x_and_y_scales_at_480_448():
    # 300x600 image, resize 480, crop 448: s_x = 1.6, s_y = 0.8, o = 16.
    boxes = np.array([[10, 100, 200, 500], [150, 300, 299, 599]])
    assert boxes_to_crop(boxes, 300, 600, 480, 448).tolist() == [
        [0, 64, 304, 384],  # 16-16, 80-16, 320-16, 400-16
        [224, 224, 447, 447],  # 240-16, 240-16, 478.4-16 -> 462 -> 447, 479.2-16 -> 463 -> 447
    ]


def test_box_rounding_is_half_to_even_like_np_round():
    # 960 wide, resize 480: s = 0.5, o = 16; 33 -> 0.5 -> 0 and 35 -> 1.5 -> 2.
    result = boxes_to_crop(np.array([[33, 33, 35, 35]]), 960, 960, 480, 448)
    assert result.tolist() == [[0, 0, 2, 2]]


def test_box_conversion_returns_int64_and_accepts_no_boxes():
    empty = boxes_to_crop(np.zeros((0, 4)), 500, 375, 256, 224)
    assert empty.shape == (0, 4) and empty.dtype == np.int64
    assert boxes_to_crop(np.array([[1, 2, 3, 4]]), 256, 256, 256, 224).dtype == np.int64


def test_centre_crop_offset_rounds_half_to_even_like_torchvision():
    assert center_crop_offset(256, 224) == 16
    assert center_crop_offset(480, 448) == 16
    assert center_crop_offset(225, 224) == 0  # 0.5 -> 0
    assert center_crop_offset(227, 224) == 2  # 1.5 -> 2


# ----------------------------------------------------------------------------- preprocess


def test_preprocess_of_a_constant_image_gives_the_normalised_constant():
    image = Image.new("RGB", (500, 375), (10, 128, 250))
    tensor = preprocess(image, 256, 224)
    assert tensor.shape == (3, 224, 224) and tensor.dtype == torch.float32
    expected = [
        (v / 255 - m) / s
        for v, m, s in zip((10, 128, 250), IMAGENET_MEAN, IMAGENET_STD, strict=True)
    ]
    # hand values: (10/255 - 0.485)/0.229, (128/255 - 0.456)/0.224, (250/255 - 0.406)/0.225
    assert expected == pytest.approx([-1.946656, 0.205182, 2.552854], abs=1e-6)
    for channel in range(3):
        assert torch.allclose(tensor[channel], torch.tensor(expected[channel]), atol=1e-6)


def test_preprocess_crops_the_centre_of_the_resized_image_where_the_boxes_go():
    image = Image.new("RGB", (300, 600), (0, 0, 0))
    image.paste((255, 255, 255), (50, 100, 151, 401))  # box (50, 100, 150, 400) inclusive
    tensor = preprocess(image, 480, 448)
    white = (tensor[0] > 0).numpy()
    rows, cols = np.flatnonzero(white.any(1)), np.flatnonzero(white.any(0))
    box = boxes_to_crop(np.array([[50, 100, 150, 400]]), 300, 600, 480, 448)[0]
    # 64..224 in x, 64..304 in y; bilinear smearing may add one pixel on each side
    assert box.tolist() == [64, 64, 224, 304]
    assert abs(cols[0] - box[0]) <= 1 and abs(cols[-1] - box[2]) <= 2
    assert abs(rows[0] - box[1]) <= 1 and abs(rows[-1] - box[3]) <= 2


def test_preprocess_converts_a_greyscale_image_to_three_equal_channels():
    tensor = preprocess(Image.new("L", (64, 64), 128), 64, 32)
    raw = (
        tensor * torch.tensor(IMAGENET_STD)[:, None, None]
        + torch.tensor(IMAGENET_MEAN)[:, None, None]
    )
    assert torch.allclose(raw, torch.full((3, 32, 32), 128 / 255), atol=1e-6)


def test_preprocess_rejects_a_crop_larger_than_the_resize():
    with pytest.raises(ValueError, match="crop"):
        preprocess(Image.new("RGB", (10, 10)), 224, 256)


# ----------------------------------------------------------------------------- load_rgb


def _pixel(path: Path) -> tuple[int, ...]:
    image = load_rgb(path)
    assert image.mode == "RGB"
    return image.getpixel((0, 0))


def test_a_greyscale_png_loads_as_grey_rgb(tmp_path):
    Image.new("L", (4, 4), 77).save(tmp_path / "grey.png")
    assert _pixel(tmp_path / "grey.png") == (77, 77, 77)


def test_an_rgba_png_loads_with_its_colours_and_without_alpha(tmp_path):
    Image.new("RGBA", (4, 4), (10, 20, 30, 0)).save(tmp_path / "rgba.png")
    assert _pixel(tmp_path / "rgba.png") == (10, 20, 30)


def test_a_cmyk_tiff_loads_as_rgb(tmp_path):
    Image.new("CMYK", (4, 4), (0, 255, 0, 0)).save(tmp_path / "cmyk.tif")
    assert _pixel(tmp_path / "cmyk.tif") == (255, 0, 255)


def test_a_cielab_tiff_is_colour_converted_not_copied_channel_by_channel(tmp_path):
    Image.new("LAB", (4, 4), (255, 128, 128)).save(tmp_path / "lab.tif")  # L=100, a=b=0: white
    assert all(v >= 250 for v in _pixel(tmp_path / "lab.tif"))


def test_a_palette_png_loads_with_the_palette_colour(tmp_path):
    image = Image.new("P", (4, 4), 1)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.save(tmp_path / "palette.png")
    assert _pixel(tmp_path / "palette.png") == (0, 255, 0)


def test_a_16_bit_png_is_scaled_to_8_bits_not_clipped(tmp_path):
    values = np.array([[0, 25700, 1000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    loaded = np.asarray(load_rgb(tmp_path / "deep.png"))
    assert loaded[0, :, 0].tolist() == [0, 100, 4, 255]  # value / 257, rounded
    assert np.array_equal(loaded[..., 0], loaded[..., 2])


def test_exif_orientation_is_not_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise" for viewers
    Image.new("RGB", (40, 20), (200, 10, 10)).save(tmp_path / "rotated.jpg", exif=exif)
    assert load_rgb(tmp_path / "rotated.jpg").size == (40, 20)


def test_a_truncated_jpeg_raises_input_error_naming_the_path(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "x.jpg")
    data = (tmp_path / "x.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.jpg"):
        load_rgb(tmp_path / "cut.jpg")


def test_a_text_file_raises_input_error_naming_the_path(tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image\n")
    with pytest.raises(InputError, match="notes.jpg"):
        load_rgb(tmp_path / "notes.jpg")


def test_a_missing_file_raises_input_error_naming_the_path(tmp_path):
    with pytest.raises(InputError, match="absent.png"):
        load_rgb(tmp_path / "absent.png")


# ----------------------------------------------------------------------------- back to the image


@pytest.mark.parametrize("crop", [448, 480], ids=["crop", "no-crop"])
@pytest.mark.parametrize("size", [(240, 120), (96, 300), (500, 500)])
def test_crop_boxes_go_back_to_the_original_within_a_resized_pixel(size, crop):
    width, height = size
    boxes = np.array([[30, 20, 80, 90], [40, 60, 60, 100]])
    back = boxes_from_crop(boxes_to_crop(boxes, width, height, 480, crop), width, height, 480, crop)
    assert (np.abs(back - boxes) <= np.ceil(max(width, height) / 480)).all()


def test_a_crop_box_maps_back_with_the_offset_and_the_scale():
    # 240 x 120 resized to 480 (s_x = 2, s_y = 4), crop 448 (o = 16): x = (x' + 16) / 2,
    # y = (y' + 16) / 4; (0, 0, 447, 447) -> (8, 4, 231.5 -> 232, 115.75 -> 116).
    back = boxes_from_crop(np.array([[0, 0, 447, 447]]), 240, 120, 480, 448)
    assert back.tolist() == [[8, 4, 232, 116]]


def test_boxes_never_leave_the_original_image():
    back = boxes_from_crop(np.array([[0, 0, 479, 479]]), 100, 50, 480, 480)
    assert back.tolist() == [[0, 0, 99, 49]]


def test_a_crop_mask_goes_back_to_the_original_size_with_the_cut_margin_as_background():
    crop_mask = np.ones((4, 4), dtype=bool)  # the whole 4 x 4 crop of an 8 x 8 resize
    mask = mask_from_crop(crop_mask, width=16, height=8, size=8)
    assert mask.shape == (8, 16)
    assert mask[2:6, 4:12].all() and mask.sum() == 4 * 8


def test_the_metrics_boxes_and_corloc_modules_import_without_torch():
    """Their jobs start in a fraction of the time when the box, mask and score-map geometry
    does not bring torch in with it (torch comes when a tensor is made)."""
    modules = "rpsloc.metrics, rpsloc.metrics.corloc, rpsloc.metrics.folder, rpsloc.boxes.predicted"
    assert "torch" not in packages_imported_by(modules)
