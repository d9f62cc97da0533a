"""The bad-input matrix (docs/reliability.md): each bad input, fed through the public entry point
that meets it first, ends in an error naming the file, key or image id, in a skipped-image
entry with its reason, or in a defined number; never in a silent wrong number or a NaN.

Metadata problems one image at a time (missing, unreadable, duplicated, escaping, outside the
image) are also tested with and without skipping in test_skipping.py; here each row is checked
end to end: metadata -> manifest -> features -> maps -> metrics."""

from __future__ import annotations

import subprocess
import sys
from io import BytesIO
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SCHEMA, peak_traced_bytes, tiny_config
from PIL import Image
from rpsloc_test_fixtures.colourfulness import ColourfulnessFixture
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from rpsloc.backbones.build import build_backbone
from rpsloc.datasets.records import write_manifest
from rpsloc.errors import CheckpointError, IncompleteFileError, InputError
from rpsloc.features import extract_shard
from rpsloc.io import (
    atomic_h5,
    open_h5,
    provenance_attrs,
    read_csv,
    read_json,
    write_csv_atomic,
    write_json_atomic,
    write_strings,
)
from rpsloc.manifest import build_manifest, build_split
from rpsloc.maps import write_maps
from rpsloc.metrics import evaluate_split
from rpsloc.readers import IMAGES_AT_A_TIME, check_stored_finite, iter_eval_shards
from rpsloc.representer import write_representer

SIZE = 64  # images are resized and cropped to 64 x 64 pixels: 4 x 4 feature positions
FIXTURE = {"arch": "fixture-colourfulness", "weights": "random"}


def colourful(width: int = 48, height: int = 40) -> Image.Image:
    """A grey image with a saturated square: what the fixture backbone localizes."""
    pixels = np.full((height, width, 3), 128, dtype=np.uint8)
    pixels[8:24, 10:30] = (230, 40, 40)
    return Image.fromarray(pixels)


def dataset(
    root: Path, images: dict[str, Image.Image | bytes], boxes: dict[str, str] | None = None, **keys
) -> dict:
    """A WSOL-layout dataset of `images` (saved by their id's extension, or raw bytes), label 0,
    one box per image (`boxes` overrides `"x0,y0,x1,y1"` per id)."""
    lines: dict[str, list[str]] = {"ids": [], "labels": [], "sizes": [], "boxes": []}
    for image_id, image in images.items():
        path = root / "images" / image_id
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(image, bytes):
            path.write_bytes(image)
            width, height = 48, 40
        else:
            image.save(path, **({"quality": 95} if path.suffix == ".jpg" else {}))
            width, height = image.size
        lines["ids"].append(image_id)
        lines["labels"].append(f"{image_id},0")
        lines["sizes"].append(f"{image_id},{width},{height}")
        lines["boxes"].append(f"{image_id},{(boxes or {}).get(image_id, '10,8,29,23')}")
    folder = root / "metadata" / "test"
    folder.mkdir(parents=True, exist_ok=True)
    for name, key in [
        ("image_ids", "ids"),
        ("class_labels", "labels"),
        ("image_sizes", "sizes"),
        ("localization", "boxes"),
    ]:
        (folder / f"{name}.txt").write_text("".join(f"{line}\n" for line in lines[key]))
    return {
        "adapter": "wsol",
        "metadata": str(root / "metadata"),
        "images": str(root / "images"),
        **keys,
    }


def features_of(root: Path, images: dict, boxes: dict | None = None, **keys) -> Path:
    """Manifest and features (eval role, one shard) of a dataset of `images`."""
    manifest = root / "manifest.csv"
    write_manifest(build_manifest(dataset(root, images, boxes, **keys), "test"), manifest)
    out = root / "features.h5"
    extract_shard(manifest, "eval", 0, 100, FIXTURE, SIZE, SIZE, 16, out, device="cpu")
    return out


def unit_features_of(root: Path, image: Image.Image | bytes, name: str = "a/1.png") -> np.ndarray:
    shard = next(iter_eval_shards([features_of(root, {name: image})]))
    return shard.unit_features.astype(np.float32) * shard.norms[..., None]


# ------------------------------------------------------------------------- images


def jpeg_bytes(image: Image.Image, **save) -> bytes:
    buffer = BytesIO()
    image.save(buffer, format="JPEG", quality=95, **save)
    return buffer.getvalue()


def test_a_truncated_jpeg_stops_the_features_stage_naming_the_file(tmp_path):
    cut = jpeg_bytes(colourful())[:-300]
    with pytest.raises(InputError, match=r"images/a/2\.jpg: cannot read as an image"):
        features_of(tmp_path, {"a/1.jpg": colourful(), "a/2.jpg": cut})
    assert not (tmp_path / "features.h5").exists()


def test_a_truncated_jpeg_is_skipped_with_its_reason_when_the_config_allows(tmp_path):
    cut = jpeg_bytes(colourful())[:-300]
    images = {"a/1.jpg": colourful(), "a/2.jpg": cut}
    split = build_split(
        dataset(tmp_path, images, on_bad_image="skip", check_images="decode"), "test"
    )
    assert [r.image_id for r in split.records] == ["a/1.jpg"]
    assert [s.image_id for s in split.skipped] == ["a/2.jpg"]
    assert "truncated" in split.skipped[0].reason


def test_a_file_that_is_not_an_image_stops_the_manifest_naming_it(tmp_path):
    images = {"a/1.jpg": colourful(), "a/2.jpg": b"<html>not an image</html>"}
    with pytest.raises(InputError, match=r"a/2\.jpg"):
        build_manifest(dataset(tmp_path, images), "test")


def test_a_greyscale_image_gives_the_features_of_its_grey_rgb_copy(tmp_path):
    grey = colourful().convert("L")
    a = unit_features_of(tmp_path / "l", grey)
    b = unit_features_of(tmp_path / "rgb", grey.convert("RGB"))
    assert np.array_equal(a, b)
    assert np.allclose(a[..., 0], 0.0)  # no colour anywhere: colourfulness 0


def test_an_rgba_image_gives_the_features_of_its_colours_with_alpha_dropped(tmp_path):
    rgba = colourful().convert("RGBA")
    rgba.putalpha(0)  # fully transparent: the colours still count
    a = unit_features_of(tmp_path / "rgba", rgba)
    b = unit_features_of(tmp_path / "rgb", colourful())
    assert np.array_equal(a, b)
    assert a[..., 0].max() > 1.0


def test_a_cmyk_image_gives_the_features_of_its_rgb_conversion(tmp_path):
    cmyk = colourful().convert("CMYK")
    a = unit_features_of(tmp_path / "cmyk", cmyk, "a/1.tif")
    b = unit_features_of(tmp_path / "rgb", cmyk.convert("RGB"))
    assert np.array_equal(a, b)


def test_a_16_bit_png_gives_the_features_of_its_8_bit_scaling(tmp_path):
    deep = (np.arange(40 * 48).reshape(40, 48) * 34).astype(np.uint16)  # 0 .. 65246
    a = unit_features_of(tmp_path / "deep", Image.fromarray(deep))
    eight = np.rint(deep / 257.0).astype(np.uint8)
    b = unit_features_of(tmp_path / "rgb", Image.fromarray(eight).convert("RGB"))
    assert np.array_equal(a, b)


def test_an_exif_rotated_jpeg_is_used_in_its_stored_pixel_grid(tmp_path):
    """The documented choice: boxes are given in the stored grid, so EXIF is not applied."""
    exif = Image.Exif()
    exif[0x0112] = 6  # viewers would rotate it by 90 degrees
    a = unit_features_of(tmp_path / "exif", jpeg_bytes(colourful(), exif=exif), "a/1.jpg")
    b = unit_features_of(tmp_path / "plain", jpeg_bytes(colourful()), "a/1.jpg")
    assert np.array_equal(a, b)
    with open_h5(tmp_path / "exif/features.h5") as handle:
        assert handle["image_sizes"][()].tolist() == [[48, 40]]  # width, height as stored


# ------------------------------------------------------------------------- boxes and splits


def test_a_zero_width_box_is_one_pixel_wide_and_stays_valid_in_crop_coordinates(tmp_path):
    """Boxes are inclusive, so x0 == x1 is one pixel column (documented), never an empty box."""
    out = features_of(tmp_path, {"a/1.png": colourful()}, {"a/1.png": "20,8,20,8"})
    [boxes] = next(iter_eval_shards([out], with_features=False)).boxes
    assert boxes.tolist() == [[27, 13, 27, 13]]  # 20 * 64/48 = 26.7, 8 * 64/40 = 12.8


def test_a_box_with_x1_before_x0_is_an_error_naming_the_file_and_line(tmp_path):
    images = {"a/1.png": colourful(), "a/2.png": colourful()}
    with pytest.raises(InputError, match=r"localization.txt, line 2: .*x1 < x0"):
        build_manifest(dataset(tmp_path, images, {"a/2.png": "20,8,19,9"}), "test")


def test_a_box_outside_the_image_is_an_error_naming_the_file_and_line(tmp_path):
    images = {"a/1.png": colourful(), "a/2.png": colourful()}
    with pytest.raises(InputError, match=r"localization.txt, line 2: .*outside the 48x40 image"):
        build_manifest(dataset(tmp_path, images, {"a/2.png": "0,0,48,39"}), "test")


def with_label(root: Path, label: int, **keys) -> dict:
    """A two-image dataset whose second image has `label` (no num_classes bounds it)."""
    config = dataset(root, {"a/1.png": colourful(), "a/2.png": colourful()}, **keys)
    labels = Path(config["metadata"]) / "test/class_labels.txt"
    labels.write_text(labels.read_text().replace("a/2.png,0", f"a/2.png,{label}"))
    return config


def test_a_label_too_large_for_int64_is_an_error_naming_the_file_and_line(tmp_path):
    message = r"class_labels.txt, line 2: expected a label < 2147483648 .* found 2{63}"
    with pytest.raises(InputError, match=message.replace("2{63}", str(2**63))):
        build_manifest(with_label(tmp_path, 2**63), "test")


def test_a_label_too_large_for_int64_is_skipped_with_its_reason_when_the_config_allows(tmp_path):
    split = build_split(with_label(tmp_path, 2**63, on_bad_image="skip"), "test")
    assert [r.image_id for r in split.records] == ["a/1.png"]
    assert "class_labels.txt, line 2: expected a label < 2147483648" in split.skipped[0].reason


def test_an_empty_split_is_an_error_naming_its_ids_file(tmp_path):
    keys = dataset(tmp_path, {})
    with pytest.raises(InputError, match=r"test/image_ids.txt: no image ids"):
        build_manifest(keys, "test")


def test_a_duplicated_image_id_is_an_error_naming_both_lines(tmp_path):
    keys = dataset(tmp_path, {"a/1.png": colourful()})
    ids = Path(keys["metadata"]) / "test/image_ids.txt"
    ids.write_text("a/1.png\na/1.png\n")
    with pytest.raises(InputError, match=r"image_ids.txt, line 2: duplicated image id 'a/1.png'"):
        build_manifest(keys, "test")


def test_an_id_with_dot_dot_is_an_error_and_nothing_outside_the_root_is_read(tmp_path):
    colourful().save(tmp_path / "secret.png")
    keys = dataset(tmp_path / "data", {"a/1.png": colourful()})
    for name in ("image_ids", "class_labels", "image_sizes", "localization"):
        path = Path(keys["metadata"]) / f"test/{name}.txt"
        path.write_text(path.read_text().replace("a/1.png", "../../secret.png"))
    with pytest.raises(InputError, match=r"'../../secret.png' escapes its root"):
        build_manifest(keys, "test")


# ------------------------------------------------------------------------- maps and features


@pytest.fixture
def evaluated_split(tmp_path) -> tuple[Path, Path]:
    """Features and manifest of three images, for maps written by hand."""
    images = {f"a/{i}.png": colourful() for i in range(3)}
    return features_of(tmp_path, images), tmp_path / "manifest.csv"


def write_constant_maps(shard: Path, out: Path, value: float) -> Path:
    with open_h5(shard) as handle:
        ids = [i.decode() for i in handle["image_ids"][()]]
        shape = handle["norms"].shape
    with atomic_h5(out, {**provenance_attrs(shard), "stage": "maps", "variant": "constant"}) as h:
        write_strings(h, "image_ids", ids)
        h.create_dataset("labels", data=np.zeros(len(ids), dtype=np.int64))
        h.create_dataset("maps", data=np.full(shape, value, dtype=np.float32))
    return out


@pytest.mark.parametrize("value", [0.0, 3.5])
def test_a_constant_activation_map_scores_zero_not_nan(evaluated_split, tmp_path, value):
    shard, manifest = evaluated_split
    maps = write_constant_maps(shard, tmp_path / "maps.h5", value)
    table, summary = evaluate_split(maps, [shard], manifest)
    assert table["box_acc"].notna().all()
    assert summary["n_images"] == 3
    assert summary["max_box_acc_v2"] == 0.0  # no foreground anywhere: no box found


def test_a_nan_feature_from_the_backbone_stops_the_shard_naming_the_image(tmp_path, monkeypatch):
    forward = ColourfulnessFixture.forward

    def second_image_nan(self, x):
        features = forward(self, x)
        features[1, 0, 0, 0] = float("nan")
        return features

    monkeypatch.setattr(ColourfulnessFixture, "forward", second_image_nan)
    with pytest.raises(ValueError, match=r"non-finite features for images \['a/2.png'\]"):
        features_of(tmp_path, {"a/1.png": colourful(), "a/2.png": colourful()})
    assert not (tmp_path / "features.h5").exists()


def tamper(path: Path, dataset_name: str, index: int) -> None:
    """Put a NaN into a finished file, as a damaged disk or another program could."""
    with h5py.File(path, "r+") as handle:
        values = handle[dataset_name][()]
        values.reshape(len(values), -1)[index, 0] = np.nan
        handle[dataset_name][...] = values


def test_a_nan_in_stored_training_features_is_an_error_naming_the_shard_and_image(tmp_path):
    manifest = tmp_path / "manifest.csv"
    images = {"a/1.png": colourful(), "a/2.png": colourful(36, 30)}
    write_manifest(build_manifest(dataset(tmp_path, images), "test"), manifest)
    shard = tmp_path / "train.h5"
    extract_shard(manifest, "train", 0, 100, FIXTURE, SIZE, SIZE, 16, shard, device="cpu")
    tamper(shard, "mean_features", 1)
    with pytest.raises(InputError, match=r"train.h5: non-finite .* image 'a/2.png'"):
        write_representer([shard], tmp_path / "representer.h5")
    assert not (tmp_path / "representer.h5").exists()


def test_a_nan_in_stored_evaluation_features_is_an_error_naming_the_shard_and_image(
    evaluated_split, tmp_path
):
    shard, _ = evaluated_split
    tamper(shard, "norms", 2)
    with pytest.raises(InputError, match=r"features.h5: non-finite .* image 'a/2.png'"):
        write_maps("caam", [shard], tmp_path / "maps.h5")


def test_the_finiteness_check_of_a_stored_shard_looks_at_a_few_images_at_a_time():
    """Its temporary masks hold IMAGES_AT_A_TIME images, not the shard's 1,000 (800 MB of
    float16 for ResNet-50 at 14 x 14)."""
    unit = np.zeros((8 * IMAGES_AT_A_TIME, 8, 8, 64), dtype=np.float16)
    ids = [str(i) for i in range(len(unit))]
    assert peak_traced_bytes(lambda: check_stored_finite("shard.h5", ids, unit)) < unit.size / 4


def test_a_nan_in_stored_maps_is_an_error_naming_the_file_and_image(evaluated_split, tmp_path):
    shard, manifest = evaluated_split
    maps = write_constant_maps(shard, tmp_path / "maps.h5", 1.0)
    tamper(maps, "maps", 1)
    with pytest.raises(InputError, match=r"maps.h5: map of image 'a/1.png' has non-finite"):
        evaluate_split(maps, [shard], manifest)


# ------------------------------------------------------------------------- checkpoints


def test_a_checkpoint_for_another_architecture_is_refused_naming_the_file(tmp_path):
    vgg_like = {"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.zeros(64)}
    torch.save(vgg_like, tmp_path / "vgg16.pth")
    with pytest.raises(CheckpointError, match=r"vgg16.pth.*0 of 318 backbone tensors match"):
        build_backbone({"arch": "resnet50", "weights": str(tmp_path / "vgg16.pth")}, 32)


class RunsCode:
    """Unpickling this would create `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_malicious_pickle_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "payload": RunsCode(marker)}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match=r"evil.pth.*needs arbitrary code"):
        build_backbone({"arch": "resnet50", "weights": str(tmp_path / "evil.pth")}, 32)
    assert not marker.exists()


# ------------------------------------------------------------------------- configuration


def test_an_unknown_config_key_is_a_schema_error_naming_the_key():
    config = tiny_config()
    config["datasets"]["tiny"]["outptu_stride"] = 16
    with pytest.raises(WorkflowError, match="outptu_stride"):
        validate(config, str(SCHEMA))


def test_a_wrong_type_in_the_config_is_a_schema_error_naming_the_key():
    config = tiny_config()
    config["features"]["batch_size"] = "sixteen"
    with pytest.raises(WorkflowError, match=r"batch_size"):
        validate(config, str(SCHEMA))


# ------------------------------------------------------------------------- a full disk

FULL_DISK = """
import resource, signal, sys
from rpsloc.features import extract_shard
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
extract_shard(sys.argv[1], "eval", 0, 100, {"arch": "fixture-colourfulness"}, 64, 64, 16,
              sys.argv[2], device="cpu")
"""


def test_a_full_disk_during_an_hdf5_write_leaves_no_file_that_looks_complete(tmp_path):
    images = {f"a/{i}.png": colourful() for i in range(8)}
    manifest = tmp_path / "manifest.csv"
    write_manifest(build_manifest(dataset(tmp_path, images), "test"), manifest)
    out = tmp_path / "out" / "features.h5"
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(manifest), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "errno = 27" in result.stderr  # EFBIG: the write failed inside HDF5
    assert not out.exists()
    for temporary in out.parent.iterdir():  # HDF5 may crash the process before cleanup
        with pytest.raises((IncompleteFileError, OSError)):
            open_h5(temporary)
    extract_shard(manifest, "eval", 0, 100, FIXTURE, SIZE, SIZE, 16, out, device="cpu")
    assert [p.name for p in out.parent.iterdir()] == ["features.h5"]  # the debris is gone


def test_a_file_without_the_completeness_mark_is_refused_by_every_stage(evaluated_split, tmp_path):
    shard, manifest = evaluated_split
    with h5py.File(shard, "r+") as handle:
        del handle.attrs["complete"]
    with pytest.raises(IncompleteFileError, match="features.h5"):
        write_maps("caam", [shard], tmp_path / "maps.h5")


def test_a_stage_table_cut_short_is_refused_naming_it(tmp_path):
    write_csv_atomic(
        pd.DataFrame({"threshold": [0.0, 0.01], "box_acc": [50.0, 60.0]}), tmp_path / "t.csv"
    )
    data = (tmp_path / "t.csv").read_bytes()
    (tmp_path / "cut.csv").write_bytes(data[:-3])  # "60.000000\n" loses its last characters
    assert read_csv(tmp_path / "t.csv")["box_acc"].tolist() == [50.0, 60.0]
    with pytest.raises(IncompleteFileError, match="cut.csv: does not end with a newline"):
        read_csv(tmp_path / "cut.csv")


def test_headline_numbers_cut_short_are_refused_naming_the_file(tmp_path):
    write_json_atomic({"max_box_acc_v2": 61.5, "n_images": 3}, tmp_path / "val.json")
    (tmp_path / "cut.json").write_text((tmp_path / "val.json").read_text()[:20])
    assert read_json(tmp_path / "val.json")["max_box_acc_v2"] == 61.5
    with pytest.raises(IncompleteFileError, match="cut.json: not complete JSON"):
        read_json(tmp_path / "cut.json")
