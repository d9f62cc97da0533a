"""No network at run time: a whole workflow run opens no connection and resolves no name."""

import pytest

from rpsloc import paths

pytestmark = pytest.mark.workflow


def test_a_guarded_run_finishes_with_its_summary(offline_run):
    assert (offline_run / paths.SUMMARY.format(dataset="tiny")).read_text().count("\n") == 1 + 1


def test_no_process_of_the_run_tried_to_connect_or_resolve_a_name(offline_run):
    attempts = offline_run / "guard" / "attempts.txt"
    assert not attempts.exists(), attempts.read_text()


def test_the_guard_was_loaded_by_snakemake_and_every_job(offline_run):
    loaded = list((offline_run / "guard").glob("loaded-*"))
    jobs = list((offline_run / "logs").rglob("*.log"))
    assert len(jobs) >= 12  # synth, 2 manifests, 3 feature shards, w*, maps, metrics, 3 reports
    assert len(loaded) >= len(jobs) + 1
