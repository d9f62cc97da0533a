"""The figures stage: the report's pictures, from one finished workflow run (`report_run`), and
the choices behind the galleries."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import REPORT_FIGURES
from PIL import Image

from rpsloc import paths
from rpsloc.figures.galleries import best_and_worst
from rpsloc.paths import result_files


@pytest.mark.workflow
@pytest.mark.parametrize("name", REPORT_FIGURES)
def test_figures_are_pngs_large_enough_to_read(report_run, name):
    with Image.open(report_run / paths.figure(name).format(dataset="tiny")) as image:
        assert image.format == "PNG"
        assert min(image.size) >= 300


@pytest.mark.workflow
def test_the_per_image_ious_reproduce_max_box_acc_at_iou_50(report_run):
    result = result_files("tiny", "fixture", "rps", "test", root=report_run)
    images = pd.read_csv(result.images)
    summary = json.loads(result.summary.read_text())
    assert len(images) == summary["n_images"] == 6
    assert images["threshold"].unique() == pytest.approx([summary["best_threshold_50"]], abs=1e-6)
    assert 100 * (images["iou"] >= 0.5).mean() == pytest.approx(summary["max_box_acc_50"])


@pytest.mark.workflow
def test_the_precision_recall_points_integrate_to_pxap(report_run):
    result = result_files("tiny", "fixture", "caam", "val", root=report_run)
    curve = pd.read_csv(result.curve)
    summary = json.loads(result.summary.read_text())
    recall, precision = curve["recall"].to_numpy(), curve["precision"].to_numpy()
    assert (np.diff(recall) >= 0).all() and recall[-1] == pytest.approx(1.0)
    area = precision[0] * recall[0] + (precision[1:] * np.diff(recall)).sum()
    assert 100 * area == pytest.approx(summary["pxap"], abs=1e-3)


def test_best_and_worst_pick_the_extremes_keeping_the_split_order_on_ties():
    images = pd.DataFrame({"image_id": ["a", "b", "c", "d"], "iou": [0.5, 0.9, 0.1, 0.9]})
    assert best_and_worst(images, 2) == (["b", "d"], ["c", "a"])
