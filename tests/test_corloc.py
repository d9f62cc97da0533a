"""CorLoc (rpsloc.metrics.corloc) on hand-built boxes: one box per image, IoU >= 0.5 with any
ground-truth box, boxes as rectangles between pixel edges in the original image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rpsloc.metrics.corloc import (
    corloc,
    corloc_hits,
    crop_edges_to_image,
    edge_iou,
    own_box_accuracy,
    pixel_edges,
)


def test_an_inclusive_pixel_box_spans_its_pixels_edges():
    assert pixel_edges(np.array([[0, 0, 9, 4]])).tolist() == [[0, 0, 10, 5]]


def test_one_box_on_its_ground_truth_is_located():
    truth = pixel_edges(np.array([[10, 10, 49, 29]]))
    assert corloc_hits([np.array([10.0, 10, 50, 30])], [truth]).tolist() == [True]


def test_any_of_several_ground_truth_boxes_locates_the_image():
    truths = pixel_edges(np.array([[0, 0, 9, 9], [100, 100, 119, 119]]))
    far, second = np.array([50.0, 50, 60, 60]), np.array([101.0, 101, 120, 120])
    assert corloc_hits([far, second], [truths, truths]).tolist() == [False, True]


def test_iou_exactly_one_half_is_located():
    truth = np.array([[0.0, 0, 10, 10]])  # area 100
    box = np.array([0.0, 0, 10, 20])  # area 200, intersection 100, union 200
    assert edge_iou(box, truth).tolist() == [0.5]
    assert corloc_hits([box], [truth]).tolist() == [True]
    assert corloc_hits([np.array([0.0, 0, 10, 20.01])], [truth]).tolist() == [False]


def test_an_image_without_ground_truth_or_without_a_box_is_a_miss_that_counts():
    truth = pixel_edges(np.array([[0, 0, 9, 9]]))
    result = corloc(
        [np.array([0.0, 0, 10, 10]), np.array([0.0, 0, 10, 10]), None],
        [truth, np.zeros((0, 4)), truth],
    )
    assert result == {
        "corloc": pytest.approx(100 / 3),
        "corloc_n_located": 1,
        "corloc_n_images": 3,
        "corloc_n_without_box": 1,
        "corloc_n_without_truth": 1,
    }


def test_a_crop_rectangle_goes_back_to_the_original_pixels():
    # 200 x 100 image resized to 256 x 256, centre crop 224 (offset 16): the crop's corner
    # is (16 / 1.28, 16 / 2.56) = (12.5, 6.25) in the original.
    edges = crop_edges_to_image(np.array([0.0, 0, 224, 224]), 200, 100, 256, 224)
    assert edges.tolist() == [12.5, 6.25, 187.5, 93.75]
    uncropped = crop_edges_to_image(np.array([16.0, 32, 480, 480]), 300, 150, 480, 480)
    assert uncropped.tolist() == [10.0, 10.0, 300.0, 150.0]


def test_box_accuracy_at_the_methods_own_box_counts_images_with_ground_truth():
    boxes = np.array([[0, 0, 9, 9], [0, 0, 9, 9], [0, 0, 9, 9]])
    truths = [np.array([[0, 0, 9, 9]]), np.array([[0, 0, 9, 19]]), np.zeros((0, 4))]
    # IoUs 1 and 100 / 200 = 0.5 (+1 pixel convention); the third image has no truth.
    assert own_box_accuracy(boxes, truths, (30, 50, 70)) == {
        "own_box_acc_30": 100.0,
        "own_box_acc_50": 100.0,
        "own_box_acc_70": 50.0,
    }


def test_a_map_methods_box_is_the_boxes_stages_first_and_no_box_is_a_miss():
    import pandas as pd

    from rpsloc.datasets.records import ImageRecord
    from rpsloc.metrics.corloc import split_corloc
    from rpsloc.readers import MapsFile, PredictedBoxes

    maps = MapsFile(
        path=Path("maps.h5"),
        image_ids=["000005", "000007"],
        labels=np.array([-1, -1]),
        maps=np.zeros((2, 4, 4), np.float32),
        attrs={"image_size": 64, "crop_size": 64},
    )
    records = {
        image_id: ImageRecord(image_id, Path(f"{image_id}.jpg"), 100, 50, -1, [[10, 10, 29, 29]])
        for image_id in maps.image_ids
    }
    boxes = pd.DataFrame(
        [("000005", 2, 0, 0, 99, 49, 0.9), ("000005", 1, 10, 10, 29, 29, 0.5)],
        columns=["image_id", "rank", "x0", "y0", "x1", "y1", "score"],
    )
    predicted = PredictedBoxes(boxes, pd.DataFrame())
    result = split_corloc(maps, records, predicted, (30, 50, 70))
    assert (result["corloc"], result["corloc_n_without_box"]) == (50.0, 1)
    assert result["corloc_box"] == "boxes stage, first box"
