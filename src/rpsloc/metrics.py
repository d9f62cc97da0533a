"""BoxAcc, MaxBoxAcc(V2), PxAP and pIoU, and the WSOL benchmark's evaluator for score-map folders.

METHOD.md section 3, with the semantics of `evaluation.py` in clovaai/wsolevaluation (Choe et al.,
CVPR 2020): boxes are accumulated as in its `BoxEvaluator`, pixel precision and recall as in its
`MaskEvaluator`, ground-truth masks are loaded as its `get_mask` does (`rpsloc.masks`), and
`evaluate_scoremap_folder` reads score maps named `<image_id>.npy` (so `a/b.jpg` -> `a/b.jpg.npy`,
which is what the benchmark's `np.save(<folder>/<image_id>, map)` writes) and compares them with
ground truth resized to 224 x 224.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from rpsloc.boxes import TracedMap, check_score_map, trace_map, traced_best_ious
from rpsloc.datasets.policy import checked_box
from rpsloc.datasets.wsol import WsolImage, read_wsol_metadata
from rpsloc.errors import InputError
from rpsloc.masks import benchmark_mask
from rpsloc.parallel import map_in_chunks

RESIZE_LENGTH = 224
"""Side of the square grid on which the benchmark compares score maps with ground truth."""

CONTOUR_MODES = ("multi", "largest")


def _as_increasing_thresholds(thresholds: np.ndarray) -> np.ndarray:
    values = np.asarray(thresholds, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise InputError(f"thresholds: expected a non-empty 1-D array, found shape {values.shape}")
    if np.isnan(values).any() or (np.diff(values) <= 0).any():
        raise InputError(f"thresholds: expected strictly increasing values, found {values}")
    return values


class BoxAccuracy:
    """BoxAcc(tau, d) over images, and its maxima over tau (METHOD.md section 3).

    Call `add` once per image; BoxAcc(tau, d) is the percentage of images whose best IoU at
    threshold tau is at least d / 100.
    """

    def __init__(
        self,
        thresholds: np.ndarray,
        iou_thresholds: Sequence[int] = (30, 50, 70),
        multi_contour: bool = True,
        clip_to_image: bool = True,
    ) -> None:
        self.thresholds = _as_increasing_thresholds(thresholds)
        self.iou_thresholds = tuple(int(d) for d in iou_thresholds)
        if not self.iou_thresholds or any(not 0 <= d <= 100 for d in self.iou_thresholds):
            raise InputError(
                f"iou_thresholds: expected percentages in [0, 100], found {iou_thresholds}"
            )
        self.multi_contour = multi_contour
        self.clip_to_image = clip_to_image
        self._best_ious: list[np.ndarray] = []

    def add(self, score_map: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
        """Accumulate one image; returns its (T,) best IoU per threshold."""
        return self.add_traced(trace_map(score_map, self.thresholds), gt_boxes)

    def add_traced(self, traced: TracedMap, gt_boxes: np.ndarray) -> np.ndarray:
        """`add` for a map already traced on a grid holding these thresholds, so protocols
        that differ only in contour mode, clipping or first threshold trace it once."""
        best = traced_best_ious(
            traced.restricted(self.thresholds), gt_boxes, self.multi_contour, self.clip_to_image
        )
        self._best_ious.append(best)
        return best

    @property
    def n_images(self) -> int:
        return len(self._best_ious)

    @property
    def best_ious(self) -> np.ndarray:
        """(n_images, T) best IoU of each image at each threshold."""
        if not self._best_ious:
            return np.zeros((0, len(self.thresholds)))
        return np.stack(self._best_ious)

    def box_acc(self) -> np.ndarray:
        """(len(iou_thresholds), T) BoxAcc in percent."""
        if self.n_images == 0:
            raise InputError("BoxAccuracy: no image was added; BoxAcc is undefined")
        ious = self.best_ious
        correct = np.stack([(ious >= d / 100).sum(axis=0) for d in self.iou_thresholds])
        return correct * 100.0 / float(self.n_images)

    def max_box_acc(self) -> dict[int, float]:
        """MaxBoxAcc(d) = max over tau of BoxAcc(tau, d), per IoU threshold d."""
        accuracy = self.box_acc()
        return {d: float(row.max()) for d, row in zip(self.iou_thresholds, accuracy, strict=True)}

    def best_thresholds(self) -> dict[int, float]:
        """The threshold tau at which BoxAcc(tau, d) first reaches its maximum, per d."""
        accuracy = self.box_acc()
        return {
            d: float(self.thresholds[int(np.argmax(row))])
            for d, row in zip(self.iou_thresholds, accuracy, strict=True)
        }

    def max_box_acc_v2(self) -> float:
        """Mean of MaxBoxAcc over the IoU thresholds (MaxBoxAccV2 with the defaults)."""
        return float(np.mean(list(self.max_box_acc().values())))

    def merge(self, other: BoxAccuracy) -> None:
        """Append the images `other` accumulated, as if they had been added here in order."""
        if (
            not np.array_equal(self.thresholds, other.thresholds)
            or self.iou_thresholds != other.iou_thresholds
            or (self.multi_contour, self.clip_to_image)
            != (other.multi_contour, other.clip_to_image)
        ):
            raise ValueError("BoxAccuracy.merge: the accumulators use different settings")
        self._best_ious.extend(other._best_ious)


class PixelPrecisionRecall:
    """Pixel precision-recall over images: PxAP and pIoU (METHOD.md section 3).

    Histograms of score values at ground-truth foreground and background pixels (ignored pixels
    excluded) over the bins [t_0, t_1), ..., [t_last, 1), [1, 2), [2, 3). Operating points are
    "score >= lower edge", from the highest edge (2) down to t_0.
    """

    def __init__(self, thresholds: np.ndarray) -> None:
        self.thresholds = _as_increasing_thresholds(thresholds)
        if self.thresholds[0] < 0 or self.thresholds[-1] >= 1:
            raise InputError(
                f"thresholds: expected values in [0, 1), found {self.thresholds[0]} .. "
                f"{self.thresholds[-1]}"
            )
        self.edges = np.append(self.thresholds, [1.0, 2.0, 3.0])
        self._foreground_hist = np.zeros(len(self.edges) - 1, dtype=np.float64)
        self._background_hist = np.zeros(len(self.edges) - 1, dtype=np.float64)
        self._n_foreground = 0
        self.n_images = 0

    def add(self, score_map: np.ndarray, gt_mask: np.ndarray) -> None:
        """Accumulate one image; gt_mask is uint8 with 1 foreground, 0 background, 255 ignore."""
        scores = check_score_map(score_map)
        mask = np.asarray(gt_mask)
        if mask.shape != scores.shape:
            raise InputError(
                f"gt_mask: expected the score map's shape {scores.shape}, found {mask.shape}"
            )
        unexpected = np.setdiff1d(np.unique(mask), [0, 1, 255])
        if unexpected.size:
            raise InputError(
                "gt_mask: expected values 0 (background), 1 (foreground), 255 (ignore), "
                f"found {unexpected.tolist()}"
            )
        foreground = mask == 1
        self._foreground_hist += np.histogram(scores[foreground], bins=self.edges)[0]
        self._background_hist += np.histogram(scores[mask == 0], bins=self.edges)[0]
        self._n_foreground += int(foreground.sum())
        self.n_images += 1

    def merge(self, other: PixelPrecisionRecall) -> None:
        """Add the images `other` accumulated (histogram counts add exactly)."""
        if not np.array_equal(self.thresholds, other.thresholds):
            raise ValueError("PixelPrecisionRecall.merge: the accumulators use other thresholds")
        self._foreground_hist += other._foreground_hist
        self._background_hist += other._background_hist
        self._n_foreground += other._n_foreground
        self.n_images += other.n_images

    def _operating_points(self) -> tuple[np.ndarray, np.ndarray, float]:
        """TP, FP per operating point (highest edge first) and the number of GT foreground pixels.

        Raises InputError when there is no positive ground truth or no positive prediction.
        """
        n_true = float(self._n_foreground)
        true_positives = self._foreground_hist[::-1].cumsum()
        false_positives = self._background_hist[::-1].cumsum()
        if n_true <= 0:
            raise InputError(
                f"PxAP: no positive ground-truth pixel in the {self.n_images} image(s) added; "
                "precision and recall are undefined"
            )
        if ((true_positives + false_positives) <= 0).all():
            raise InputError(
                f"PxAP: no positive prediction in the {self.n_images} image(s) added (no score "
                f"reaches the lowest threshold {self.thresholds[0]}); precision is undefined"
            )
        return true_positives, false_positives, n_true

    def precision_recall(self) -> tuple[np.ndarray, np.ndarray]:
        """Precision and recall at the operating points with at least one positive prediction,
        from the highest threshold to the lowest."""
        true_positives, false_positives, n_true = self._operating_points()
        predicted = true_positives + false_positives
        defined = predicted > 0
        precision = true_positives[defined] / predicted[defined]
        recall = true_positives[defined] / n_true
        return precision, recall

    def pxap(self) -> float:
        """PxAP = 100 * sum(precision[1:] * diff(recall)) over points with TP + FP > 0."""
        true_positives, false_positives, n_true = self._operating_points()
        predicted = true_positives + false_positives
        defined = predicted != 0
        precision = np.zeros_like(predicted)
        np.divide(true_positives, predicted, out=precision, where=defined)
        recall = true_positives / n_true
        area = (precision[1:] * np.diff(recall))[defined[1:]].sum()
        return float(area * 100)

    def piou(self) -> float:
        """pIoU = max over thresholds of 100 * TP / (#GT foreground + FP)."""
        true_positives, false_positives, n_true = self._operating_points()
        return float((100 * true_positives / (n_true + false_positives)).max())


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
