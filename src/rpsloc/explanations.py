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

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rpsloc.io import atomic_h5, open_h5, provenance_attrs, write_csv_atomic, write_strings
from rpsloc.maps import activation_maps
from rpsloc.readers import iter_eval_shards, read_global_representer


def position_contributions(
    vectors: np.ndarray, unit_features: np.ndarray, unnormalised_norm: float
) -> np.ndarray:
    """`(N, h, w)`: r_n . g[p] / ||w~|| for one test image's `(h, w, C)` unit features; the sum
    over n is the map value `w* . g[p]` before the ReLU."""
    return np.einsum("nc,hwc->nhw", vectors, unit_features.astype(np.float64)) / unnormalised_norm


def foreground_region_mean(
    unit_features: np.ndarray, predictor: np.ndarray
) -> tuple[np.ndarray, int]:
    """The mean `(C,)` unit feature over a test image's predicted foreground region (positions
    with `w* . g[p] > 0`) and the region's size in feature cells; zeros and 0 when empty."""
    flat = unit_features.reshape(-1, unit_features.shape[-1]).astype(np.float64)
    region = flat @ predictor > 0
    if not region.any():
        return np.zeros(flat.shape[1]), 0
    return flat[region].mean(axis=0), int(region.sum())


def region_contributions(
    vectors: np.ndarray, unit_features: np.ndarray, predictor: np.ndarray, unnormalised_norm: float
) -> tuple[np.ndarray, int]:
    """Each training image's mean contribution over the test image's predicted foreground
    region, and the region's size in feature cells."""
    region_mean, size = foreground_region_mean(unit_features, predictor)
    return vectors @ region_mean / unnormalised_norm, size


class RunningTopK:
    """The k largest scores per row seen so far, with their column indices, over column chunks
    that arrive in index order; ties go to the earlier index, as a stable sort would give."""

    def __init__(self, rows: int, k: int):
        self.k = k
        self.scores = np.empty((rows, 0))
        self.indices = np.empty((rows, 0), dtype=np.int64)

    def update(self, scores: np.ndarray, first_index: int) -> None:
        columns = np.broadcast_to(
            np.arange(first_index, first_index + scores.shape[1]), scores.shape
        )
        if scores.shape[1] > self.k:  # only a chunk's own top k can enter the top k
            keep = _first_k_largest(scores, self.k)
            scores, columns = np.take_along_axis(scores, keep, axis=1), columns[0][keep]
        merged_scores = np.concatenate([self.scores, scores], axis=1)
        merged_indices = np.concatenate([self.indices, columns], axis=1)
        order = np.argsort(-merged_scores, axis=1, kind="stable")[:, : self.k]
        self.scores = np.take_along_axis(merged_scores, order, axis=1)
        self.indices = np.take_along_axis(merged_indices, order, axis=1)


def _first_k_largest(scores: np.ndarray, k: int) -> np.ndarray:
    """`(rows, k)` column indices, ascending, of each row's k largest scores; of scores tied
    with the k-th largest, the earliest columns."""
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]
    above = scores > kth
    tied = scores == kth
    room = k - above.sum(axis=1, keepdims=True)
    chosen = above | (tied & (np.cumsum(tied, axis=1) <= room))
    return np.nonzero(chosen)[1].reshape(len(scores), k)


#: Training representer vectors held in memory at once (float64: 1024 x 2048 is 17 MB).
TRAINING_CHUNK = 1024


def training_image_ranking(representer: str | Path) -> pd.DataFrame:
    """Training images ranked by their value `r_n . w*`: the top define "foreground" most."""
    loaded = read_global_representer(representer)
    table = pd.DataFrame(
        {
            "image_id": loaded.image_ids,
            "label": loaded.labels,
            "value": loaded.image_values,
            "vector_norm": loaded.vector_norms,
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
    mean contributions over the predicted foreground region (layout: docs/hdf5-layout.md).

    Memory holds one evaluation shard and `TRAINING_CHUNK` training vectors, whatever the split
    sizes; the work is (training images x channels) per test image, so ImageNet's full 1.28M
    representers against 50k test images is about 1.3e14 multiply-adds.
    """
    loaded = read_global_representer(representer)
    count = len(loaded.image_ids)
    k = min(top_k, count)
    ids: list[str] = []
    parts: dict[str, list[np.ndarray]] = {
        name: []
        for name in (
            "support_indices",
            "support_contributions",
            "oppose_indices",
            "oppose_contributions",
            "region_sizes",
            "region_activation",
        )
    }
    with open_h5(representer) as handle:
        vectors = handle["representer_vectors"]
        for shard in iter_eval_shards(eval_shards):
            regions = [foreground_region_mean(f, loaded.predictor) for f in shard.unit_features]
            region_means = np.array([mean for mean, _ in regions]).reshape(len(regions), -1)
            support, oppose = RunningTopK(len(regions), k), RunningTopK(len(regions), k)
            totals = np.zeros(len(regions))
            for start in range(0, count, TRAINING_CHUNK):
                chunk = vectors[start : start + TRAINING_CHUNK].astype(np.float64)
                contributions = region_means @ chunk.T / loaded.unnormalised_norm
                totals += contributions.sum(axis=1)
                support.update(contributions, start)
                oppose.update(-contributions, start)
            parts["support_indices"].append(support.indices)
            parts["support_contributions"].append(support.scores)
            parts["oppose_indices"].append(oppose.indices)
            parts["oppose_contributions"].append(-oppose.scores)
            parts["region_sizes"].append(np.array([size for _, size in regions], dtype=np.int64))
            parts["region_activation"].append(totals)
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
        write_strings(handle, "training_image_ids", loaded.image_ids)
        for name, values in parts.items():
            handle.create_dataset(name, data=np.concatenate(values))


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


def selected_predictors(
    vector_chunks: Iterable[np.ndarray], image_values: np.ndarray, sizes: Sequence[int]
) -> np.ndarray:
    """`(len(sizes), C)`: `w*` rebuilt from the m training images with the largest values
    `r_n . w*`, for each m in `sizes`; the vectors `r_n` arrive in consecutive chunks, so
    memory holds one chunk of them."""
    ranks = np.empty(len(image_values), dtype=np.int64)
    ranks[np.argsort(-image_values, kind="stable")] = np.arange(len(image_values))
    sums = None
    start = 0
    for chunk in vector_chunks:
        chunk = np.asarray(chunk, dtype=np.float64)
        if sums is None:
            sums = np.zeros((len(sizes), chunk.shape[1]))
        chunk_ranks = ranks[start : start + len(chunk)]
        for row, m in enumerate(sizes):
            sums[row] += chunk[chunk_ranks < m].sum(axis=0)
        start += len(chunk)
    return sums / np.linalg.norm(sums, axis=1, keepdims=True)


def selection_curve(
    representer: str | Path,
    eval_shards: Sequence[str | Path],
    sizes: Sequence[int] | None = None,
    interval: float = 0.01,
    iou_thresholds: Sequence[int] = (30, 50, 70),
) -> pd.DataFrame:
    """Representer point selection: MaxBoxAccV2 (benchmark protocol) of `w*` rebuilt from only
    the top-m training images, for a sweep of m."""
    # imported here: the rankings and per-image explanations need neither torch nor OpenCV
    from rpsloc.metrics import evaluate_activations

    loaded = read_global_representer(representer)
    sweep = selection_sizes(len(loaded.image_ids), sizes)
    with open_h5(representer) as handle:
        vectors = handle["representer_vectors"]
        predictors = selected_predictors(
            (
                vectors[start : start + TRAINING_CHUNK]
                for start in range(0, len(vectors), TRAINING_CHUNK)
            ),
            loaded.image_values,
            sweep,
        )
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
                "fraction": m / len(loaded.image_ids),
                "cosine_to_full": float(predictor @ loaded.predictor),
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
