"""The classify stage: the top-5 classes of every image of a split, written to HDF5 for Top-1 /
Top-5 Loc and for the class-wise `w*` picked by top-1 (METHOD.md section 3; docs/classifiers.md).
The classifier models are `rpsloc.backbones.classifiers`; the Top-k Loc formulas are
`rpsloc.metrics.accumulators.top_k_loc`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from rpsloc import __version__
from rpsloc.backbones.classifiers import build_classifier
from rpsloc.datasets.records import read_manifest
from rpsloc.devices import (
    backbone_threads,
    data_loader_workers,
    keep_freed_memory,
    prefetch_factor,
    resolve_device,
)
from rpsloc.io import atomic_h5, write_strings
from rpsloc.readers import TOP_K
from rpsloc.transforms import PreprocessedImages


def predict_split(
    manifest: str | Path,
    classifier_config: Mapping[str, Any],
    out: str | Path,
    batch_size: int = 32,
    num_workers: int | str = 0,
    device: str = "auto",
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """The classify stage: top-5 classes and softmax scores of every image of a manifest, in
    manifest order (= features order), written to HDF5 (docs/classifiers.md). Runs in fp32 on
    every device, so the ranking does not depend on reduced precision."""
    records = read_manifest(manifest)
    classifier = build_classifier(classifier_config)
    torch_device = resolve_device(device)
    keep_freed_memory(torch_device)
    classifier.model.to(torch_device)
    workers = data_loader_workers(num_workers, backbone_threads(torch_device))
    loader = torch.utils.data.DataLoader(
        PreprocessedImages([r.path for r in records], classifier.image_size, classifier.crop_size),
        batch_size=batch_size,
        num_workers=workers,
        prefetch_factor=prefetch_factor(workers),
        pin_memory=torch_device.type == "cuda",
        shuffle=False,
    )
    k = min(TOP_K, classifier.num_classes)
    indices, probabilities = [], []
    with torch.inference_mode():
        for images in tqdm(loader, desc="classify", unit="batch", mininterval=5):
            logits = classifier.scores(images.to(torch_device)).float()
            start = sum(len(batch) for batch in indices)
            finite = torch.isfinite(logits).all(dim=1)
            if not bool(finite.all()):
                first = start + int(torch.nonzero(~finite)[0])
                raise ValueError(
                    f"classifier {classifier.provenance['arch']!r} gave non-finite scores for "
                    f"image {records[first].image_id!r}"
                )
            top = torch.softmax(logits, dim=1).topk(k, dim=1)
            indices.append(top.indices.cpu().numpy())
            probabilities.append(top.values.cpu().numpy())
    top5 = np.full((len(records), TOP_K), -1, dtype=np.int64)
    scores = np.zeros((len(records), TOP_K), dtype=np.float32)
    if records:
        top5[:, :k] = np.concatenate(indices)
        scores[:, :k] = np.concatenate(probabilities)
    attrs = {
        "stage": "classify",
        "n_images": len(records),
        "device": torch_device.type,
        "precision": "fp32",
        "rpsloc_version": __version__,
        **{f"classifier_{key}": value for key, value in classifier.provenance.items()},
        **(provenance or {}),
    }
    with atomic_h5(out, attrs) as handle:
        write_strings(handle, "image_ids", [record.image_id for record in records])
        ranks = handle.create_dataset("top5", data=top5)
        ranks.attrs["meaning"] = "0-based class indices, best first; -1 beyond num_classes"
        probs = handle.create_dataset("top5_scores", data=scores)
        probs.attrs["meaning"] = "softmax probabilities of the top5 classes"
