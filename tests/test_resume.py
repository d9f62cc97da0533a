"""Kill-and-resume: a run killed with SIGKILL at any stage and started again as
docs/reliability.md says (the bare `snakemake --rerun-incomplete`, no `--unlock`) ends with
exactly the files of an uninterrupted run, and never recomputes a finished feature shard.

The test hook tests/hooks/pause (a sitecustomize.py on PYTHONPATH, driven by
RPSLOC_TEST_PAUSE_AT) makes the writer of a chosen output stop at a known point: feature shards
after their first batch, every other output when written to its temporary but not yet renamed.
Each interrupted run is also the resumption of the previous one, so five kills cost about one
run."""

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import (
    RELIABILITY_TARGETS,
    REPO,
    reliability_config,
    run_snakemake,
    snakemake_command,
)

from rpsloc.io import open_h5

PAUSE_HOOK = REPO / "tests" / "hooks" / "pause"
PAUSE_ENV = "RPSLOC_TEST_PAUSE_AT"
PAUSE_MARKER = ".rpsloc-paused"

pytestmark = pytest.mark.workflow

STAGES = {  # stage -> the output whose writer pauses until the whole run is killed
    "features, mid-shard": "*/features/train/shard-1.h5",
    "representer": "*/representer/global.h5",
    "maps": "*/maps/val.h5",
    "metrics": "*/metrics/val.csv",
    "summary": "*/summary.csv",
}


@dataclass(frozen=True)
class Kill:
    paused: str  # the output the run was writing when it was killed
    shards: dict[str, tuple[int, int]]  # finished shard -> (inode, mtime in ns) at that moment
    temporaries: dict[str, str]  # temporary file the killed run left -> what open_h5 said


def finished_shards(workdir: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(workdir)): (path.stat().st_ino, path.stat().st_mtime_ns)
        for path in (workdir / "results").rglob("features/*/shard-*.h5")
    }


def temporaries(workdir: Path) -> list[str]:
    return sorted(str(p.relative_to(workdir)) for p in (workdir / "results").rglob(".*.tmp-*"))


def reader_verdict(path: Path) -> str:
    """'opened' if a stage reading `path` would accept it, else the error it raises."""
    try:
        open_h5(path).close()
    except Exception as error:  # noqa: BLE001 - the test records whichever error it is
        return type(error).__name__
    return "opened"


def kill_when_paused(workdir: Path, pattern: str) -> Kill:
    """Start the workflow with the pause hook on `pattern`, SIGKILL its whole process group
    (Snakemake and every job) once a writer has paused there."""
    command = snakemake_command(
        workdir, reliability_config(), *RELIABILITY_TARGETS, "--rerun-incomplete"
    )
    marker = workdir / PAUSE_MARKER
    pythonpath = os.pathsep.join(filter(None, [str(PAUSE_HOOK), os.environ.get("PYTHONPATH")]))
    with (workdir / "killed-runs.log").open("a") as log:
        process = subprocess.Popen(
            command,
            env={**os.environ, PAUSE_ENV: pattern, "PYTHONPATH": pythonpath},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 300
    while not (marker.exists() and marker.read_text().endswith("\n")):
        if process.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError(f"the run never paused at {pattern}; see killed-runs.log")
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    paused = marker.read_text().strip()
    marker.unlink()
    left = {name: reader_verdict(workdir / name) for name in temporaries(workdir)}
    return Kill(paused, finished_shards(workdir), left)


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> tuple[Path, dict[str, Kill]]:
    workdir = tmp_path_factory.mktemp("resumed")
    kills = {}
    for stage, pattern in STAGES.items():
        kills[stage] = kill_when_paused(workdir, pattern)
    run_snakemake(workdir, reliability_config(), *RELIABILITY_TARGETS, "--rerun-incomplete")
    return workdir, kills


def test_every_stage_was_killed_while_writing_its_output(resumed):
    _, kills = resumed
    for stage, pattern in STAGES.items():
        assert Path(kills[stage].paused).match(pattern), stage


def test_a_shard_killed_mid_extraction_is_not_in_place_and_readers_refuse_its_temporary(
    resumed,
):
    _, kills = resumed
    kill = kills["features, mid-shard"]
    assert kill.paused not in kill.shards
    name = Path(kill.paused).name
    [verdict] = [v for t, v in kill.temporaries.items() if Path(t).name.startswith(f".{name}.tmp-")]
    assert verdict in ("IncompleteFileError", "OSError")


def test_the_resumed_run_writes_byte_identical_tables_and_figures(resumed, reference_run):
    workdir, _ = resumed
    names = sorted(
        str(p.relative_to(reference_run))
        for pattern in ("summary.csv", "metrics/*.csv", "metrics/*.json", "*.png")
        for p in (reference_run / "results").rglob(pattern)
    )
    assert len(names) >= 1 + 1 + 1 + 2
    different = [n for n in names if (workdir / n).read_bytes() != (reference_run / n).read_bytes()]
    assert different == []


def test_shards_finished_before_a_kill_are_never_recomputed(resumed):
    workdir, kills = resumed
    first_seen: dict[str, tuple[int, int]] = {}
    for kill in kills.values():
        for shard, stat in kill.shards.items():
            first_seen.setdefault(shard, stat)
    assert len(kills["representer"].shards) >= 2  # both training shards, before 3 more reruns
    assert first_seen == finished_shards(workdir)
    assert len(first_seen) == 3


def test_the_resumed_run_leaves_no_temporary_files(resumed):
    workdir, _ = resumed
    assert temporaries(workdir) == []
