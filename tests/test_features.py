"""The features stage's precision: fp32 on CPU by default, bf16 autocast when asked (the CUDA
default), each labelled in the file (METHOD.md section 1; bench/RESULTS.md benchmark 5)."""

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


def unit_features(manifest, out, bf16):
    extract_shard(manifest, "eval", 0, 10, BACKBONE, 96, 96, 16, out, device="cpu", bf16=bf16)
    with open_h5(out) as handle:
        return handle["unit_features"][()].astype(np.float64), handle.attrs["precision"]


def test_cpu_extraction_runs_in_fp32_and_says_so(manifest, tmp_path):
    _, precision = unit_features(manifest, tmp_path / "fp32.h5", bf16=None)
    assert precision == "fp32"


def test_bf16_autocast_features_point_where_the_fp32_ones_do(manifest, tmp_path):
    fp32, _ = unit_features(manifest, tmp_path / "fp32.h5", bf16=False)
    bf16, precision = unit_features(manifest, tmp_path / "bf16.h5", bf16=True)
    assert precision == "bf16-autocast"
    assert not np.array_equal(fp32, bf16)  # autocast did run
    cosine = (fp32 * bf16).sum(axis=-1)
    assert cosine.min() > 0.99
