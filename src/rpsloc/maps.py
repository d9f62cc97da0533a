"""Activation maps at feature resolution (METHOD.md section 1: inference and variants; the
CAAM, DDT and centre-Gaussian baselines; the LOST, TokenCut and DINO-attention peers of
`rpsloc.discovery`, LOST's and TokenCut's with their own boxes). Their conversion to score maps
is `rpsloc.scoremaps`.

Maps are computed from the cached, L2-normalised evaluation features, so every variant and
baseline shares one backbone pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rpsloc.discovery import dino_attention, lost, standardised, tokencut
from rpsloc.io import atomic_h5, provenance_attrs, write_strings
from rpsloc.readers import (
    EvalShard,
    PredictorTable,
    iter_eval_shards,
    per_image_slices,
    read_predictors,
    read_top1,
)
from rpsloc.variants import Variant, parse_variant


def activation_maps(unit_features: np.ndarray, foreground_predictor: np.ndarray) -> np.ndarray:
    """A[p] = max(0, w* . g[p]) for `(n, h, w, C)` unit features: the method's maps. The
    predictor is one `(C,)` vector for all images or `(n, C)`, one per image (class-wise)."""
    count, channels = len(unit_features), unit_features.shape[-1]
    per_image = np.broadcast_to(foreground_predictor.astype(np.float32), (count, channels))

    def maps(features: np.ndarray, predictors: np.ndarray) -> np.ndarray:
        return np.maximum(np.einsum("nhwc,nc->nhw", features.astype(np.float32), predictors), 0.0)

    return per_image_slices(maps, unit_features, per_image)


def caam_maps(unit_features: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """CAAM baseline: A[p] = sum_c f[p]_c, the raw features rebuilt as ||f|| * g."""

    def maps(features: np.ndarray, feature_norms: np.ndarray) -> np.ndarray:
        return features.astype(np.float32).sum(axis=-1) * feature_norms.astype(np.float32)

    return per_image_slices(maps, unit_features, norms)


def centre_gaussian_maps(count: int, height: int, width: int, sigma: float = 0.5) -> np.ndarray:
    """Centre baseline: an isotropic Gaussian over [-1, 1]^2 coordinates, the same for every
    image; thresholding it gives centred boxes of every size."""
    ys = np.linspace(-1.0, 1.0, height) if height > 1 else np.zeros(1)
    xs = np.linspace(-1.0, 1.0, width) if width > 1 else np.zeros(1)
    squared = ys[:, None] ** 2 + xs[None, :] ** 2
    gaussian = np.exp(-squared / (2 * sigma**2)).astype(np.float32)
    return np.broadcast_to(gaussian, (count, height, width)).copy()


def ddt_direction(eval_shards: Sequence[str | Path]) -> tuple[np.ndarray, np.ndarray]:
    """DDT baseline (Wei et al., as PSOL uses it): the mean and the first principal component
    of all raw feature vectors of the split, in one streaming pass. The component's sign is
    chosen so that its projection grows with the feature norm (PCA leaves it arbitrary)."""
    total, outer, weighted, norm_total, count = 0.0, 0.0, 0.0, 0.0, 0
    for shard in iter_eval_shards(eval_shards):
        raw = (shard.unit_features.astype(np.float64) * shard.norms[..., None]).reshape(
            -1, shard.unit_features.shape[-1]
        )
        norms = shard.norms.reshape(-1).astype(np.float64)
        total = total + raw.sum(axis=0)
        outer = outer + raw.T @ raw
        weighted = weighted + raw.T @ norms
        norm_total += norms.sum()
        count += len(raw)
    mean = total / count
    covariance = outer / count - np.outer(mean, mean)
    component = np.linalg.eigh(covariance)[1][:, -1]
    if component @ (weighted - mean * norm_total) < 0:
        component = -component
    return mean, component


def ddt_maps(shard: EvalShard, mean: np.ndarray, component: np.ndarray) -> np.ndarray:
    """A[p] = max(0, (f[p] - mean) . component): positive projections mark the common object."""

    def maps(features: np.ndarray, norms: np.ndarray) -> np.ndarray:
        raw = features.astype(np.float32) * norms[..., None]
        return np.maximum((raw - mean.astype(np.float32)) @ component.astype(np.float32), 0.0)

    return per_image_slices(maps, shard.unit_features, shard.norms)


#: What a peer ran on (`peer_input` of its maps file).
KEYS_INPUT = "last-block keys"
FEATURE_MAP_INPUT = "feature map (no ViT keys)"


def peer_maps(variant: Variant, shard: EvalShard) -> tuple[np.ndarray, np.ndarray | None, str]:
    """A peer's `(n, h, w)` maps of one evaluation shard, its `(n, 4)` own boxes in feature
    cells (LOST, TokenCut; None for DINO attention) and what it ran on: the ViT keys the
    features stage stored, or the feature map itself (LOST's own choice for CNNs,
    `discovery.standardised`). The box-only methods' map is their object's mask."""
    if variant.kind == "dino_attention":
        if "cls_attention" not in shard.discovery:
            raise ValueError(
                "variant 'dino_attention' needs a ViT's CLS attention in the feature shards"
            )
        return (
            np.stack([dino_attention(a) for a in shard.discovery["cls_attention"]]),
            None,
            "CLS attention",
        )
    grid = shard.norms.shape[1:]
    if "keys" in shard.discovery:
        inputs, used = iter(shard.discovery["keys"]), KEYS_INPUT
    else:  # one image's float64 copy at a time
        inputs = (
            standardised(features.astype(np.float64) * norms[..., None])
            for features, norms in zip(shard.unit_features, shard.norms, strict=True)
        )
        used = FEATURE_MAP_INPUT
    method = lost if variant.kind == "lost" else tokencut
    found = [method(features.reshape(-1, features.shape[-1]), grid) for features in inputs]
    maps = np.stack([item.mask.astype(np.float32) for item in found])
    return maps, np.stack([item.box for item in found]), used


def variant_maps(
    variant: Variant,
    shard: EvalShard,
    predictors: PredictorTable | None = None,
    class_labels: np.ndarray | None = None,
    ddt: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """The `(n, h, w)` activation maps of one evaluation shard for a map variant.

    `class_labels` picks each image's class-wise predictor (ground truth or a classifier's
    top-1); a global predictor ignores it."""
    if variant.kind == "rps":
        if predictors is None:
            raise ValueError(f"variant {variant.name!r} needs a representer file (w*)")
        labels = shard.labels if class_labels is None else class_labels
        return activation_maps(shard.unit_features, predictors.for_labels(labels))
    if variant.kind == "caam":
        return caam_maps(shard.unit_features, shard.norms)
    if variant.kind == "ddt":
        return ddt_maps(shard, *ddt)
    if variant.discovery_input is not None:
        return peer_maps(variant, shard)[0]
    return centre_gaussian_maps(*shard.norms.shape)


def write_maps(
    variant: str,
    eval_shards: Sequence[str | Path],
    out: str | Path,
    representer: str | Path | None = None,
    predictions: str | Path | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """The maps stage: activation maps of every image of an evaluation split, at feature
    resolution and before normalisation (layout: docs/hdf5-layout.md)."""
    spec = parse_variant(variant)
    predictors = read_predictors(representer) if representer else None
    if spec.class_source == "top1" and predictions is None:
        raise ValueError(f"variant {variant!r} needs a classifier's predictions file")
    ddt = ddt_direction(eval_shards) if spec.kind == "ddt" else None
    ids: list[str] = []
    labels, maps, own_boxes, peer_inputs = [], [], [], set()
    for shard in iter_eval_shards(eval_shards):
        class_labels = (
            read_top1(predictions, shard.image_ids) if spec.class_source == "top1" else None
        )
        ids += shard.image_ids
        labels.append(shard.labels)
        if spec.discovery_input is None:
            maps.append(variant_maps(spec, shard, predictors, class_labels, ddt))
            continue
        shard_maps, boxes, used = peer_maps(spec, shard)
        maps.append(shard_maps)
        own_boxes += [] if boxes is None else [boxes]
        peer_inputs.add(used)
    attrs = {
        **provenance_attrs(eval_shards[0]),
        "stage": "maps",
        "variant": variant,
        "n_images": len(ids),
        "values": "activation before min-max normalisation",
        "representer": str(representer or ""),
        "peer_input": ", ".join(sorted(peer_inputs)),
        **(provenance or {}),
    }
    with atomic_h5(out, attrs) as handle:
        write_strings(handle, "image_ids", ids)
        handle.create_dataset("labels", data=np.concatenate(labels))
        handle.create_dataset("maps", data=np.concatenate(maps).astype(np.float32))
        if own_boxes:
            boxes = handle.create_dataset("own_boxes", data=np.concatenate(own_boxes))
            boxes.attrs["units"] = "feature cells, x0 y0 x1 y1, x1 and y1 exclusive"
