"""Image and box preprocessing: RGB loading, resize + centre crop, boxes to crop coordinates
(METHOD.md section 1, docs/architecture.md "Images"), and predicted boxes and masks back to the
original image (docs/boxes.md); ground-truth masks are rpsloc.masks'.

torch is imported by the two functions that make tensors, not with the module: the box and
mask geometry here is what the metrics, boxes and CorLoc jobs need, and importing torch is
most of such a job's start-up (about 1.2 s of 1.7 s)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageCms

if TYPE_CHECKING:
    import torch

from rpsloc.errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Modes holding one integer channel wider than 8 bits (16-bit PNG and TIFF greyscale).
_WIDE_INTEGER_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


def load_rgb(path: Path) -> Image.Image:
    """Open `path`, decode it fully and return it as an 8-bit RGB image.

    Greyscale, palette, RGBA/LA (alpha dropped, colours kept), CMYK and the other Pillow modes
    convert with Pillow's rules; CIELAB goes through an sRGB colour transform. 16-bit
    greyscale ('I;16*', and 'I' as Pillow opens 16-bit PNGs) is scaled to 8 bits by value / 257
    (rounded), not clipped; 'I' values are taken in [0, 65535], 'F' values in [0, 255].
    EXIF orientation is deliberately NOT applied: benchmark boxes and masks are given in the
    stored pixel grid, so rotating the pixels would misalign them.
    Raises InputError naming the path if the file is missing, not an image, or truncated.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            return _to_rgb(image, path)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(f"{path}: cannot read as an image ({error})") from error


def _to_rgb(image: Image.Image, path: Path | str = "<image>") -> Image.Image:
    """Convert a decoded image of any Pillow mode to 8-bit RGB (see `load_rgb`)."""
    if image.mode == "RGB":
        return image.copy()
    if image.mode in _WIDE_INTEGER_MODES:
        values = np.asarray(image).astype(np.float64)
        scaled = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(scaled).convert("RGB")
    if image.mode == "LAB":  # Pillow's plain convert would copy L, a, b into R, G, B
        lab_to_srgb = ImageCms.buildTransform(
            ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
        )
        return ImageCms.applyTransform(image, lab_to_srgb)
    if image.mode == "F":
        values = np.clip(np.rint(np.asarray(image, dtype=np.float64)), 0, 255).astype(np.uint8)
        return Image.fromarray(values).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as error:
        raise InputError(f"{path}: cannot convert image mode {image.mode!r} to RGB") from error


def center_crop_offset(size: int, crop: int) -> int:
    """Pixel offset of the centre crop: round((size - crop) / 2), half to even, as torchvision's
    CenterCrop does. Exact when size - crop is even (every default setting in METHOD.md)."""
    if crop < 1 or size < crop:
        raise ValueError(f"expected 1 <= crop <= size, found size={size}, crop={crop}")
    return int(round((size - crop) / 2))


def preprocess(image: Image.Image, size: int, crop: int) -> torch.Tensor:
    """Bilinear resize of the whole image to (size, size), centre crop, /255, ImageNet
    normalisation; a (3, crop, crop) float32 tensor (METHOD.md section 1).

    The crop offset is `center_crop_offset(size, crop)`; when size - crop is odd it is the
    rounded value of the (size - crop) / 2 used by `boxes_to_crop`.
    """
    import torch

    offset = center_crop_offset(size, crop)
    rgb = image if image.mode == "RGB" else _to_rgb(image)
    resized = rgb.resize((size, size), Image.BILINEAR)
    cropped = resized.crop((offset, offset, offset + crop, offset + crop))
    array = np.asarray(cropped, dtype=np.uint8)
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255.0)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32)[:, None, None]
    return tensor.sub_(mean).div_(std).contiguous()


def boxes_to_crop(boxes: np.ndarray, width: int, height: int, size: int, crop: int) -> np.ndarray:
    """Boxes (k, 4) `x0, y0, x1, y1` in original pixels -> crop pixels, int64 (METHOD.md 1).

    s_x = size/width, o = (size - crop)/2, x0' = clip(round(x0 s_x - o), 0, crop-1),
    x1' = clip(round(x1 s_x - o), x0', crop-1); the same for y. Rounding is np.round (half to
    even).
    """
    return _moved_boxes(boxes, width, height, size, crop, to_crop=True)


def boxes_from_crop(boxes: np.ndarray, width: int, height: int, size: int, crop: int) -> np.ndarray:
    """Boxes (k, 4) `x0, y0, x1, y1` in crop pixels -> original pixels, int64: the inverse of
    `boxes_to_crop` (METHOD.md section 1), for predicted boxes (docs/boxes.md).

    x = clip(round((x' + o) / s_x), 0, width - 1) with s_x = size/width, o = (size - crop)/2,
    and x1 >= x0; the same for y. With crop = size (no crop) o = 0 and the crop is the whole
    image; otherwise a box reaches at most the crop's edge, never the margin it cut off.
    """
    return _moved_boxes(boxes, width, height, size, crop, to_crop=False)


def _moved_boxes(
    boxes: np.ndarray, width: int, height: int, size: int, crop: int, to_crop: bool
) -> np.ndarray:
    """The geometry of both directions: scale by size/width (size/height), shift by the
    offset, round half to even, clip into the target image with x1 >= x0 and y1 >= y0."""
    _check_geometry(width, height, size, crop)
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 4), dtype=np.int64)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"expected boxes of shape (k, 4), found {array.shape}")
    offset = (size - crop) / 2
    scale = np.array([size / width, size / height, size / width, size / height])
    if to_crop:
        moved, x_max, y_max = np.round(array * scale - offset), crop - 1, crop - 1
    else:
        moved, x_max, y_max = np.round((array + offset) / scale), width - 1, height - 1
    x0 = np.clip(moved[:, 0], 0, x_max)
    y0 = np.clip(moved[:, 1], 0, y_max)
    x1 = np.clip(moved[:, 2], x0, x_max)
    y1 = np.clip(moved[:, 3], y0, y_max)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.int64)


def _check_geometry(width: int, height: int, size: int, crop: int) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"expected a positive image size, found width={width}, height={height}")
    if crop < 1 or size < crop:
        raise ValueError(f"expected 1 <= crop <= size, found size={size}, crop={crop}")


def mask_from_crop(mask: np.ndarray, width: int, height: int, size: int) -> np.ndarray:
    """A (crop, crop) bool mask -> the (height, width) bool mask of the original image: placed
    at the centre crop's offset in the resized (size, size) image (the margin the crop cut off
    is background) and resized nearest-neighbour to the original size (docs/boxes.md)."""
    crop = len(mask)
    _check_geometry(width, height, size, crop)
    offset = center_crop_offset(size, crop)
    resized = np.zeros((size, size), dtype=np.uint8)
    resized[offset : offset + crop, offset : offset + crop] = np.asarray(mask, dtype=bool)
    original = Image.fromarray(resized * 255).resize((width, height), Image.NEAREST)
    return np.asarray(original) > 0


class PreprocessedImages:
    """Images decoded and preprocessed in DataLoader workers, so a model never waits on
    JPEG decoding; item i is `preprocess(load_rgb(paths[i]), size, crop)` (a map-style
    dataset: `torch.utils.data.DataLoader` needs only `__len__` and `__getitem__`)."""

    def __init__(self, paths: Sequence[Path], size: int, crop: int) -> None:
        self.paths = list(paths)
        self.size = size
        self.crop = crop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return preprocess(load_rgb(self.paths[index]), self.size, self.crop)
