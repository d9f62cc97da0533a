"""Activation maps become score maps: normalised per image, upsampled to the crop
(METHOD.md sections 1 and 3)."""

import numpy as np
import pytest

from rpsloc.scoremaps import normalize_map, score_map, upsample_map


def test_normalize_maps_the_range_onto_zero_to_one():
    normalised = normalize_map(np.array([[2.0, 4.0], [3.0, 6.0]]))
    assert np.allclose(normalised, [[0.0, 0.5], [0.25, 1.0]])


@pytest.mark.parametrize("value", [0.0, 3.5])
def test_a_constant_map_normalises_to_zeros_not_nan(value):
    normalised = normalize_map(np.full((4, 4), value))
    assert np.array_equal(normalised, np.zeros((4, 4), dtype=np.float32))


def test_a_map_with_nan_is_refused():
    with pytest.raises(ValueError, match="non-finite"):
        normalize_map(np.array([[0.0, np.nan]]))


def test_upsampling_aligns_corners():
    small = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    large = upsample_map(small, 5)
    assert large.shape == (5, 5)
    assert large[0, 0] == 0.0 and large[0, -1] == 1.0 and large[-1, 0] == 1.0
    assert large[2, 2] == pytest.approx(0.5)
    assert large[0, 2] == pytest.approx(0.5)


def test_score_map_stays_in_the_unit_interval():
    scores = score_map(np.random.default_rng(2).normal(size=(7, 7)), 224)
    assert scores.shape == (224, 224)
    assert scores.min() >= 0.0 and scores.max() <= 1.0
