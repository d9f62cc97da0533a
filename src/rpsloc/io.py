"""Atomic, self-describing stage outputs.

Every file a stage writes is first written under a temporary name in the same folder and
renamed when complete, so a killed run never leaves a file that looks finished. HDF5 files
also carry `complete = True` as an attribute, which every reader checks (`open_h5`).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
from collections.abc import Iterator, Mapping
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from rpsloc.errors import IncompleteFileError, InputError

if TYPE_CHECKING:
    import pandas as pd

COMPLETE = "complete"
FORMAT_VERSION = 2
"""The layout version of every HDF5 file rpsloc writes (docs/hdf5-layout.md); the workflow
passes it to its rules as a param, so files of an older layout are rewritten, not misread."""


def _temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporaries of `path` left by killed processes (their pid no longer runs)."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _process_exists(int(pid)):
            stale.unlink(missing_ok=True)


def _process_exists(pid: int) -> bool:
    """Whether `pid` still runs. A process that has exited but is not yet reaped (a zombie:
    a job killed with its run stays one until whoever adopted it reaps it, over a second on
    some machines) no longer runs, though signalling it succeeds; Linux says so in /proc."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not Path("/proc/self").exists():  # not Linux: the signal is all there is to know
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:  # reaped since it was signalled
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds.

    Temporaries of the same output left behind by killed runs are deleted first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    temporary = _temporary_sibling(path)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_h5(path: str | Path, attrs: Mapping[str, Any]) -> Iterator[h5py.File]:
    """Open a new HDF5 file for writing; on success mark it complete and move it into place.

    `attrs` (provenance: backbone, checkpoint hash, sizes, config hash, ...) are written to the
    root group; values that HDF5 cannot hold directly (dicts, lists) are stored as JSON text.
    """
    with atomic_path(path) as temporary:
        with h5py.File(temporary, "w") as handle:
            handle.attrs["format_version"] = FORMAT_VERSION
            for key, value in attrs.items():
                handle.attrs[key] = _attribute_value(value)
            yield handle
            handle.attrs[COMPLETE] = True


def _attribute_value(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    if value is None:
        return ""
    return value


def read_hdf5(path: str | Path) -> h5py.File:
    """Open any HDF5 file for reading; one that is not HDF5, or is cut short, is an error
    naming it and saying which, instead of h5py's OSError."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: expected an HDF5 file here, found no file")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        if not h5py.is_hdf5(path):
            raise InputError(
                f"{path}: not an HDF5 file (it does not start with the HDF5 signature)"
            ) from error
        raise IncompleteFileError(
            f"{path}: an HDF5 file that cannot be opened, most likely cut short ({error}); "
            "delete it and rerun the stage that wrote it"
        ) from error


def open_h5(path: str | Path) -> h5py.File:
    """Open a stage output for reading, refusing files a finished run did not write."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: expected a stage output here, found no file")
    handle = read_hdf5(path)
    if not handle.attrs.get(COMPLETE, False):
        handle.close()
        raise IncompleteFileError(
            f"{path}: file has no '{COMPLETE}' mark, so the run that wrote it did not finish; "
            "delete it and rerun (snakemake --rerun-incomplete)"
        )
    version = int(handle.attrs.get("format_version", 0))
    if version != FORMAT_VERSION:
        handle.close()
        raise IncompleteFileError(
            f"{path}: layout version {version}, this rpsloc reads version {FORMAT_VERSION}; "
            "the workflow rewrites such files on its next run (or delete it and rerun)"
        )
    return handle


def read_attrs(path: str | Path) -> dict[str, Any]:
    """The root attributes of a complete stage output, as plain Python values."""
    with open_h5(path) as handle:
        return plain_attrs(handle.attrs)


def plain_attrs(attrs: h5py.AttributeManager) -> dict[str, Any]:
    """HDF5 attributes as plain Python values (numpy scalars unwrapped, bytes decoded)."""
    return {key: _plain(value) for key, value in attrs.items()}


PROVENANCE_ATTRS = (
    "dataset",
    "backbone",
    "image_size",
    "crop_size",
    "output_stride",
    "feature_dim",
    "feature_height",
    "feature_width",
    "config_hash",
    "precision",
    "rpsloc_version",
)


def provenance_attrs(path: str | Path) -> dict[str, Any]:
    """The attributes a later stage copies from its input: dataset, backbone (name and every
    `backbone_*` provenance key), sizes and version, so each file describes itself."""
    return {
        key: value
        for key, value in read_attrs(path).items()
        if key.startswith("backbone_") or key in PROVENANCE_ATTRS
    }


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value


def write_strings(group: h5py.Group, name: str, values: list[str]) -> h5py.Dataset:
    """Store a list of strings as variable-length UTF-8 (readable by h5py, h5dump, pandas)."""
    return group.create_dataset(
        name, data=np.array(values, dtype=object), dtype=h5py.string_dtype("utf-8")
    )


def read_strings(dataset: h5py.Dataset) -> list[str]:
    return [value.decode() if isinstance(value, bytes) else value for value in dataset[()]]


def write_csv_atomic(table: pd.DataFrame, path: str | Path, float_format: str = "%.6f") -> None:
    """Write a table as CSV atomically, with a fixed float format so reruns are byte-identical."""
    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False, float_format=float_format, lineterminator="\n")


def read_json(path: str | Path) -> Any:
    """A JSON stage output; a file cut short or damaged is an error naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise IncompleteFileError(
            f"{path}: not complete JSON ({error}); delete it and rerun the stage that wrote it"
        ) from error


def read_csv(path: str | Path) -> pd.DataFrame:
    """A CSV stage output. Every table rpsloc writes ends with a newline, so one that does not
    was cut short: an error naming it, never a table with a row missing or half-filled.
    Image ids stay strings (VOC's `000005`, COCO's `9`), as the manifest has them."""
    path = Path(path)
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        raise IncompleteFileError(
            f"{path}: does not end with a newline, so it was cut short; delete it and rerun "
            "the stage that wrote it"
        )
    import pandas as pd  # here: most jobs write HDF5 only, and pandas takes 0.25 s to import

    return pd.read_csv(BytesIO(data), dtype={"image_id": str})


def write_json_atomic(data: Mapping[str, Any], path: str | Path) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
