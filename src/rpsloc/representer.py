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

from rpsloc.features import NORM_EPS, read_training_statistics
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


def write_representer(
    train_shards: Sequence[str | Path], out: str | Path, provenance: Mapping[str, Any] | None = None
) -> ForegroundPredictor:
    """The representer stage: `w*` from all training shards, and every training image's share
    of it, written to `out` (layout: docs/hdf5-layout.md)."""
    image_ids, labels, statistics = read_training_statistics(train_shards)
    predictor = foreground_predictor(statistics.mean_features, statistics.mean_unit_features)
    vectors = representer_vectors(
        statistics.mean_features, statistics.mean_unit_features, predictor.norm_ratio
    )
    attrs = {
        **provenance_attrs(train_shards[0]),
        "stage": "representer",
        "n_images": predictor.n_images,
        "norm_ratio": predictor.norm_ratio,
        "unnormalised_norm": float(np.linalg.norm(predictor.unnormalised)),
        **(provenance or {}),
    }
    with atomic_h5(out, attrs) as handle:
        write_strings(handle, "image_ids", image_ids)
        handle.create_dataset("labels", data=labels)
        handle.create_dataset("foreground_predictor", data=predictor.w)
        handle.create_dataset("unnormalised_predictor", data=predictor.unnormalised)
        handle.create_dataset("mean_feature", data=predictor.mean_feature)
        handle.create_dataset("mean_unit_feature", data=predictor.mean_unit_feature)
        handle.create_dataset("representer_vectors", data=vectors.astype(np.float32))
        handle.create_dataset("image_values", data=vectors @ predictor.w)
        handle.create_dataset("image_vector_norms", data=np.linalg.norm(vectors, axis=1))
        handle.create_dataset(
            "representer_values",
            data=representer_values(statistics.position_norms, predictor.norm_ratio).astype(
                np.float32
            ),
        )
    return predictor


def read_foreground_predictor(path: str | Path) -> np.ndarray:
    """`w*` from a representer file."""
    with open_h5(path) as handle:
        return handle["foreground_predictor"][()]
