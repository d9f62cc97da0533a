"""Activation maps at feature resolution, and their conversion to score maps for evaluation
(METHOD.md section 1: inference; section 1 variants: CAAM; the centre-Gaussian baseline).

Maps are computed from the cached, L2-normalised evaluation features, so every variant and
baseline shares one backbone pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rpsloc.features import EvalShard, iter_eval_shards
from rpsloc.io import atomic_h5, provenance_attrs, write_strings
from rpsloc.representer import read_foreground_predictor

VARIANTS = ("rps", "caam", "centre_gaussian")


def activation_maps(unit_features: np.ndarray, foreground_predictor: np.ndarray) -> np.ndarray:
    """A[p] = max(0, w* . g[p]) for `(N, h, w, C)` unit features: the method's maps."""
    scores = np.einsum(
        "nhwc,c->nhw", unit_features.astype(np.float32), foreground_predictor.astype(np.float32)
    )
    return np.maximum(scores, 0.0)


def caam_maps(unit_features: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """CAAM baseline: A[p] = sum_c f[p]_c, the raw features rebuilt as ||f|| * g."""
    return unit_features.astype(np.float32).sum(axis=-1) * norms.astype(np.float32)


def centre_gaussian_maps(count: int, height: int, width: int, sigma: float = 0.5) -> np.ndarray:
    """Centre baseline: an isotropic Gaussian over [-1, 1]^2 coordinates, the same for every
    image; thresholding it gives centred boxes of every size."""
    ys = np.linspace(-1.0, 1.0, height) if height > 1 else np.zeros(1)
    xs = np.linspace(-1.0, 1.0, width) if width > 1 else np.zeros(1)
    squared = ys[:, None] ** 2 + xs[None, :] ** 2
    gaussian = np.exp(-squared / (2 * sigma**2)).astype(np.float32)
    return np.broadcast_to(gaussian, (count, height, width)).copy()


def normalize_map(activation: np.ndarray) -> np.ndarray:
    """Min-max normalise one map to [0, 1]; a constant map becomes all zeros, never NaN."""
    activation = activation.astype(np.float32)
    if not np.isfinite(activation).all():
        raise ValueError("activation map has non-finite values")
    low, high = float(activation.min()), float(activation.max())
    if high - low <= 0:
        return np.zeros_like(activation)
    return (activation - low) / (high - low)


def upsample_map(score_map: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling to `size` x `size` with align_corners=True, as the authors do."""
    tensor = torch.from_numpy(np.ascontiguousarray(score_map, dtype=np.float32))[None, None]
    resized = torch.nn.functional.interpolate(
        tensor, size=(size, size), mode="bilinear", align_corners=True
    )
    return resized[0, 0].clamp_(0.0, 1.0).numpy()


def score_map(activation: np.ndarray, size: int) -> np.ndarray:
    """The map the protocol thresholds: normalised, then upsampled to the crop."""
    return upsample_map(normalize_map(activation), size)


def variant_maps(
    variant: str, shard: EvalShard, foreground_predictor: np.ndarray | None
) -> np.ndarray:
    """The `(n, h, w)` activation maps of one evaluation shard for a map variant."""
    if variant == "rps":
        if foreground_predictor is None:
            raise ValueError("variant 'rps' needs the representer file (w*)")
        return activation_maps(shard.unit_features, foreground_predictor)
    if variant == "caam":
        return caam_maps(shard.unit_features, shard.norms)
    if variant == "centre_gaussian":
        return centre_gaussian_maps(*shard.norms.shape)
    raise ValueError(f"unknown map variant {variant!r}; expected one of {VARIANTS}")


def write_maps(
    variant: str,
    eval_shards: Sequence[str | Path],
    out: str | Path,
    representer: str | Path | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """The maps stage: activation maps of every image of an evaluation split, at feature
    resolution and before normalisation (layout: docs/hdf5-layout.md)."""
    predictor = read_foreground_predictor(representer) if representer else None
    ids: list[str] = []
    labels, maps = [], []
    for shard in iter_eval_shards(eval_shards):
        ids += shard.image_ids
        labels.append(shard.labels)
        maps.append(variant_maps(variant, shard, predictor))
    attrs = {
        **provenance_attrs(eval_shards[0]),
        "stage": "maps",
        "variant": variant,
        "n_images": len(ids),
        "values": "activation before min-max normalisation",
        **(provenance or {}),
    }
    with atomic_h5(out, attrs) as handle:
        write_strings(handle, "image_ids", ids)
        handle.create_dataset("labels", data=np.concatenate(labels))
        handle.create_dataset("maps", data=np.concatenate(maps).astype(np.float32))
