"""Bad input gets a clear answer (docs/datasets.md, "Bad input"): with `on_bad_image: error`
the run stops with a message naming the file and line; with `skip` the image is left out,
listed with its reason in `<split>.skipped.csv`, gathered into `results/<dataset>/skipped.csv`
and counted in the summary's `n_skipped`. Nothing is dropped silently."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import run_snakemake, tiny_config
from PIL import Image

from rpsloc import paths
from rpsloc.datasets.policy import read_skipped, write_skipped
from rpsloc.errors import InputError
from rpsloc.manifest import build_split
from rpsloc.summary import gather_skipped
from rpsloc.synthetic import generate_synthetic_dataset
from rpsloc.transforms import load_rgb

SIZES = {"a/1.jpg": (40, 30), "a/2.jpg": (50, 20), "b/3.jpg": (30, 30)}
METADATA = {
    "image_ids.txt": "a/1.jpg\na/2.jpg\nb/3.jpg\n",
    "class_labels.txt": "a/1.jpg,0\na/2.jpg,0\nb/3.jpg,1\n",
    "image_sizes.txt": "a/1.jpg,40,30\na/2.jpg,50,20\nb/3.jpg,30,30\n",
    "localization.txt": "a/1.jpg,0,0,39,29\na/2.jpg,5,5,10,10\nb/3.jpg,3,4,5,6\n",
}


@pytest.fixture
def tiny(tmp_path) -> Path:
    for image_id, size in SIZES.items():
        (tmp_path / "img" / image_id).parent.mkdir(parents=True, exist_ok=True)
        noise = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(noise).save(tmp_path / "img" / image_id, quality=95)  # ~ 3 kB of scan
    (tmp_path / "meta/test").mkdir(parents=True)
    for name, text in METADATA.items():
        (tmp_path / "meta/test" / name).write_text(text)
    return tmp_path


def _dataset(tiny: Path, **keys) -> dict:
    return {
        "adapter": "wsol",
        "metadata": str(tiny / "meta"),
        "images": str(tiny / "img"),
        "num_classes": 2,
        **keys,
    }


def _edit(name: str, old: str, new: str) -> Callable[[Path], None]:
    def edit(tiny: Path) -> None:
        path = tiny / "meta/test" / name
        path.write_text(path.read_text().replace(old, new))

    return edit


def _truncate(tiny: Path) -> None:
    path = tiny / "img/a/2.jpg"
    path.write_bytes(path.read_bytes()[:-200])


def _not_an_image(tiny: Path) -> None:
    (tiny / "img/a/2.jpg").write_text("not an image")


def _missing(tiny: Path) -> None:
    (tiny / "img/a/2.jpg").unlink()


# (bad input, change, check_images, the error's message, the image left out)
BAD_INPUTS = {
    "missing image file": (
        _missing,
        "header",
        r"image_ids.txt, line 2: image a/2.jpg: file not found",
    ),
    "unreadable image": (
        _not_an_image,
        "header",
        r"a/2.jpg: cannot read the header of image a/2.jpg",
    ),
    "truncated image": (_truncate, "decode", r"a/2.jpg: cannot decode image a/2.jpg \(.*truncated"),
    "id missing from class_labels": (
        _edit("class_labels.txt", "a/2.jpg,0\n", ""),
        "header",
        r"class_labels.txt: no line for image id 'a/2.jpg' \(.*image_ids.txt, line 2\)",
    ),
    "id in localization but not image_ids": (
        _edit("localization.txt", "b/3.jpg,3,4,5,6\n", "b/3.jpg,3,4,5,6\nc/9.jpg,1,1,2,2\n"),
        "header",
        r"localization.txt, line 4: image id 'c/9.jpg' is not in .*image_ids.txt",
    ),
    "duplicated id": (
        _edit("image_ids.txt", "b/3.jpg\n", "b/3.jpg\na/2.jpg\n"),
        "header",
        r"image_ids.txt, line 4: duplicated image id 'a/2.jpg' \(first on line 2\)",
    ),
    "box outside the image": (
        _edit("localization.txt", "a/2.jpg,5,5,10,10", "a/2.jpg,5,5,50,10"),
        "header",
        r"localization.txt, line 2: box \(5, 5, 50, 10\) of a/2.jpg is outside the 50x20 image",
    ),
    "box with x1 < x0": (
        _edit("localization.txt", "a/2.jpg,5,5,10,10", "a/2.jpg,11,5,10,10"),
        "header",
        r"localization.txt, line 2: box \(11, 5, 10, 10\) of a/2.jpg has x1 < x0",
    ),
    "label out of range": (
        _edit("class_labels.txt", "a/2.jpg,0", "a/2.jpg,2"),
        "header",
        r"class_labels.txt, line 2: expected a label < 2 \(0-based\) for image a/2.jpg, found 2",
    ),
    "label that is not an integer": (
        _edit("class_labels.txt", "a/2.jpg,0", "a/2.jpg,0.5"),
        "header",
        r"class_labels.txt, line 2: expected integers in 'id,label', .*label: '0.5'",
    ),
    "box coordinate that is not an integer": (
        _edit("localization.txt", "a/2.jpg,5,5,10,10", "a/2.jpg,5,5,1e9,10"),
        "header",
        r"localization.txt, line 2: expected integers in 'id,x0,y0,x1,y1', .*x1: '1e9'",
    ),
    "size too large for the stage files": (
        _edit("image_sizes.txt", "a/2.jpg,50,20", "a/2.jpg,50,4294967296"),
        "none",
        r"image_sizes.txt, line 2: expected a size of at most 2147483647 pixels for a/2.jpg",
    ),
    "id escaping the root": (
        lambda tiny: [
            _edit(name, "a/2.jpg", "../a/2.jpg")(tiny)
            for name in ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")
        ],
        "header",
        r"image_ids.txt, line 2: path '../a/2.jpg' escapes its root",
    ),
}
LEFT_OUT = {"id in localization but not image_ids": "c/9.jpg", "id escaping the root": "../a/2.jpg"}


@pytest.mark.parametrize("bad_input", list(BAD_INPUTS))
def test_a_bad_input_stops_the_run_with_its_file_and_line(tiny, bad_input):
    change, check_images, message = BAD_INPUTS[bad_input]
    change(tiny)
    with pytest.raises(InputError, match=message):
        build_split(_dataset(tiny, check_images=check_images), "test")


@pytest.mark.parametrize("bad_input", list(BAD_INPUTS))
def test_with_skip_a_bad_image_is_left_out_and_listed_with_its_reason(tiny, bad_input):
    change, check_images, message = BAD_INPUTS[bad_input]
    change(tiny)
    split = build_split(_dataset(tiny, check_images=check_images, on_bad_image="skip"), "test")
    left_out = LEFT_OUT.get(bad_input, "a/2.jpg")
    kept = [r.image_id for r in split.records]
    assert left_out not in kept and len(kept) == (3 if left_out == "c/9.jpg" else 2)
    assert [s.image_id for s in split.skipped] == [left_out]
    assert re.search(message, split.skipped[0].reason)


def test_the_skipped_reason_names_the_file_and_line(tiny):
    _edit("localization.txt", "a/2.jpg,5,5,10,10", "a/2.jpg,5,5,50,10")(tiny)
    (skipped,) = build_split(_dataset(tiny, on_bad_image="skip"), "test").skipped
    assert (Path(skipped.file).name, skipped.line) == ("localization.txt", 2)
    assert "outside the 50x20 image" in skipped.reason


def test_a_truncated_image_passes_a_header_check_but_not_decoding(tiny):
    _truncate(tiny)
    assert len(build_split(_dataset(tiny), "test").records) == 3  # header only: undetected
    with pytest.raises(InputError, match=r"img/a/2.jpg: cannot read as an image"):
        load_rgb(tiny / "img/a/2.jpg")  # so the features stage stops, naming the path


def test_a_split_whose_every_image_is_bad_is_an_error_even_with_skip(tiny):
    shutil.rmtree(tiny / "img")
    with pytest.raises(InputError, match=r"split 'test' has no usable image \(3 skipped"):
        build_split(_dataset(tiny, on_bad_image="skip"), "test")


def test_skipped_tables_round_trip_and_gather_per_split(tiny, tmp_path):
    _missing(tiny)
    skipped = build_split(_dataset(tiny, on_bad_image="skip"), "test").skipped
    write_skipped(skipped, tmp_path / "test.skipped.csv")
    write_skipped([], tmp_path / "train.skipped.csv")
    assert read_skipped(tmp_path / "test.skipped.csv") == skipped
    counts = gather_skipped(
        {"train": tmp_path / "train.skipped.csv", "test": tmp_path / "test.skipped.csv"},
        tmp_path / "skipped.csv",
    )
    assert counts == {"train": 0, "test": 1}
    table = pd.read_csv(tmp_path / "skipped.csv")
    assert list(table.columns) == ["split", "image_id", "file", "line", "reason"]
    assert table[["split", "image_id", "line"]].values.tolist() == [["test", "a/2.jpg", 2]]


# ----------------------------------------------------------------------------- the workflow


@pytest.fixture(scope="module")
def skipping_run(tmp_path_factory) -> Path:
    """The workflow on a bring-your-own CSV with three bad images and `on_bad_image: skip`."""
    workdir = tmp_path_factory.mktemp("skipping")
    data = workdir / "data"
    generate_synthetic_dataset(data, {"train": 8, "test": 6}, n_classes=2, seed=3, max_side=96)
    lines = ["split,image_path,label,x0,y0,x1,y1"]
    for split in ("train", "test"):
        meta = data / "metadata" / split
        labels = dict(line.split(",") for line in (meta / "class_labels.txt").read_text().split())
        for line in (meta / "localization.txt").read_text().split():
            image_id, *box = line.split(",")
            lines.append(",".join([split, f"images/{image_id}", labels[image_id], *box]))
    first_test = next(line for line in lines if line.startswith("test,"))
    lines.append("test,images/test/0/missing.jpg,0,1,1,5,5")  # missing image file
    lines.append(first_test.rsplit(",", 4)[0] + ",0,0,500,5")  # box outside, same image
    (data / "dataset.csv").write_text("\n".join(lines) + "\n")
    train_image = data / lines[1].split(",")[1]
    train_image.write_bytes(train_image.read_bytes()[:-300])  # truncated training image

    config = tiny_config()
    config["datasets"] = {
        "own": {
            "adapter": "csv",
            "csv": str(data / "dataset.csv"),
            "on_bad_image": "skip",
            "check_images": "decode",
            "train_split": "train",
            "eval_splits": ["test"],
            "image_size": 128,
            "crop_size": 112,
            "backbones": ["fixture"],
            "variants": ["caam"],
        }
    }
    run_snakemake(workdir, config, "own")
    return workdir


@pytest.mark.workflow
def test_the_workflow_gathers_every_skipped_image_with_its_split(skipping_run):
    table = pd.read_csv(skipping_run / paths.SKIPPED.format(dataset="own"))
    assert sorted(table["split"]) == ["test", "test", "train"]
    reasons = " ".join(table["reason"])
    assert "file not found" in reasons and "outside" in reasons and "cannot decode" in reasons


@pytest.mark.workflow
def test_the_summary_counts_the_skipped_images_of_its_split(skipping_run):
    summary = pd.read_csv(skipping_run / paths.SUMMARY.format(dataset="own"))
    assert summary[["split", "n_images", "n_skipped"]].values.tolist() == [["test", 5, 2]]


@pytest.mark.workflow
def test_the_truncated_training_image_is_left_out_and_logged(skipping_run):
    assert len(pd.read_csv(skipping_run / paths.MANIFEST.format(dataset="own", split="train"))) == 7
    log = (skipping_run / "logs/own/manifest/train.log").read_text()
    assert "split train: 1 image(s) skipped" in log


@pytest.mark.workflow
def test_an_unset_output_stride_takes_the_adapter_default(skipping_run):
    shard = skipping_run / paths.FEATURE_SHARD.format(
        dataset="own", backbone="fixture", split="test", shard=0
    )
    with h5py.File(shard) as handle:
        assert int(handle.attrs["output_stride"]) == 16  # csv: METHOD.md's ImageNet default
