"""Native dataset layouts, one reader per layout (METHOD.md section 2, docs/datasets.md).

This module is the registry: `ADAPTERS` maps each `adapter` key of the configuration to an
`Adapter` (its reader, configuration keys, splits and source files), so a new layout is one
reader module and one table entry (each layout's evaluation defaults are the settings',
`rpsloc.settings.PROTOCOL_DEFAULTS`). The readers live beside it: `records` (the manifest contract),
`policy` (bad images), `wsol`, `voc`, `stanford`, `aircraft`, `cifar`, `table` (CSV) and `folder`
(a folder of images, no metadata); the manifest stage that runs them is `rpsloc.manifest`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rpsloc.datasets.aircraft import AIRCRAFT_SPLITS, aircraft_records
from rpsloc.datasets.cifar import CIFAR, cifar_records
from rpsloc.datasets.folder import folder_records
from rpsloc.datasets.policy import ReadOptions, check_relative
from rpsloc.datasets.records import ImageRecord
from rpsloc.datasets.stanford import (
    CARS_SPLITS,
    DOGS_SPLITS,
    cars_annotations,
    cars_records,
    dogs_records,
)
from rpsloc.datasets.table import csv_records
from rpsloc.datasets.wsol import wsol_records
from rpsloc.errors import InputError

Reader = Callable[[Mapping[str, Any], str, ReadOptions], list[ImageRecord]]
Sources = Callable[[Mapping[str, Any], str], list[Path]]


def _config_path(dataset: Mapping[str, Any], key: str) -> Path:
    if key not in dataset or dataset[key] in (None, ""):
        name = dataset.get("name", "dataset")
        raise InputError(f"{name}: configuration key {key!r} is missing")
    return Path(dataset[key]).expanduser()


def _split_folder(root: Path, split: str) -> Path:
    check_relative(split, f"split {split!r}")
    folder = root / split
    if not folder.is_dir():
        raise InputError(f"split {split!r}: metadata folder {folder} not found")
    return folder


def _optional_path(dataset: Mapping[str, Any], key: str) -> Path | None:
    return _config_path(dataset, key) if dataset.get(key) else None


def _cub_images(root: Path) -> Path:
    """CUB_200_2011 keeps the class folders in `images/`; the benchmark's copy has them at
    the top."""
    return root / "images" if (root / "images").is_dir() else root


def _metadata_sources(dataset: Mapping[str, Any], split: str) -> list[Path]:
    return sorted((_config_path(dataset, "metadata") / split).glob("*.txt"))


def _files(*names: str) -> Sources:
    """Sources: files under the dataset root, `{split}` replaced by the split's name."""

    def sources(dataset: Mapping[str, Any], split: str) -> list[Path]:
        root = _config_path(dataset, "root")
        return [root / name.format(split=split) for name in names]

    return sources


@dataclass(frozen=True)
class Adapter:
    """One native layout: its reader, its configuration keys, its splits (None: as the
    metadata folders), the files a manifest is read from and the labels' range."""

    read: Reader
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    num_classes: int | None = None
    splits: tuple[str, ...] | None = None
    sources: Sources = lambda dataset, split: []


def _cifar_adapter(kind: str) -> Adapter:
    layout = CIFAR[kind]
    return Adapter(
        read=lambda d, split, o: cifar_records(_config_path(d, "root"), split, layout, o),
        required=("root",),
        num_classes=layout.num_classes,
        splits=("train",),
        sources=_files(*layout.batches),
    )


ADAPTERS: dict[str, Adapter] = {
    "wsol": Adapter(
        read=lambda d, split, o: wsol_records(
            images=_config_path(d, "images"),
            metadata_dir=_split_folder(_config_path(d, "metadata"), split),
            mask_root=_optional_path(d, "masks"),
            options=o,
        ),
        required=("metadata", "images"),
        optional=("masks",),
        sources=_metadata_sources,
    ),
    "synthetic": Adapter(
        read=lambda d, split, o: wsol_records(
            _split_folder(_config_path(d, "root") / "metadata", split),
            _config_path(d, "root") / "images",
            _config_path(d, "root") / "masks",
            options=o,
        ),
        required=("synthetic",),
    ),
    "cub": Adapter(
        read=lambda d, split, o: wsol_records(
            _split_folder(_config_path(d, "metadata"), split),
            _cub_images(_config_path(d, "root")),
            segmentations=_optional_path(d, "segmentations"),
            options=o,
        ),
        required=("root", "metadata"),
        optional=("segmentations",),
        num_classes=200,
        sources=_metadata_sources,
    ),
    "ilsvrc": Adapter(
        read=lambda d, split, o: wsol_records(
            _split_folder(_config_path(d, "metadata"), split), _config_path(d, "root"), options=o
        ),
        required=("root", "metadata"),
        num_classes=1000,
        sources=_metadata_sources,
    ),
    "openimages": Adapter(
        read=lambda d, split, o: wsol_records(
            _split_folder(_config_path(d, "metadata"), split),
            _config_path(d, "root"),
            _optional_path(d, "masks"),
            options=o,
        ),
        required=("root", "metadata"),
        optional=("masks",),
        num_classes=100,
        sources=_metadata_sources,
    ),
    "cars": Adapter(
        read=lambda d, split, o: cars_records(_config_path(d, "root"), split, o),
        required=("root",),
        num_classes=196,
        splits=tuple(CARS_SPLITS),
        sources=lambda d, split: [cars_annotations(_config_path(d, "root"), split)],
    ),
    "dogs": Adapter(
        read=lambda d, split, o: dogs_records(_config_path(d, "root"), split, o),
        required=("root",),
        num_classes=120,
        splits=DOGS_SPLITS,
        sources=_files("{split}_list.mat"),
    ),
    "aircraft": Adapter(
        read=lambda d, split, o: aircraft_records(_config_path(d, "root"), split, o),
        required=("root",),
        num_classes=100,
        splits=AIRCRAFT_SPLITS,
        sources=_files(
            "data/images_{split}.txt",
            "data/images_box.txt",
            "data/images_variant_{split}.txt",
            "data/variants.txt",
        ),
    ),
    **{kind: _cifar_adapter(kind) for kind in CIFAR},
    "csv": Adapter(
        read=lambda d, split, o: csv_records(
            _config_path(d, "csv"), _optional_path(d, "root"), split, o
        ),
        required=("csv",),
        optional=("root",),
        sources=lambda d, split: [_config_path(d, "csv")],
    ),
    "folder": Adapter(
        read=lambda d, split, o: folder_records(
            _config_path(d, "root"), d.get("folders", {}).get(split), o
        ),
        required=("root",),
        optional=("folders",),
    ),
}

#: Dataset keys every adapter understands (docs/datasets.md).
COMMON_KEYS = ("on_bad_image", "check_images", "num_classes")


def adapter_of(dataset: Mapping[str, Any]) -> Adapter:
    name = dataset.get("adapter")
    if name not in ADAPTERS:
        raise InputError(
            f"{dataset.get('name', 'dataset')}: unknown adapter {name!r}; expected one of "
            f"{', '.join(sorted(ADAPTERS))}"
        )
    return ADAPTERS[name]


def check_dataset(name: str, dataset: Mapping[str, Any]) -> None:
    """The adapter's required keys are present and its splits exist (errors name the key)."""
    adapter = adapter_of(dataset)
    for key in adapter.required:
        if key not in dataset:
            raise InputError(
                f"config: datasets.{name}.{key} is required by adapter '{dataset['adapter']}'"
            )
    if adapter.splits is not None:
        for split in [dataset["train_split"], *dataset.get("eval_splits", ())]:
            if split not in adapter.splits:
                raise InputError(
                    f"config: datasets.{name}: adapter '{dataset['adapter']}' has the splits "
                    f"{list(adapter.splits)}, not {split!r}"
                )


def manifest_settings(dataset: Mapping[str, Any]) -> dict[str, Any]:
    """Only the keys that decide a manifest, so changing e.g. the output stride keeps it."""
    adapter = adapter_of(dataset)
    keys = ("adapter", *adapter.required, *adapter.optional, *COMMON_KEYS)
    return {key: dataset[key] for key in keys if key in dataset}


def source_files(dataset: Mapping[str, Any], split: str) -> list[str]:
    """The metadata files a split's manifest is read from (those that exist), so an edit to
    one rebuilds the manifest. Images and per-image XML files are not listed."""
    return [str(path) for path in adapter_of(dataset).sources(dataset, split) if path.is_file()]
