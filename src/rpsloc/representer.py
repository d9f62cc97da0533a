"""Representer point selection: the closed-form foreground predictor `w*` and its decomposition
into training features (METHOD.md section 1).

With `a_n` the mean raw feature and `b_n` the mean L2-normalised feature of training image n,
`v = mean_n a_n`, `u = mean_n b_n`, `c = ||v|| / ||u||` and `w~ = v - c u`. Expanding the means,

    w~ = sum_{n,p} (1 - c / ||f_n[p]||) / (N P) * f_n[p] = sum_{n,p} alpha_{n,p} f_n[p],

so every training feature is a representer point with value `alpha_{n,p}`, and per image
`r_n = sum_p alpha_{n,p} f_n[p] = (a_n - c b_n) / N` with `w~ = sum_n r_n`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rpsloc.features import NORM_EPS, ImageStatistics, read_training_statistics
from rpsloc.io import atomic_h5, open_h5, provenance_attrs, write_strings


@dataclass(frozen=True)
class ForegroundPredictor:
    """`w*` with the quantities that define it, kept for provenance and explanations."""

    mean_feature: np.ndarray  # v, (C,)
    mean_unit_feature: np.ndarray  # u, (C,)
    norm_ratio: float  # c = ||v|| / ||u||
    unnormalised: np.ndarray  # w~ = v - c u, (C,)
    w: np.ndarray  # w* = w~ / ||w~||, (C,)
    n_images: int


def foreground_predictor(
    mean_features: np.ndarray, mean_unit_features: np.ndarray
) -> ForegroundPredictor:
    """w* = (v - c u) / ||v - c u|| with c = ||v|| / ||u||  (METHOD.md section 1)."""
    if mean_features.ndim != 2 or mean_features.shape != mean_unit_features.shape:
        raise ValueError(
            f"expected two (N, C) arrays of equal shape, got {mean_features.shape} and "
            f"{mean_unit_features.shape}"
        )
    if len(mean_features) == 0:
        raise ValueError("cannot compute w* from zero training images")
    if not (np.isfinite(mean_features).all() and np.isfinite(mean_unit_features).all()):
        bad = np.flatnonzero(
            ~np.isfinite(mean_features).all(1) | ~np.isfinite(mean_unit_features).all(1)
        )
        raise ValueError(f"non-finite training features at image indices {bad[:5].tolist()}")
    mean_feature = mean_features.astype(np.float64).mean(axis=0)
    mean_unit_feature = mean_unit_features.astype(np.float64).mean(axis=0)
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
        n_images=len(mean_features),
    )


def representer_vectors(
    mean_features: np.ndarray, mean_unit_features: np.ndarray, norm_ratio: float
) -> np.ndarray:
    """r_n = (a_n - c b_n) / N: training image n's share of w~ (their sum is w~)."""
    count = len(mean_features)
    return (mean_features.astype(np.float64) - norm_ratio * mean_unit_features) / count


def representer_values(position_norms: np.ndarray, norm_ratio: float) -> np.ndarray:
    """alpha_{n,p} = (1 - c / ||f_n[p]||) / (N P) for `(N, ...)` position norms.

    Positive where a training feature's norm exceeds c (it pulls w* towards itself), negative
    otherwise.
    """
    count = position_norms.shape[0]
    positions = int(np.prod(position_norms.shape[1:]))
    norms = np.maximum(position_norms.astype(np.float64), NORM_EPS)
    return (1.0 - norm_ratio / norms) / (count * positions)


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
class Representers:
    """The training images behind one or more foreground predictors, and their shares."""

    image_indices: np.ndarray  # (M,) into the training split
    predictors: dict[int, ForegroundPredictor]  # class label -> w*_k; {-1: w*} when global
    vectors: np.ndarray  # r_n, (M, C), relative to the image's own predictor
    image_values: np.ndarray  # r_n . w*, (M,)
    position_values: np.ndarray  # alpha_{n,p}, (M, h, w)


GLOBAL = -1


def compute_representers(
    statistics: ImageStatistics,
    labels: np.ndarray,
    classwise: bool = False,
    sampling_ratio: float = 1.0,
    seed: int = 0,
) -> Representers:
    """`w*` (or one `w*_k` per class) from a sampled subset of the training statistics, with
    every kept training image's representer vector, value and per-position values."""
    indices = select_training_images(labels, sampling_ratio, seed, classwise)
    groups = {int(k): indices[labels[indices] == k] for k in np.unique(labels[indices])}
    if not classwise:
        groups = {GLOBAL: indices}
    channels = statistics.mean_features.shape[1]
    vectors = np.zeros((len(indices), channels))
    position_values = np.zeros((len(indices), *statistics.position_norms.shape[1:]))
    image_values = np.zeros(len(indices))
    predictors = {}
    for key, members in groups.items():
        predictor = foreground_predictor(
            statistics.mean_features[members], statistics.mean_unit_features[members]
        )
        rows = np.searchsorted(indices, members)
        vectors[rows] = representer_vectors(
            statistics.mean_features[members],
            statistics.mean_unit_features[members],
            predictor.norm_ratio,
        )
        position_values[rows] = representer_values(
            statistics.position_norms[members], predictor.norm_ratio
        )
        image_values[rows] = vectors[rows] @ predictor.w
        predictors[key] = predictor
    return Representers(indices, predictors, vectors, image_values, position_values)


def write_representer(
    train_shards: Sequence[str | Path],
    out: str | Path,
    classwise: bool = False,
    sampling_ratio: float = 1.0,
    seed: int = 0,
    provenance: Mapping[str, Any] | None = None,
) -> Representers:
    """The representer stage: `w*` (global or per class) from the training shards, and every
    kept training image's share of it, written to `out` (layout: docs/hdf5-layout.md)."""
    image_ids, labels, statistics = read_training_statistics(train_shards)
    representers = compute_representers(statistics, labels, classwise, sampling_ratio, seed)
    keys = sorted(representers.predictors)
    predictors = [representers.predictors[key] for key in keys]
    kept = representers.image_indices
    attrs = {
        **provenance_attrs(train_shards[0]),
        "stage": "representer",
        "mode": "classwise" if classwise else "global",
        "sampling_ratio": sampling_ratio,
        "sampling_seed": seed,
        "n_training_images": len(image_ids),
        "n_images": len(kept),
        **(provenance or {}),
    }
    with atomic_h5(out, attrs) as handle:
        handle.create_dataset("training_indices", data=kept)
        write_strings(handle, "image_ids", [image_ids[i] for i in kept])
        handle.create_dataset("labels", data=labels[kept])
        handle.create_dataset("predictor_labels", data=np.array(keys, dtype=np.int64))
        handle.create_dataset("foreground_predictors", data=np.stack([p.w for p in predictors]))
        handle.create_dataset(
            "unnormalised_predictors", data=np.stack([p.unnormalised for p in predictors])
        )
        handle.create_dataset("norm_ratios", data=np.array([p.norm_ratio for p in predictors]))
        handle.create_dataset("predictor_counts", data=np.array([p.n_images for p in predictors]))
        handle.create_dataset("mean_features", data=np.stack([p.mean_feature for p in predictors]))
        handle.create_dataset(
            "mean_unit_features", data=np.stack([p.mean_unit_feature for p in predictors])
        )
        handle.create_dataset("representer_vectors", data=representers.vectors.astype(np.float32))
        handle.create_dataset("image_values", data=representers.image_values)
        handle.create_dataset(
            "image_vector_norms", data=np.linalg.norm(representers.vectors, axis=1)
        )
        handle.create_dataset(
            "representer_values", data=representers.position_values.astype(np.float32)
        )
    return representers


@dataclass(frozen=True)
class PredictorTable:
    """The foreground predictors of a representer file, looked up per test image."""

    labels: np.ndarray  # (K,) class labels; [-1] for a global predictor
    predictors: np.ndarray  # (K, C)
    unnormalised_norms: np.ndarray  # (K,) ||w~_k||
    source: Path

    @property
    def is_global(self) -> bool:
        return self.labels.tolist() == [GLOBAL]

    def for_labels(self, labels: np.ndarray) -> np.ndarray:
        """`(n, C)`: the global `w*` for every image, or `w*_k` of each image's class."""
        if self.is_global:
            return np.broadcast_to(self.predictors[0], (len(labels), self.predictors.shape[1]))
        rows = np.searchsorted(self.labels, labels).clip(0, len(self.labels) - 1)
        unknown = self.labels[rows] != labels
        if unknown.any():
            raise ValueError(
                f"{self.source}: no class-wise predictor for class "
                f"{int(np.asarray(labels)[unknown][0])} (training classes: "
                f"{self.labels.tolist()[:10]}...)"
            )
        return self.predictors[rows]


def read_predictors(path: str | Path) -> PredictorTable:
    """The foreground predictors of a representer file."""
    with open_h5(path) as handle:
        return PredictorTable(
            labels=handle["predictor_labels"][()],
            predictors=handle["foreground_predictors"][()],
            unnormalised_norms=np.linalg.norm(handle["unnormalised_predictors"][()], axis=1),
            source=Path(path),
        )
