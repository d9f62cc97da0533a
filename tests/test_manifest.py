"""The manifest stage and its CSV contract (METHOD.md section 2, docs/architecture.md
"Manifest"): records round-trip through the CSV, and the workflow's manifest rule reads every
native layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import run_snakemake, tiny_config
from layouts import (
    CSV_HEADER,
    cub_dataset,
    make_aircraft,
    make_cars,
    make_cifar10,
    make_cub,
    make_dogs,
    make_own,
    write_image,
    write_text,
)

from rpsloc import paths
from rpsloc.datasets.policy import read_skipped
from rpsloc.datasets.records import ImageRecord, read_manifest, write_manifest
from rpsloc.errors import InputError
from rpsloc.manifest import build_split, write_split_manifest
from rpsloc.synthetic import generate_synthetic_dataset

# ----------------------------------------------------------------------------- manifest CSV


def _record(image_id: str = "a/1.jpg", boxes=((1, 2, 3, 4), (5, 6, 7, 8))) -> ImageRecord:
    return ImageRecord(
        image_id=image_id,
        path=Path("/data") / image_id,
        width=40,
        height=30,
        label=3,
        boxes=np.array(boxes, dtype=np.int64),
        mask_paths=(Path("/masks/a_0.png"), Path("/masks/a_1.png")),
        ignore_path=Path("/masks/a_ignore.png"),
        fingerprints=("1200:17", "300:18", "310:19", "90:20"),
    )


def test_records_with_equal_fields_and_boxes_are_equal():
    assert _record() == _record()
    assert _record() != _record(boxes=((1, 2, 3, 5),))
    assert _record().boxes.flags.writeable is False


def test_a_manifest_round_trips_every_field(tmp_path):
    records = [
        _record(),
        ImageRecord("b/2.jpg", Path("/data/b/2.jpg"), 10, 20, -1, np.zeros((0, 4), np.int64)),
    ]
    write_manifest(records, tmp_path / "manifest" / "test.csv")
    assert read_manifest(tmp_path / "manifest" / "test.csv") == records
    assert [p.name for p in (tmp_path / "manifest").iterdir()] == ["test.csv"]  # no temp files


def test_the_manifest_csv_has_the_documented_columns_and_formats(tmp_path):
    write_manifest([_record()], tmp_path / "m.csv")
    header, row = (tmp_path / "m.csv").read_text().splitlines()
    assert header == (
        "image_id,path,width,height,label,boxes,mask_paths,ignore_path,box_origin,fingerprints"
    )
    assert row == (
        "a/1.jpg,/data/a/1.jpg,40,30,3,1 2 3 4;5 6 7 8,/masks/a_0.png;/masks/a_1.png,"
        "/masks/a_ignore.png,0,1200:17;300:18;310:19;90:20"
    )


def test_a_manifest_row_with_a_fingerprint_missing_is_an_error_naming_the_line(tmp_path):
    write_manifest([_record()], tmp_path / "m.csv")
    text = (tmp_path / "m.csv").read_text().replace(";90:20", "")
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(InputError, match=r"m.csv, line 2: .*one fingerprint per file \(4\)"):
        read_manifest(tmp_path / "m.csv")


def test_a_one_based_annotation_keeps_its_origin_so_the_native_boxes_can_be_rebuilt(tmp_path):
    record = ImageRecord("c.jpg", Path("/c.jpg"), 40, 30, 0, [[0, 1, 38, 29]], box_origin=1)
    write_manifest([record], tmp_path / "m.csv")
    (back,) = read_manifest(tmp_path / "m.csv")
    assert back == record
    assert back.native_boxes.tolist() == [[1, 2, 39, 30]]


def test_a_bad_manifest_row_is_an_error_naming_the_file_and_line(tmp_path):
    write_manifest([_record(), _record("a/2.jpg")], tmp_path / "m.csv")
    text = (tmp_path / "m.csv").read_text().replace("1 2 3 4;5 6 7 8", "1 2 3;5 6 7 8", 2)
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(InputError, match=r"m.csv, line 2: expected boxes"):
        read_manifest(tmp_path / "m.csv")


def test_a_manifest_value_too_large_for_the_stage_files_is_an_error_naming_the_line(tmp_path):
    write_manifest([_record(), _record("a/2.jpg")], tmp_path / "m.csv")
    text = (tmp_path / "m.csv").read_text()
    (tmp_path / "m.csv").write_text(text.replace(",40,30,3,", f",40,30,{2**63},", 1))
    with pytest.raises(InputError, match=r"m.csv, line 2: expected label between -1 and 21"):
        read_manifest(tmp_path / "m.csv")


def test_a_manifest_with_a_wrong_header_is_an_error(tmp_path):
    (tmp_path / "m.csv").write_text("image_id,path\n")
    with pytest.raises(InputError, match=r"m.csv, line 1: expected header"):
        read_manifest(tmp_path / "m.csv")


# ----------------------------------------------------------------------------- the stage


def test_the_stage_writes_the_manifest_and_the_skipped_table_of_a_split(tmp_path):
    own = make_own(tmp_path / "own")
    (own / "photos/b.png").unlink()
    dataset = {"adapter": "csv", "csv": str(own / "dataset.csv"), "on_bad_image": "skip"}
    write_split_manifest(dataset, "test", tmp_path / "test.csv", tmp_path / "test.skipped.csv")
    assert [r.image_id for r in read_manifest(tmp_path / "test.csv")] == ["photos/a.jpg"]
    assert [s.image_id for s in read_skipped(tmp_path / "test.skipped.csv")] == ["photos/b.png"]


def test_the_stage_names_the_dataset_in_its_errors(tmp_path):
    own = make_own(tmp_path / "own")
    (own / "photos/c.jpg").unlink()
    dataset = {"adapter": "csv", "csv": str(own / "dataset.csv"), "on_bad_image": "skip"}
    with pytest.raises(InputError, match=r"^mine: split 'train' has no usable image \(1 skipped"):
        write_split_manifest(dataset, "train", tmp_path / "m.csv", tmp_path / "s.csv", name="mine")


def test_the_stage_reads_a_generated_dataset_from_the_root_it_is_given(tmp_path):
    generate_synthetic_dataset(tmp_path / "generated", {"test": 3}, seed=0, max_side=64)
    dataset = {"adapter": "synthetic", "synthetic": {"splits": {"test": 3}}}
    out = tmp_path / "test.csv"
    write_split_manifest(dataset, "test", out, tmp_path / "s.csv", root=tmp_path / "generated")
    assert len(read_manifest(out)) == 3


# ----------------------------------------------------------------------------- the workflow


@pytest.fixture(scope="module")
def manifests(tmp_path_factory) -> Path:
    """The manifest stage of the workflow run on one fake copy of every native layout."""
    workdir = tmp_path_factory.mktemp("layouts")
    roots = {
        name: workdir / "data" / name for name in ("cub", "cars", "dogs", "air", "cifar", "own")
    }
    layouts = {
        "cub": {**cub_dataset(make_cub(roots["cub"])), "train_split": "test"},
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
    targets = [
        paths.MANIFEST.format(dataset=name, split=d["train_split"]) for name, d in layouts.items()
    ]
    run_snakemake(workdir, config, *targets)
    return workdir


@pytest.mark.workflow
def test_the_manifest_rule_reads_every_native_layout(manifests):
    rows = {
        name: len(read_manifest(manifests / paths.MANIFEST.format(dataset=name, split=split)))
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
    first = read_manifest(manifests / paths.MANIFEST.format(dataset="cifar", split="train"))[0]
    assert first.path == images[0]


@pytest.mark.workflow
def test_a_clean_dataset_leaves_an_empty_skipped_table(manifests):
    assert (
        manifests / paths.MANIFEST_SKIPPED.format(dataset="cars", split="train")
    ).read_text() == ("image_id,file,line,reason\n")


# ----------------------------------------------------------------------------- partial boxes


@pytest.fixture
def partly_boxed(tmp_path) -> dict:
    """A bring-your-own CSV whose test split has a box for one of its two images."""
    write_image(tmp_path / "a.jpg", (64, 48))
    write_image(tmp_path / "b.jpg", (64, 48))
    table = CSV_HEADER + "test,a.jpg,0,1,2,30,40\ntest,b.jpg,,,,,\n"
    return {"adapter": "csv", "csv": str(write_text(tmp_path / "own.csv", table))}


def test_an_evaluated_split_with_boxes_for_some_images_only_is_an_error_naming_one(partly_boxed):
    with pytest.raises(InputError, match=r"image b.jpg has no ground-truth box or mask, while 1"):
        build_split(partly_boxed, "test", evaluated=True)


def test_under_skip_an_image_without_a_box_is_listed_and_still_localized(partly_boxed):
    split = build_split({**partly_boxed, "on_bad_image": "skip"}, "test", evaluated=True)
    assert [item.image_id for item in split.skipped] == ["b.jpg"]
    assert "out of the metrics only (it is still localized)" in split.skipped[0].reason
    assert [record.image_id for record in split.records] == ["a.jpg", "b.jpg"]


def test_a_training_split_with_boxes_for_some_images_only_is_fine(partly_boxed):
    assert len(build_split(partly_boxed, "test", evaluated=False).records) == 2
