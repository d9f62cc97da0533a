"""Ground-truth masks for PxAP and pIoU (METHOD.md section 3), under the two protocols that
read them differently; both give uint8 masks with 1 foreground, 0 background, 255 ignore.

- The workflow's (`crop_mask`), the authors' way: every mask resized to the image's resize side
  (the same square as the image), centre-cropped and binarised with `> 0.5`, so it lies on the
  grid of the maps computed from the crop. The resize is per dataset (`MASK_RESIZES`): CUB's
  segmentations bilinear (`cv2.INTER_LINEAR`) on the foreground fraction, as their `CUBwithSEG`;
  OpenImages' masks nearest-neighbour on the raw values, as their `OpenImages` dataset.
- The WSOL benchmark's (`benchmark_mask`, its `get_mask`): every mask resized to the
  evaluation grid (224 x 224) with nearest-neighbour interpolation, as
  `rpsloc.metrics.folder.evaluate_scoremap_folder` compares score-map folders.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from rpsloc.datasets.records import ImageRecord
from rpsloc.errors import InputError
from rpsloc.transforms import center_crop_offset

#: How `crop_mask` resizes a mask: `linear` divides the 8-bit values by 255 and resizes them
#: bilinearly (soft masks such as CUB's, whose grey levels count annotators, stay soft until the
#: threshold); `nearest` keeps the raw values (0/255 masks: foreground is any non-zero value).
MASK_RESIZES = {"linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}


def read_mask_image(path: Path) -> np.ndarray:
    """A mask image's 8-bit grey values as float32 (any mode; 0/255 PNGs as the datasets ship
    them), read as the authors' and the benchmark's `cv2.imread(..., IMREAD_GRAYSCALE)`."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise InputError(f"{path}: mask image is missing or not a readable image")
    return np.float32(image)


def resized_mask(path: Path, image_size: int, crop_size: int, resize: str) -> np.ndarray:
    """A mask resized to `image_size` squared (`resize`: a key of MASK_RESIZES), centre-cropped
    to `crop_size` and binarised with `> 0.5`: a (crop, crop) bool array."""
    if resize not in MASK_RESIZES:
        raise ValueError(f"mask resize must be one of {sorted(MASK_RESIZES)}, got {resize!r}")
    values = read_mask_image(path)
    if resize == "linear":
        values /= 255.0
    resized = cv2.resize(values, (image_size, image_size), interpolation=MASK_RESIZES[resize])
    offset = center_crop_offset(image_size, crop_size)
    return resized[offset : offset + crop_size, offset : offset + crop_size] > 0.5


def crop_mask(
    record: ImageRecord, image_size: int, crop_size: int, resize: str = "linear"
) -> np.ndarray:
    """Ground-truth mask in crop coordinates: 1 foreground (any instance), 0 background, 255
    ignore (the ignore mask minus the foreground), each mask read by `resized_mask`."""
    foreground = np.zeros((crop_size, crop_size), dtype=bool)
    for path in record.mask_paths:
        foreground |= resized_mask(path, image_size, crop_size, resize)
    mask = foreground.astype(np.uint8)
    if record.ignore_path is not None:
        ignore = resized_mask(record.ignore_path, image_size, crop_size, resize)
        mask[ignore & ~foreground] = 255
    return mask


def _nearest_mask_image(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Grayscale mask as float32 resized with nearest-neighbour interpolation to (height, width)."""
    height, width = size
    return cv2.resize(read_mask_image(path), (width, height), interpolation=cv2.INTER_NEAREST)


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
