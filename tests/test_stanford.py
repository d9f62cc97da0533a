"""Stanford Cars and Stanford Dogs (METHOD.md section 2): the devkit's `.mat` files and Dogs'
VOC-style XML, with 1-based boxes and classes checked against values computed by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import scipy.io
from conftest import packages_imported_by
from layouts import (
    CARS_FIELDS,
    FULL_CROP,
    WIDE_BOX_CROP,
    crop_boxes,
    dogs_xml,
    make_cars,
    make_dogs,
    struct_array,
    write_text,
)

from rpsloc.datasets import source_files
from rpsloc.errors import InputError
from rpsloc.manifest import build_manifest

# ----------------------------------------------------------------------------- Stanford Cars


@pytest.fixture
def cars(tmp_path) -> Path:
    return make_cars(tmp_path)


def test_the_stages_read_manifests_without_scipy_which_only_the_mat_files_need():
    modules = "rpsloc.manifest, rpsloc.features, rpsloc.summary, rpsloc.representer"
    assert "scipy" not in packages_imported_by(modules)


def test_cars_reads_the_devkit_annotations_with_1_based_boxes_and_classes(cars):
    first, second = build_manifest({"adapter": "cars", "root": str(cars)}, "train")
    assert (first.image_id, first.label, first.width, first.height) == (
        "cars_train/00001.jpg",
        2,
        240,
        120,
    )
    assert first.boxes.tolist() == [[10, 20, 100, 80]]
    assert crop_boxes(first, 480, 448) == [WIDE_BOX_CROP]
    assert (second.label, crop_boxes(second, 480, 448)) == (195, [FULL_CROP])


def test_cars_keep_the_devkits_1_based_coordinates_for_the_authors_protocol(cars):
    first, _ = build_manifest({"adapter": "cars", "root": str(cars)}, "train")
    assert first.box_origin == 1
    assert first.native_boxes.tolist() == [[11, 21, 101, 81]]  # as in the .mat file


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
        cars / "devkit/cars_train_annos.mat", {"annotations": struct_array(rows, CARS_FIELDS)}
    )
    with pytest.raises(InputError, match=r"cars_train_annos.mat, entry 2: expected a label < 196"):
        build_manifest({"adapter": "cars", "root": str(cars)}, "train")


# ----------------------------------------------------------------------------- Stanford Dogs


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
    assert crop_boxes(first, 480, 448) == [WIDE_BOX_CROP, FULL_CROP]
    assert (second.label, crop_boxes(second, 480, 448)) == (119, [FULL_CROP])


def test_a_dogs_image_without_its_xml_annotation_is_an_error_naming_the_file(dogs):
    (dogs / "Annotation/n02-Akita/n02_7").unlink()
    with pytest.raises(
        InputError, match=r"n02_7: no annotation file for image n02-Akita/n02_7.jpg"
    ):
        build_manifest({"adapter": "dogs", "root": str(dogs)}, "train")


def test_a_dogs_xml_size_that_disagrees_with_the_image_is_an_error(dogs):
    write_text(dogs / "Annotation/n02-Akita/n02_7", dogs_xml(97, 96, [(1, 1, 96, 96)]))
    with pytest.raises(InputError, match=r"n02_7: size of n02-Akita/n02_7.jpg is 97x96, but"):
        build_manifest({"adapter": "dogs", "root": str(dogs)}, "train")
