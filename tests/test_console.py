"""The terminal of a run (rpsloc.console, rpsloc.logging.to_log; docs/reliability.md "The
console"): one line per failed job naming the error, the rule and the log, the traceback once
and only in the log, no output of parallel jobs interleaved, and a run's progress in a few
lines whatever its number of jobs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONSOLE, run_snakemake, tiny_config

from rpsloc import paths
from rpsloc.console import STEPS, failure_line
from rpsloc.logging import FAILED, read_failure
from rpsloc.synthetic import generate_synthetic_dataset

FAILING_STAGE = """
import sys
from rpsloc.errors import InputError
from rpsloc.logging import to_log
with to_log(sys.argv[1]):
    print("reading the metadata")
    raise InputError("labels.txt, line 3: expected a class label, found 'x'")
"""


def run_failing_stage(log: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", FAILING_STAGE, str(log)], capture_output=True, text=True, timeout=60
    )


def test_a_failing_stage_writes_nothing_to_the_terminal_and_exits_with_status_1(tmp_path):
    result = run_failing_stage(tmp_path / "stage.log")
    assert (result.returncode, result.stdout, result.stderr) == (1, "", "")


def test_a_failing_stage_logs_its_traceback_once_then_one_line_naming_the_error(tmp_path):
    run_failing_stage(tmp_path / "stage.log")
    log = (tmp_path / "stage.log").read_text()
    assert log.count("Traceback (most recent call last)") == 1
    assert log.splitlines()[-1].endswith(
        f"rpsloc: {FAILED}InputError: labels.txt, line 3: expected a class label, found 'x'"
    )
    assert read_failure(tmp_path / "stage.log").startswith("InputError: labels.txt, line 3")


def test_a_failed_job_is_one_line_with_its_error_and_log(tmp_path):
    run_failing_stage(tmp_path / "stage.log")
    line = failure_line("manifest (dataset=cub, split=test)", [str(tmp_path / "stage.log")])
    assert line == (
        "error: manifest (dataset=cub, split=test) failed: InputError: labels.txt, line 3: "
        f"expected a class label, found 'x' [log: {tmp_path / 'stage.log'}]"
    )


def test_a_job_killed_before_it_wrote_its_error_points_to_its_log(tmp_path):
    (tmp_path / "stage.log").write_text("")
    line = failure_line("features (shard=0)", [str(tmp_path / "stage.log")])
    assert line.startswith("error: features (shard=0) failed (no error recorded")
    assert line.endswith(f"{tmp_path / 'stage.log'})")


# ----------------------------------------------------------------------------- the workflow


def bad_labels_config(root: Path) -> dict:
    """A WSOL-layout dataset whose train and val label files both hold a label 'x' on line 2,
    so the two manifest jobs, which run in parallel, both fail."""
    generate_synthetic_dataset(root, {"train": 4, "val": 4}, n_classes=2, seed=0, max_side=64)
    for split in ("train", "val"):
        labels = root / "metadata" / split / "class_labels.txt"
        lines = labels.read_text().splitlines()
        lines[1] = lines[1].rsplit(",", 1)[0] + ",x"
        labels.write_text("\n".join(lines) + "\n")
    config = tiny_config(backbones=["fixture"], variants=["rps"], eval_splits=["val"])
    tiny = config["datasets"]["tiny"]
    del tiny["synthetic"]
    tiny.update(adapter="wsol", metadata=str(root / "metadata"), images=str(root / "images"))
    config["datasets"] = {"tiny": tiny}
    return config


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory) -> tuple[Path, str]:
    workdir = tmp_path_factory.mktemp("failed")
    config = bad_labels_config(workdir / "data")
    target = paths.MANIFEST_SKIPPED.format(dataset="tiny", split="{split}")
    targets = [target.format(split=split) for split in ("train", "val")]
    result = run_snakemake(workdir, config, "--keep-going", *targets, check=False)
    assert result.returncode != 0
    return workdir, result.stdout + result.stderr


@pytest.mark.workflow
def test_each_failed_job_is_one_line_naming_the_rule_the_error_and_the_log(failed_run):
    workdir, console = failed_run
    for split in ("train", "val"):
        log = paths.log_of(paths.MANIFEST).format(dataset="tiny", split=split)
        [line] = [line for line in console.splitlines() if f"split={split})" in line]
        assert line.startswith(f"error: manifest (dataset=tiny, split={split}) failed: ")
        assert "class_labels.txt, line 2" in line and "not an integer label: 'x'" in line
        assert line.endswith(f"[log: {log}]")


@pytest.mark.workflow
def test_a_failed_jobs_traceback_is_in_its_log_once_and_never_on_the_terminal(failed_run):
    workdir, console = failed_run
    assert "Traceback" not in console and "^^^" not in console
    for split in ("train", "val"):
        log = workdir / paths.log_of(paths.MANIFEST).format(dataset="tiny", split=split)
        assert log.read_text().count("Traceback (most recent call last)") == 1


@pytest.mark.workflow
def test_a_run_prints_its_progress_in_a_few_lines_and_no_job_details(reference_run):
    lines = (reference_run / CONSOLE).read_text().splitlines()
    assert len(lines) <= STEPS + 5
    assert lines[-2].startswith("[") and "100% of the jobs done" in lines[-2]
    assert not [line for line in lines if line.lstrip().startswith(("input:", "reason:"))]


def test_make_demo_ends_saying_where_the_numbers_the_figures_and_the_report_are():
    repository = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        ["make", "--no-print-directory", "--dry-run", "--always-make", "demo"],
        cwd=repository,
        capture_output=True,
        text=True,
        timeout=60,
    )
    ending = result.stdout.splitlines()[-3:]
    assert "results/demo/summary.csv" in ending[0] and "rpsloc summary results/demo" in ending[0]
    assert "results/demo/figures/" in ending[1] and "results/report.html" in ending[2]
