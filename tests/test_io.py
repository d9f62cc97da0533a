"""Atomic, self-describing outputs: a half-written file never looks finished."""

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from conftest import packages_imported_by

from rpsloc.errors import IncompleteFileError
from rpsloc.io import atomic_h5, atomic_path, open_h5, read_attrs, read_csv, write_csv_atomic


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


def _exited_child() -> subprocess.Popen:
    """A child process that has exited but is not yet reaped: a zombie, as a job killed with
    its run is until the process that adopted it reaps it (seconds, on some machines)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    return child


def _temporary_of(path, pid: int):
    temporary = path.with_name(f".{path.name}.tmp-{pid}")
    temporary.write_bytes(b"left by a killed writer")
    return temporary


def test_a_temporary_left_by_a_process_that_no_longer_runs_is_removed_before_writing(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    temporary = _temporary_of(tmp_path / "out.h5", child.pid)
    with atomic_path(tmp_path / "out.h5") as path:
        path.write_bytes(b"new")
    assert not temporary.exists()


@pytest.mark.skipif(not hasattr(os, "waitid"), reason="needs waitid to keep a child unreaped")
def test_a_temporary_left_by_an_exited_process_not_yet_reaped_is_removed_before_writing(tmp_path):
    child = _exited_child()
    temporary = _temporary_of(tmp_path / "out.h5", child.pid)
    with atomic_path(tmp_path / "out.h5") as path:
        path.write_bytes(b"new")
    child.wait()
    assert not temporary.exists()


def test_a_temporary_of_a_process_still_running_is_left_alone(tmp_path):
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as child:
        temporary = _temporary_of(tmp_path / "out.h5", child.pid)
        with atomic_path(tmp_path / "out.h5") as path:
            path.write_bytes(b"new")
        child.kill()
    assert temporary.exists()
