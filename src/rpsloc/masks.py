"""Ground-truth masks for PxAP and pIoU (METHOD.md section 3), under the two protocols that
read them differently; both give uint8 masks with 1 foreground, 0 background, 255 ignore.

- The workflow's (`crop_mask`): masks are resized like the image, bilinear on the foreground
  fraction, centre-cropped and binarised at 0.5 (`transforms.mask_to_crop`, METHOD.md
  section 1), so they lie on the grid of the maps computed from the crop.
- The WSOL benchmark's (`benchmark_mask`, its `get_mask`): every mask resized to the
  evaluation grid (224 x 224) with nearest-neighbour interpolation, as
  `rpsloc.metrics.evaluate_scoremap_folder` compares score-map folders.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from rpsloc.datasets.records import ImageRecord
from rpsloc.errors import InputError
from rpsloc.transforms import mask_to_crop


def read_mask_image(path: Path) -> np.ndarray:
    """A mask image as floats in [0, 1] (any 8-bit mode; 0/255 PNGs as the datasets ship them)."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError) as error:
        raise InputError(f"{path}: cannot read mask image ({error})") from error


def crop_mask(record: ImageRecord, image_size: int, crop_size: int) -> np.ndarray:
    """Ground-truth mask in crop coordinates: 1 foreground, 0 background, 255 ignore; masks are
    resized like the image and binarised at 0.5 (METHOD.md sections 1 and 3)."""
    foreground = np.zeros((crop_size, crop_size), dtype=bool)
    for path in record.mask_paths:
        foreground |= mask_to_crop(read_mask_image(path), image_size, crop_size)
    mask = foreground.astype(np.uint8)
    if record.ignore_path is not None:
        ignore = mask_to_crop(read_mask_image(record.ignore_path), image_size, crop_size)
        mask[ignore & ~foreground] = 255
    return mask


def _nearest_mask_image(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Grayscale mask as float32 resized with nearest-neighbour interpolation to (height, width)."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise InputError(f"{path}: mask image is missing or not a readable image")
    height, width = size
    return cv2.resize(np.float32(image), (width, height), interpolation=cv2.INTER_NEAREST)


def benchmark_mask(
    mask_paths: Sequence[Path], ignore_path: Path | None, size: tuple[int, int]
) -> np.ndarray:
    """uint8 (height, width) mask: 1 foreground, 0 background, 255 ignore (METHOD.md section 3).

    As the benchmark's `get_mask`: every instance mask is resized to `size` = (height, width)
    with nearest-neighbour interpolation and thresholded at 0.5, the instances are OR-ed; the
    ignore mask (thresholded the same way) minus the foreground is marked 255. `ignore_path`
    None means no ignored pixels.
    """
    if len(mask_paths) == 0:
        raise InputError("benchmark_mask: expected at least one instance mask path, found none")
    foreground = np.zeros(size, dtype=bool)
    for path in mask_paths:
        foreground |= _nearest_mask_image(Path(path), size) > 0.5
    ignore = np.zeros(size, dtype=bool)
    if ignore_path is not None:
        ignore = (_nearest_mask_image(Path(ignore_path), size) > 0.5) & ~foreground
    return foreground.astype(np.uint8) + 255 * ignore.astype(np.uint8)
