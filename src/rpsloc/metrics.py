"""BoxAcc, MaxBoxAcc(V2), PxAP and pIoU, and the WSOL benchmark's evaluator for score-map folders.

METHOD.md section 3, with the semantics of `evaluation.py` in clovaai/wsolevaluation (Choe et al.,
CVPR 2020): boxes are accumulated as in its `BoxEvaluator`, pixel precision and recall as in its
`MaskEvaluator`, ground-truth masks are loaded as its `get_mask` does (`rpsloc.masks`), and
`evaluate_scoremap_folder` reads score maps named `<image_id>.npy` (so `a/b.jpg` -> `a/b.jpg.npy`,
which is what the benchmark's `np.save(<folder>/<image_id>, map)` writes) and compares them with
ground truth resized to 224 x 224.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from rpsloc.boxes import TracedMap, check_score_map, trace_map, traced_best_ious
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


@dataclass
class _WsolMetadata:
    """One split of WSOL metadata: ids in file order, sizes, and boxes or mask paths per id."""

    folder: Path
    image_ids: list[str]
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    boxes: dict[str, list[tuple[int, int, int, int]]] = field(default_factory=dict)
    mask_paths: dict[str, list[str]] = field(default_factory=dict)
    ignore_paths: dict[str, str | None] = field(default_factory=dict)


def _metadata_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the non-empty lines of a metadata file."""
    if not path.is_file():
        raise InputError(f"{path}: metadata file not found")
    with path.open(encoding="utf-8") as handle:
        lines = [line.rstrip("\r\n") for line in handle]
    return [(number, text) for number, text in enumerate(lines, start=1) if text.strip()]


def _parse_int(text: str, what: str, path: Path, number: int) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{path}:{number}: expected an integer {what}, found {text!r}") from None


def _read_wsol_metadata(folder: Path) -> _WsolMetadata:
    """Parse image_ids.txt, image_sizes.txt and localization.txt of one split.

    localization.txt holds either `id,x0,y0,x1,y1` lines (boxes) or `id,mask_path,ignore_path`
    lines (masks; only an image's first line names its ignore mask). Every malformed line is an
    InputError naming the file and line number.
    """
    folder = Path(folder)
    ids_path = folder / "image_ids.txt"
    image_ids = [text for _, text in _metadata_lines(ids_path)]
    if not image_ids:
        raise InputError(f"{ids_path}: the split is empty (no image id)")
    repeated = [image_id for image_id, count in Counter(image_ids).items() if count > 1]
    if repeated:
        raise InputError(f"{ids_path}: image id {repeated[0]!r} is listed more than once")
    known = set(image_ids)
    metadata = _WsolMetadata(folder=folder, image_ids=image_ids)

    sizes_path = folder / "image_sizes.txt"
    if sizes_path.is_file():
        for number, text in _metadata_lines(sizes_path):
            fields = text.split(",")
            if len(fields) != 3:
                raise InputError(
                    f"{sizes_path}:{number}: expected 'id,width,height', found {text!r}"
                )
            width = _parse_int(fields[1], "width", sizes_path, number)
            height = _parse_int(fields[2], "height", sizes_path, number)
            if width <= 0 or height <= 0:
                raise InputError(
                    f"{sizes_path}:{number}: expected a positive width and height, found {text!r}"
                )
            metadata.sizes[fields[0]] = (width, height)

    loc_path = folder / "localization.txt"
    for number, text in _metadata_lines(loc_path):
        fields = text.split(",")
        image_id = fields[0]
        if image_id not in known:
            raise InputError(
                f"{loc_path}:{number}: image id {image_id!r} is not listed in {ids_path.name}"
            )
        if len(fields) == 5:
            if metadata.mask_paths:
                raise InputError(f"{loc_path}:{number}: a box line in a file of mask lines")
            box = tuple(
                _parse_int(value, name, loc_path, number)
                for value, name in zip(fields[1:], ("x0", "y0", "x1", "y1"), strict=True)
            )
            x0, y0, x1, y1 = box
            if min(box) < 0 or x1 < x0 or y1 < y0:
                raise InputError(
                    f"{loc_path}:{number}: expected a box with 0 <= x0 <= x1 and 0 <= y0 <= y1, "
                    f"found {text!r}"
                )
            metadata.boxes.setdefault(image_id, []).append(box)
        elif len(fields) == 3:
            if metadata.boxes:
                raise InputError(f"{loc_path}:{number}: a mask line in a file of box lines")
            mask_path, ignore_path = fields[1], fields[2]
            if not mask_path:
                raise InputError(f"{loc_path}:{number}: empty mask path in {text!r}")
            if image_id in metadata.mask_paths:
                if ignore_path:
                    raise InputError(
                        f"{loc_path}:{number}: a second ignore mask for {image_id!r} (only the "
                        "image's first line may name one)"
                    )
                metadata.mask_paths[image_id].append(mask_path)
            else:
                metadata.mask_paths[image_id] = [mask_path]
                metadata.ignore_paths[image_id] = ignore_path or None
        else:
            raise InputError(
                f"{loc_path}:{number}: expected 'id,x0,y0,x1,y1' or 'id,mask_path,ignore_path', "
                f"found {len(fields)} fields in {text!r}"
            )
    return metadata


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

    `metadata_dir` is one split's WSOL metadata folder; the map of image `id` is
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
    metadata = _read_wsol_metadata(Path(metadata_dir))
    loc_path = metadata.folder / "localization.txt"
    if not metadata.boxes and not metadata.mask_paths:
        raise InputError(f"{loc_path}: no box and no mask; nothing to evaluate")
    if metadata.mask_paths and mask_root is None:
        raise InputError(f"{loc_path}: lists masks; pass mask_root, the folder they are under")
    if mask_root is not None and not metadata.mask_paths:
        raise InputError(f"{loc_path}: mask_root was given but the file lists no mask")

    evaluate_images = partial(
        _evaluate_folder_images,
        metadata=metadata,
        scoremap_dir=Path(scoremap_dir),
        thresholds=np.arange(0, 1, interval),
        iou_thresholds=iou_thresholds,
        multi_contour=contours == "multi",
        mask_root=mask_root,
    )
    parts = map_in_chunks(evaluate_images, metadata.image_ids, workers)
    box_accuracy, pixels = parts[0]
    for part_boxes, part_pixels in parts[1:]:
        if box_accuracy is not None:
            box_accuracy.merge(part_boxes)
        if pixels is not None:
            pixels.merge(part_pixels)

    result: dict[str, Any] = {
        "n_images": len(metadata.image_ids),
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
    image_ids: Sequence[str],
    metadata: _WsolMetadata,
    scoremap_dir: Path,
    thresholds: np.ndarray,
    iou_thresholds: Sequence[int],
    multi_contour: bool,
    mask_root: Path | None,
) -> tuple[BoxAccuracy | None, PixelPrecisionRecall | None]:
    """Box and pixel accumulators of some images of a split, in the order given."""
    loc_path = metadata.folder / "localization.txt"
    box_accuracy = (
        BoxAccuracy(thresholds, iou_thresholds, multi_contour=multi_contour)
        if metadata.boxes
        else None
    )
    pixels = PixelPrecisionRecall(thresholds) if metadata.mask_paths else None
    size = (RESIZE_LENGTH, RESIZE_LENGTH)

    for image_id in image_ids:
        score_map = _load_score_map(scoremap_dir / f"{image_id}.npy", image_id)
        if box_accuracy is not None:
            if image_id not in metadata.boxes:
                raise InputError(f"{loc_path}: no box for image {image_id!r}")
            if image_id not in metadata.sizes:
                raise InputError(
                    f"{metadata.folder / 'image_sizes.txt'}: no size for image {image_id!r}"
                )
            gt_boxes = np.array(
                [
                    _resize_box(box, metadata.sizes[image_id], RESIZE_LENGTH)
                    for box in metadata.boxes[image_id]
                ]
            )
            box_accuracy.add(score_map, gt_boxes)
        if pixels is not None:
            if image_id not in metadata.mask_paths:
                raise InputError(f"{loc_path}: no mask for image {image_id!r}")
            root = Path(str(mask_root))
            ignore = metadata.ignore_paths[image_id]
            try:
                gt_mask = benchmark_mask(
                    [root / p for p in metadata.mask_paths[image_id]],
                    root / ignore if ignore else None,
                    size,
                )
            except InputError as error:
                raise InputError(f"image {image_id!r}: {error}") from None
            pixels.add(score_map, gt_mask)
    return box_accuracy, pixels
