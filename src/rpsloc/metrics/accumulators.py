"""The accumulators behind every number (METHOD.md section 3): BoxAcc per threshold and IoU
(`BoxAccuracy`), pixel precision-recall for PxAP and pIoU (`PixelPrecisionRecall`), and Top-1 /
Top-5 / GT-known Loc (`top_k_loc`), with the semantics of the WSOL benchmark's `BoxEvaluator`
and `MaskEvaluator` (clovaai/wsolevaluation, `evaluation.py`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rpsloc.boxes import TracedMap, check_score_map, trace_map, traced_best_ious
from rpsloc.errors import InputError


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
        empty_is_miss: bool = False,
    ) -> None:
        self.thresholds = _as_increasing_thresholds(thresholds)
        self.iou_thresholds = tuple(int(d) for d in iou_thresholds)
        if not self.iou_thresholds or any(not 0 <= d <= 100 for d in self.iou_thresholds):
            raise InputError(
                f"iou_thresholds: expected percentages in [0, 100], found {iou_thresholds}"
            )
        self.multi_contour = multi_contour
        self.clip_to_image = clip_to_image
        self.empty_is_miss = empty_is_miss
        self._best_ious: list[np.ndarray] = []

    def add(self, score_map: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
        """Accumulate one image; returns its (T,) best IoU per threshold."""
        return self.add_traced(trace_map(score_map, self.thresholds), gt_boxes)

    def add_traced(self, traced: TracedMap, gt_boxes: np.ndarray) -> np.ndarray:
        """`add` for a map already traced on a grid holding these thresholds, so protocols
        that differ only in contour mode, clipping or first threshold trace it once."""
        best = traced_best_ious(
            traced.restricted(self.thresholds),
            gt_boxes,
            self.multi_contour,
            self.clip_to_image,
            self.empty_is_miss,
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

    def correct_counts(self) -> np.ndarray:
        """(len(iou_thresholds), T) int: how many images reach IoU d / 100 at each tau."""
        ious = self.best_ious
        return np.stack([(ious >= d / 100).sum(axis=0) for d in self.iou_thresholds])

    def box_acc(self) -> np.ndarray:
        """(len(iou_thresholds), T) BoxAcc in percent, `correct * 100 / n` as the benchmark."""
        if self.n_images == 0:
            raise InputError("BoxAccuracy: no image was added; BoxAcc is undefined")
        return self.correct_counts() * 100.0 / float(self.n_images)

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
            or (self.multi_contour, self.clip_to_image, self.empty_is_miss)
            != (other.multi_contour, other.clip_to_image, other.empty_is_miss)
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


def top_k_counts(
    ious: np.ndarray, labels: np.ndarray, top5: np.ndarray, iou_threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """How many images are located (IoU >= `iou_threshold`) with the label the classifier's
    first class, and among its five, at each threshold of `(n, T)` per-image best IoUs."""
    located = np.asarray(ious) >= iou_threshold
    labels = np.asarray(labels)
    top1 = (np.asarray(top5)[:, 0] == labels)[:, None]
    in_top5 = (np.asarray(top5) == labels[:, None]).any(axis=1)[:, None]
    return (located & top1).sum(axis=0), (located & in_top5).sum(axis=0)


def top_k_loc(
    ious: np.ndarray, labels: np.ndarray, top5: np.ndarray, iou_threshold: float = 0.5
) -> dict[str, float]:
    """GT-known, Top-1 and Top-5 Loc in percent from per-image best IoUs at one score-map
    threshold (METHOD.md 3): IoU >= `iou_threshold`, and for Top-1 / Top-5 the label is the
    classifier's first class / among its five."""
    ious = np.asarray(ious, dtype=np.float64)
    labels = np.asarray(labels)
    top5 = np.asarray(top5).reshape(len(labels), -1)
    if not len(ious) == len(labels) == len(top5) or len(ious) == 0:
        raise InputError(
            f"top_k_loc: expected as many IoUs, labels and top-5 rows (at least one), found "
            f"{len(ious)}, {len(labels)}, {len(top5)}"
        )
    located = ious >= iou_threshold
    return {
        "gt_known_loc": 100.0 * float(located.mean()),
        "top1_loc": 100.0 * float((located & (top5[:, 0] == labels)).mean()),
        "top5_loc": 100.0 * float((located & (top5 == labels[:, None]).any(axis=1)).mean()),
    }
