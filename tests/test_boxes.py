"""Score map -> boxes and IoU, against hand-computed values (METHOD.md section 3), and the
boxes stage that hands predicted boxes out in original pixels with their scores (docs/boxes.md).

A blob covering columns c0..c1 and rows r0..r1 has boundingRect (c0, r0, c1 - c0 + 1, r1 - r0 + 1),
so its box is (c0, r0, c1 + 1, r1 + 1): one past the last pixel, as in the benchmark.
"""

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FOLDER_SPLITS
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from rpsloc import paths
from rpsloc.api import Localizer
from rpsloc.boxes import (
    best_iou_per_threshold,
    box_iou,
    threshold_boxes,
    trace_map,
    traced_best_ious,
)
from rpsloc.boxes.predicted import (
    activation_map,
    box_threshold,
    foreground_regions,
    otsu_threshold,
)
from rpsloc.errors import InputError
from rpsloc.protocols import AUTHORS_THRESHOLDS, chosen_threshold
from rpsloc.readers import MapsFile
from rpsloc.scoremaps import score_map

HALF = np.array([0.5])


def _sorted_rows(boxes: np.ndarray) -> list[list[int]]:
    return sorted(boxes.tolist())


@pytest.fixture
def square_blob() -> np.ndarray:
    """10 x 10 map: 1.0 on rows 2..5 and columns 3..6, 0 elsewhere."""
    score_map = np.zeros((10, 10))
    score_map[2:6, 3:7] = 1.0
    return score_map


@pytest.fixture
def two_blobs() -> np.ndarray:
    """10 x 10 map: a 3 x 3 blob of 1.0 (rows/cols 1..3), a 2 x 2 blob of 0.8 (rows/cols 6..7)."""
    score_map = np.zeros((10, 10))
    score_map[1:4, 1:4] = 1.0
    score_map[6:8, 6:8] = 0.8
    return score_map


def test_a_square_blob_gives_its_box_one_past_the_last_pixel(square_blob):
    for multi in (True, False):
        (boxes,) = threshold_boxes(square_blob, HALF, multi_contour=multi)
        assert boxes.tolist() == [[3, 2, 7, 6]]


def test_the_benchmarks_unimodal_reference_boxes_are_reproduced():
    # Map and boxes from the benchmark's own unit test (largest contour, thresholds 0..0.8).
    score_map = np.array(
        [
            [0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.4, 0.4, 0.4, 0.6],
            [0.0, 0.4, 1.0, 0.8, 0.6],
            [0.0, 0.4, 0.4, 0.4, 0.6],
        ]
    )
    boxes = threshold_boxes(score_map, np.arange(0, 1, 0.2), multi_contour=False)
    expected = [[1, 1, 4, 3], [1, 1, 4, 3], [2, 1, 4, 3], [2, 2, 4, 3], [2, 2, 3, 3]]
    assert [b.tolist() for b in boxes] == [[e] for e in expected]


def test_the_benchmarks_multimodal_reference_boxes_are_reproduced():
    score_map = np.array(
        [
            [0.4, 0.0, 0.2, 0.2, 0.2],
            [0.4, 0.4, 0.0, 0.4, 0.0],
            [0.0, 0.0, 0.0, 0.4, 0.0],
            [1.0, 0.6, 0.8, 0.2, 0.2],
        ]
    )
    boxes = threshold_boxes(score_map, np.arange(0, 1, 0.2), multi_contour=False)
    expected = [[0, 0, 4, 3], [0, 0, 2, 2], [0, 3, 3, 3], [2, 3, 3, 3], [0, 3, 1, 3]]
    assert [b.tolist() for b in boxes] == [[e] for e in expected]


def test_largest_contour_mode_keeps_only_the_bigger_blob(two_blobs):
    (boxes,) = threshold_boxes(two_blobs, HALF, multi_contour=False)
    assert boxes.tolist() == [[1, 1, 4, 4]]


def test_multi_contour_mode_keeps_both_blobs(two_blobs):
    (boxes,) = threshold_boxes(two_blobs, HALF, multi_contour=True)
    assert _sorted_rows(boxes) == [[1, 1, 4, 4], [6, 6, 8, 8]]


def test_multi_and_largest_contour_differ_on_the_smaller_blobs_box(two_blobs):
    gt = np.array([[6, 6, 7, 7]])
    # multi: (6,6,8,8) has area 9, gt area 4, intersection 4 -> 4/9; largest: no overlap -> 0.
    multi = best_iou_per_threshold(two_blobs, gt, HALF, multi_contour=True)
    largest = best_iou_per_threshold(two_blobs, gt, HALF, multi_contour=False)
    assert multi.tolist() == [4 / 9]
    assert largest.tolist() == [0.0]


def test_only_the_higher_blob_remains_above_a_high_threshold(two_blobs):
    # m.max() = 255, int(0.9 * 255) = 229 > int(0.8 * 255) = 204: only the 1.0 blob stays.
    (boxes,) = threshold_boxes(two_blobs, np.array([0.9]), multi_contour=True)
    assert boxes.tolist() == [[1, 1, 4, 4]]


def test_multi_contour_mode_also_boxes_the_inner_boundary_of_a_hole():
    ring = np.ones((9, 9))
    ring[3:6, 3:6] = 0.0
    (multi,) = threshold_boxes(ring, HALF, multi_contour=True)
    (largest,) = threshold_boxes(ring, HALF, multi_contour=False)
    # RETR_TREE returns the hole's contour through the ring pixels at rows/cols 2..6.
    assert _sorted_rows(multi) == [[0, 0, 8, 8], [2, 2, 7, 7]]
    assert largest.tolist() == [[0, 0, 8, 8]]


def test_a_constant_map_gives_the_whole_image_clipped_to_w_minus_1_and_h_minus_1():
    flat = np.full((6, 8), 0.5)
    boxes = threshold_boxes(flat, np.arange(0, 1, 0.25), multi_contour=True)
    assert [b.tolist() for b in boxes] == [[[0, 0, 7, 5]]] * 4


def test_without_clipping_a_constant_map_gives_w_and_h():
    flat = np.full((6, 8), 0.5)
    boxes = threshold_boxes(flat, np.arange(0, 1, 0.25), multi_contour=False, clip_to_image=False)
    assert [b.tolist() for b in boxes] == [[[0, 0, 8, 6]]] * 4


def test_clipping_only_changes_boxes_that_touch_the_right_or_bottom_edge(square_blob):
    edge = np.zeros((10, 10))
    edge[5:, 7:] = 1.0
    (clipped,) = threshold_boxes(edge, HALF, multi_contour=True, clip_to_image=True)
    (unclipped,) = threshold_boxes(edge, HALF, multi_contour=True, clip_to_image=False)
    (inner,) = threshold_boxes(square_blob, HALF, multi_contour=True, clip_to_image=False)
    assert clipped.tolist() == [[7, 5, 9, 9]]
    assert unclipped.tolist() == [[7, 5, 10, 10]]
    assert inner.tolist() == [[3, 2, 7, 6]]


def test_an_all_zero_map_gives_the_box_0_0_0_0_at_every_threshold():
    boxes = threshold_boxes(np.zeros((5, 7)), np.arange(0, 1, 0.2), multi_contour=True)
    assert [b.tolist() for b in boxes] == [[[0, 0, 0, 0]]] * 5


def test_an_all_zero_map_scores_its_box_0_0_0_0_against_the_gt():
    thresholds = np.array([0.0, 0.5])
    # (0,0,0,0) is one pixel: IoU 1 with the same box, 1/16 with (0,0,3,3).
    same = best_iou_per_threshold(np.zeros((5, 5)), np.zeros((1, 4)), thresholds, True)
    larger = best_iou_per_threshold(np.zeros((5, 5)), np.array([[0, 0, 3, 3]]), thresholds, True)
    assert same.tolist() == [1.0, 1.0]
    assert larger.tolist() == [1 / 16, 1 / 16]


def test_a_zero_area_gt_box_counts_as_one_pixel():
    score_map = np.zeros((5, 5))
    score_map[2, 2] = 1.0
    # Predicted (2,2,3,3) has area 4; gt (2,2,2,2) has area 1 and lies inside: IoU 1/4.
    best = best_iou_per_threshold(score_map, np.array([[2, 2, 2, 2]]), HALF, multi_contour=True)
    assert best.tolist() == [0.25]


def test_the_best_iou_is_taken_over_all_gt_boxes(square_blob):
    gt = np.array([[0, 0, 1, 1], [3, 2, 6, 5]])
    # Predicted (3,2,7,6), area 25, contains (3,2,6,5), area 16: IoU 16/25; the other gives 0.
    best = best_iou_per_threshold(square_blob, gt, HALF, multi_contour=False)
    assert best.tolist() == [16 / 25]


def test_iou_uses_the_plus_one_pixel_convention():
    # Areas 10 x 10 = 100 each, intersection 5 x 5 = 25: 25 / (100 + 100 - 25) = 1/7.
    iou = box_iou(np.array([[0, 0, 9, 9]]), np.array([[5, 5, 14, 14]]))
    assert iou.tolist() == [[25 / 175]]


def test_iou_of_the_benchmarks_realistic_pair_is_8_over_27():
    iou = box_iou(np.array([[1, 2, 5, 6]]), np.array([[3, 1, 4, 5]]))
    assert iou[0, 0] == pytest.approx(8 / 27, abs=1e-12)


def test_iou_is_zero_where_the_denominator_is_not_positive():
    # (1,1,0,0) has area 0 * 0 = 0 and no intersection: 0/0, reported as 0.
    iou = box_iou(np.array([[1, 1, 0, 0]]), np.array([[1, 1, 0, 0], [0, 0, 0, 0]]))
    assert iou.tolist() == [[0.0, 0.0]]


def test_iou_of_disjoint_boxes_is_zero_and_the_shape_is_m_by_g():
    a = np.array([[0, 0, 1, 1], [5, 5, 6, 6], [0, 0, 6, 6]])
    b = np.array([[5, 5, 6, 6], [0, 0, 1, 1]])
    iou = box_iou(a, b)
    assert iou.shape == (3, 2)
    assert iou.tolist() == [[0.0, 1.0], [1.0, 0.0], [4 / 49, 4 / 49]]


def _straightforward_best_ious(
    score_map: np.ndarray, gt: np.ndarray, thresholds: np.ndarray, multi: bool, clip: bool
) -> np.ndarray:
    """One threshold at a time with cv2.threshold and cv2.boundingRect, as the benchmark does."""
    height, width = score_map.shape
    image = (score_map * 255).astype(np.uint8)
    best = []
    for tau in thresholds:
        _, binary = cv2.threshold(image, int(tau * image.max()), 255, cv2.THRESH_BINARY)
        contours, _ = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            boxes = [[0, 0, 0, 0]]
        else:
            if not multi:
                contours = [max(contours, key=cv2.contourArea)]
            boxes = []
            for contour in contours:
                x, y, w, h = cv2.boundingRect(contour)
                x1, y1 = (min(x + w, width - 1), min(y + h, height - 1)) if clip else (x + w, y + h)
                boxes.append([x, y, x1, y1])
        best.append(box_iou(np.array(boxes), gt).max())
    return np.array(best)


@pytest.mark.parametrize("multi", [True, False])
@pytest.mark.parametrize("clip", [True, False])
def test_vectorised_best_ious_equal_the_straightforward_loop_on_random_smooth_maps(multi, clip):
    rng = np.random.default_rng(2023)
    thresholds = np.arange(0, 1, 0.01)
    for _ in range(20):
        noise = cv2.GaussianBlur(rng.random((64, 80)), (0, 0), rng.uniform(1.0, 6.0))
        score_map = (noise - noise.min()) / (noise.max() - noise.min())
        x0, y0 = rng.integers(0, 40, size=2)
        gt = np.array([[x0, y0, x0 + rng.integers(0, 39), y0 + rng.integers(0, 23)]])
        expected = _straightforward_best_ious(score_map, gt, thresholds, multi, clip)
        got = best_iou_per_threshold(score_map, gt, thresholds, multi, clip)
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("multi", [True, False])
@pytest.mark.parametrize("clip", [True, False])
def test_one_tracing_on_the_full_grid_serves_every_mode_and_a_sub_grid(multi, clip):
    rng = np.random.default_rng(5)
    noise = cv2.GaussianBlur(rng.random((48, 56)), (0, 0), 3.0)
    score_map = (noise - noise.min()) / (noise.max() - noise.min())
    grid = np.arange(0, 1, 0.01)
    gt = np.array([[5, 8, 30, 40], [20, 2, 50, 20]])
    traced = trace_map(score_map, grid).restricted(grid[1:])
    expected = best_iou_per_threshold(score_map, gt, grid[1:], multi, clip)
    np.testing.assert_array_equal(traced_best_ious(traced, gt, multi, clip), expected)


def test_a_tracing_refuses_thresholds_it_did_not_trace():
    traced = trace_map(np.eye(8), np.arange(0, 1, 0.1))
    with pytest.raises(ValueError, match="outside the traced grid"):
        traced.restricted(np.array([0.05]))


def test_a_float32_map_gives_the_boxes_of_its_float64_values():
    rng = np.random.default_rng(7)
    score_map = cv2.GaussianBlur(rng.random((32, 32)).astype(np.float32), (0, 0), 2.0)
    score_map = (score_map - score_map.min()) / (score_map.max() - score_map.min())
    thresholds = np.arange(0, 1, 0.01)
    got = threshold_boxes(score_map, thresholds, multi_contour=True)
    expected = threshold_boxes(score_map.astype(np.float64), thresholds, multi_contour=True)
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))


def test_a_map_with_nan_is_rejected():
    score_map = np.zeros((4, 4))
    score_map[1, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        threshold_boxes(score_map, HALF, multi_contour=True)


def test_a_map_outside_0_1_is_rejected():
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        threshold_boxes(np.full((4, 4), 1.5), HALF, multi_contour=True)


def test_a_map_that_is_not_2d_is_rejected():
    with pytest.raises(InputError, match="2-D"):
        threshold_boxes(np.zeros((1, 4, 4)), HALF, multi_contour=True)


def test_no_gt_box_is_rejected(square_blob):
    with pytest.raises(InputError, match="at least one ground-truth box"):
        best_iou_per_threshold(square_blob, np.zeros((0, 4)), HALF, multi_contour=True)


def test_a_gt_box_with_x1_before_x0_is_rejected(square_blob):
    with pytest.raises(InputError, match=r"found \[5, 0, 4, 3\]"):
        best_iou_per_threshold(square_blob, np.array([[5, 0, 4, 3]]), HALF, multi_contour=True)


# ----------------------------------------------------------------------------- the boxes stage
# Predicted boxes for the user (docs/boxes.md): every region above the threshold and the
# minimum area, its score the mean activation over it, in the original image's pixels.


@pytest.fixture
def two_regions() -> np.ndarray:
    """8 x 8 activation: a strong 2 x 2 blob (0.9), a weak 2 x 3 blob (0.5), one weak cell."""
    activation = np.zeros((8, 8), dtype=np.float32)
    activation[1:3, 1:3] = 0.9
    activation[5:7, 4:7] = 0.5
    activation[0, 7] = 0.3
    return activation


def test_every_region_above_the_minimum_area_is_a_box_ranked_by_its_score(two_regions):
    # upsampled to 64 (align_corners: cell i at pixel 9 i): the weak cell keeps a few pixels
    regions = foreground_regions(two_regions, 64, threshold=0.3, min_area=0.005)
    assert len(regions.boxes) == 2
    strong, weak = regions.boxes.tolist()
    assert strong[0] <= 9 and strong[1] <= 9 and strong[2] >= 18 and strong[3] >= 18
    assert weak[0] <= 36 and weak[1] <= 45 and weak[2] >= 54 and weak[3] >= 54
    assert regions.scores[0] > regions.scores[1]


def test_a_box_score_is_the_mean_activation_over_its_region(two_regions):
    regions = foreground_regions(two_regions, 64, threshold=0.3, min_area=0.005)
    tensor = torch.from_numpy(two_regions)[None, None]
    upsampled = torch.nn.functional.interpolate(
        tensor, size=(64, 64), mode="bilinear", align_corners=True
    )[0, 0].numpy()
    for index, score in enumerate(regions.scores, start=1):
        assert score == pytest.approx(upsampled[regions.labels == index].mean(), abs=1e-6)


def test_the_activation_behind_the_scores_is_the_map_before_normalisation(two_regions):
    tensor = torch.from_numpy(two_regions)[None, None]
    upsampled = torch.nn.functional.interpolate(
        tensor, size=(64, 64), mode="bilinear", align_corners=True
    )[0, 0].numpy()
    rebuilt = activation_map(two_regions, score_map(two_regions, 64))
    np.testing.assert_allclose(rebuilt, upsampled, atol=1e-6)


def test_objectness_is_the_best_box_score_and_zero_without_a_box(two_regions):
    regions = foreground_regions(two_regions, 64, threshold=0.3, min_area=0.005)
    flat = foreground_regions(np.full((8, 8), 0.2, np.float32), 64, 0.3, 0.005)
    assert regions.objectness == regions.scores[0]
    assert (len(flat.boxes), flat.objectness) == (0, 0.0)


def test_otsus_threshold_separates_a_two_level_split():
    # 0.2 -> m = 51, 0.8 -> m = 204: every level 51..203 splits them equally well; the first.
    score_maps = [np.where(np.arange(100).reshape(10, 10) < 30, 0.8, 0.2) for _ in range(3)]
    tau = otsu_threshold(score_maps)
    assert int(tau * 255) == 51


def boxacc_table(protocol: str, peaks_at: float) -> pd.DataFrame:
    """A metrics BoxAcc table of 100 images whose `protocol` rows peak (mean over IoUs) at
    `peaks_at`."""
    rows = []
    for tau in (0.1, 0.2, 0.3, 0.4):
        for iou in (30, 50, 70):
            correct = round(90 - 100 * abs(tau - peaks_at) - iou / 10)
            rows.append(
                {
                    "protocol": protocol,
                    "iou": iou,
                    "threshold": tau,
                    "box_acc": float(correct),
                    "n_correct": correct,
                    "n_images": 100,
                }
            )
    return pd.DataFrame(rows)


def test_a_labelled_threshold_is_the_protocols_choice_in_the_metrics_table(tmp_path):
    table = pd.concat([boxacc_table("benchmark", 0.2), boxacc_table("authors", 0.4)])
    table.to_csv(tmp_path / "val.csv", index=False)
    maps = MapsFile(tmp_path / "maps.h5", [], np.zeros(0), np.zeros((0, 2, 2)), {})
    chosen = {
        protocol: box_threshold(
            {"rule": "labelled", "split": "val", "protocol": protocol, "interval": 0.01},
            maps,
            tmp_path / "val.csv",
        )["value"]
        for protocol in ("benchmark", "authors")
    }
    assert chosen == {"benchmark": 0.2, "authors": 0.4}


def test_a_labelled_threshold_is_the_exact_float_of_the_grid_not_the_tables_rounding(tmp_path):
    table = boxacc_table("benchmark", 0.3).replace({"threshold": {0.3: 0.35}})
    table.to_csv(tmp_path / "val.csv", index=False)
    maps = MapsFile(tmp_path / "maps.h5", [], np.zeros(0), np.zeros((0, 2, 2)), {})
    rule = {"rule": "labelled", "split": "val", "protocol": "benchmark", "interval": 0.01}
    value = box_threshold(rule, maps, tmp_path / "val.csv")["value"]
    assert value == np.arange(0, 1, 0.01)[35] != 0.35


def test_an_authors_labelled_threshold_is_the_exact_float_of_the_authors_grid(tmp_path):
    boxacc_table("authors", 0.1).to_csv(tmp_path / "val.csv", index=False)
    maps = MapsFile(tmp_path / "maps.h5", [], np.zeros(0), np.zeros((0, 2, 2)), {})
    rule = {"rule": "labelled", "split": "val", "protocol": "authors", "interval": 0.01}
    value = box_threshold(rule, maps, tmp_path / "val.csv")["value"]
    assert value == AUTHORS_THRESHOLDS[9] != 0.1


def test_a_tie_between_thresholds_goes_to_the_lowest():
    table = boxacc_table("benchmark", 0.2)
    table.loc[table["threshold"] == 0.3, "box_acc"] = table.loc[
        table["threshold"] == 0.2, "box_acc"
    ].values
    assert chosen_threshold(table, "benchmark") == 0.2


#: Images with one saturated rectangle (x0, y0, x1, y1) on grey, at several sizes and shapes.
RECTANGLES = {
    "wide.png": ((200, 120), (60, 30, 139, 89)),
    "tall.png": ((90, 160), (20, 50, 69, 119)),
    "square.png": ((150, 150), (40, 40, 99, 109)),
}


@pytest.fixture(scope="module")
def rectangles(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rectangles")
    for name, ((width, height), (x0, y0, x1, y1)) in RECTANGLES.items():
        pixels = np.full((height, width, 3), 128, dtype=np.uint8)
        pixels[y0 : y1 + 1, x0 : x1 + 1] = (230, 30, 30)
        Image.fromarray(pixels).save(folder / name)
    return folder


@pytest.mark.parametrize("crop_size", [None, 112], ids=["no-crop", "crop"])
def test_predicted_boxes_in_original_pixels_equal_the_objects_within_a_feature_cell(
    rectangles, tmp_path, crop_size
):
    localizer = Localizer(
        {"arch": "fixture-colourfulness", "weights": "none"},
        image_size=128,
        crop_size=crop_size,
        output_stride=16,
        threshold=0.5,
        device="cpu",
        workdir=tmp_path,
    )
    prediction = localizer.fit(rectangles).predict(rectangles)
    for name, ((width, height), truth) in RECTANGLES.items():
        top = prediction.boxes[prediction.boxes["image_id"] == name].iloc[0]
        cell = np.array([width, height, width, height]) * 16 / 128  # a cell in original pixels
        found = top[["x0", "y0", "x1", "y1"]].to_numpy(dtype=float)
        assert (np.abs(found - truth) <= cell).all(), (name, found.tolist(), truth)


# ----------------------------------------------------------------------------- through the workflow


def box_files(workdir: Path, dataset: str, split: str, variant: str = "rps") -> dict[str, Path]:
    names = {"dataset": dataset, "backbone": "fixture", "variant": variant, "split": split}
    return {
        "boxes": workdir / paths.BOXES.format(**names),
        "images": workdir / paths.BOXES_IMAGES.format(**names),
        "coco": workdir / paths.BOXES_COCO.format(**names),
        "table": workdir / paths.METRICS_TABLE.format(**names),
    }


@pytest.mark.workflow
def test_the_coco_file_loads_in_pycocotools_and_its_ap50_agrees_with_box_acc_at_iou_50(
    report_run,
):
    files = box_files(report_run, "tiny", "test")
    truth = COCO(str(files["coco"]))
    evaluation = COCOeval(truth, truth.loadRes(truth.dataset["detections"]), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    ap50 = 100 * evaluation.stats[1]
    threshold = truth.dataset["info"]["threshold"]["value"]
    table = pd.read_csv(files["table"])
    rows = table[(table.protocol == "benchmark") & (table.iou == 50)]
    box_acc = rows[np.isclose(rows.threshold, threshold)]["box_acc"].item()
    assert len(truth.getImgIds()) == 6 and len(truth.getAnnIds()) >= 6
    assert abs(ap50 - box_acc) <= 100 / 6  # one image of six


def truth_of(photos: Path) -> pd.DataFrame:
    """Per photo of `folder_run`, whether it shows an object (from its `dataset.csv`)."""
    table = pd.read_csv(photos / "dataset.csv")
    return table.groupby("image_path")["x0"].apply(lambda boxes: boxes.notna().any())


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting one half (Mann-Whitney)."""
    above = (positive[:, None] > negative[None, :]).mean()
    return float(above + 0.5 * (positive[:, None] == negative[None, :]).mean())


@pytest.mark.workflow
def test_a_folder_without_metadata_is_localized_end_to_end_through_snakemake(folder_run):
    files = box_files(folder_run, "photos", "everything")
    boxes, images = pd.read_csv(files["boxes"]), pd.read_csv(files["images"])
    coco = COCO(str(files["coco"]))
    assert len(images) == sum(FOLDER_SPLITS.values())  # w* and boxes from the same photos
    assert set(boxes["image_id"]) <= set(images["image_id"])
    sized = boxes.merge(images, on="image_id")
    assert ((sized.x1 < sized.width) & (sized.y1 < sized.height)).all()  # original pixels
    assert len(coco.getImgIds()) == len(images) and coco.getAnnIds() == []
    for figure in ("predictions", "objectness", "representer_values"):
        assert (folder_run / paths.figure(figure).format(dataset="photos")).stat().st_size > 0


@pytest.mark.workflow
def test_a_split_without_ground_truth_has_a_summary_row_saying_so_and_no_metrics(folder_run):
    summary = pd.read_csv(folder_run / paths.SUMMARY.format(dataset="photos"))
    assert summary[["split", "ground_truth", "n_localized"]].values.tolist() == [
        ["everything", "none", sum(FOLDER_SPLITS.values())]
    ]
    assert "max_box_acc_v2" not in summary.columns
    assert not box_files(folder_run, "photos", "everything")["table"].exists()
    assert not (folder_run / paths.figure("box_accuracy").format(dataset="photos")).exists()


@pytest.mark.workflow
def test_a_backbone_without_weights_runs_through_the_workflow(folder_run):
    for dataset in ("photos", "partial"):
        summary = pd.read_csv(folder_run / paths.SUMMARY.format(dataset=dataset))
        assert summary[["backbone", "weights"]].values.tolist() == [["fixture", "none"]]


@pytest.mark.workflow
def test_empty_images_score_lower_objectness_than_images_with_an_object(folder_run):
    images = pd.read_csv(box_files(folder_run, "photos", "everything")["images"])
    has_object = truth_of(folder_run / "photos").loc[images["image_id"]].to_numpy()
    objectness = images["objectness"].to_numpy()
    assert (~has_object).sum() == 5  # a quarter of 12 and of 8
    assert roc_auc(objectness[has_object], objectness[~has_object]) == 1.0


@pytest.mark.workflow
def test_images_without_boxes_in_an_evaluated_split_are_listed_and_left_out_of_the_metrics(
    folder_run,
):
    skipped = pd.read_csv(folder_run / paths.SKIPPED.format(dataset="partial"))
    summary = pd.read_csv(folder_run / paths.SUMMARY.format(dataset="partial")).iloc[0]
    images = pd.read_csv(box_files(folder_run, "partial", "photos")["images"])
    empty = ["photos/0003.jpg", "photos/0007.jpg"]
    assert skipped[skipped.split == "photos"]["image_id"].tolist() == empty
    assert skipped["reason"].str.contains("no ground-truth box").all()
    assert (summary["n_localized"], summary["n_images"], summary["n_skipped"]) == (8, 6, 2)
    assert set(empty) <= set(images["image_id"])  # still localized
