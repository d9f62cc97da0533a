"""The features stage's precision: fp32 by default on every device (the authors' numerics),
bf16 autocast only when asked, each labelled in the file (METHOD.md section 1; bench/RESULTS.md
benchmark 5), and the output stride the model really has recorded."""

import numpy as np
import pytest

from rpsloc.datasets.records import write_manifest
from rpsloc.features import extract_shard
from rpsloc.io import open_h5
from rpsloc.manifest import build_manifest
from rpsloc.synthetic import generate_synthetic_dataset

BACKBONE = {"arch": "resnet_small", "width": 16, "depth": 1, "weights": "random", "seed": 0}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("precision")
    generate_synthetic_dataset(folder / "data", splits={"test": 4}, max_side=96)
    records = build_manifest({"adapter": "synthetic", "root": str(folder / "data")}, "test")
    write_manifest(records, folder / "test.csv")
    return folder / "test.csv"


def unit_features(manifest, out, **precision):
    extract_shard(manifest, "eval", 0, 10, BACKBONE, 96, 96, 16, out, device="cpu", **precision)
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
