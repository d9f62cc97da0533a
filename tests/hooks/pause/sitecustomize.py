"""Test hook of the kill-and-resume tests (tests/test_resume.py), loaded by every Python
process of a run whose PYTHONPATH starts with this folder.

When RPSLOC_TEST_PAUSE_AT holds a glob, a process that is about to finish an output matching it
writes the output's path to `.rpsloc-paused` in its working directory and sleeps until it is
killed: an output written to its temporary and about to be renamed into place (`os.replace`),
and a feature shard as soon as its first batch is stored (`h5py.Dataset.__setitem__`). Nothing
of this is in rpsloc itself.
"""

import fnmatch
import os
import time
from pathlib import Path

PATTERN = os.environ.get("RPSLOC_TEST_PAUSE_AT")
MARKER = ".rpsloc-paused"
FIRST_BATCH_DATASETS = ("/unit_features", "/mean_features")


def _pause_if_chosen(path: str | os.PathLike) -> None:
    if not fnmatch.fnmatch(str(path), PATTERN):
        return
    Path(MARKER).write_text(f"{path}\n")
    while True:
        time.sleep(60)


def _final_name(temporary: str) -> Path:
    """The output an atomic temporary `.<name>.tmp-<pid>` becomes (rpsloc.io.atomic_path)."""
    path = Path(temporary)
    return path.with_name(path.name[1:].rsplit(".tmp-", 1)[0])


if PATTERN:
    import h5py

    _replace = os.replace
    _store = h5py.Dataset.__setitem__

    def _replace_after_pause(source, destination, *args, **kwargs):
        _pause_if_chosen(destination)
        return _replace(source, destination, *args, **kwargs)

    def _store_then_pause(self, key, value):
        _store(self, key, value)
        if self.name in FIRST_BATCH_DATASETS and ".tmp-" in self.file.filename:
            _pause_if_chosen(_final_name(self.file.filename))

    os.replace = _replace_after_pause
    h5py.Dataset.__setitem__ = _store_then_pause
