"""The HTML report (`snakemake --report`) of one finished workflow run (`report_run`): every
table and figure embedded with its caption, and every rule's log and benchmark; the report of one
dataset's target alone (`folder_run`) opens on that dataset's summary."""

import json
import re

import pytest
from conftest import REPORT_FIGURES

from rpsloc import paths

pytestmark = pytest.mark.workflow


def report_results(workdir, name="report.html") -> dict:
    """The results the report embeds: its `var results = {...}` script, parsed."""
    html = (workdir / "results" / name).read_text()
    match = re.search(r'<script id="results">\s*var results = (\{.*?\});\s*</script>', html, re.S)
    return json.loads(match.group(1))


def test_the_report_embeds_the_summary_tables_and_every_figure(report_run):
    results = report_results(report_run)
    figures = {paths.figure(name).format(dataset="tiny") for name in REPORT_FIGURES}
    tables = {paths.SUMMARY.format(dataset="tiny"), paths.TABLES_CSV}
    expected = figures | tables
    assert set(results) == expected
    assert all(results[path]["data_uri"].startswith("data:image/png") for path in figures)


def test_every_figure_has_a_caption(report_run):
    results = report_results(report_run)
    assert all(len(entry["caption"]) > 100 for entry in results.values())


def landing_page(workdir, name="report.html") -> str:
    """The report's front page (its rendered workflow description)."""
    html = (workdir / "results" / name).read_text()
    description = html[html.index('<script id="workflow-desc">') :]
    return description[: description.index("</script>")]


def test_the_landing_page_shows_the_summary_table(report_run):
    description = landing_page(report_run)
    assert "<table" in description
    assert description.count("<tr") == 1 + 2  # header, then fixture x (rps, caam)
    assert "tiny MaxBoxAccV2" in description


def test_every_rule_leaves_a_log_and_a_benchmark(report_run):
    logs = {
        p.relative_to(report_run / "logs").with_suffix("")
        for p in (report_run / "logs").rglob("*.log")
    }
    benchmarks = {
        p.relative_to(report_run / "benchmarks").with_suffix("")
        for p in (report_run / "benchmarks").rglob("*.tsv")
    }
    assert {"tiny/figures/best_and_worst", "tiny/figures/representer_gallery"} <= {
        str(p) for p in logs
    }
    assert logs == benchmarks


def test_the_report_of_one_datasets_target_embeds_what_it_built(folder_run):
    results = report_results(folder_run, "photos-report.html")
    figures = ("predictions", "objectness", "representer_values")
    expected = {paths.SUMMARY.format(dataset="photos")}
    assert set(results) == expected | {paths.figure(f).format(dataset="photos") for f in figures}


def test_the_report_of_one_datasets_target_opens_on_its_summary_table(folder_run):
    description = landing_page(folder_run, "photos-report.html")
    assert "photos</tt>: one row per backbone, map variant and split" in description
    assert description.count("<tr") == 1 + 1  # header, then fixture x rps on its one split
