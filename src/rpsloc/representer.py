"""Representer point selection: the closed-form foreground predictor `w*` and its decomposition
into training features (METHOD.md section 1).

With `a_n` the mean raw feature and `b_n` the mean L2-normalised feature of training image n,
`v = mean_n a_n`, `u = mean_n b_n`, `c = ||v|| / ||u||` and `w~ = v - c u`. Expanding the means,

    w~ = sum_{n,p} (1 - c / ||f_n[p]||) / (N P) * f_n[p] = sum_{n,p} alpha_{n,p} f_n[p],

so every training feature is a representer point with value `alpha_{n,p}`, and per image
`r_n = sum_p alpha_{n,p} f_n[p] = (a_n - c b_n) / N` with `w~ = sum_n r_n`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rpsloc.io import atomic_h5, provenance_attrs
from rpsloc.readers import (
    GLOBAL,
    NORM_EPS,
    ImageStatistics,
    TrainingShard,
    iter_training_shards,
    read_top1,
    read_training_ids,
    read_training_labels,
)


@dataclass(frozen=True)
class ForegroundPredictor:
    """`w*` with the quantities that define it, kept for provenance and explanations."""

    mean_feature: np.ndarray  # v, (C,)
    mean_unit_feature: np.ndarray  # u, (C,)
    norm_ratio: float  # c = ||v|| / ||u||
    unnormalised: np.ndarray  # w~ = v - c u, (C,)
    w: np.ndarray  # w* = w~ / ||w~||, (C,)
    n_images: int


class PredictorSums:
    """Running sums of `a_n` and `b_n` per predictor (one row per class, or one global row).

    Images are added one at a time in training-split order (`np.add.at` is unbuffered and
    sequential), so the sums, and `w*`, are bit-identical however the split is sharded, and
    memory holds K x C numbers, never N x C.
    """

    def __init__(self, n_predictors: int, channels: int):
        self.feature_sums = np.zeros((n_predictors, channels))
        self.unit_feature_sums = np.zeros((n_predictors, channels))
        self.counts = np.zeros(n_predictors, dtype=np.int64)

    def add(
        self, predictor_rows: np.ndarray, mean_features: np.ndarray, mean_unit_features: np.ndarray
    ) -> None:
        """Add images' `a_n` and `b_n` to the sums of their predictors (`predictor_rows`)."""
        np.add.at(self.feature_sums, predictor_rows, mean_features.astype(np.float64))
        np.add.at(self.unit_feature_sums, predictor_rows, mean_unit_features.astype(np.float64))
        np.add.at(self.counts, predictor_rows, 1)

    def predictor(self, row: int) -> ForegroundPredictor:
        """w* = (v - c u) / ||v - c u|| with c = ||v|| / ||u||  (METHOD.md section 1)."""
        count = int(self.counts[row])
        if count == 0:
            raise ValueError("cannot compute w* from zero training images")
        mean_feature = self.feature_sums[row] / count
        mean_unit_feature = self.unit_feature_sums[row] / count
        norm_ratio = float(
            np.linalg.norm(mean_feature) / max(np.linalg.norm(mean_unit_feature), NORM_EPS)
        )
        unnormalised = mean_feature - norm_ratio * mean_unit_feature
        length = np.linalg.norm(unnormalised)
        if length <= NORM_EPS:
            raise ValueError(
                "w~ = v - c u is zero: every training feature has the same norm, so no direction "
                "separates foreground from background"
            )
        return ForegroundPredictor(
            mean_feature=mean_feature,
            mean_unit_feature=mean_unit_feature,
            norm_ratio=norm_ratio,
            unnormalised=unnormalised,
            w=unnormalised / length,
            n_images=count,
        )


def foreground_predictor(
    mean_features: np.ndarray, mean_unit_features: np.ndarray
) -> ForegroundPredictor:
    """w* of `(N, C)` per-image mean features `a_n` and mean unit features `b_n`
    (METHOD.md section 1)."""
    if mean_features.ndim != 2 or mean_features.shape != mean_unit_features.shape:
        raise ValueError(
            f"expected two (N, C) arrays of equal shape, got {mean_features.shape} and "
            f"{mean_unit_features.shape}"
        )
    if not (np.isfinite(mean_features).all() and np.isfinite(mean_unit_features).all()):
        bad = np.flatnonzero(
            ~np.isfinite(mean_features).all(1) | ~np.isfinite(mean_unit_features).all(1)
        )
        raise ValueError(f"non-finite training features at image indices {bad[:5].tolist()}")
    sums = PredictorSums(1, mean_features.shape[1])
    sums.add(np.zeros(len(mean_features), dtype=np.int64), mean_features, mean_unit_features)
    return sums.predictor(0)


def representer_vectors(
    mean_features: np.ndarray, mean_unit_features: np.ndarray, norm_ratio: float, n_images: int
) -> np.ndarray:
    """r_n = (a_n - c b_n) / N: training image n's share of w~ (the N shares sum to w~).
    `N` is the number of images behind the predictor, not the number of rows given."""
    return (mean_features.astype(np.float64) - norm_ratio * mean_unit_features) / n_images


def representer_values(position_norms: np.ndarray, norm_ratio: float, n_images: int) -> np.ndarray:
    """alpha_{n,p} = (1 - c / ||f_n[p]||) / (N P) for `(n, ...)` position norms.

    Positive where a training feature's norm exceeds c (it pulls w* towards itself), negative
    otherwise.
    """
    positions = int(np.prod(position_norms.shape[1:]))
    norms = np.maximum(position_norms.astype(np.float64), NORM_EPS)
    return (1.0 - norm_ratio / norms) / (n_images * positions)


def select_training_images(
    labels: np.ndarray, sampling_ratio: float, seed: int, classwise: bool
) -> np.ndarray:
    """Sorted indices of the training images kept by a sampling ratio r (METHOD.md section 1
    variants): floor(N r) images drawn with a fixed seed, or, class-wise, a quota of
    floor(N r / K) from each class (all of a class's images where it has fewer)."""
    count = len(labels)
    if not 0 < sampling_ratio <= 1:
        raise ValueError(f"sampling ratio must be in (0, 1], got {sampling_ratio}")
    if sampling_ratio == 1:
        return np.arange(count)
    generator = np.random.default_rng(seed)
    if not classwise:
        size = int(np.floor(count * sampling_ratio))
        if size == 0:
            raise ValueError(f"sampling ratio {sampling_ratio} of {count} images keeps none")
        return np.sort(generator.choice(count, size=size, replace=False))
    classes = np.unique(labels)
    quota = int(np.floor(count * sampling_ratio / len(classes)))
    if quota == 0:
        raise ValueError(
            f"sampling ratio {sampling_ratio} of {count} images over {len(classes)} classes "
            "gives a per-class quota of 0"
        )
    chosen = [
        generator.choice(members, size=min(quota, len(members)), replace=False)
        for members in (np.flatnonzero(labels == label) for label in classes)
    ]
    return np.sort(np.concatenate(chosen))


@dataclass(frozen=True)
class Selection:
    """Which training images shape which predictor: kept images and their predictor's row."""

    image_indices: np.ndarray  # (M,) sorted, into the training split
    predictor_keys: np.ndarray  # (K,) class labels, or [GLOBAL]
    predictor_rows: np.ndarray  # (M,) row in predictor_keys of each kept image

    @classmethod
    def of(cls, labels: np.ndarray, classwise: bool, sampling_ratio: float, seed: int) -> Selection:
        indices = select_training_images(labels, sampling_ratio, seed, classwise)
        if not classwise:
            return cls(indices, np.array([GLOBAL]), np.zeros(len(indices), dtype=np.int64))
        keys, rows = np.unique(labels[indices], return_inverse=True)
        return cls(indices, keys.astype(np.int64), rows.astype(np.int64))

    def rows_within(self, start: int, stop: int) -> slice:
        """The kept images whose training index is in [start, stop), as a slice of M."""
        return slice(*np.searchsorted(self.image_indices, [start, stop]))


@dataclass(frozen=True)
class Representers:
    """The training images behind one or more foreground predictors, and their shares."""

    image_indices: np.ndarray  # (M,) into the training split
    predictors: dict[int, ForegroundPredictor]  # class label -> w*_k; {-1: w*} when global
    vectors: np.ndarray  # r_n, (M, C), relative to the image's own predictor
    image_values: np.ndarray  # r_n . w*, (M,)
    position_values: np.ndarray  # alpha_{n,p}, (M, h, w)


def _predictors(
    selection: Selection, chunks: Iterable[ImageStatistics]
) -> list[ForegroundPredictor]:
    """First pass: `w*` of every predictor from consecutive chunks of the training split."""
    sums = None
    start = 0
    for statistics in chunks:
        stop = start + len(statistics.mean_features)
        if sums is None:
            sums = PredictorSums(len(selection.predictor_keys), statistics.mean_features.shape[1])
        rows = selection.rows_within(start, stop)
        local = selection.image_indices[rows] - start
        sums.add(
            selection.predictor_rows[rows],
            statistics.mean_features[local],
            statistics.mean_unit_features[local],
        )
        start = stop
    if sums is None:
        raise ValueError("cannot compute w* from zero training images")
    return [sums.predictor(row) for row in range(len(selection.predictor_keys))]


def _shares(
    selection: Selection,
    predictors: Sequence[ForegroundPredictor],
    statistics: ImageStatistics,
    start: int,
) -> tuple[slice, np.ndarray, np.ndarray, np.ndarray]:
    """Second pass, one chunk starting at training index `start`: the kept images' slice of M,
    with their representer vectors, image values and per-position values, each relative to
    the image's own predictor."""
    rows = selection.rows_within(start, start + len(statistics.mean_features))
    local = selection.image_indices[rows] - start
    owners = selection.predictor_rows[rows]
    vectors = np.zeros((len(local), statistics.mean_features.shape[1]))
    position_values = np.zeros((len(local), *statistics.position_norms.shape[1:]))
    image_values = np.zeros(len(local))
    for row in np.unique(owners):
        members = owners == row
        images = local[members]
        predictor = predictors[row]
        vectors[members] = representer_vectors(
            statistics.mean_features[images],
            statistics.mean_unit_features[images],
            predictor.norm_ratio,
            predictor.n_images,
        )
        position_values[members] = representer_values(
            statistics.position_norms[images], predictor.norm_ratio, predictor.n_images
        )
        image_values[members] = vectors[members] @ predictor.w
    return rows, vectors, image_values, position_values


def compute_representers(
    statistics: ImageStatistics,
    labels: np.ndarray,
    classwise: bool = False,
    sampling_ratio: float = 1.0,
    seed: int = 0,
) -> Representers:
    """`w*` (or one `w*_k` per class) from a sampled subset of in-memory training statistics,
    with every kept training image's representer vector, value and per-position values."""
    selection = Selection.of(labels, classwise, sampling_ratio, seed)
    predictors = _predictors(selection, [statistics])
    _, vectors, image_values, position_values = _shares(selection, predictors, statistics, 0)
    return Representers(
        selection.image_indices,
        dict(zip(selection.predictor_keys.tolist(), predictors, strict=True)),
        vectors,
        image_values,
        position_values,
    )


def write_representer(
    train_shards: Sequence[str | Path],
    out: str | Path,
    classwise: bool = False,
    sampling_ratio: float = 1.0,
    seed: int = 0,
    provenance: Mapping[str, Any] | None = None,
    predictions: str | Path | None = None,
) -> list[ForegroundPredictor]:
    """The representer stage: `w*` (global or per class) from the training shards, and every
    kept training image's share of it, written to `out` (layout: docs/hdf5-layout.md).

    With a classify-stage `predictions` file of the training split, class-wise predictors are
    built from the classes the classifier predicts (its top-1) instead of the labels, as the
    authors' code does with a classifier on ImageNet; the labels are then never read.

    Two passes over the shards, one shard in memory at a time: the first sums `a_n` and `b_n`
    per predictor, the second writes each kept image's shares, so memory does not grow with
    the training split (ImageNet's a_n and b_n alone are 21 GB)."""
    if predictions is not None and not classwise:
        raise ValueError("predicted training classes only serve class-wise predictors")
    labels = (
        read_training_labels(train_shards)
        if predictions is None
        else read_top1(predictions, read_training_ids(train_shards))
    )
    selection = Selection.of(labels, classwise, sampling_ratio, seed)
    predictors = _predictors(
        selection, (shard.statistics for shard in iter_training_shards(train_shards))
    )
    kept = selection.image_indices
    attrs = {
        **provenance_attrs(train_shards[0]),
        "stage": "representer",
        "mode": "classwise" if classwise else "global",
        "classes": "ground truth" if predictions is None else "classifier top-1",
        "predictions": str(predictions or ""),
        "sampling_ratio": sampling_ratio,
        "sampling_seed": seed,
        "n_training_images": len(labels),
        "n_images": len(kept),
        **(provenance or {}),
    }
    with atomic_h5(out, attrs) as handle:
        handle.create_dataset("training_indices", data=kept)
        handle.create_dataset("labels", data=labels[kept])
        handle.create_dataset("predictor_labels", data=selection.predictor_keys)
        for name, values in (
            ("foreground_predictors", [p.w for p in predictors]),
            ("unnormalised_predictors", [p.unnormalised for p in predictors]),
            ("mean_features", [p.mean_feature for p in predictors]),
            ("mean_unit_features", [p.mean_unit_feature for p in predictors]),
        ):
            handle.create_dataset(name, data=np.stack(values))
        handle.create_dataset("norm_ratios", data=np.array([p.norm_ratio for p in predictors]))
        handle.create_dataset("predictor_counts", data=np.array([p.n_images for p in predictors]))
        _write_shares(handle, selection, predictors, iter_training_shards(train_shards))
    return predictors


def _write_shares(
    handle: h5py.File,
    selection: Selection,
    predictors: Sequence[ForegroundPredictor],
    shards: Iterable[TrainingShard],
) -> None:
    """The per-image datasets of a representer file, filled shard by shard."""
    count = len(selection.image_indices)
    datasets = None
    start = 0
    for shard in shards:
        rows, vectors, image_values, position_values = _shares(
            selection, predictors, shard.statistics, start
        )
        if datasets is None:
            channels = shard.statistics.mean_features.shape[1]
            grid = shard.statistics.position_norms.shape[1:]
            datasets = {
                "image_ids": handle.create_dataset(
                    "image_ids", (count,), h5py.string_dtype("utf-8")
                ),
                "representer_vectors": handle.create_dataset(
                    "representer_vectors", (count, channels), np.float32
                ),
                "image_values": handle.create_dataset("image_values", (count,), np.float64),
                "image_vector_norms": handle.create_dataset(
                    "image_vector_norms", (count,), np.float64
                ),
                "representer_values": handle.create_dataset(
                    "representer_values", (count, *grid), np.float32
                ),
            }
        local = selection.image_indices[rows] - start
        datasets["image_ids"][rows] = [shard.image_ids[i] for i in local]
        datasets["representer_vectors"][rows] = vectors.astype(np.float32)
        datasets["image_values"][rows] = image_values
        datasets["image_vector_norms"][rows] = np.linalg.norm(vectors, axis=1)
        datasets["representer_values"][rows] = position_values.astype(np.float32)
        start += len(shard.image_ids)
