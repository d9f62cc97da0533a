"""The WSOL benchmark's evaluator for folders of score maps (`rpsloc evaluate`): maps named
`<image_id>.npy` (so `a/b.jpg` -> `a/b.jpg.npy`, which is what the benchmark's
`np.save(<folder>/<image_id>, map)` writes), compared with ground truth resized to 224 x 224, as
clovaai/wsolevaluation's `evaluation.py` does (METHOD.md section 3)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from rpsloc.boxes import check_score_map
from rpsloc.datasets.policy import checked_box
from rpsloc.datasets.wsol import WsolImage, read_wsol_metadata
from rpsloc.errors import InputError
from rpsloc.masks import benchmark_mask
from rpsloc.metrics.accumulators import BoxAccuracy, PixelPrecisionRecall
from rpsloc.parallel import map_in_chunks

RESIZE_LENGTH = 224
"""Side of the square grid on which the benchmark compares score maps with ground truth."""

CONTOUR_MODES = ("multi", "largest")


def _resize_box(
    box: tuple[int, int, int, int], image_size: tuple[int, int], length: int
) -> tuple[int, int, int, int]:
    """Box scaled from the (width, height) image to length x length, truncated with int."""
    width, height = image_size
    x0, y0, x1, y1 = box
    return (
        int(x0 * float(length) / width),
        int(y0 * float(length) / height),
        int(x1 * float(length) / width),
        int(y1 * float(length) / height),
    )


def _load_score_map(path: Path, image_id: str) -> np.ndarray:
    where = f"score map {path} of image {image_id!r}"
    if not path.is_file():
        raise InputError(f"{where}: file not found (expected <scoremap_dir>/<image_id>.npy)")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InputError(f"{where}: not a readable .npy array ({error})") from None
    if array.shape != (RESIZE_LENGTH, RESIZE_LENGTH):
        raise InputError(
            f"{where}: expected shape ({RESIZE_LENGTH}, {RESIZE_LENGTH}), found {array.shape}"
        )
    return check_score_map(array, where)


def evaluate_scoremap_folder(
    metadata_dir: Path,
    scoremap_dir: Path,
    contours: str = "multi",
    interval: float = 0.01,
    iou_thresholds: Sequence[int] = (30, 50, 70),
    mask_root: Path | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """The WSOL benchmark's evaluation of a folder of 224 x 224 score maps (METHOD.md section 3).

    `metadata_dir` is one split's WSOL metadata folder, read as the benchmark does (its own
    files only) and strictly: every malformed line and every per-image problem is an
    InputError naming the file and line. The map of image `id` is
    `scoremap_dir / (id + ".npy")`. Thresholds are `np.arange(0, 1, interval)`. Box metrics
    (`max_box_acc`, `best_threshold` keyed by str(d), `max_box_acc_v2`) are computed when
    localization.txt has boxes, which are resized to 224 x 224; `pxap` and `piou` when it has
    masks, which are read relative to `mask_root` (required then). `workers` processes share
    the images; the numbers are the same for any number of workers.
    """
    if contours not in CONTOUR_MODES:
        raise InputError(f"contours: expected one of {CONTOUR_MODES}, found {contours!r}")
    if not 0 < interval < 1:
        raise InputError(f"interval: expected a value in (0, 1), found {interval}")
    metadata = read_wsol_metadata(Path(metadata_dir), labels=False, mask_localization=False)
    loc_path = metadata.folder / "localization.txt"
    if not metadata.boxes and not metadata.masks:
        raise InputError(f"{loc_path}: no box and no mask; nothing to evaluate")
    if metadata.masks and mask_root is None:
        raise InputError(f"{loc_path}: lists masks; pass mask_root, the folder they are under")
    if mask_root is not None and not metadata.masks:
        raise InputError(f"{loc_path}: mask_root was given but the file lists no mask")
    if metadata.boxes and metadata.sizes is None:
        raise InputError(
            f"{metadata.folder / 'image_sizes.txt'}: no image sizes; the boxes are resized by them"
        )
    images = [
        metadata.image(image_id, None if mask_root is None else Path(mask_root))
        for image_id in metadata.ids
    ]
    for image in images:  # ordered, non-negative boxes; like the benchmark, not bounded by the size
        for box, path, line in image.boxes:
            checked_box(image.image_id, box, path, line)

    evaluate_images = partial(
        _evaluate_folder_images,
        scoremap_dir=Path(scoremap_dir),
        thresholds=np.arange(0, 1, interval),
        iou_thresholds=iou_thresholds,
        multi_contour=contours == "multi",
        with_boxes=bool(metadata.boxes),
        with_masks=bool(metadata.masks),
    )
    parts = map_in_chunks(evaluate_images, images, workers)
    box_accuracy, pixels = parts[0]
    for part_boxes, part_pixels in parts[1:]:
        if box_accuracy is not None:
            box_accuracy.merge(part_boxes)
        if pixels is not None:
            pixels.merge(part_pixels)

    result: dict[str, Any] = {
        "n_images": len(images),
        "contours": contours,
        "interval": float(interval),
    }
    if box_accuracy is not None:
        result["max_box_acc"] = {str(d): v for d, v in box_accuracy.max_box_acc().items()}
        result["max_box_acc_v2"] = box_accuracy.max_box_acc_v2()
        result["best_threshold"] = {str(d): v for d, v in box_accuracy.best_thresholds().items()}
    if pixels is not None:
        result["pxap"] = pixels.pxap()
        result["piou"] = pixels.piou()
    return result


def _evaluate_folder_images(
    images: Sequence[WsolImage],
    scoremap_dir: Path,
    thresholds: np.ndarray,
    iou_thresholds: Sequence[int],
    multi_contour: bool,
    with_boxes: bool,
    with_masks: bool,
) -> tuple[BoxAccuracy | None, PixelPrecisionRecall | None]:
    """Box and pixel accumulators of some images of a split, in the order given."""
    box_accuracy = (
        BoxAccuracy(thresholds, iou_thresholds, multi_contour=multi_contour) if with_boxes else None
    )
    pixels = PixelPrecisionRecall(thresholds) if with_masks else None
    size = (RESIZE_LENGTH, RESIZE_LENGTH)

    for image in images:
        score_map = _load_score_map(scoremap_dir / f"{image.image_id}.npy", image.image_id)
        if box_accuracy is not None:
            gt_boxes = np.array(
                [_resize_box(box, image.size, RESIZE_LENGTH) for box, _, _ in image.boxes]
            )
            box_accuracy.add(score_map, gt_boxes)
        if pixels is not None:
            try:
                gt_mask = benchmark_mask(image.mask_paths, image.ignore_path, size)
            except InputError as error:
                raise InputError(f"image {image.image_id!r}: {error}") from None
            pixels.add(score_map, gt_mask)
    return box_accuracy, pixels
