"""Reproducibility: two runs of the same configuration, in different folders, write the same
bytes: tables, headline numbers, figures, and every array of every HDF5 file."""

import csv
from pathlib import Path

import h5py
import numpy as np
import pytest

pytestmark = pytest.mark.workflow


def relative_files(workdir: Path, pattern: str) -> list[str]:
    return sorted(str(p.relative_to(workdir)) for p in (workdir / "results").rglob(pattern))


def assert_same_bytes(a: Path, b: Path, pattern: str, at_least: int) -> None:
    names = relative_files(a, pattern)
    assert names == relative_files(b, pattern)
    assert len(names) >= at_least
    different = [name for name in names if (a / name).read_bytes() != (b / name).read_bytes()]
    assert different == []


def test_two_runs_write_byte_identical_metrics_and_summary_tables(reference_run, offline_run):
    assert_same_bytes(reference_run, offline_run, "metrics/*.csv", 1)
    assert_same_bytes(reference_run, offline_run, "summary.csv", 1)


def test_two_runs_write_byte_identical_headline_numbers(reference_run, offline_run):
    assert_same_bytes(reference_run, offline_run, "metrics/*.json", 2)  # WSOL and CorLoc


def test_two_runs_write_the_same_coco_boxes_apart_from_their_folders(reference_run, offline_run):
    """The COCO file names each image by its absolute path too, so the run's folder is in it."""
    names = relative_files(reference_run, "*.coco.json")
    assert names == relative_files(offline_run, "*.coco.json") != []
    for name in names:
        texts = [
            (run / name).read_text().replace(str(run), "<run>")
            for run in (reference_run, offline_run)
        ]
        assert texts[0] == texts[1]


def test_two_runs_draw_byte_identical_figures(reference_run, offline_run):
    assert_same_bytes(reference_run, offline_run, "*.png", 2)


def listed(workdir: Path, name: str) -> list[str]:
    """A manifest's rows with the run's folder replaced and without the fingerprints, which
    hold each folder's own modification times."""
    rows = list(
        csv.reader((workdir / name).read_text().replace(str(workdir), "<run>").splitlines())
    )
    kept = [i for i, column in enumerate(rows[0]) if column != "fingerprints"]
    return [",".join(row[i] for i in kept) for row in rows]


def test_two_runs_list_the_same_images_in_their_manifests(reference_run, offline_run):
    names = relative_files(reference_run, "manifest/*.csv")
    assert len(names) >= 2
    for name in names:
        assert listed(reference_run, name) == listed(offline_run, name)


def datasets(handle: h5py.File) -> list[str]:
    names: list[str] = []
    handle.visititems(
        lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None
    )
    return names


def test_two_runs_store_identical_arrays_in_every_hdf5_file(reference_run, offline_run):
    names = relative_files(reference_run, "*.h5")
    assert names == relative_files(offline_run, "*.h5")
    assert len(names) >= 3 + 1 + 1  # 3 feature shards, w*, maps
    for name in names:
        with h5py.File(reference_run / name) as a, h5py.File(offline_run / name) as b:
            assert datasets(a) == datasets(b) != []
            for key in datasets(a):
                assert np.array_equal(a[key][()], b[key][()]), f"{name}:{key}"
