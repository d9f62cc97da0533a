"""The fast evaluation (vectorised per image, spread over processes) gives exactly the numbers
of the straightforward per-threshold loop (METHOD.md section 3)."""

import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from rpsloc.datasets.records import write_manifest
from rpsloc.features import extract_shard
from rpsloc.manifest import build_manifest
from rpsloc.maps import write_maps
from rpsloc.metrics import evaluate_split
from rpsloc.metrics.folder import evaluate_scoremap_folder
from rpsloc.parallel import chunk_bounds, map_in_chunks
from rpsloc.synthetic import generate_synthetic_dataset

sys.path.insert(0, str(REPO / "bench"))
from reference_evaluation import (  # noqa: E402
    reference_evaluate_folder,
    write_random_box_split,
)


@pytest.fixture(scope="module")
def random_split(tmp_path_factory) -> tuple[Path, Path]:
    return write_random_box_split(tmp_path_factory.mktemp("random"), n_images=12, seed=6)


@pytest.mark.parametrize("contours", ["multi", "largest"])
def test_the_folder_evaluation_equals_the_per_threshold_loop_on_random_maps(random_split, contours):
    metadata, scoremaps = random_split
    expected = reference_evaluate_folder(metadata, scoremaps, contours)
    assert evaluate_scoremap_folder(metadata, scoremaps, contours) == expected
    assert 0 < expected["max_box_acc_v2"] < 100


@pytest.mark.parametrize("contours", ["multi", "largest"])
def test_three_workers_give_the_folder_numbers_of_one(random_split, contours):
    metadata, scoremaps = random_split
    serial = evaluate_scoremap_folder(metadata, scoremaps, contours, workers=1)
    assert evaluate_scoremap_folder(metadata, scoremaps, contours, workers=3) == serial


@pytest.fixture(scope="module")
def synthetic_split(tmp_path_factory) -> tuple[Path, list[Path], Path]:
    """A synthetic test split with masks, in three feature shards, and its CAAM maps."""
    folder = tmp_path_factory.mktemp("split")
    generate_synthetic_dataset(folder / "data", splits={"test": 11}, seed=4, max_side=160)
    records = build_manifest({"adapter": "synthetic", "root": str(folder / "data")}, "test")
    write_manifest(records, folder / "test.csv")
    backbone = {"arch": "fixture-colourfulness", "weights": "random", "seed": 0}
    shards = [folder / f"shard-{k}.h5" for k in range(3)]
    for k, shard in enumerate(shards):
        extract_shard(folder / "test.csv", "eval", k, 4, backbone, 128, 112, 16, shard)
    write_maps("caam", shards, folder / "maps.h5")
    return folder / "maps.h5", shards, folder / "test.csv"


def test_two_workers_give_the_split_table_and_headline_of_one(synthetic_split):
    maps, shards, manifest = synthetic_split
    table, summary = evaluate_split(maps, shards, manifest, workers=1)
    parallel_table, parallel_summary = evaluate_split(maps, shards, manifest, workers=2)
    pd.testing.assert_frame_equal(parallel_table, table, check_exact=True)
    assert parallel_summary == summary
    assert summary["n_images"] == 11 and "pxap" in summary


def test_chunks_cover_every_item_once_in_order_and_differ_by_at_most_one():
    bounds = chunk_bounds(10, 4)
    assert bounds == [(0, 2), (2, 5), (5, 8), (8, 10)]
    assert chunk_bounds(3, 8) == [(0, 1), (1, 2), (2, 3)]


def test_mapping_over_chunks_keeps_the_order_of_the_items():
    parts = map_in_chunks(np.sum, list(range(100)), workers=2)
    assert parts == [sum(range(start, stop)) for start, stop in chunk_bounds(100, 8)]
    assert len(parts) == 8


def test_a_non_positive_number_of_workers_is_an_error():
    with pytest.raises(ValueError, match="workers"):
        map_in_chunks(len, [1, 2], workers=0)


def _opencv_threads(_items) -> int:
    return cv2.getNumThreads()


@pytest.fixture
def opencv_on_two_threads():
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    yield
    cv2.setNumThreads(before)


@pytest.mark.parametrize("workers", [1, 2])
def test_the_evaluation_runs_opencv_on_one_thread_per_process(opencv_on_two_threads, workers):
    assert set(map_in_chunks(_opencv_threads, list(range(8)), workers)) == {1}


def test_a_serial_evaluation_gives_opencv_its_threads_back(opencv_on_two_threads):
    map_in_chunks(_opencv_threads, list(range(8)), workers=1)
    assert cv2.getNumThreads() == 2
