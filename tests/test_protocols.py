"""The protocols every number is labelled with (METHOD.md section 3): the authors' threshold grid
as their code builds it, their handling of a map without contours, and the benchmark's."""

import numpy as np
import pytest

from rpsloc.metrics.accumulators import BoxAccuracy
from rpsloc.protocols import AUTHORS_THRESHOLDS, PROTOCOLS, thresholds

AUTHORS = next(protocol for protocol in PROTOCOLS if protocol.name == "authors")
BENCHMARK = next(protocol for protocol in PROTOCOLS if protocol.name == "benchmark")


def levels_map(levels: np.ndarray) -> np.ndarray:
    """A score map whose uint8 image (s * 255 truncated) is exactly `levels`."""
    return (levels.astype(np.float64) + 0.5) / 255


def test_the_authors_grid_is_np_arange_from_0_01_as_their_code_builds_it():
    np.testing.assert_array_equal(AUTHORS_THRESHOLDS, np.arange(0.01, 1, 0.01))
    assert (AUTHORS_THRESHOLDS != thresholds(0.01)[1:]).sum() == 15


def test_the_authors_protocol_thresholds_on_their_own_floats():
    assert AUTHORS.thresholds(0.001) is AUTHORS_THRESHOLDS
    np.testing.assert_array_equal(BENCHMARK.thresholds(0.001), np.arange(0, 1, 0.001))


def test_where_the_grids_differ_in_the_last_bit_the_authors_grid_moves_the_level():
    """At peak 100, int(0.07 * 100) is 7 on the benchmark's floats but 6 on the authors'
    (0.06999999999999999), so pixels at level 7 are foreground for the authors only."""
    levels = np.zeros((12, 12), dtype=np.uint8)
    levels[0:2, 0:2] = 100  # the peak, a small blob
    levels[5:12, 4:12] = 7  # a large region just at the level where the grids disagree
    scores = levels_map(levels)
    gt = np.array([[4, 5, 12, 12]])  # the authors take x + w, y + h as the far corner
    results = {}
    for name, tau in (("authors", AUTHORS_THRESHOLDS[6]), ("benchmark", thresholds(0.01)[7])):
        accuracy = BoxAccuracy(np.array([tau]), (50,), multi_contour=False, clip_to_image=False)
        results[name] = accuracy.add(scores, gt)[0]
    assert results["authors"] == pytest.approx(1.0)
    assert results["benchmark"] == 0.0


def test_a_map_without_contours_is_a_miss_for_the_authors_and_the_zero_box_for_the_benchmark():
    scores = np.zeros((8, 8))
    corner = np.array([[0, 0, 0, 0]])
    for protocol, expected in ((BENCHMARK, 1.0), (AUTHORS, 0.0)):
        accuracy = BoxAccuracy(
            np.array([0.5]),
            (50,),
            multi_contour=protocol.multi_contour,
            clip_to_image=protocol.clip_to_image,
            empty_is_miss=protocol.empty_is_miss,
        )
        assert accuracy.add(scores, corner)[0] == expected, protocol.name


def test_the_authors_protocol_keeps_the_largest_contour_unclipped():
    assert (AUTHORS.multi_contour, AUTHORS.clip_to_image) == (False, False)
    assert (BENCHMARK.multi_contour, BENCHMARK.clip_to_image) == (True, True)
