"""The one backbone pass: features of one shard of one split, written to HDF5 (METHOD.md
section 1; layout in docs/hdf5-layout.md).

A training split keeps only what `w*` and its explanations need (per-image `a_n`, `b_n` and
per-position norms); an evaluation split keeps per-position unit features and norms, so every
map variant and baseline is computed later without running the backbone again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from tqdm import tqdm

from rpsloc import __version__
from rpsloc.backbones import parse_weights
from rpsloc.backbones.build import build_backbone, for_inference
from rpsloc.datasets.records import ImageRecord, read_manifest
from rpsloc.devices import (
    backbone_threads,
    data_loader_workers,
    keep_freed_memory,
    prefetch_factor,
    resolve_device,
)
from rpsloc.hashing import file_sha256
from rpsloc.io import atomic_h5, write_strings
from rpsloc.readers import (
    EVAL_ROLE,
    NORM_EPS,
    TRAIN_ROLE,
    ImageStatistics,
    shard_count,
)
from rpsloc.tracking import recorded_checkpoint_sha256, shard_images_digest
from rpsloc.transforms import PreprocessedImages, boxes_to_crop

log = logging.getLogger(__name__)

#: `features.precision` values and how the files record them.
PRECISIONS = {"fp32": "fp32", "bf16": "bf16-autocast"}


def unit_features(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split `(B, C, h, w)` features into L2-normalised features and their norms (eps-guarded)."""
    norms = torch.linalg.vector_norm(features, dim=1)
    return features / norms.clamp_min(NORM_EPS).unsqueeze(1), norms


def image_statistics(features: torch.Tensor) -> ImageStatistics:
    """`a_n`, `b_n` and per-position norms of a batch of `(B, C, h, w)` training features."""
    features = features.double()
    normalised, norms = unit_features(features)
    return ImageStatistics(
        mean_features=features.mean(dim=(2, 3)).cpu().numpy(),
        mean_unit_features=normalised.mean(dim=(2, 3)).cpu().numpy(),
        position_norms=norms.float().cpu().numpy(),
    )


def shard_records(records: Sequence[ImageRecord], shard: int, shard_size: int) -> list[ImageRecord]:
    """The records of shard `shard` (manifest order), an error if the shard does not exist."""
    count = shard_count(len(records), shard_size)
    if not 0 <= shard < count:
        raise ValueError(f"shard {shard} does not exist: {len(records)} images make {count} shards")
    return list(records[shard * shard_size : (shard + 1) * shard_size])


def extract_shard(
    manifest: str | Path,
    role: str,
    shard: int,
    shard_size: int,
    backbone_config: Mapping[str, Any],
    image_size: int,
    crop_size: int,
    output_stride: int,
    out: str | Path,
    batch_size: int = 32,
    num_workers: int | str = 0,
    device: str = "auto",
    provenance: Mapping[str, Any] | None = None,
    precision: str = "fp32",
    discovery: Sequence[str] = (),
    channels_last: bool | None = None,
    checkpoint_record: str | Path | None = None,
    fold_batch_norms: bool = True,
    backbone_cache: dict | None = None,
) -> None:
    """Run the backbone over one shard of a manifest and write the role's features to `out`.

    `discovery` names what the configured peers read from a ViT's last block
    (`readers.DISCOVERY_INPUTS`), stored in float16 beside an evaluation split's features from
    the same pass; a backbone without them (a CNN) stores none, and the peers use its features.

    `precision` is `fp32` (the authors' numerics, the default on every device) or `bf16`
    (autocast for the backbone, an explicit opt-in; the file says which). `output_stride` is the
    one asked for; the file records the stride the model really has. `num_workers` is a number
    of DataLoader processes or `auto` (`devices.data_loader_workers`, beside torch's threads).
    `channels_last` and `fold_batch_norms`: how the model runs (`backbones.build.for_inference`;
    both by default: channels-last where measured faster, BatchNorms folded where the model
    names them).
    `checkpoint_record`: the workflow's record of the checkpoint's SHA-256
    (`tracking.checkpoint_sha256`), reused while it still describes the file.
    `backbone_cache`: where a process that extracts many shards keeps the last backbone it
    readied (the warm process, `rpsloc.extraction_server`), reused for the same config,
    checkpoint content, stride, device and way of running; None builds it afresh."""
    if role not in (TRAIN_ROLE, EVAL_ROLE):
        raise ValueError(f"role must be '{TRAIN_ROLE}' or '{EVAL_ROLE}', got {role!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    records = shard_records(read_manifest(manifest), shard, shard_size)
    discovery = tuple(discovery) if role == EVAL_ROLE else ()
    torch_device = resolve_device(device)
    keep_freed_memory(torch_device)
    known_sha256 = None
    weights = parse_weights(backbone_config.get("weights", "random"))
    if checkpoint_record and weights.kind == "file":
        known_sha256 = recorded_checkpoint_sha256(weights.path, Path(checkpoint_record))
    if weights.kind == "file" and backbone_cache is not None:
        known_sha256 = known_sha256 or file_sha256(weights.path)
    backbone, channels_last = _readied_backbone(
        backbone_config,
        output_stride,
        known_sha256,
        (torch_device, channels_last, fold_batch_norms),
        backbone_cache,
    )
    on_cuda = torch_device.type == "cuda"
    bf16 = precision == "bf16"
    workers = data_loader_workers(num_workers, backbone_threads(torch_device))
    loader = torch.utils.data.DataLoader(
        PreprocessedImages([r.path for r in records], image_size, crop_size),
        batch_size=batch_size,
        num_workers=workers,
        prefetch_factor=prefetch_factor(workers),
        pin_memory=on_cuda,
        shuffle=False,
    )
    attrs = {
        "stage": "features",
        "role": role,
        "shard": shard,
        "shard_size": shard_size,
        "n_images": len(records),
        "images_sha256": shard_images_digest(Path(manifest), shard, shard_size),  # tracking
        "image_size": image_size,
        "crop_size": crop_size,
        "output_stride": int(backbone.output_stride),
        "device": torch_device.type,
        "precision": PRECISIONS[precision],
        "rpsloc_version": __version__,
        **{f"backbone_{key}": value for key, value in backbone.provenance.items()},
        **(provenance or {}),
    }
    log.info(
        "features: %d images of %s (shard %d) on %s, %d decoding worker(s)",
        len(records),
        manifest,
        shard,
        torch_device,
        workers,
    )
    with atomic_h5(out, attrs) as handle:
        write_strings(handle, "image_ids", [record.image_id for record in records])
        handle.create_dataset("labels", data=np.array([r.label for r in records], dtype=np.int64))
        if role == EVAL_ROLE:
            _write_ground_truth(handle, records, image_size, crop_size)
        writer = (
            _TrainWriter(handle, len(records))
            if role == TRAIN_ROLE
            else _EvalWriter(handle, len(records))
        )
        start = 0
        with torch.inference_mode():
            for images in tqdm(loader, desc=f"features shard {shard}", unit="batch", mininterval=5):
                images = images.to(torch_device, non_blocking=on_cuda)
                if channels_last:
                    images = images.to(memory_format=torch.channels_last)
                with torch.autocast(torch_device.type, dtype=torch.bfloat16, enabled=bf16):
                    features, extras = backbone_pass(backbone, images, discovery)
                features = features.float()
                _check_finite(features, records[start : start + len(images)])
                writer.write(start, features)
                _write_discovery(handle, extras, start, len(records))
                start += len(images)
        handle.attrs["feature_dim"] = int(features.shape[1])
        handle.attrs["feature_height"] = int(features.shape[2])
        handle.attrs["feature_width"] = int(features.shape[3])


def _readied_backbone(
    backbone_config: Mapping[str, Any],
    output_stride: int,
    checkpoint_sha256: str | None,
    how: tuple[torch.device, bool | None, bool],
    cache: dict | None,
) -> tuple[torch.nn.Module, bool]:
    """The backbone readied for the stage (`for_inference` with `how`: device, channels-last,
    folding), from `cache` when it holds the one of the same config, checkpoint content,
    stride and `how` (it keeps only the last)."""
    if cache is None:
        model = build_backbone(backbone_config, output_stride, checkpoint_sha256)
        return for_inference(model, backbone_config["arch"], *how)
    key = json.dumps(
        [backbone_config, output_stride, checkpoint_sha256, *how], sort_keys=True, default=str
    )
    if key not in cache:
        cache.clear()
        model = build_backbone(backbone_config, output_stride, checkpoint_sha256)
        cache[key] = for_inference(model, backbone_config["arch"], *how)
    return cache[key]


def backbone_pass(
    backbone: torch.nn.Module, images: torch.Tensor, discovery: Sequence[str]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The features of a batch and, from the same forward, the `discovery` inputs a ViT has."""
    if not discovery or not hasattr(backbone, "discovery_inputs"):
        return backbone(images), {}
    encoding = backbone.encode(images)
    extras = backbone.discovery_inputs(encoding)
    return backbone.feature_map(encoding), {name: extras[name] for name in discovery}


def _write_discovery(
    handle: h5py.File, extras: Mapping[str, torch.Tensor], start: int, count: int
) -> None:
    for name, values in extras.items():
        if name not in handle:
            shape = tuple(values.shape[1:])
            handle.create_dataset(name, (count, *shape), np.float16, chunks=(1, *shape))
        handle[name][start : start + len(values)] = values.float().cpu().numpy().astype(np.float16)


def _check_finite(features: torch.Tensor, records: Sequence[ImageRecord]) -> None:
    finite = torch.isfinite(features).flatten(1).all(dim=1)
    if not bool(finite.all()):
        bad = [records[i].image_id for i in torch.nonzero(~finite).flatten().tolist()]
        raise ValueError(f"backbone produced non-finite features for images {bad[:5]}")


def _write_ground_truth(
    handle: h5py.File, records: Sequence[ImageRecord], image_size: int, crop_size: int
) -> None:
    """Boxes in crop coordinates (METHOD.md section 1), flattened with per-image offsets; and
    the same from the annotation's own coordinates (1-based for Cars, Dogs, Aircraft), which
    the authors' code converts unshifted (`authors_boxes`). Crowd boxes are not ground truth
    (`ImageRecord.scored`)."""
    counts = [int(r.scored.sum()) for r in records]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    for name, boxes_of in (("boxes", "boxes"), ("authors_boxes", "native_boxes")):
        crop_boxes = [
            boxes_to_crop(getattr(r, boxes_of)[r.scored], r.width, r.height, image_size, crop_size)
            for r in records
        ]
        flat = np.concatenate(crop_boxes) if sum(counts) else np.zeros((0, 4))
        boxes = handle.create_dataset(name, data=flat.astype(np.int32).reshape(-1, 4))
        boxes.attrs["units"] = "pixels of the crop, x0 y0 x1 y1 inclusive"
    handle.create_dataset("box_offsets", data=offsets)
    handle.create_dataset(
        "image_sizes", data=np.array([[r.width, r.height] for r in records], dtype=np.int32)
    )


class _TrainWriter:
    """Writes a_n, b_n and per-position norms batch by batch (never the whole shard at once)."""

    def __init__(self, handle: h5py.File, count: int):
        self.handle = handle
        self.count = count

    def write(self, start: int, features: torch.Tensor) -> None:
        statistics = image_statistics(features)
        stop = start + len(features)
        if "mean_features" not in self.handle:
            channels, height, width = features.shape[1:]
            self.handle.create_dataset("mean_features", (self.count, channels), np.float64)
            self.handle.create_dataset("mean_unit_features", (self.count, channels), np.float64)
            self.handle.create_dataset("position_norms", (self.count, height, width), np.float32)
        self.handle["mean_features"][start:stop] = statistics.mean_features
        self.handle["mean_unit_features"][start:stop] = statistics.mean_unit_features
        self.handle["position_norms"][start:stop] = statistics.position_norms


class _EvalWriter:
    """Writes per-position unit features (float16, channels last) and their norms."""

    def __init__(self, handle: h5py.File, count: int):
        self.handle = handle
        self.count = count

    def write(self, start: int, features: torch.Tensor) -> None:
        normalised, norms = unit_features(features)
        stop = start + len(features)
        if "unit_features" not in self.handle:
            channels, height, width = features.shape[1:]
            self.handle.create_dataset(
                "unit_features",
                (self.count, height, width, channels),
                np.float16,
                chunks=(1, height, width, channels),
            )
            self.handle.create_dataset("norms", (self.count, height, width), np.float32)
        self.handle["unit_features"][start:stop] = (
            normalised.permute(0, 2, 3, 1).to(torch.float16).cpu().numpy()
        )
        self.handle["norms"][start:stop] = norms.cpu().numpy()
