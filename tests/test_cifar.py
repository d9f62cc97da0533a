"""CIFAR-10 and CIFAR-100 (METHOD.md section 2): pickled batches written out as PNG files, read
with a restricted unpickler."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from layouts import cifar_pixels, make_cifar10, write_pickle
from PIL import Image

from rpsloc.errors import InputError
from rpsloc.manifest import build_split

# ----------------------------------------------------------------------------- CIFAR


@pytest.fixture
def cifar10(tmp_path) -> Path:
    return make_cifar10(tmp_path)


def test_cifar10_writes_every_training_image_as_a_png_with_its_label(cifar10, tmp_path):
    dataset = {"adapter": "cifar10", "root": str(cifar10)}
    split = build_split(dataset, "train", work_dir=tmp_path / "results")
    records = split.records
    assert [r.image_id for r in records] == [f"train/{k:05d}.png" for k in range(10)]
    assert [r.label for r in records] == [1, 8, 2, 7, 3, 6, 4, 5, 5, 4]
    assert {(r.width, r.height, len(r.boxes)) for r in records} == {(32, 32, 0)}
    # image 7 is the second of data_batch_4; rows are the R, G, B planes of 32x32 pixels
    row = cifar_pixels(2, 4)[1]
    pixels = np.asarray(Image.open(records[7].path))
    assert records[7].path == tmp_path / "results/images/train/00007.png"
    assert pixels.shape == (32, 32, 3)
    assert tuple(pixels[0, 1]) == (row[1], row[1024 + 1], row[2048 + 1])
    assert tuple(pixels[31, 0]) == (row[31 * 32], row[1024 + 31 * 32], row[2048 + 31 * 32])


def test_cifar_images_are_the_same_bytes_on_every_run(cifar10, tmp_path):
    dataset = {"adapter": "cifar10", "root": str(cifar10)}
    first = build_split(dataset, "train", work_dir=tmp_path / "a").records[3].path.read_bytes()
    second = build_split(dataset, "train", work_dir=tmp_path / "b").records[3].path.read_bytes()
    assert first == second


@pytest.mark.parametrize(
    ("adapter", "labels"), [("cifar100", [17, 99, 0]), ("cifar100_coarse", [3, 19, 0])]
)
def test_cifar100_reads_fine_or_coarse_labels(tmp_path, adapter, labels):
    root = tmp_path / "cifar-100-python"
    write_pickle(
        root / "train",
        {"data": cifar_pixels(3, 0), "fine_labels": [17, 99, 0], "coarse_labels": [3, 19, 0]},
    )
    records = build_split(
        {"adapter": adapter, "root": str(root)}, "train", work_dir=tmp_path
    ).records
    assert [r.label for r in records] == labels


def test_a_cifar_label_out_of_range_is_an_error_naming_the_batch_entry(cifar10, tmp_path):
    write_pickle(cifar10 / "data_batch_3", {"data": cifar_pixels(2, 3), "labels": [3, 10]})
    with pytest.raises(InputError, match=r"data_batch_3, entry 2: expected a label < 10"):
        build_split({"adapter": "cifar10", "root": str(cifar10)}, "train", work_dir=tmp_path)


class _Trap:
    def __reduce__(self):
        import os

        return (os.getcwd, ())


def test_a_cifar_batch_that_asks_for_code_is_refused_not_run(cifar10, tmp_path):
    (cifar10 / "data_batch_2").write_bytes(pickle.dumps({b"data": _Trap()}, protocol=2))
    with pytest.raises(
        InputError, match=r"data_batch_2: cannot read .*refusing to load the global"
    ):
        build_split({"adapter": "cifar10", "root": str(cifar10)}, "train", work_dir=tmp_path)


def test_cifar_is_a_base_dataset_with_a_train_split_only(cifar10, tmp_path):
    with pytest.raises(InputError, match=r"only split 'train', not 'test'"):
        build_split({"adapter": "cifar10", "root": str(cifar10)}, "test", work_dir=tmp_path)
