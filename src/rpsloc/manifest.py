"""The manifest stage: one split of a configured dataset -> its manifest CSV and its skipped
table (METHOD.md section 2, docs/architecture.md "Manifest", docs/datasets.md "Bad input").

The adapter named by the dataset's `adapter` key reads the split (`rpsloc.datasets`); the
dataset's `on_bad_image` and `check_images` decide how bad images are met
(`rpsloc.datasets.policy`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rpsloc.datasets import adapter_of
from rpsloc.datasets.policy import (
    ON_BAD_IMAGE,
    BadImageError,
    BadImages,
    ReadOptions,
    Skipped,
    write_skipped,
)
from rpsloc.datasets.records import ImageRecord, write_manifest
from rpsloc.errors import InputError
from rpsloc.tracking import with_fingerprints

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitManifest:
    """One split's records and the images left out under `on_bad_image: skip`."""

    records: list[ImageRecord]
    skipped: list[Skipped]


def build_split(
    dataset: Mapping[str, Any],
    split: str,
    work_dir: Path | str | None = None,
    evaluated: bool = False,
) -> SplitManifest:
    """Records of one split of a configured dataset, dispatched on `dataset["adapter"]`.

    `on_bad_image` (`error`, default, or `skip`) decides what a problem with one image does;
    `check_images` (`none`, `header` default, `decode`) how much of each image is read;
    `num_classes` bounds the labels (default per adapter). `work_dir` is where adapters that
    must write images (CIFAR) write them (`results/<dataset>` in the workflow). An `evaluated`
    split must have ground truth for all of its images or for none (`report_unlabelled`).
    """
    adapter = adapter_of(dataset)
    on_bad_image = dataset.get("on_bad_image", "error")
    if on_bad_image not in ON_BAD_IMAGE:
        raise InputError(
            f"on_bad_image: expected one of {', '.join(ON_BAD_IMAGE)}, found {on_bad_image!r}"
        )
    options = ReadOptions(
        check_images=dataset.get("check_images", "header"),
        num_classes=dataset.get("num_classes", adapter.num_classes),
        bad=BadImages(skip=on_bad_image == "skip"),
        work_dir=None if work_dir is None else Path(work_dir),
    )
    records = adapter.read(dataset, split, options)
    if evaluated:
        report_unlabelled(records, split, options.bad)
    skipped = options.bad.skipped
    if not records:
        raise InputError(
            f"{dataset.get('name', 'dataset')}: split {split!r} has no usable image "
            f"({len(skipped)} skipped; first: {skipped[0].reason if skipped else 'none'})"
        )
    if skipped:
        LOGGER.warning(
            "split %s: %d image(s) skipped, e.g. %s", split, len(skipped), skipped[0].reason
        )
    return SplitManifest(records, skipped)


def report_unlabelled(records: Sequence[ImageRecord], split: str, bad: BadImages) -> None:
    """In an evaluated split where some images have ground truth (boxes or masks), each image
    without any is a bad image, since its BoxAcc is undefined (METHOD.md section 3): an error,
    or under `on_bad_image: skip` listed with this reason and left out of the metrics only (it
    stays in the manifest and is still localized). A split where no image has ground truth is a
    prediction split: maps and boxes, no metrics (docs/boxes.md)."""
    labelled = sum(1 for record in records if _has_ground_truth(record))
    if labelled in (0, len(records)):
        return
    for record in records:
        if not _has_ground_truth(record):
            bad.report(
                BadImageError(
                    record.image_id,
                    f"image {record.image_id} has no ground-truth box or mask, while {labelled} "
                    f"of the {len(records)} images of the evaluated split {split!r} have, so its "
                    "BoxAcc is undefined; on_bad_image: skip leaves it out of the metrics only "
                    "(it is still localized)",
                    record.path,
                )
            )


def _has_ground_truth(record: ImageRecord) -> bool:
    return len(record.boxes) > 0 or bool(record.mask_paths)


def build_manifest(dataset: Mapping[str, Any], split: str) -> list[ImageRecord]:
    """The records of `build_split`; skipped images are logged (use `build_split` for them)."""
    return build_split(dataset, split).records


def write_split_manifest(
    dataset: Mapping[str, Any],
    split: str,
    out: Path | str,
    out_skipped: Path | str,
    work_dir: Path | str | None = None,
    name: str | None = None,
    root: Path | str | None = None,
    evaluated: bool = False,
    fingerprint: str = "stat",
) -> None:
    """The manifest stage (METHOD.md section 2): the split's manifest CSV at `out`, with the
    fingerprint of every image and mask file (`fingerprint`: `stat` or `content`,
    rpsloc.tracking), and its skipped table at `out_skipped` (a header only when no image was
    skipped). `name` is the dataset's name in messages; `root` replaces the dataset's root, for
    a dataset the workflow generated (synthetic), so neither enters the settings that decide
    the manifest. An `evaluated` split has ground truth for all its images or none
    (`report_unlabelled`)."""
    settings = dict(dataset)
    if name is not None:
        settings["name"] = name
    if root is not None:
        settings["root"] = root
    manifest = build_split(settings, split, work_dir=work_dir, evaluated=evaluated)
    write_manifest(with_fingerprints(manifest.records, fingerprint), Path(out))
    write_skipped(manifest.skipped, out_skipped)
