"""Representer explanations: which training images make a test image's foreground, and how
much (METHOD.md section 1; the derivation is in docs/method.md).

Because `w~ = sum_n r_n`, the unnormalised map value at a test position splits exactly into one
contribution per training image:

    w* . g[p] = sum_n  r_n . g[p] / ||w~||

Summed over the predicted foreground region R of a test image (the positions where
`w* . g[p] > 0`) and divided by |R|, the contributions of all training images add up to the
mean activation over R. Positive contributions support the prediction, negative ones oppose it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rpsloc.evaluation import evaluate_activations
from rpsloc.features import iter_eval_shards
from rpsloc.io import (
    atomic_h5,
    open_h5,
    provenance_attrs,
    read_strings,
    write_csv_atomic,
    write_strings,
)
from rpsloc.maps import activation_maps


def position_contributions(
    vectors: np.ndarray, unit_features: np.ndarray, unnormalised_norm: float
) -> np.ndarray:
    """`(N, h, w)`: r_n . g[p] / ||w~|| for one test image's `(h, w, C)` unit features; the sum
    over n is the map value `w* . g[p]` before the ReLU."""
    return np.einsum("nc,hwc->nhw", vectors, unit_features.astype(np.float64)) / unnormalised_norm


def region_contributions(
    vectors: np.ndarray, unit_features: np.ndarray, predictor: np.ndarray, unnormalised_norm: float
) -> tuple[np.ndarray, int]:
    """Each training image's mean contribution over the test image's predicted foreground
    region (positions with `w* . g[p] > 0`), and the region's size in feature cells."""
    flat = unit_features.reshape(-1, unit_features.shape[-1]).astype(np.float64)
    region = flat @ predictor > 0
    if not region.any():
        return np.zeros(len(vectors)), 0
    return vectors @ flat[region].mean(axis=0) / unnormalised_norm, int(region.sum())


def _global_representer(path: str | Path) -> dict[str, Any]:
    with open_h5(path) as handle:
        if handle.attrs["mode"] != "global":
            raise ValueError(f"{path}: explanations need a global w*, found {handle.attrs['mode']}")
        return {
            "image_ids": read_strings(handle["image_ids"]),
            "labels": handle["labels"][()],
            "vectors": handle["representer_vectors"][()].astype(np.float64),
            "image_values": handle["image_values"][()],
            "vector_norms": handle["image_vector_norms"][()],
            "predictor": handle["foreground_predictors"][0],
            "unnormalised_norm": float(np.linalg.norm(handle["unnormalised_predictors"][0])),
        }


def training_image_ranking(representer: str | Path) -> pd.DataFrame:
    """Training images ranked by their value `r_n . w*`: the top define "foreground" most."""
    loaded = _global_representer(representer)
    table = pd.DataFrame(
        {
            "image_id": loaded["image_ids"],
            "label": loaded["labels"],
            "value": loaded["image_values"],
            "vector_norm": loaded["vector_norms"],
        }
    )
    table = table.sort_values("value", ascending=False, kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def write_training_ranking(representer: str | Path, out: str | Path) -> None:
    write_csv_atomic(training_image_ranking(representer), out, float_format="%.8g")


def write_test_explanations(
    representer: str | Path,
    eval_shards: Sequence[str | Path],
    out: str | Path,
    top_k: int = 5,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Per test image, the top-k supporting and top-k opposing training images with their
    mean contributions over the predicted foreground region (layout: docs/hdf5-layout.md)."""
    loaded = _global_representer(representer)
    count = len(loaded["image_ids"])
    k = min(top_k, count)
    ids: list[str] = []
    support, support_values, oppose, oppose_values, sizes, totals = [], [], [], [], [], []
    for shard in iter_eval_shards(eval_shards):
        for features in shard.unit_features:
            contributions, size = region_contributions(
                loaded["vectors"], features, loaded["predictor"], loaded["unnormalised_norm"]
            )
            order = np.argsort(-contributions, kind="stable")
            support.append(order[:k])
            oppose.append(order[::-1][:k])
            support_values.append(contributions[order[:k]])
            oppose_values.append(contributions[order[::-1][:k]])
            sizes.append(size)
            totals.append(contributions.sum())
        ids += shard.image_ids
    attrs = {
        **provenance_attrs(eval_shards[0]),
        "stage": "explanations",
        "top_k": k,
        "representer": str(representer),
        "contribution": "mean over the predicted region of r_n . g[p] / ||w~||",
        **(provenance or {}),
    }
    with atomic_h5(out, attrs) as handle:
        write_strings(handle, "image_ids", ids)
        write_strings(handle, "training_image_ids", loaded["image_ids"])
        handle.create_dataset("support_indices", data=np.array(support, dtype=np.int64))
        handle.create_dataset("support_contributions", data=np.array(support_values))
        handle.create_dataset("oppose_indices", data=np.array(oppose, dtype=np.int64))
        handle.create_dataset("oppose_contributions", data=np.array(oppose_values))
        handle.create_dataset("region_sizes", data=np.array(sizes, dtype=np.int64))
        handle.create_dataset("region_activation", data=np.array(totals))


def selection_sizes(count: int, requested: Sequence[int] | None = None) -> list[int]:
    """The numbers m of top training images to rebuild `w*` from: roughly geometric, ending
    at all N (which gives back `w*` exactly)."""
    if requested:
        return sorted({min(max(1, m), count) for m in requested} | {count})
    sizes = {1, count}
    m = 1
    while m < count:
        sizes.add(m)
        m *= 2
    return sorted(sizes)


def selected_predictor(vectors: np.ndarray, image_values: np.ndarray, m: int) -> np.ndarray:
    """`w*` rebuilt from the m training images with the largest values r_n . w*."""
    order = np.argsort(-image_values, kind="stable")[:m]
    rebuilt = vectors[order].sum(axis=0)
    return rebuilt / np.linalg.norm(rebuilt)


def selection_curve(
    representer: str | Path,
    eval_shards: Sequence[str | Path],
    sizes: Sequence[int] | None = None,
    interval: float = 0.01,
    iou_thresholds: Sequence[int] = (30, 50, 70),
) -> pd.DataFrame:
    """Representer point selection: MaxBoxAccV2 (benchmark protocol) of `w*` rebuilt from only
    the top-m training images, for a sweep of m."""
    loaded = _global_representer(representer)
    sweep = selection_sizes(len(loaded["image_ids"]), sizes)
    predictors = [selected_predictor(loaded["vectors"], loaded["image_values"], m) for m in sweep]
    image_ids: list[str] = []
    maps: list[list[np.ndarray]] = [[] for _ in sweep]
    for shard in iter_eval_shards(eval_shards):
        image_ids += shard.image_ids
        for per_size, predictor in zip(maps, predictors, strict=True):
            per_size.append(activation_maps(shard.unit_features, predictor))
    image_size = int(provenance_attrs(eval_shards[0])["image_size"])
    rows = []
    for m, predictor, per_size in zip(sweep, predictors, maps, strict=True):
        _, summary = evaluate_activations(
            np.concatenate(per_size),
            image_ids,
            eval_shards,
            None,
            image_size,
            interval,
            iou_thresholds,
        )
        rows.append(
            {
                "m": m,
                "fraction": m / len(loaded["image_ids"]),
                "cosine_to_full": float(predictor @ loaded["predictor"]),
                **{key: value for key, value in summary.items() if key.startswith("max_box")},
            }
        )
    return pd.DataFrame(rows)


def write_selection_curve(
    representer: str | Path,
    eval_shards: Sequence[str | Path],
    out: str | Path,
    sizes: Sequence[int] | None = None,
    interval: float = 0.01,
    iou_thresholds: Sequence[int] = (30, 50, 70),
) -> None:
    write_csv_atomic(
        selection_curve(representer, eval_shards, sizes, interval, iou_thresholds), out
    )
