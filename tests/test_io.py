"""Atomic, self-describing outputs: a half-written file never looks finished."""

import h5py
import numpy as np
import pytest
from conftest import packages_imported_by

from rpsloc.errors import IncompleteFileError
from rpsloc.io import atomic_h5, open_h5, read_attrs, read_csv, write_csv_atomic


def test_a_finished_file_is_marked_complete_with_its_provenance(tmp_path):
    path = tmp_path / "out.h5"
    with atomic_h5(path, {"backbone": "resnet50", "sizes": [224, 224]}) as handle:
        handle["x"] = np.arange(3)
    attrs = read_attrs(path)
    assert attrs["complete"] is True
    assert attrs["backbone"] == "resnet50"
    assert attrs["sizes"] == "[224, 224]"


def test_a_failed_write_leaves_no_file_behind(tmp_path):
    path = tmp_path / "out.h5"
    with pytest.raises(OSError, match="disk full"):
        with atomic_h5(path, {}) as handle:
            handle["x"] = np.arange(3)
            raise OSError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_a_file_without_the_completeness_mark_is_refused_by_name(tmp_path):
    path = tmp_path / "partial.h5"
    with h5py.File(path, "w") as handle:
        handle["x"] = np.arange(3)
    with pytest.raises(IncompleteFileError, match="partial.h5"):
        open_h5(path)


def test_csv_tables_are_written_byte_identically(tmp_path):
    import pandas as pd

    table = pd.DataFrame({"a": [1.0 / 3, 2.0], "b": ["x", "y"]})
    write_csv_atomic(table, tmp_path / "one.csv")
    write_csv_atomic(table, tmp_path / "two.csv")
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
    assert (tmp_path / "one.csv").read_text() == "a,b\n0.333333,x\n2.000000,y\n"


def test_a_file_of_another_layout_version_is_refused_naming_both_versions(tmp_path):
    with atomic_h5(tmp_path / "old.h5", {}) as handle:
        handle.attrs["format_version"] = 1
    with pytest.raises(IncompleteFileError, match="layout version 1, this rpsloc reads version 2"):
        open_h5(tmp_path / "old.h5")


def test_a_csv_keeps_image_ids_that_look_like_numbers_as_written(tmp_path):
    path = tmp_path / "boxes.csv"
    path.write_text("image_id,rank\n000005,1\n9,1\n")
    assert read_csv(path)["image_id"].tolist() == ["000005", "9"]


def test_the_stages_that_write_only_hdf5_start_without_pandas():
    """pandas takes 0.25 s to import, paid by every features, representer and maps job."""
    assert "pandas" not in packages_imported_by("rpsloc.features, rpsloc.representer, rpsloc.maps")
