"""Readers of the stage files that more than one stage consumes: feature shards, representer
files, a classifier's predictions, maps files, per-image IoUs, BoxAcc tables and predicted boxes
(layout: docs/hdf5-layout.md, docs/boxes.md).

A stage reads another stage's output through this module, never by importing the stage that
wrote it, so each stage module holds one idea and can be changed without touching its readers.
Every reader refuses files without the completeness mark (`rpsloc.io.open_h5`) and names the
file in its errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from rpsloc.datasets.records import read_manifest
from rpsloc.errors import InputError
from rpsloc.io import open_h5, plain_attrs, read_csv, read_json, read_strings

if TYPE_CHECKING:
    import pandas as pd

NORM_EPS = 1e-12
"""Guard of every feature norm: unit features are f / max(||f||, eps) (METHOD.md section 1)."""

TRAIN_ROLE = "train"
"""A training shard: per-image `a_n`, `b_n` and per-position norms, what `w*` needs."""
EVAL_ROLE = "eval"
"""An evaluation shard: per-position unit features and norms, what every map variant needs."""

DISCOVERY_INPUTS = ("keys", "cls_attention")
"""What object discovery (LOST, TokenCut, DINO attention) reads from a ViT's last block, stored
in an evaluation shard only when a configured variant needs it (rpsloc.variants)."""

TOP_K = 5
"""Classes a classify-stage file keeps per image (Top-5 Loc)."""


def shard_count(n_images: int, shard_size: int) -> int:
    """How many feature shards a split of `n_images` is cut into: shard k holds the images
    k * shard_size ... (k + 1) * shard_size - 1 of the manifest."""
    return max(1, math.ceil(n_images / shard_size))


@dataclass(frozen=True)
class ImageStatistics:
    """Per-image sufficient statistics of the training split (what a training shard stores)."""

    mean_features: np.ndarray  # a_n, (N, C)
    mean_unit_features: np.ndarray  # b_n, (N, C)
    position_norms: np.ndarray  # ||f_n[p]||, (N, h, w)


@dataclass(frozen=True)
class TrainingShard:
    """One training shard in memory: the representer stage holds one at a time, never a split."""

    image_ids: list[str]
    labels: np.ndarray  # (n,)
    statistics: ImageStatistics


@dataclass(frozen=True)
class EvalShard:
    """One evaluation shard in memory: what the maps and metrics stages read."""

    image_ids: list[str]
    labels: np.ndarray  # (n,)
    unit_features: np.ndarray  # (n, h, w, C) float16
    norms: np.ndarray  # (n, h, w)
    boxes: list[np.ndarray]  # per image (k, 4), crop coordinates
    crop_size: int
    authors_boxes: list[np.ndarray]  # the same from the annotation's own (1-based) coordinates
    #: What object discovery reads (features stage, `DISCOVERY_INPUTS`), when stored: a ViT's
    #: last-block patch keys `keys` (n, h, w, D) and `cls_attention` (n, heads, h, w), float16.
    discovery: dict[str, np.ndarray] = field(default_factory=dict)


IMAGES_AT_A_TIME = 32
"""Images of a shard checked or converted (float16 to float32) at a time: the temporary copies
of a reader or a maps job hold this many images, not the shard (1,000 by default)."""


def per_image_slices(compute: Callable[..., np.ndarray], *per_image: np.ndarray) -> np.ndarray:
    """`compute` on IMAGES_AT_A_TIME images of the per-image arrays at a time, the results
    concatenated: the values of one call on the whole shard when no image's arithmetic involves
    another's, with temporary copies of a few images instead of the shard's. No images make
    one call on empty slices, so that the result has the right shape."""
    count = len(per_image[0])
    parts = [
        slice(start, start + IMAGES_AT_A_TIME)
        for start in range(0, max(count, 1), IMAGES_AT_A_TIME)
    ]
    return np.concatenate([compute(*(array[part] for array in per_image)) for part in parts])


def check_stored_finite(path: str | Path, image_ids: Sequence[str], *arrays: np.ndarray) -> None:
    """Refuse per-image arrays of a stored shard that hold NaN or infinity (a damaged or
    edited file: the features stage never writes them), naming the file and the first image."""
    for array in arrays:
        finite = per_image_slices(
            lambda images: np.isfinite(images.reshape(len(images), -1)).all(axis=1), array
        )
        if not finite.all():
            first = int(np.flatnonzero(~finite)[0])
            raise InputError(
                f"{path}: non-finite stored features for {int((~finite).sum())} image(s), "
                f"first image {image_ids[first]!r}; delete the file and rerun its stage"
            )


def _open_shard(shard: str | Path, role: str) -> h5py.File:
    handle = open_h5(shard)
    if handle.attrs["role"] != role:
        found = handle.attrs["role"]
        handle.close()
        kind = "training" if role == TRAIN_ROLE else "evaluation"
        raise ValueError(f"{shard}: expected {kind}-split features, found role {found!r}")
    return handle


def read_training_labels(shards: Sequence[str | Path]) -> np.ndarray:
    """The labels of a training split, in shard order (all that sampling needs up front)."""
    labels = []
    for shard in shards:
        with _open_shard(shard, TRAIN_ROLE) as handle:
            labels.append(handle["labels"][()])
    return np.concatenate(labels)


def read_training_ids(shards: Sequence[str | Path]) -> list[str]:
    """The image ids of a training split, in shard order."""
    image_ids: list[str] = []
    for shard in shards:
        with _open_shard(shard, TRAIN_ROLE) as handle:
            image_ids += read_strings(handle["image_ids"])
    return image_ids


def iter_training_shards(shards: Sequence[str | Path]) -> Iterator[TrainingShard]:
    """Yield the training statistics shard by shard, in order, refusing non-finite values."""
    for shard in shards:
        with _open_shard(shard, TRAIN_ROLE) as handle:
            image_ids = read_strings(handle["image_ids"])
            statistics = ImageStatistics(
                handle["mean_features"][()],
                handle["mean_unit_features"][()],
                handle["position_norms"][()],
            )
            labels = handle["labels"][()]
        check_stored_finite(
            shard,
            image_ids,
            statistics.mean_features,
            statistics.mean_unit_features,
            statistics.position_norms,
        )
        yield TrainingShard(image_ids, labels, statistics)


def iter_eval_shards(
    shards: Sequence[str | Path], with_features: bool = True
) -> Iterator[EvalShard]:
    """Yield evaluation shards one at a time, so memory holds one shard, never a split.
    Without `with_features` the unit features are not read (boxes and norms only)."""
    for shard in shards:
        with _open_shard(shard, EVAL_ROLE) as handle:
            offsets = handle["box_offsets"][()]
            flat = handle["boxes"][()]
            native = handle["authors_boxes"][()]
            image_ids = read_strings(handle["image_ids"])
            features = (
                handle["unit_features"][()] if with_features else np.empty((len(image_ids), 0))
            )
            norms = handle["norms"][()]
            check_stored_finite(shard, image_ids, features, norms)
            yield EvalShard(
                image_ids=image_ids,
                labels=handle["labels"][()],
                unit_features=features if with_features else np.empty(0),
                norms=norms,
                boxes=[flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)],
                crop_size=int(handle.attrs["crop_size"]),
                authors_boxes=[
                    native[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)
                ],
                discovery={
                    name: handle[name][()]
                    for name in DISCOVERY_INPUTS
                    if with_features and name in handle
                },
            )


GLOBAL = -1
"""The class label of a global predictor in a representer file."""


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


@dataclass(frozen=True)
class GlobalRepresenter:
    """A representer file of one global `w*`, as the explanations read it (the training
    vectors themselves stay in the file and are read in chunks)."""

    path: Path
    image_ids: list[str]
    labels: np.ndarray  # (M,)
    image_values: np.ndarray  # r_n . w*, (M,)
    vector_norms: np.ndarray  # ||r_n||, (M,)
    predictor: np.ndarray  # w*, (C,)
    unnormalised_norm: float  # ||w~||


def read_global_representer(path: str | Path) -> GlobalRepresenter:
    """A representer file's global `w*` and per-image values; an error for class-wise files."""
    with open_h5(path) as handle:
        if handle.attrs["mode"] != "global":
            raise ValueError(f"{path}: explanations need a global w*, found {handle.attrs['mode']}")
        return GlobalRepresenter(
            path=Path(path),
            image_ids=read_strings(handle["image_ids"]),
            labels=handle["labels"][()],
            image_values=handle["image_values"][()],
            vector_norms=handle["image_vector_norms"][()],
            predictor=handle["foreground_predictors"][0],
            unnormalised_norm=float(np.linalg.norm(handle["unnormalised_predictors"][0])),
        )


def read_top5(predictions: str | Path, image_ids: Sequence[str]) -> np.ndarray:
    """The `(n, 5)` top-5 classes of `image_ids` from a classify-stage file; an error naming
    the file and the images it has no prediction for."""
    with open_h5(predictions) as handle:
        predicted_ids = read_strings(handle["image_ids"])
        top5 = handle["top5"][()]
    position = {image_id: i for i, image_id in enumerate(predicted_ids)}
    missing = [image_id for image_id in image_ids if image_id not in position]
    if missing:
        raise InputError(
            f"{predictions}: no prediction for {len(missing)} image(s), first {missing[:5]}"
        )
    return top5[[position[image_id] for image_id in image_ids]].reshape(-1, TOP_K)


def read_top1(predictions: str | Path, image_ids: Sequence[str]) -> np.ndarray:
    """A classifier's top-1 classes for `image_ids`, from a classify-stage file."""
    return read_top5(predictions, image_ids)[:, 0]


@dataclass(frozen=True)
class MapsFile:
    """A maps-stage file in memory: one activation map per image, in features order."""

    path: Path
    image_ids: list[str]
    labels: np.ndarray  # (n,)
    maps: np.ndarray  # (n, h, w) float32, before min-max normalisation
    attrs: dict[str, Any]
    #: A box-only method's boxes (LOST, TokenCut): (n, 4) x0, y0, x1, y1 in feature cells, x1
    #: and y1 exclusive; None for a map method.
    own_boxes: np.ndarray | None = None

    def position(self) -> dict[str, int]:
        """Row of each image id."""
        return {image_id: i for i, image_id in enumerate(self.image_ids)}

    @property
    def label(self) -> str:
        """`backbone / variant`, how figures name the result."""
        return f"{self.attrs['backbone']} / {self.attrs['variant']}"


def read_maps(path: str | Path) -> MapsFile:
    """A maps-stage file: image ids, labels, activation maps and root attributes."""
    with open_h5(path) as handle:
        return MapsFile(
            path=Path(path),
            image_ids=read_strings(handle["image_ids"]),
            labels=handle["labels"][()],
            maps=handle["maps"][()],
            attrs=plain_attrs(handle.attrs),
            own_boxes=handle["own_boxes"][()] if "own_boxes" in handle else None,
        )


@dataclass(frozen=True)
class Explanation:
    """A test image's most supporting and most opposing training images with their
    contributions (mean over its predicted region of r_n . g[p] / ||w~||)."""

    image_id: str
    support: list[tuple[str, float]]
    oppose: list[tuple[str, float]]


def read_explanations(
    path: str | Path, image_ids: Sequence[str], per_side: int
) -> list[Explanation]:
    """The top `per_side` supporting and opposing training images of each test image."""
    with open_h5(path) as handle:
        position = {image_id: i for i, image_id in enumerate(read_strings(handle["image_ids"]))}
        training = read_strings(handle["training_image_ids"])
        explanations = []
        for image_id in image_ids:
            if image_id not in position:
                raise InputError(f"{path}: no explanation for image {image_id!r}")
            row = position[image_id]
            sides = []
            for name in ("support", "oppose"):
                indices = handle[f"{name}_indices"][row][:per_side]
                values = handle[f"{name}_contributions"][row][:per_side]
                sides.append(
                    [(training[i], float(v)) for i, v in zip(indices, values, strict=True)]
                )
            explanations.append(Explanation(image_id, *sides))
    return explanations


def read_image_ious(path: str | Path) -> tuple[pd.DataFrame, float]:
    """The metrics stage's per-image best IoUs and the threshold they were taken at."""
    images = read_csv(path)
    if images.empty:
        raise InputError(f"{path}: no image with ground-truth boxes, so no IoU to show")
    return images, float(images["threshold"].iloc[0])


BOX_ACCURACY_COLUMNS = ("protocol", "iou", "threshold", "box_acc")


def read_box_accuracy(path: str | Path) -> pd.DataFrame:
    """A metrics stage's BoxAcc table (protocol, IoU, threshold, BoxAcc), from which a
    labelled split's box threshold is chosen (`protocols.chosen_threshold`)."""
    table = read_csv(path)
    missing = [column for column in BOX_ACCURACY_COLUMNS if column not in table.columns]
    if missing or table.empty:
        raise InputError(
            f"{path}: expected a BoxAcc table with the columns {list(BOX_ACCURACY_COLUMNS)} "
            f"and rows, found columns {list(table.columns)} and {len(table)} rows"
        )
    return table


@dataclass(frozen=True)
class BoxThreshold:
    """The threshold a boxes-stage split was cut at, by which rule (and on which labelled
    split), and the smallest region it kept (a fraction of the map's pixels)."""

    value: float
    rule: str
    split: str | None
    min_area: float

    @property
    def label(self) -> str:
        """E.g. `tau = 0.31 (labelled, val)`, how the figures name it."""
        source = f", {self.split}" if self.split else ""
        return f"tau = {self.value:.2f} ({self.rule}{source})"


def read_box_threshold(path: str | Path) -> BoxThreshold:
    """The threshold a boxes-stage COCO file records in its `info`."""
    info = read_json(path).get("info", {})
    try:
        threshold = info["threshold"]
        return BoxThreshold(
            float(threshold["value"]),
            threshold["rule"],
            threshold.get("split"),
            float(info["min_area"]),
        )
    except (KeyError, TypeError) as error:
        raise InputError(f"{path}: no boxes-stage threshold in its 'info' ({error})") from error


@dataclass(frozen=True)
class PredictedBoxes:
    """A boxes-stage split: its boxes (image_id, rank, x0, y0, x1, y1, score; original
    pixels) and its images (image_id, width, height, n_boxes, objectness)."""

    boxes: pd.DataFrame
    images: pd.DataFrame

    def of(self, image_id: str) -> pd.DataFrame:
        """The boxes of one image, best first."""
        return self.boxes[self.boxes["image_id"] == image_id].sort_values("rank")


def read_predicted_boxes(boxes: str | Path, images: str | Path) -> PredictedBoxes:
    """A boxes-stage split from its two CSV files."""
    return PredictedBoxes(read_csv(boxes), read_csv(images))


def manifest_has_ground_truth(path: str | Path) -> bool:
    """Whether any image of a manifest has a ground-truth box or mask: a split without is a
    prediction split (maps and boxes, no metrics; docs/boxes.md)."""
    return any(len(record.boxes) or record.mask_paths for record in read_manifest(path))
