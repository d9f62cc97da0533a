"""The `rpsloc` commands: `localize` (the front door: boxes for a folder of images), and those
users inspect results with: `inspect`, `summary`, `show` and `synth` (`evaluate` and `weights
check` have their own test modules)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rpsloc.cli import main
from rpsloc.io import atomic_h5
from rpsloc.synthetic import generate_synthetic_dataset, generate_synthetic_folder


@pytest.fixture
def small_h5(tmp_path):
    path = tmp_path / "maps.h5"
    with atomic_h5(path, {"stage": "maps", "crop_size": 112}) as handle:
        handle.create_dataset("maps", data=np.arange(24, dtype=np.float32).reshape(2, 3, 4))
        handle["maps"].attrs["units"] = "activation"
    return path


def test_inspect_prints_shapes_dtypes_attributes_and_first_values(small_h5, capsys):
    assert main(["inspect", str(small_h5), "--values", "3"]) == 0
    out = capsys.readouterr().out
    assert "maps: shape (2, 3, 4), dtype float32, first values [0.0, 1.0, 2.0]" in out
    assert "@crop_size = " in out and "@units = 'activation'" in out
    assert "WARNING" not in out


def test_inspect_prints_attributes_as_python_values_not_numpy_reprs(tmp_path, capsys):
    path = tmp_path / "attributes.h5"
    with atomic_h5(path, {"crop_size": 112}) as handle:
        handle.attrs["name"] = np.bytes_(b"r50")
        handle.attrs["thresholds"] = np.array([0.25, 0.5])
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "@crop_size = 112\n" in out and "@complete = True\n" in out
    assert "@thresholds = [0.25, 0.5]\n" in out and "@name = 'r50'\n" in out


def test_inspect_warns_about_a_file_without_the_complete_mark(tmp_path, capsys):
    path = tmp_path / "cut.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("x", data=[1, 2])
    assert main(["inspect", str(path)]) == 0
    assert "no 'complete' mark" in capsys.readouterr().out


def test_inspect_of_a_missing_file_exits_2_naming_it(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "none.h5")]) == 2
    assert "none.h5" in capsys.readouterr().err


def test_inspect_of_a_file_that_is_not_hdf5_exits_2_saying_so(tmp_path, capsys):
    (tmp_path / "summary.csv").write_text("backbone,variant\n")
    assert main(["inspect", str(tmp_path / "summary.csv")]) == 2
    assert "summary.csv: not an HDF5 file" in capsys.readouterr().err


def test_inspect_of_a_truncated_file_exits_2_saying_it_was_cut_short(small_h5, capsys):
    small_h5.write_bytes(small_h5.read_bytes()[:1500])
    assert main(["inspect", str(small_h5)]) == 2
    err = capsys.readouterr().err
    assert "maps.h5: an HDF5 file that cannot be opened, most likely cut short" in err
    assert "Traceback" not in err


def test_synth_writes_the_requested_number_of_images_per_split(tmp_path, capsys):
    arguments = ["--train", "3", "--val", "2", "--test", "1", "--max-side", "64"]
    assert main(["synth", str(tmp_path / "synthetic"), *arguments]) == 0
    for split, count in {"train": 3, "val": 2, "test": 1}.items():
        ids = (tmp_path / "synthetic" / "metadata" / split / "image_ids.txt").read_text()
        assert len(ids.split()) == count


def test_synth_style_mosaic_writes_the_mosaic_set(tmp_path, capsys):
    arguments = ["--train", "2", "--val", "1", "--test", "1", "--style", "mosaic"]
    assert main(["synth", str(tmp_path / "cli"), *arguments]) == 0
    generate_synthetic_dataset(
        tmp_path / "library", {"train": 2, "val": 1, "test": 1}, style="mosaic"
    )
    image = "images/train/0/0000.jpg"
    assert (tmp_path / "cli" / image).read_bytes() == (tmp_path / "library" / image).read_bytes()


@pytest.mark.workflow
def test_summary_prints_one_line_per_backbone_variant_and_split(report_run, capsys):
    assert main(["summary", str(report_run / "results" / "tiny")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["dataset", "backbone", "arch"]
    assert len(lines) == 1 + 2 * 2  # header, then (rps, caam) x (val, test)


def test_summary_of_a_folder_without_results_exits_2(tmp_path, capsys):
    assert main(["summary", str(tmp_path)]) == 2
    assert "no summary yet" in capsys.readouterr().err


@pytest.mark.workflow
def test_show_writes_the_overlay_and_the_representer_gallery_of_a_test_image(
    report_run, tmp_path, capsys
):
    results = report_run / "results" / "tiny"
    image_id = pd.read_csv(results / "manifest" / "test.csv")["image_id"][0]
    arguments = ["show", "--results", str(results), "--image", image_id, "--out", str(tmp_path)]
    assert main(arguments) == 0
    stem = image_id.replace("/", "_")
    for suffix in ("overlay", "representers"):
        with Image.open(tmp_path / f"{stem}-{suffix}.png") as image:
            assert image.format == "PNG" and min(image.size) >= 300
    assert capsys.readouterr().out.count("wrote ") == 2


@pytest.mark.workflow
def test_show_draws_only_the_overlay_for_a_split_without_explanations(report_run, tmp_path):
    results = report_run / "results" / "tiny"
    image_id = pd.read_csv(results / "manifest" / "val.csv")["image_id"][0]
    arguments = ["show", "--results", str(results), "--image", image_id, "--variant", "caam"]
    assert main([*arguments, "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"{image_id.replace('/', '_')}-overlay.png"
    ]


@pytest.mark.workflow
def test_show_of_an_unknown_image_exits_2_naming_it(report_run, tmp_path, capsys):
    results = report_run / "results" / "tiny"
    arguments = ["show", "--results", str(results), "--image", "nope.jpg", "--out", str(tmp_path)]
    assert main(arguments) == 2
    assert "'nope.jpg'" in capsys.readouterr().err


def test_evaluate_scores_a_folder_of_score_maps_and_writes_the_json(tmp_path, capsys):
    metadata = tmp_path / "metadata"
    metadata.mkdir()
    (metadata / "image_ids.txt").write_text("val/a.jpg\n")
    (metadata / "image_sizes.txt").write_text("val/a.jpg,224,224\n")
    (metadata / "localization.txt").write_text("val/a.jpg,50,60,149,179\n")
    scores = np.zeros((224, 224), dtype=np.float32)
    scores[60:180, 50:150] = 1.0
    (tmp_path / "maps" / "val").mkdir(parents=True)
    np.save(tmp_path / "maps" / "val" / "a.jpg.npy", scores)
    out = tmp_path / "result.json"
    arguments = ["--metadata", str(metadata), "--scoremaps", str(tmp_path / "maps")]
    assert main(["evaluate", *arguments, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["max_box_acc_v2"] == pytest.approx(100.0)
    assert '"max_box_acc_v2": 100.0' in capsys.readouterr().out


# ----------------------------------------------------------------------------- localize

RPSLOC = Path(sys.executable).with_name("rpsloc")


def localize_command(photos: Path, out: Path) -> list[str]:
    """`rpsloc localize` as a user runs it: the installed command, no configuration file."""
    backbone = ["--backbone", "fixture-colourfulness", "--checkpoint", "none"]
    sizes = ["--image-size", "128", "--device", "cpu", "--overlays", "4"]
    return [str(RPSLOC), "localize", str(photos), *backbone, *sizes, "--out", str(out)]


@pytest.fixture(scope="module")
def localized(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A folder of 8 photos (2 empty), no metadata, localized once: w* from the folder itself."""
    root = tmp_path_factory.mktemp("localize")
    generate_synthetic_folder(root / "photos", {"photos": 8}, empty=0.25, max_side=160)
    run = subprocess.run(
        localize_command(root / "photos", root / "out"), capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return root, run


@pytest.mark.workflow
def test_localize_writes_the_boxes_csv_the_coco_file_and_the_figures(localized):
    root, run = localized
    written = dict(line.split(": ", 1) for line in run.stdout.strip().splitlines())
    assert set(written) == {"boxes", "images", "coco", "predictions", "objectness"}
    images = pd.read_csv(written["images"])
    assert len(images) == 8 and (images["objectness"] >= 0).all()
    assert set(pd.read_csv(written["boxes"]).columns) == {
        "image_id",
        "rank",
        "x0",
        "y0",
        "x1",
        "y1",
        "score",
    }
    assert len(json.loads(Path(written["coco"]).read_text())["images"]) == 8
    for figure in ("predictions", "objectness"):
        with Image.open(written[figure]) as picture:
            assert picture.format == "PNG"


@pytest.mark.workflow
def test_localize_run_again_after_an_interruption_reuses_what_was_finished(localized):
    root, run = localized
    written = dict(line.split(": ", 1) for line in run.stdout.strip().splitlines())
    shards = sorted((root / "out").rglob("shard-*.h5"))
    before = {shard: shard.stat().st_mtime_ns for shard in shards}
    boxes = Path(written["boxes"]).read_bytes()
    Path(written["boxes"]).unlink()  # as if killed before the boxes were written
    again = subprocess.run(
        localize_command(root / "photos", root / "out"), capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(shards) == 2  # train and predicted features
    assert {shard: shard.stat().st_mtime_ns for shard in shards} == before
    assert Path(written["boxes"]).read_bytes() == boxes


def test_localize_refuses_an_output_folder_inside_the_images(tmp_path, capsys):
    generate_synthetic_folder(tmp_path / "photos", {"photos": 1}, empty=0, max_side=64)
    arguments = localize_command(tmp_path / "photos", tmp_path / "photos" / "out")[1:]
    assert main(arguments) == 2
    assert "inside the images folder" in capsys.readouterr().err
