"""One adapter per native layout (METHOD.md section 2, docs/datasets.md): tiny fake copies of
each layout, written here, read back with ids, labels, sizes and every box in crop
coordinates checked against values computed by hand."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import yaml
from conftest import run_snakemake, tiny_config
from PIL import Image
from snakemake.utils import validate

from rpsloc.config import check_config
from rpsloc.datasets import (
    ADAPTERS,
    build_manifest,
    build_split,
    dataset_settings,
    manifest_settings,
    read_manifest,
    source_files,
)
from rpsloc.errors import InputError
from rpsloc.masks import read_mask_image
from rpsloc.transforms import boxes_to_crop, mask_to_crop

# Every hand-computed crop box below uses one of two images: 240x120 and 96x96 pixels.
# Fine-grained defaults (resize 480, crop 448, offset o = 16): for 240x120, s_x = 2, s_y = 4,
# so the 0-based box (10, 20, 100, 80) becomes (20-16, 80-16, 200-16, 320-16) = (4, 64, 184,
# 304); the whole image (0, 0, 239, 119) becomes (-16 -> 0, -16 -> 0, 462 -> 447, 460 -> 447).
# For 96x96, s = 5: (0, 0, 95, 95) -> (0, 0, 459 -> 447, 459 -> 447).
WIDE, SQUARE = (240, 120), (96, 96)
WIDE_BOX_CROP = [4, 64, 184, 304]
FULL_CROP = [0, 0, 447, 447]


def _image(path: Path, size: tuple[int, int], colour=(120, 60, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def _text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _crop_boxes(record, size: int, crop: int) -> list[list[int]]:
    return boxes_to_crop(record.boxes, record.width, record.height, size, crop).tolist()


def _wsol_split(folder: Path, rows: list[tuple[str, int, tuple[int, int] | None, str]]) -> None:
    """A WSOL metadata split: rows of (id, label, size or None, localization lines)."""
    _text(folder / "image_ids.txt", "".join(f"{i}\n" for i, _, _, _ in rows))
    _text(folder / "class_labels.txt", "".join(f"{i},{label}\n" for i, label, _, _ in rows))
    sizes = "".join(f"{i},{s[0]},{s[1]}\n" for i, _, s, _ in rows if s is not None)
    _text(folder / "image_sizes.txt", sizes)
    _text(folder / "localization.txt", "".join(loc for _, _, _, loc in rows))


# ----------------------------------------------------------------------------- defaults


def test_fine_grained_datasets_default_to_resize_480_crop_448_stride_32():
    for adapter in ("cub", "cars", "dogs", "aircraft"):
        settings = dataset_settings({"adapter": adapter, "eval_splits": ["test"]})
        assert (settings["image_size"], settings["crop_size"], settings["output_stride"]) == (
            480,
            448,
            32,
        )


def test_imagenet_and_openimages_default_to_resize_256_crop_224_stride_16():
    for adapter in ("ilsvrc", "openimages", "csv", "wsol"):
        settings = dataset_settings({"adapter": adapter, "eval_splits": ["test"]})
        assert (settings["image_size"], settings["crop_size"], settings["output_stride"]) == (
            256,
            224,
            16,
        )


def test_cub_and_imagenet_choose_the_threshold_on_val_as_the_authors_do():
    assert (
        dataset_settings({"adapter": "cub", "eval_splits": ["val", "test"]})["threshold_split"]
        == "val"
    )
    assert (
        dataset_settings({"adapter": "ilsvrc", "eval_splits": ["val", "test"]})["threshold_split"]
        == "val"
    )
    assert "threshold_split" not in dataset_settings({"adapter": "cars", "eval_splits": ["test"]})


def test_values_set_in_the_config_win_over_the_defaults():
    settings = dataset_settings(
        {"adapter": "cub", "eval_splits": ["val"], "image_size": 256, "threshold_split": "x"}
    )
    assert (settings["image_size"], settings["crop_size"], settings["threshold_split"]) == (
        256,
        448,
        "x",
    )


def test_the_manifest_depends_only_on_the_adapter_keys():
    dataset = {"adapter": "cars", "root": "/c", "image_size": 480, "on_bad_image": "skip"}
    assert manifest_settings(dataset) == {"adapter": "cars", "root": "/c", "on_bad_image": "skip"}


def test_every_documented_adapter_is_registered():
    assert set(ADAPTERS) == {
        "wsol",
        "synthetic",
        "cub",
        "ilsvrc",
        "openimages",
        "cars",
        "dogs",
        "aircraft",
        "cifar10",
        "cifar100",
        "cifar100_coarse",
        "csv",
    }


# ----------------------------------------------------------------------------- CUB


def make_cub(tmp_path: Path) -> Path:
    """CUB_200_2011 with images/, the WSOL metadata and CUB segmentation PNGs."""
    root = tmp_path / "CUB_200_2011"
    _image(root / "images/001.A/a_1.jpg", WIDE)
    _image(root / "images/002.B/b_2.jpg", SQUARE)
    _wsol_split(
        tmp_path / "wsol/test",
        [
            ("001.A/a_1.jpg", 0, WIDE, "001.A/a_1.jpg,10,20,100,80\n"),
            ("002.B/b_2.jpg", 1, SQUARE, "002.B/b_2.jpg,0,0,95,95\n"),
        ],
    )
    soft = np.zeros(WIDE[::-1], dtype=np.uint8)
    soft[:, :120] = 153  # 3 of 5 annotators: foreground
    soft[:, 120:] = 102  # 2 of 5: background
    for name in ("001.A/a_1.png", "002.B/b_2.png"):
        (tmp_path / "segmentations" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(soft).save(tmp_path / "segmentations" / name)
    return tmp_path


@pytest.fixture
def cub(tmp_path) -> Path:
    return make_cub(tmp_path)


def _cub(cub: Path, **keys) -> dict:
    return {
        "adapter": "cub",
        "root": str(cub / "CUB_200_2011"),
        "metadata": str(cub / "wsol"),
        **keys,
    }


def test_cub_reads_ids_labels_sizes_and_boxes_from_the_wsol_metadata(cub):
    first, second = build_manifest(_cub(cub), "test")
    assert (first.image_id, first.label, first.width, first.height) == (
        "001.A/a_1.jpg",
        0,
        240,
        120,
    )
    assert first.path == cub / "CUB_200_2011/images/001.A/a_1.jpg"
    assert (second.image_id, second.label, second.width, second.height) == (
        "002.B/b_2.jpg",
        1,
        96,
        96,
    )
    assert _crop_boxes(first, 480, 448) == [WIDE_BOX_CROP]
    assert _crop_boxes(second, 480, 448) == [FULL_CROP]
    assert first.mask_paths == ()


def test_cub_reads_the_benchmark_copy_with_class_folders_at_the_top(cub):
    (cub / "CUB_200_2011/images").rename(cub / "flat")
    records = build_manifest(_cub(cub, root=str(cub / "flat")), "test")
    assert records[1].path == cub / "flat/002.B/b_2.jpg"


def test_cub_segmentation_masks_are_named_after_the_image_ids(cub):
    first, second = build_manifest(_cub(cub, segmentations=str(cub / "segmentations")), "test")
    assert first.mask_paths == (cub / "segmentations/001.A/a_1.png",)
    assert second.mask_paths == (cub / "segmentations/002.B/b_2.png",)


def test_cub_segmentation_masks_are_resized_like_the_image_and_binarised_at_one_half(cub):
    (record, _) = build_manifest(_cub(cub, segmentations=str(cub / "segmentations")), "test")
    mask = mask_to_crop(read_mask_image(record.mask_paths[0]), 480, 448)
    # grey 153 = 0.6 >= 0.5 on the left half (resized columns 0..239, crop columns 0..223)
    assert mask.shape == (448, 448)
    assert mask[:, :222].all() and not mask[:, 226:].any()


def test_a_missing_cub_segmentation_mask_is_an_error_naming_the_image(cub):
    (cub / "segmentations/002.B/b_2.png").unlink()
    with pytest.raises(InputError, match=r"image 002.B/b_2.jpg: mask file not found"):
        build_manifest(_cub(cub, segmentations=str(cub / "segmentations")), "test")


# ----------------------------------------------------------------------------- ILSVRC


def test_ilsvrc_reads_imagenetv2_val_and_the_original_val_as_test(tmp_path):
    # 128x64 at resize 256, crop 224 (o = 16): s_x = 2, s_y = 4; (10, 5, 60, 50) ->
    # (20-16, 20-16, 120-16, 200-16) = (4, 4, 104, 184)
    _image(tmp_path / "ILSVRC/val2/0/0.jpeg", (128, 64))
    _image(tmp_path / "ILSVRC/val/ILSVRC2012_val_00000001.JPEG", (128, 64))
    _wsol_split(
        tmp_path / "meta/val", [("val2/0/0.jpeg", 0, (128, 64), "val2/0/0.jpeg,10,5,60,50\n")]
    )
    test_id = "val/ILSVRC2012_val_00000001.JPEG"
    _wsol_split(
        tmp_path / "meta/test",
        [(test_id, 999, (128, 64), f"{test_id},10,5,60,50\n{test_id},0,0,127,63\n")],
    )
    dataset = {
        "adapter": "ilsvrc",
        "root": str(tmp_path / "ILSVRC"),
        "metadata": str(tmp_path / "meta"),
    }
    (val,) = build_manifest(dataset, "val")
    (test,) = build_manifest(dataset, "test")
    assert (val.image_id, val.label, test.label) == ("val2/0/0.jpeg", 0, 999)
    assert _crop_boxes(val, 256, 224) == [[4, 4, 104, 184]]
    # (0, 0, 127, 63) -> (-16 -> 0, -16 -> 0, 254-16, 252-16) = (0, 0, 238 -> 223, 236 -> 223)
    assert _crop_boxes(test, 256, 224) == [[4, 4, 104, 184], [0, 0, 223, 223]]


# ----------------------------------------------------------------------------- OpenImages


def test_openimages_reads_sizes_from_headers_and_instance_and_ignore_masks(tmp_path):
    _image(tmp_path / "OpenImages/test/01/a.jpg", (100, 50))
    for name in ("test/01/a_m01_0.png", "test/01/a_m01_1.png", "test/01/a_ignore.png"):
        _image(tmp_path / "OpenImages" / name, (100, 50))
    _wsol_split(
        tmp_path / "meta/test",
        [
            (
                "test/01/a.jpg",
                7,
                None,  # image_sizes.txt is empty in the real OpenImages metadata
                "test/01/a.jpg,test/01/a_m01_0.png,test/01/a_ignore.png\n"
                "test/01/a.jpg,test/01/a_m01_1.png,test/01/a_ignore.png\n",
            )
        ],
    )
    dataset = {
        "adapter": "openimages",
        "root": str(tmp_path / "OpenImages"),
        "metadata": str(tmp_path / "meta"),
    }
    (record,) = build_manifest(dataset, "test")
    masks = tmp_path / "OpenImages/test/01"
    assert (record.width, record.height, record.label) == (100, 50, 7)
    assert record.mask_paths == (masks / "a_m01_0.png", masks / "a_m01_1.png")
    assert record.ignore_path == masks / "a_ignore.png"
    assert record.boxes.shape == (0, 4)


# ----------------------------------------------------------------------------- Stanford Cars

CARS_FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")


def _struct_array(rows: list[tuple], fields: tuple[str, ...]) -> np.ndarray:
    """A 1xN MATLAB struct array as the devkit stores it."""
    array = np.zeros((1, len(rows)), dtype=[(name, object) for name in fields])
    for index, row in enumerate(rows):
        for name, value in zip(fields, row, strict=True):
            array[0, index][name] = value
    return array


def make_cars(tmp_path: Path) -> Path:
    """Stanford Cars: train annotations in devkit/, test ones (with labels) at the top."""
    _image(tmp_path / "cars_train/00001.jpg", WIDE)
    _image(tmp_path / "cars_train/00002.jpg", SQUARE)
    _image(tmp_path / "cars_test/00001.jpg", SQUARE)
    (tmp_path / "devkit").mkdir()
    # 1-based MATLAB coordinates: (11, 21, 101, 81) is the 0-based (10, 20, 100, 80)
    train = [(11, 21, 101, 81, 3, "00001.jpg"), (1, 1, 96, 96, 196, "00002.jpg")]
    scipy.io.savemat(
        tmp_path / "devkit/cars_train_annos.mat", {"annotations": _struct_array(train, CARS_FIELDS)}
    )
    test = [(1, 1, 96, 96, 1, "00001.jpg")]
    scipy.io.savemat(
        tmp_path / "cars_test_annos_withlabels.mat",
        {"annotations": _struct_array(test, CARS_FIELDS)},
    )
    return tmp_path


@pytest.fixture
def cars(tmp_path) -> Path:
    return make_cars(tmp_path)


def test_cars_reads_the_devkit_annotations_with_1_based_boxes_and_classes(cars):
    first, second = build_manifest({"adapter": "cars", "root": str(cars)}, "train")
    assert (first.image_id, first.label, first.width, first.height) == (
        "cars_train/00001.jpg",
        2,
        240,
        120,
    )
    assert first.boxes.tolist() == [[10, 20, 100, 80]]
    assert _crop_boxes(first, 480, 448) == [WIDE_BOX_CROP]
    assert (second.label, _crop_boxes(second, 480, 448)) == (195, [FULL_CROP])


def test_cars_reads_the_labelled_test_annotations(cars):
    (record,) = build_manifest({"adapter": "cars", "root": str(cars)}, "test")
    assert (record.image_id, record.label, record.boxes.tolist()) == (
        "cars_test/00001.jpg",
        0,
        [[0, 0, 95, 95]],
    )
    assert source_files({"adapter": "cars", "root": str(cars)}, "test") == [
        str(cars / "cars_test_annos_withlabels.mat")
    ]


def test_a_cars_class_out_of_range_is_an_error_naming_the_mat_entry(cars):
    rows = [(11, 21, 101, 81, 3, "00001.jpg"), (1, 1, 96, 96, 197, "00002.jpg")]
    scipy.io.savemat(
        cars / "devkit/cars_train_annos.mat", {"annotations": _struct_array(rows, CARS_FIELDS)}
    )
    with pytest.raises(InputError, match=r"cars_train_annos.mat, entry 2: expected a label < 196"):
        build_manifest({"adapter": "cars", "root": str(cars)}, "train")


# ----------------------------------------------------------------------------- Stanford Dogs


def _dogs_xml(width: int, height: int, boxes: list[tuple[int, int, int, int]]) -> str:
    objects = "".join(
        f"<object><name>dog</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax>"
        f"<ymax>{y1}</ymax></bndbox></object>"
        for x0, y0, x1, y1 in boxes
    )
    return (
        f"<annotation><folder>02085620</folder><size><width>{width}</width>"
        f"<height>{height}</height><depth>3</depth></size>{objects}</annotation>"
    )


def _cell(values: list) -> np.ndarray:
    return np.array(values, dtype=object).reshape(-1, 1)


def make_dogs(tmp_path: Path) -> Path:
    """Stanford Dogs: Images/, Annotation/ (XML without extension), train_list.mat."""
    _image(tmp_path / "Images/n01-Chihuahua/n01_1.jpg", WIDE)
    _image(tmp_path / "Images/n02-Akita/n02_7.jpg", SQUARE)
    _text(
        tmp_path / "Annotation/n01-Chihuahua/n01_1",
        _dogs_xml(240, 120, [(11, 21, 101, 81), (1, 1, 240, 120)]),
    )
    _text(tmp_path / "Annotation/n02-Akita/n02_7", _dogs_xml(96, 96, [(1, 1, 96, 96)]))
    scipy.io.savemat(
        tmp_path / "train_list.mat",
        {
            "file_list": _cell(["n01-Chihuahua/n01_1.jpg", "n02-Akita/n02_7.jpg"]),
            "annotation_list": _cell(["n01-Chihuahua/n01_1", "n02-Akita/n02_7"]),
            "labels": np.array([[1], [120]], dtype=np.uint8),
        },
    )
    return tmp_path


@pytest.fixture
def dogs(tmp_path) -> Path:
    return make_dogs(tmp_path)


def test_dogs_reads_every_voc_box_of_an_image_1_based(dogs):
    first, second = build_manifest({"adapter": "dogs", "root": str(dogs)}, "train")
    assert (first.image_id, first.label, first.width, first.height) == (
        "n01-Chihuahua/n01_1.jpg",
        0,
        240,
        120,
    )
    assert first.path == dogs / "Images/n01-Chihuahua/n01_1.jpg"
    assert first.boxes.tolist() == [[10, 20, 100, 80], [0, 0, 239, 119]]
    assert _crop_boxes(first, 480, 448) == [WIDE_BOX_CROP, FULL_CROP]
    assert (second.label, _crop_boxes(second, 480, 448)) == (119, [FULL_CROP])


def test_a_dogs_image_without_its_xml_annotation_is_an_error_naming_the_file(dogs):
    (dogs / "Annotation/n02-Akita/n02_7").unlink()
    with pytest.raises(
        InputError, match=r"n02_7: no annotation file for image n02-Akita/n02_7.jpg"
    ):
        build_manifest({"adapter": "dogs", "root": str(dogs)}, "train")


def test_a_dogs_xml_size_that_disagrees_with_the_image_is_an_error(dogs):
    _text(dogs / "Annotation/n02-Akita/n02_7", _dogs_xml(97, 96, [(1, 1, 96, 96)]))
    with pytest.raises(InputError, match=r"n02_7: size of n02-Akita/n02_7.jpg is 97x96, but"):
        build_manifest({"adapter": "dogs", "root": str(dogs)}, "train")


# ----------------------------------------------------------------------------- FGVC-Aircraft


def make_aircraft(tmp_path: Path) -> Path:
    data = tmp_path / "fgvc-aircraft-2013b/data"
    _image(data / "images/0000001.jpg", WIDE)
    _image(data / "images/0000002.jpg", SQUARE)
    _text(data / "images_train.txt", "0000001\n")
    _text(data / "images_test.txt", "0000002\n")
    _text(data / "images_box.txt", "0000001 11 21 101 81\n0000002 1 1 96 96\n")
    _text(data / "variants.txt", "707-320\nCessna 172\n")
    _text(data / "images_variant_train.txt", "0000001 Cessna 172\n")
    return tmp_path / "fgvc-aircraft-2013b"


@pytest.fixture
def aircraft(tmp_path) -> Path:
    return make_aircraft(tmp_path)


def test_aircraft_reads_1_based_boxes_sizes_from_headers_and_the_variant_label(aircraft):
    (record,) = build_manifest({"adapter": "aircraft", "root": str(aircraft)}, "train")
    assert (record.image_id, record.label, record.width, record.height) == ("0000001", 1, 240, 120)
    assert record.path == aircraft / "data/images/0000001.jpg"
    assert record.boxes.tolist() == [[10, 20, 100, 80]]
    assert _crop_boxes(record, 480, 448) == [WIDE_BOX_CROP]


def test_aircraft_without_a_variant_file_gives_unknown_labels(aircraft):
    (record,) = build_manifest({"adapter": "aircraft", "root": str(aircraft)}, "test")
    assert (record.label, _crop_boxes(record, 480, 448)) == (-1, [FULL_CROP])


def test_an_aircraft_id_missing_from_images_box_is_an_error_naming_both_files(aircraft):
    _text(aircraft / "data/images_box.txt", "0000002 1 1 96 96\n")
    with pytest.raises(
        InputError,
        match=r"images_box.txt: no line for image id '0000001' \(.*images_train.txt, line 1\)",
    ):
        build_manifest({"adapter": "aircraft", "root": str(aircraft)}, "train")


# ----------------------------------------------------------------------------- CIFAR


def _cifar_pixels(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 3072), dtype=np.uint8)


def _pickle(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({k.encode(): v for k, v in content.items()}, protocol=2))


def make_cifar10(tmp_path: Path) -> Path:
    root = tmp_path / "cifar-10-batches-py"
    for batch in range(1, 6):
        _pickle(
            root / f"data_batch_{batch}",
            {"data": _cifar_pixels(2, batch), "labels": [batch, 9 - batch], "batch_label": b"x"},
        )
    return root


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
    row = _cifar_pixels(2, 4)[1]
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
    _pickle(
        root / "train",
        {"data": _cifar_pixels(3, 0), "fine_labels": [17, 99, 0], "coarse_labels": [3, 19, 0]},
    )
    records = build_split(
        {"adapter": adapter, "root": str(root)}, "train", work_dir=tmp_path
    ).records
    assert [r.label for r in records] == labels


def test_a_cifar_label_out_of_range_is_an_error_naming_the_batch_entry(cifar10, tmp_path):
    _pickle(cifar10 / "data_batch_3", {"data": _cifar_pixels(2, 3), "labels": [3, 10]})
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


# ----------------------------------------------------------------------------- bring your own

CSV_HEADER = "split,image_path,label,x0,y0,x1,y1\n"


def make_own(tmp_path: Path) -> Path:
    _image(tmp_path / "photos/a.jpg", WIDE)
    _image(tmp_path / "photos/b.png", SQUARE)
    _image(tmp_path / "photos/c.jpg", SQUARE)
    _text(
        tmp_path / "dataset.csv",
        CSV_HEADER + "test,photos/a.jpg,4,10,20,100,80\n"
        "train,photos/c.jpg,,,,,\n"
        "test,photos/a.jpg,4,0,0,239,119\n"
        "test,photos/b.png,0,0,0,95,95\n",
    )
    return tmp_path


@pytest.fixture
def own(tmp_path) -> Path:
    return make_own(tmp_path)


def test_a_bring_your_own_csv_gives_one_record_per_image_with_all_its_boxes(own):
    first, second = build_manifest({"adapter": "csv", "csv": str(own / "dataset.csv")}, "test")
    assert (first.image_id, first.label, first.width, first.height) == ("photos/a.jpg", 4, 240, 120)
    assert first.path == own / "photos/a.jpg"
    assert _crop_boxes(first, 480, 448) == [WIDE_BOX_CROP, FULL_CROP]
    # at the csv adapter's default 256/224 (o = 16), 96x96 (s = 8/3): 95 * 8/3 - 16 = 237 -> 223
    assert (second.image_id, _crop_boxes(second, 256, 224)) == ("photos/b.png", [[0, 0, 223, 223]])


def test_a_csv_line_with_empty_label_and_box_is_an_unlabelled_image_without_boxes(own):
    (record,) = build_manifest({"adapter": "csv", "csv": str(own / "dataset.csv")}, "train")
    assert (record.image_id, record.label, record.boxes.shape) == ("photos/c.jpg", -1, (0, 4))


def test_csv_paths_are_relative_to_the_configured_root(own):
    _text(own / "lists/d.csv", CSV_HEADER + "test,a.jpg,1,0,0,1,1\n")
    dataset = {"adapter": "csv", "csv": str(own / "lists/d.csv"), "root": str(own / "photos")}
    (record,) = build_manifest(dataset, "test")
    assert record.path == own / "photos/a.jpg"


def test_an_image_in_two_csv_splits_is_an_error_naming_both_lines(own):
    _text(own / "d.csv", CSV_HEADER + "train,photos/a.jpg,1,,,,\ntest,photos/a.jpg,1,,,,\n")
    with pytest.raises(
        InputError, match=r"d.csv, line 3: image photos/a.jpg is in split 'train' on line 2"
    ):
        build_manifest({"adapter": "csv", "csv": str(own / "d.csv")}, "test")


def test_a_csv_with_another_header_is_an_error_naming_the_expected_columns(own):
    _text(own / "d.csv", "path,label\nphotos/a.jpg,1\n")
    with pytest.raises(InputError, match=r"d.csv, line 1: expected the header split,image_path"):
        build_manifest({"adapter": "csv", "csv": str(own / "d.csv")}, "test")


# ----------------------------------------------------------------------------- the workflow


@pytest.fixture(scope="module")
def manifests(tmp_path_factory) -> Path:
    """The manifest stage of the workflow run on one fake copy of every native layout."""
    workdir = tmp_path_factory.mktemp("layouts")
    roots = {
        name: workdir / "data" / name for name in ("cub", "cars", "dogs", "air", "cifar", "own")
    }
    layouts = {
        "cub": {**_cub(make_cub(roots["cub"])), "train_split": "test"},
        "cars": {"adapter": "cars", "root": str(make_cars(roots["cars"])), "train_split": "train"},
        "dogs": {"adapter": "dogs", "root": str(make_dogs(roots["dogs"])), "train_split": "train"},
        "air": {
            "adapter": "aircraft",
            "root": str(make_aircraft(roots["air"])),
            "train_split": "test",
        },
        "cifar": {
            "adapter": "cifar10",
            "root": str(make_cifar10(roots["cifar"])),
            "train_split": "train",
        },
        "own": {
            "adapter": "csv",
            "csv": str(make_own(roots["own"]) / "dataset.csv"),
            "train_split": "test",
        },
    }
    config = tiny_config()
    config["datasets"] = {
        name: {**layout, "eval_splits": [], "backbones": ["fixture"], "variants": ["caam"]}
        for name, layout in layouts.items()
    }
    targets = [f"results/{name}/manifest/{d['train_split']}.csv" for name, d in layouts.items()]
    run_snakemake(workdir, config, *targets)
    return workdir


@pytest.mark.workflow
def test_the_manifest_rule_reads_every_native_layout(manifests):
    rows = {
        name: len(read_manifest(manifests / f"results/{name}/manifest/{split}.csv"))
        for name, split in [
            ("cub", "test"),
            ("cars", "train"),
            ("dogs", "train"),
            ("air", "test"),
            ("cifar", "train"),
            ("own", "test"),
        ]
    }
    assert rows == {"cub": 2, "cars": 2, "dogs": 2, "air": 1, "cifar": 10, "own": 2}


@pytest.mark.workflow
def test_the_workflow_writes_cifar_images_under_the_dataset_results(manifests):
    images = sorted((manifests / "results/cifar/images/train").iterdir())
    assert [p.name for p in images] == [f"{k:05d}.png" for k in range(10)]
    first = read_manifest(manifests / "results/cifar/manifest/train.csv")[0]
    assert first.path == images[0]


@pytest.mark.workflow
def test_a_clean_dataset_leaves_an_empty_skipped_table(manifests):
    assert (manifests / "results/cars/manifest/train.skipped.csv").read_text() == (
        "image_id,file,line,reason\n"
    )


# ----------------------------------------------------------------------------- example configs

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "config/examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_config_passes_the_schema_and_the_config_checks(path):
    config = yaml.safe_load(path.read_text())
    validate(config, str(path.parents[1] / "schema.yaml"))
    config["datasets"] = {name: dataset_settings(d) for name, d in config["datasets"].items()}
    check_config(config)
    assert {d["adapter"] for d in config["datasets"].values()} <= set(ADAPTERS)


def test_there_is_an_example_config_for_every_real_dataset():
    adapters = {
        d["adapter"] for p in EXAMPLES for d in yaml.safe_load(p.read_text())["datasets"].values()
    }
    assert adapters == set(ADAPTERS) - {"wsol", "synthetic"}
