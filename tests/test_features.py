"""The features stage's precision: fp32 by default on every device (the authors' numerics),
bf16 autocast only when asked, each labelled in the file (METHOD.md section 1; bench/RESULTS.md
benchmark 5), channels-last and folded BatchNorms within fp32 noise of the published model, the
output stride the model really has recorded, and its decoding workers chosen
from the machine under `num_workers: auto`; on the CPU its tensors come from a heap that keeps
freed memory for the next batch."""

import os
import platform
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from batch_norms import with_trained_batch_norms

from rpsloc import devices
from rpsloc.backbones import checkpoints
from rpsloc.backbones.build import build_backbone
from rpsloc.datasets.records import write_manifest
from rpsloc.features import extract_shard
from rpsloc.io import open_h5
from rpsloc.manifest import build_manifest
from rpsloc.maps import activation_maps
from rpsloc.scoremaps import normalize_map
from rpsloc.synthetic import generate_synthetic_dataset
from rpsloc.tracking import checkpoint_sha256

BACKBONE = {"arch": "resnet_small", "width": 16, "depth": 1, "weights": "random", "seed": 0}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("precision")
    generate_synthetic_dataset(folder / "data", splits={"test": 4}, max_side=96)
    records = build_manifest({"adapter": "synthetic", "root": str(folder / "data")}, "test")
    write_manifest(records, folder / "test.csv")
    return folder / "test.csv"


def unit_features(manifest, out, backbone=BACKBONE, **precision):
    extract_shard(manifest, "eval", 0, 10, backbone, 96, 96, 16, out, device="cpu", **precision)
    with open_h5(out) as handle:
        return handle["unit_features"][()].astype(np.float64), handle.attrs["precision"]


def test_extraction_runs_in_fp32_by_default_and_says_so(manifest, tmp_path):
    _, precision = unit_features(manifest, tmp_path / "fp32.h5")
    assert precision == "fp32"


def test_bf16_autocast_features_point_where_the_fp32_ones_do(manifest, tmp_path):
    fp32, _ = unit_features(manifest, tmp_path / "fp32.h5", precision="fp32")
    bf16, precision = unit_features(manifest, tmp_path / "bf16.h5", precision="bf16")
    assert precision == "bf16-autocast"
    assert not np.array_equal(fp32, bf16)  # autocast did run
    cosine = (fp32 * bf16).sum(axis=-1)
    assert cosine.min() > 0.99


def test_a_vit_records_the_stride_it_really_has(manifest, tmp_path):
    vit = {"arch": "vit_s8", "weights": "random", "seed": 0}
    extract_shard(manifest, "eval", 0, 10, vit, 96, 96, 16, tmp_path / "vit.h5", device="cpu")
    with open_h5(tmp_path / "vit.h5") as handle:
        assert handle.attrs["output_stride"] == 8
        assert handle["norms"].shape[1:] == (12, 12)


#: Largest difference allowed between the [0, 1] score maps of the two memory formats: fp32
#: sums in another order, then float16 storage of the unit features (half a step at 1: 2.4e-4).
MEMORY_FORMAT_TOLERANCE = 1e-3


def test_channels_last_and_the_default_memory_format_give_the_same_maps(manifest, tmp_path):
    default, _ = unit_features(manifest, tmp_path / "default.h5", channels_last=False)
    last, _ = unit_features(manifest, tmp_path / "last.h5", channels_last=True)
    predictor = default.mean(axis=(0, 1, 2))
    predictor /= np.linalg.norm(predictor)
    maps = [
        np.stack([normalize_map(m) for m in activation_maps(features, predictor)])
        for features in (default, last)
    ]
    assert np.abs(maps[0] - maps[1]).max() <= MEMORY_FORMAT_TOLERANCE


def test_the_stage_folding_batch_norms_gives_the_published_models_maps(manifest, tmp_path):
    model = with_trained_batch_norms(build_backbone(BACKBONE, 16))
    torch.save(model.state_dict(), tmp_path / "trained-statistics.pth")
    trained = {**BACKBONE, "weights": str(tmp_path / "trained-statistics.pth")}
    published, _ = unit_features(manifest, tmp_path / "a.h5", trained, fold_batch_norms=False)
    folded, _ = unit_features(manifest, tmp_path / "b.h5", trained, fold_batch_norms=True)
    predictor = published.mean(axis=(0, 1, 2))
    maps = [
        np.stack([normalize_map(m) for m in activation_maps(features, predictor)])
        for features in (published, folded)
    ]
    assert np.abs(maps[0] - maps[1]).max() <= MEMORY_FORMAT_TOLERANCE


def test_the_file_says_how_the_stage_ran_the_model(manifest, tmp_path):
    unit_features(manifest, tmp_path / "out.h5", channels_last=True, fold_batch_norms=True)
    with open_h5(tmp_path / "out.h5") as handle:
        assert handle.attrs["backbone_memory_format"] == "channels_last"
        assert bool(handle.attrs["backbone_batch_norms_folded"]) is True


@pytest.fixture
def checkpoint(tmp_path):
    """A checkpoint of the small ResNet and the workflow's record of its SHA-256."""
    path = tmp_path / "small.pth"
    torch.save(build_backbone(BACKBONE, 16).state_dict(), path)
    record = tmp_path / "small.sha256.json"
    sha, _ = checkpoint_sha256(path, record)
    return path, record, sha


def recorded_sha(manifest, out, checkpoint, record):
    config = {**BACKBONE, "weights": str(checkpoint)}
    extract_shard(
        manifest, "eval", 0, 10, config, 96, 96, 16, out, device="cpu", checkpoint_record=record
    )
    with open_h5(out) as handle:
        return handle.attrs["backbone_checkpoint_sha256"]


def test_a_shard_takes_the_checkpoint_sha256_from_the_record_without_hashing_again(
    manifest, tmp_path, checkpoint, monkeypatch
):
    path, record, sha = checkpoint
    monkeypatch.setattr(checkpoints, "file_sha256", lambda *_: pytest.fail("hashed again"))
    assert recorded_sha(manifest, tmp_path / "shard.h5", path, record) == sha


def test_a_record_that_no_longer_describes_the_checkpoint_is_not_trusted(
    manifest, tmp_path, checkpoint
):
    path, record, sha = checkpoint
    text = record.read_text().replace(sha, "0" * 64)
    record.write_text(text)
    os.utime(path, ns=(1, 1))  # the file changed after the record was written
    assert recorded_sha(manifest, tmp_path / "shard.h5", path, record) == sha


def test_an_unknown_precision_is_refused(manifest, tmp_path):
    with pytest.raises(ValueError, match="precision must be one of"):
        unit_features(manifest, tmp_path / "x.h5", precision="fp16")


VIT = {"arch": "vit_s16", "weights": "random", "seed": 0}


def test_a_vit_stores_its_keys_and_cls_attention_from_the_same_pass_when_asked(manifest, tmp_path):
    both = tmp_path / "both.h5"
    extract_shard(
        manifest,
        "eval",
        0,
        10,
        VIT,
        96,
        96,
        16,
        both,
        device="cpu",
        discovery=["cls_attention", "keys"],
    )
    plain = tmp_path / "plain.h5"
    extract_shard(manifest, "eval", 0, 10, VIT, 96, 96, 16, plain, device="cpu")
    with open_h5(both) as stored, open_h5(plain) as without:
        assert stored["keys"].shape == (4, 6, 6, 384) and stored["keys"].dtype == np.float16
        assert stored["cls_attention"].shape == (4, 6, 6, 6)  # 6 heads over 6 x 6 patches
        assert np.array_equal(stored["unit_features"][()], without["unit_features"][()])
        assert "keys" not in without and "cls_attention" not in without
        total = stored["cls_attention"][()].astype(np.float64).sum(axis=(2, 3))
        assert (total < 1).all() and (total > 0.5).all()  # less the CLS token's own weight


def test_a_cnn_stores_no_keys_even_when_a_peer_asks(manifest, tmp_path):
    out = tmp_path / "cnn.h5"
    extract_shard(
        manifest, "eval", 0, 10, BACKBONE, 96, 96, 16, out, device="cpu", discovery=["keys"]
    )
    with open_h5(out) as handle:
        assert "keys" not in handle


def on_cores(monkeypatch, cores):
    """This process sees `cores` CPU cores, through its affinity mask and the core count."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)


def test_auto_starts_no_decoding_worker_on_one_core(monkeypatch):
    on_cores(monkeypatch, 1)
    assert devices.data_loader_workers("auto", threads=1) == 0
    assert devices.prefetch_factor(0) is None


def test_auto_starts_no_decoding_worker_when_two_threads_take_both_cores(monkeypatch):
    on_cores(monkeypatch, 2)
    assert devices.data_loader_workers("auto", threads=2) == 0


def test_auto_starts_one_decoding_worker_beside_one_thread_on_two_cores(monkeypatch):
    on_cores(monkeypatch, 2)
    workers = devices.data_loader_workers("auto", threads=1)
    assert workers == 1
    assert devices.prefetch_factor(workers) >= 2


def test_auto_beside_a_gpu_leaves_one_core_to_the_process_feeding_it(monkeypatch):
    on_cores(monkeypatch, 8)
    threads = devices.backbone_threads(torch.device("cuda"))
    assert devices.data_loader_workers("auto", threads) == 7


def test_auto_falls_back_to_the_core_count_without_an_affinity_mask(monkeypatch):
    on_cores(monkeypatch, 2)
    monkeypatch.delattr(os, "sched_getaffinity")
    assert devices.data_loader_workers("auto", threads=1) == 1


def test_a_number_of_workers_is_taken_as_given(monkeypatch):
    on_cores(monkeypatch, 1)
    assert devices.data_loader_workers(3, threads=2) == 3


def test_extraction_with_auto_workers_on_two_cores_writes_the_shard(
    manifest, tmp_path, monkeypatch
):
    on_cores(monkeypatch, 2)
    features, _ = unit_features(manifest, tmp_path / "auto.h5", num_workers="auto")
    assert features.shape[0] == 4


#: Run in a fresh process (the allocator setting is the process's): extract a shard on the CPU,
#: then allocate and free 64 MB, and print glibc's count of bytes in separately mapped chunks
#: before and after the allocation, and the heap's size after the free.
HEAP_PROBE = """
import ctypes, sys, torch
from rpsloc.features import extract_shard
fields = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in fields.split()]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
extract_shard(sys.argv[1], "eval", 0, 10, {backbone!r}, 96, 96, 16, sys.argv[2], device="cpu")
mapped = libc.mallinfo2().hblkhd
tensor = torch.ones(16 * 2**20)
mapped_with_tensor = libc.mallinfo2().hblkhd
del tensor
print(mapped, mapped_with_tensor, libc.mallinfo2().arena)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")
def test_a_cpu_extraction_serves_large_tensors_from_the_heap_and_keeps_them_when_freed(
    manifest, tmp_path
):
    probe = textwrap.dedent(HEAP_PROBE).format(backbone=BACKBONE)
    run = subprocess.run(
        [sys.executable, "-c", probe, str(manifest), str(tmp_path / "features.h5")],
        capture_output=True,
        text=True,
        check=True,
    )
    mapped, mapped_with_tensor, heap = map(int, run.stdout.split())
    assert mapped_with_tensor == mapped  # the 64 MB came from the heap, not a mapping of its own
    assert heap >= 64 * 2**20  # and stay there for the next batch


def test_the_allocator_is_left_alone_on_a_gpu():
    assert not devices.keep_freed_memory(torch.device("cuda"))
