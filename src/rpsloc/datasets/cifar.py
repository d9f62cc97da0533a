"""CIFAR-10 and CIFAR-100 (METHOD.md section 2): python pickle batches of pixels and labels,
a base dataset for w*. The pixels are written out as PNG files so the manifest can list them."""

from __future__ import annotations

import importlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from rpsloc.datasets.policy import Candidate, ReadOptions, finish
from rpsloc.datasets.records import ImageRecord
from rpsloc.errors import InputError


@dataclass(frozen=True)
class CifarLayout:
    """Where one CIFAR variant keeps its training batches and labels."""

    batches: tuple[str, ...]
    label_key: str
    num_classes: int


CIFAR = {
    "cifar10": CifarLayout(tuple(f"data_batch_{k}" for k in range(1, 6)), "labels", 10),
    "cifar100": CifarLayout(("train",), "fine_labels", 100),
    "cifar100_coarse": CifarLayout(("train",), "coarse_labels", 20),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings and numpy arrays only: a CIFAR batch needs nothing
    else, and a file that asks for any other global is refused, never executed."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes in protocol 2
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load the global {module}.{name}")
        if module.startswith("numpy.core."):  # numpy 1 pickles; numpy 2 keeps them in _core
            module = "numpy._core." + module.removeprefix("numpy.core.")
        return getattr(importlib.import_module(module), name)


def read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 32, 32, 3) uint8, labels (N,)) of one CIFAR python batch, read with a
    restricted unpickler (numpy arrays only)."""
    try:
        with path.open("rb") as stream:
            batch = _ArrayUnpickler(stream, encoding="bytes").load()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise InputError(f"{path}: cannot read as a CIFAR batch ({error})") from error
    if not isinstance(batch, dict):
        raise InputError(f"{path}: expected a pickled dict, found {type(batch).__name__}")
    batch = {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}
    for key in ("data", label_key):
        if key not in batch:
            raise InputError(f"{path}: key {key!r} not found (keys: {sorted(batch)})")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise InputError(
            f"{path}: expected data of shape (N, 3072) uint8, found {data.shape} {data.dtype}"
        )
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{path}: expected {len(data)} integer {label_key}, found {labels.shape}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels.astype(np.int64)


def cifar_records(
    root: Path, split: str, layout: CifarLayout, options: ReadOptions
) -> list[ImageRecord]:
    """CIFAR-10/100 (METHOD.md section 2, a base dataset for w*): the training batches under
    `root` (`cifar-10-batches-py` or `cifar-100-python`). The batches hold pixels, not files, so
    every image is written as `<work_dir>/images/train/<index:05d>.png` (index in batch order,
    the same bytes on every run); ids are `train/<index:05d>.png`. No boxes."""
    if split != "train":
        raise InputError(f"CIFAR is used as a base dataset: only split 'train', not {split!r}")
    if options.work_dir is None:
        raise InputError("CIFAR: a work folder is needed to write the images as PNG files")
    root = Path(root).absolute()
    folder = Path(options.work_dir).absolute() / "images" / split
    folder.mkdir(parents=True, exist_ok=True)
    candidates = []
    index = 0
    for name in layout.batches:
        images, labels = read_cifar_batch(root / name, layout.label_key)
        for entry, (pixels, label) in enumerate(zip(images, labels, strict=True), start=1):
            image_id = f"{split}/{index:05d}.png"
            path = folder / f"{index:05d}.png"
            index += 1
            Image.fromarray(pixels).save(path, format="PNG")
            candidates.append(
                Candidate(
                    image_id=image_id,
                    path=path,
                    source=(root / name, entry),
                    label=int(label),
                    size=(32, 32),
                    unit="entry",
                )
            )
    return finish(candidates, options)
