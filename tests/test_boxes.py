"""Score map -> boxes and IoU, against hand-computed values (METHOD.md section 3).

A blob covering columns c0..c1 and rows r0..r1 has boundingRect (c0, r0, c1 - c0 + 1, r1 - r0 + 1),
so its box is (c0, r0, c1 + 1, r1 + 1): one past the last pixel, as in the benchmark.
"""

import cv2
import numpy as np
import pytest

from rpsloc.boxes import (
    best_iou_per_threshold,
    box_iou,
    threshold_boxes,
    trace_map,
    traced_best_ious,
)
from rpsloc.errors import InputError

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
