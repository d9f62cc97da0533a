"""Inputs tracked by content (rpsloc.tracking, docs/reliability.md "What is tracked"): an image
replaced in place changes its manifest and reruns exactly the feature shard holding it; a
checkpoint replaced with its modification time kept reruns the features and representers made
from it, whether or not Snakemake's metadata survives; a copy with the same bytes reruns
nothing."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import h5py
import pandas as pd
import pytest
import torch
from conftest import reliability_config, run_snakemake
from PIL import Image

from rpsloc import paths, tracking
from rpsloc.backbones.build import build_backbone
from rpsloc.datasets.records import read_manifest
from rpsloc.io import atomic_h5, read_attrs, read_json
from rpsloc.manifest import write_split_manifest
from rpsloc.synthetic import generate_synthetic_dataset
from rpsloc.tracking import (
    changed_files,
    checkpoint_sha256,
    file_fingerprint,
    record_image_changes,
    shard_images_digest,
    stale_value,
)


def keep_times(path: Path, times: os.stat_result) -> None:
    """Give `path` the access and modification times of `times`, as cp -p, rsync -a and tar do."""
    os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))


# ----------------------------------------------------------------------------- fingerprints


def test_a_fingerprint_is_the_size_and_the_modification_time_in_nanoseconds(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(b"0123456789")
    os.utime(path, ns=(0, 1_700_000_000_123_456_789))
    assert file_fingerprint(path) == "10:1700000000123456789"


def test_a_content_fingerprint_adds_the_sha256(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(b"0123456789")
    sha = hashlib.sha256(b"0123456789").hexdigest()
    assert file_fingerprint(path, content=True).endswith(f":{sha}")


@pytest.fixture
def dataset(tmp_path) -> dict:
    """A synthetic set in WSOL layout (masks included) and its test manifest, fingerprinted."""
    generate_synthetic_dataset(tmp_path / "data", {"test": 4}, n_classes=2, seed=0, max_side=64)
    config = {
        "adapter": "wsol",
        "metadata": str(tmp_path / "data" / "metadata"),
        "images": str(tmp_path / "data" / "images"),
        "masks": str(tmp_path / "data" / "masks"),
    }
    return config


def manifest_of(dataset: dict, out: Path, fingerprint: str = "stat") -> Path:
    write_split_manifest(
        dataset, "test", out, out.with_suffix(".skipped.csv"), fingerprint=fingerprint
    )
    return out


def test_the_manifest_records_a_fingerprint_of_every_image_and_mask_file(dataset, tmp_path):
    records = read_manifest(manifest_of(dataset, tmp_path / "test.csv"))
    assert all(len(r.fingerprints) == len(r.files) == 1 + len(r.mask_paths) for r in records)
    assert records[0].fingerprints[0] == file_fingerprint(records[0].path)


def test_an_image_replaced_in_place_is_a_change_of_its_manifest(dataset, tmp_path):
    manifest = manifest_of(dataset, tmp_path / "test.csv")
    image = read_manifest(manifest)[2].path
    Image.open(image).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(image)
    [change] = changed_files(manifest, "stat")
    assert (change.image_id, change.file) == (read_manifest(manifest)[2].image_id, str(image))


def test_a_change_that_keeps_size_and_time_is_seen_only_by_content_fingerprints(dataset, tmp_path):
    by_stat = manifest_of(dataset, tmp_path / "stat.csv")
    by_content = manifest_of(dataset, tmp_path / "content.csv", fingerprint="content")
    image = read_manifest(by_stat)[1].path
    times, data = image.stat(), bytearray(image.read_bytes())
    data[-3] ^= 0xFF  # one byte inside the JPEG's entropy-coded data
    image.write_bytes(bytes(data))
    keep_times(image, times)
    assert changed_files(by_stat, "stat") == []
    assert [c.file for c in changed_files(by_content, "content")] == [str(image)]


def test_the_change_record_stays_older_than_the_manifest_until_a_file_changes(dataset, tmp_path):
    manifest = manifest_of(dataset, tmp_path / "test.csv")
    record = tmp_path / "test.changes.csv"
    assert record_image_changes(manifest, record, "stat") == []
    assert record.stat().st_mtime_ns == 0
    mask = read_manifest(manifest)[0].mask_paths[0]
    Image.new("L", Image.open(mask).size).save(mask)
    [sentence] = record_image_changes(manifest, record, "stat")
    assert "1 file(s) changed" in sentence and str(mask) in sentence
    assert record.stat().st_mtime_ns > manifest.stat().st_mtime_ns
    assert str(mask) in record.read_text()


# ----------------------------------------------------------------------------- checkpoints


@pytest.fixture
def counted_hashing(monkeypatch) -> list[Path]:
    """Every file tracking.checkpoint_sha256 hashes, in order."""
    hashed: list[Path] = []
    sha256 = tracking.file_sha256

    def counting(path, *args, **kwargs):
        hashed.append(Path(path))
        return sha256(path, *args, **kwargs)

    monkeypatch.setattr(tracking, "file_sha256", counting)
    return hashed


def test_the_checkpoint_is_hashed_again_only_when_its_file_changes(tmp_path, counted_hashing):
    checkpoint, record = tmp_path / "a.pth", tmp_path / "record.json"
    checkpoint.write_bytes(b"weights")
    first, _ = checkpoint_sha256(checkpoint, record)
    second, _ = checkpoint_sha256(checkpoint, record)
    assert first == second == hashlib.sha256(b"weights").hexdigest()
    assert counted_hashing == [checkpoint]


def test_a_checkpoint_replaced_with_its_mtime_kept_is_hashed_again_and_reported(tmp_path):
    checkpoint, record = tmp_path / "a.pth", tmp_path / "record.json"
    checkpoint.write_bytes(b"weights")
    before, _ = checkpoint_sha256(checkpoint, record)
    times = checkpoint.stat()
    (tmp_path / "b.pth").write_bytes(b"WEIGHTS")
    shutil.copyfile(tmp_path / "b.pth", checkpoint)
    keep_times(checkpoint, times)
    after, [sentence] = checkpoint_sha256(checkpoint, record)
    assert after == hashlib.sha256(b"WEIGHTS").hexdigest() != before
    assert f"sha256 {after[:16]}... now, {before[:16]}..." in sentence


def test_a_copy_with_the_same_bytes_keeps_the_records_modification_time(tmp_path):
    checkpoint, record = tmp_path / "a.pth", tmp_path / "record.json"
    checkpoint.write_bytes(b"weights")
    checkpoint_sha256(checkpoint, record)
    os.utime(record, ns=(0, 10**18))
    checkpoint.unlink()
    checkpoint.write_bytes(b"weights")  # a new inode, new times, the same bytes
    assert checkpoint_sha256(checkpoint, record)[1] == []
    assert record.stat().st_mtime_ns == 10**18


def test_an_output_made_from_another_value_is_made_older_than_its_source(tmp_path):
    output, source = tmp_path / "shard-0.h5", tmp_path / "checkpoint.json"
    source.write_text("{}")
    with atomic_h5(output, {"backbone_checkpoint_sha256": "old"}):
        pass
    assert stale_value(output, "backbone_checkpoint_sha256", "old", source) is None
    assert stale_value(output, "backbone_checkpoint_sha256", "new", source) == "old"
    assert output.stat().st_mtime_ns < source.stat().st_mtime_ns


# ----------------------------------------------------------------------------- the workflow

METRICS = paths.METRICS_SUMMARY.format(
    dataset="tiny", backbone="fixture", variant="rps", split="val"
)


def shard_times(workdir: Path, backbone: str) -> dict[str, int]:
    folder = workdir / "results" / "tiny" / backbone / "features"
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("shard-*.h5")}


@pytest.mark.workflow
def test_an_image_replaced_in_place_reruns_exactly_its_shard_and_changes_the_number(tmp_path):
    config = reliability_config()
    run_snakemake(tmp_path, config, METRICS)
    before, times = (
        read_json(tmp_path / METRICS)["max_box_acc_v2"],
        shard_times(tmp_path, "fixture"),
    )
    images = pd.read_csv(tmp_path / METRICS.replace(".json", "-images.csv"))
    found = images.sort_values("iou", ascending=False)["image_id"].iloc[0]  # localized before
    record = next(
        r for r in read_manifest(tmp_path / "results/tiny/manifest/val.csv") if r.image_id == found
    )
    Image.new("RGB", Image.open(record.path).size, (128, 128, 128)).save(record.path)  # no object

    run_snakemake(tmp_path, config, METRICS)
    after = shard_times(tmp_path, "fixture")
    assert [name for name in times if after[name] != times[name]] == ["val/shard-0.h5"]
    assert read_json(tmp_path / METRICS)["max_box_acc_v2"] < before


CHECKPOINT = "checkpoints/small.pth"


def small_backbone_config() -> dict:
    """The reliability run with a small ResNet loaded from CHECKPOINT (relative to the run)."""
    config = reliability_config()
    config["datasets"]["tiny"]["backbones"] = ["small"]
    config["backbones"] = {
        "small": {"arch": "resnet_small", "width": 8, "depth": 1, "weights": CHECKPOINT}
    }
    return config


def save_small_resnet(path: Path, seed: int) -> None:
    model = build_backbone(
        {"arch": "resnet_small", "width": 8, "depth": 1, "weights": "random", "seed": seed}, 16
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)


SMALL_METRICS = METRICS.replace("fixture", "small")


@pytest.fixture(scope="module")
def checkpoint_run(tmp_path_factory) -> Path:
    """A finished run of `small_backbone_config`; tests work on copies of it."""
    workdir = tmp_path_factory.mktemp("checkpoint")
    save_small_resnet(workdir / CHECKPOINT, seed=0)
    run_snakemake(workdir, small_backbone_config(), SMALL_METRICS)
    return workdir


def copy_of(run: Path, tmp_path: Path) -> Path:
    """A copy of a finished run, modification times kept (its manifests still list the images
    of the original, which no test changes)."""
    workdir = tmp_path / "run"
    shutil.copytree(run, workdir, copy_function=shutil.copy2, symlinks=True)
    return workdir


def replace_keeping_mtime(checkpoint: Path, seed: int) -> str:
    """Replace `checkpoint` by other weights with its modification time kept, as `cp -p` of
    a file with the same time would; returns the new file's SHA-256."""
    times = checkpoint.stat()
    save_small_resnet(checkpoint.with_name("other.pth"), seed)
    shutil.copyfile(checkpoint.with_name("other.pth"), checkpoint)
    keep_times(checkpoint, times)
    return hashlib.sha256(checkpoint.read_bytes()).hexdigest()


def recorded_shas(workdir: Path) -> set[str]:
    files = [*(workdir / "results/tiny/small").rglob("features/*/shard-*.h5")]
    files += [*(workdir / "results/tiny/small").rglob("representer/*.h5")]
    assert len(files) == 4  # two training shards, one val shard, w*
    return {read_attrs(path)["backbone_checkpoint_sha256"] for path in files}


@pytest.mark.workflow
def test_a_checkpoint_replaced_with_its_mtime_kept_reruns_features_and_representer(
    checkpoint_run, tmp_path
):
    workdir = copy_of(checkpoint_run, tmp_path)
    sha = replace_keeping_mtime(workdir / CHECKPOINT, seed=1)
    result = run_snakemake(workdir, small_backbone_config(), SMALL_METRICS)
    assert recorded_shas(workdir) == {sha}
    assert f"now has {sha[:16]}...: it is recomputed" in result.stderr


@pytest.mark.workflow
def test_a_checkpoint_mismatch_reruns_even_without_snakemakes_metadata(checkpoint_run, tmp_path):
    workdir = copy_of(checkpoint_run, tmp_path)
    sha = replace_keeping_mtime(workdir / CHECKPOINT, seed=1)
    shutil.rmtree(workdir / ".snakemake" / "metadata")
    run_snakemake(workdir, small_backbone_config(), SMALL_METRICS)
    assert recorded_shas(workdir) == {sha}


@pytest.mark.workflow
def test_a_checkpoint_copied_again_with_the_same_bytes_reruns_nothing(checkpoint_run, tmp_path):
    workdir = copy_of(checkpoint_run, tmp_path)
    checkpoint = workdir / CHECKPOINT
    shutil.copyfile(checkpoint, checkpoint.with_name("copy.pth"))
    shutil.move(checkpoint.with_name("copy.pth"), checkpoint)  # new inode and times
    result = run_snakemake(workdir, small_backbone_config(), SMALL_METRICS, "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.workflow
def test_the_feature_shards_record_the_checkpoint_and_the_digest_of_their_rows(checkpoint_run):
    shard = checkpoint_run / "results/tiny/small/features/train/shard-1.h5"
    manifest = checkpoint_run / "results/tiny/manifest/train.csv"
    with h5py.File(shard) as handle:
        assert handle.attrs["images_sha256"] == shard_images_digest(manifest, 1, 6)
        assert handle.attrs["images_sha256"] != shard_images_digest(manifest, 0, 6)
    sha = hashlib.sha256((checkpoint_run / CHECKPOINT).read_bytes()).hexdigest()
    assert recorded_shas(checkpoint_run) == {sha}


@pytest.mark.workflow
def test_every_splits_change_record_exists_before_the_dag_is_built(tmp_path):
    run_snakemake(tmp_path, reliability_config(), paths.SYNTHETIC.format(dataset="tiny"), "-n")
    for split in ("train", "val"):
        record = tmp_path / paths.MANIFEST_CHANGES.format(dataset="tiny", split=split)
        assert record.stat().st_mtime_ns == 0
