"""The classify stage: the Top-k Loc formulas, and the predictions file and Top-1/Top-5 Loc of
the workflow (METHOD.md section 3; docs/classifiers.md)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_snakemake, tiny_config

from rpsloc import paths
from rpsloc.boxes import best_iou_per_threshold
from rpsloc.datasets.records import read_manifest
from rpsloc.errors import InputError
from rpsloc.io import open_h5, read_attrs, read_json, read_strings
from rpsloc.metrics import top_k_headline
from rpsloc.metrics.accumulators import BoxAccuracy, top_k_loc
from rpsloc.paths import result_files
from rpsloc.readers import iter_eval_shards, read_top5
from rpsloc.scoremaps import score_map

#: The classify stage's predictions and the method's result on val in the classified run.
PREDICTIONS = paths.PREDICTIONS.format(dataset="tiny", classifier="random8", split="val")
RPS_VAL = result_files("tiny", "fixture", "rps", "val")


# ------------------------------------------------------------------------- Top-k Loc formulas


def test_top_k_loc_matches_a_hand_computation():
    ious = np.array([0.6, 0.4, 0.5, 0.9])
    labels = np.array([1, 2, 3, 0])
    top5 = np.array(
        [
            [1, 0, 2, 3, 4],  # located, top-1 right
            [2, 0, 1, 3, 4],  # top-1 right but IoU 0.4 < 0.5: not located
            [0, 1, 2, 3, 4],  # located (IoU exactly 0.5), label 3 only in the top-5
            [5, 6, 7, 8, 9],  # located, label 0 not in the top-5
        ]
    )
    assert top_k_loc(ious, labels, top5) == {
        "gt_known_loc": 75.0,
        "top1_loc": 25.0,
        "top5_loc": 50.0,
    }


def test_top_k_headline_takes_the_threshold_maximising_largest_contour_box_acc_50():
    largest = BoxAccuracy(np.array([0.1, 0.2, 0.3]), (30, 50, 70), multi_contour=False)
    # best IoU per image (rows) at each threshold (columns): BoxAcc@50 is 1/3, 2/3, 1/3
    largest._best_ious = list(np.array([[0.6, 0.4, 0.2], [0.2, 0.7, 0.6], [0.1, 0.55, 0.1]]))
    labels = np.array([0, 1, 2])
    top5 = np.array([[0, 1, 2, 3, 4], [1, 0, 2, 3, 4], [0, 2, 1, 3, 4]])
    headline = top_k_headline(largest, labels, top5)
    assert headline["loc_threshold"] == 0.2
    assert headline["loc_protocol"] == "benchmark_largest"
    assert headline["gt_known_loc"] == pytest.approx(200 / 3)
    assert headline["gt_known_loc"] == pytest.approx(largest.max_box_acc()[50])
    assert headline["top1_loc"] == pytest.approx(100 / 3)
    assert headline["top5_loc"] == pytest.approx(200 / 3)


def test_top_k_loc_needs_iou_50_among_the_evaluated_thresholds():
    largest = BoxAccuracy(np.array([0.1]), (30, 70), multi_contour=False)
    largest._best_ious = [np.array([0.6])]
    with pytest.raises(InputError, match="iou_thresholds must include 50"):
        top_k_headline(largest, np.array([0]), np.zeros((1, 5), dtype=np.int64))


# --------------------------------------------------------------- the classify stage, end to end


def classifier_config() -> dict:
    """The synthetic set with 8 classes (each among the 10 training images, so every w*_k
    exists) and a random-weight ResNet-50 classifier over them: top-1 is often wrong, the
    top-5 holds the label more often."""
    config = tiny_config(
        backbones=["fixture"],
        variants=["rps", "rps_classwise_top1"],
        eval_splits=["val"],
        classifier="random8",
    )
    config["datasets"] = {"tiny": config["datasets"]["tiny"]}
    config["datasets"]["tiny"]["synthetic"]["classes"] = 8
    config["classifiers"] = {
        "random8": {
            "arch": "resnet50",
            "weights": "random",
            "num_classes": 8,
            "image_size": 64,
            "crop_size": 64,
            "seed": 3,  # a seed whose top-1 is right for one of the 6 images, top-5 for 4
        }
    }
    return config


@pytest.fixture(scope="module")
def classified(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("classify")
    run_snakemake(workdir, classifier_config(), paths.SUMMARY.format(dataset="tiny"))
    return workdir


@pytest.mark.workflow
def test_predictions_file_holds_top5_classes_and_scores_in_manifest_order(classified):
    path = classified / PREDICTIONS
    manifest = read_manifest(classified / paths.MANIFEST.format(dataset="tiny", split="val"))
    with open_h5(path) as handle:
        assert read_strings(handle["image_ids"]) == [r.image_id for r in manifest]
        top5, scores = handle["top5"][()], handle["top5_scores"][()]
    assert top5.shape == (6, 5) and top5.dtype == np.int64
    assert scores.dtype == np.float32
    assert ((top5 >= 0) & (top5 < 8)).all()
    assert all(len(set(row)) == 5 for row in top5)
    assert (np.diff(scores, axis=1) <= 0).all() and (scores.sum(axis=1) <= 1 + 1e-6).all()
    attrs = read_attrs(path)
    assert (attrs["classifier_arch"], attrs["classifier_weights"]) == ("resnet50", "random")
    assert (attrs["classifier_num_classes"], attrs["classifier_crop_size"]) == (8, 64)
    assert attrs["split"] == "val" and attrs["classifier"] == "random8"


@pytest.mark.workflow
def test_top1_and_top5_loc_of_the_workflow_match_a_hand_computation(classified):
    metrics = read_json(classified / RPS_VAL.summary)
    maps_path = classified / RPS_VAL.maps
    shards = sorted((classified / RPS_VAL.maps).parents[2].glob("features/val/shard-*.h5"))
    with open_h5(maps_path) as handle:
        activations = handle["maps"][()]
    located, top1_right, top5_right = [], [], []
    ids = [image_id for shard in iter_eval_shards(shards, False) for image_id in shard.image_ids]
    top5 = read_top5(classified / PREDICTIONS, ids)
    index = 0
    for shard in iter_eval_shards(shards, with_features=False):
        for label, boxes in zip(shard.labels, shard.boxes, strict=True):
            scores = score_map(activations[index], shard.crop_size)
            threshold = np.array([metrics["loc_threshold"]])
            iou = best_iou_per_threshold(scores, boxes, threshold, multi_contour=False)[0]
            located.append(iou >= 0.5)
            top1_right.append(top5[index, 0] == label)
            top5_right.append(label in top5[index])
            index += 1
    located = np.array(located)
    assert metrics["gt_known_loc"] == pytest.approx(100 * located.mean())
    assert metrics["top1_loc"] == pytest.approx(100 * (located & top1_right).mean())
    assert metrics["top5_loc"] == pytest.approx(100 * (located & top5_right).mean())
    assert metrics["gt_known_loc"] == pytest.approx(metrics["max_box_acc_v1"])
    assert 0 < metrics["top1_loc"] < metrics["top5_loc"] < metrics["gt_known_loc"]


@pytest.mark.workflow
def test_summary_reports_top1_top5_and_gt_known_loc_per_variant(classified):
    summary = pd.read_csv(classified / paths.SUMMARY.format(dataset="tiny"))
    assert list(summary["variant"]) == ["rps", "rps_classwise_top1"]
    for _, row in summary.iterrows():
        metrics = read_json(
            classified / result_files("tiny", "fixture", row["variant"], "val").summary
        )
        for column in ("top1_loc", "top5_loc", "gt_known_loc", "loc_threshold"):
            assert row[column] == pytest.approx(metrics[column], abs=1e-4)
        assert row["loc_protocol"] == "benchmark_largest"


@pytest.mark.workflow
def test_summary_reports_the_authors_top1_top5_and_gt_known_loc(classified):
    summary = pd.read_csv(classified / paths.SUMMARY.format(dataset="tiny"))
    for _, row in summary.iterrows():
        table = pd.read_csv(
            classified / result_files("tiny", "fixture", row["variant"], "val").table
        )
        authors = table[(table["protocol"] == "authors") & (table["iou"] == 50)]
        # val is its own threshold split: each number is its best over the thresholds
        assert row["authors_top1_loc"] == pytest.approx(authors["n_top1"].max() * 100 / 6, abs=1e-4)
        assert row["authors_top5_loc"] == pytest.approx(authors["n_top5"].max() * 100 / 6, abs=1e-4)
        assert row["authors_gt_known_loc"] == pytest.approx(authors["box_acc"].max(), abs=1e-4)


@pytest.mark.workflow
def test_classwise_predictors_from_predicted_classes_need_the_training_splits_predictions(
    tmp_path,
):
    config = classifier_config()
    config["datasets"]["tiny"]["variants"] = ["rps_classwise_pred"]
    # a dry run plans past the manifests (a checkpoint) only once they exist
    manifests = [paths.MANIFEST.format(dataset="tiny", split=split) for split in ("train", "val")]
    run_snakemake(tmp_path, config, *manifests)
    result = run_snakemake(tmp_path, config, paths.SUMMARY.format(dataset="tiny"), "--dry-run")
    assert re.search(r"^classify\s+2$", result.stdout, re.M)  # the training split and val
    assert "representer/classwise-pred.h5" in result.stdout
