"""The HTML report and the figures behind it, from one finished workflow run (`report_run`)."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rpsloc.gallery import best_and_worst

pytestmark = pytest.mark.workflow

FIGURES = (
    "box_accuracy",
    "precision_recall",
    "overlays",
    "best_and_worst",
    "selection",
    "representer_values",
    "representer_gallery",
)


def report_results(workdir) -> dict:
    """The results the report embeds: its `var results = {...}` script, parsed."""
    html = (workdir / "results" / "report.html").read_text()
    match = re.search(r'<script id="results">\s*var results = (\{.*?\});\s*</script>', html, re.S)
    return json.loads(match.group(1))


def test_the_report_embeds_the_summary_tables_and_every_figure(report_run):
    results = report_results(report_run)
    expected = {f"results/tiny/figures/{name}.png" for name in FIGURES}
    expected |= {"results/tiny/summary.csv", "results/tables/summary.csv"}
    assert set(results) == expected
    assert all(
        results[path]["data_uri"].startswith("data:image/png")
        for path in expected - {"results/tiny/summary.csv", "results/tables/summary.csv"}
    )


def test_every_figure_has_a_caption(report_run):
    results = report_results(report_run)
    assert all(len(entry["caption"]) > 100 for entry in results.values())


def test_the_landing_page_shows_the_summary_table(report_run):
    html = (report_run / "results" / "report.html").read_text()
    description = html[html.index('<script id="workflow-desc">') :]
    description = description[: description.index("</script>")]
    assert "<table" in description
    assert description.count("<tr") == 1 + 2  # header, then fixture x (rps, caam)
    assert "tiny MaxBoxAccV2" in description


@pytest.mark.parametrize("name", FIGURES)
def test_figures_are_pngs_large_enough_to_read(report_run, name):
    with Image.open(report_run / "results" / "tiny" / "figures" / f"{name}.png") as image:
        assert image.format == "PNG"
        assert min(image.size) >= 300


def test_the_per_image_ious_reproduce_max_box_acc_at_iou_50(report_run):
    metrics = report_run / "results" / "tiny" / "fixture" / "rps" / "metrics"
    images = pd.read_csv(metrics / "test-images.csv")
    summary = json.loads((metrics / "test.json").read_text())
    assert len(images) == summary["n_images"] == 6
    assert images["threshold"].unique().tolist() == [summary["best_threshold_50"]]
    assert 100 * (images["iou"] >= 0.5).mean() == pytest.approx(summary["max_box_acc_50"])


def test_the_precision_recall_points_integrate_to_pxap(report_run):
    metrics = report_run / "results" / "tiny" / "fixture" / "caam" / "metrics"
    curve = pd.read_csv(metrics / "val-pr.csv")
    summary = json.loads((metrics / "val.json").read_text())
    recall, precision = curve["recall"].to_numpy(), curve["precision"].to_numpy()
    assert (np.diff(recall) >= 0).all() and recall[-1] == pytest.approx(1.0)
    area = precision[0] * recall[0] + (precision[1:] * np.diff(recall)).sum()
    assert 100 * area == pytest.approx(summary["pxap"], abs=1e-3)


def test_best_and_worst_pick_the_extremes_keeping_the_split_order_on_ties():
    images = pd.DataFrame({"image_id": ["a", "b", "c", "d"], "iou": [0.5, 0.9, 0.1, 0.9]})
    assert best_and_worst(images, 2) == (["b", "d"], ["c", "a"])


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
