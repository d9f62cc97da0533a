"""Activation maps, baselines and their conversion to score maps (METHOD.md section 1)."""

import numpy as np
import pytest

from rpsloc.maps import (
    activation_maps,
    caam_maps,
    centre_gaussian_maps,
    normalize_map,
    score_map,
    upsample_map,
)


def test_activation_map_is_the_rectified_projection_on_the_predictor():
    unit = np.zeros((1, 1, 3, 2), dtype=np.float16)
    unit[0, 0, 0] = [1, 0]
    unit[0, 0, 1] = [0, 1]
    unit[0, 0, 2] = [0.6, 0.8]
    w = np.array([0.8, -0.6])
    assert np.allclose(activation_maps(unit, w)[0, 0], [0.8, 0.0, 0.0], atol=1e-3)


def test_caam_sums_the_raw_features_channelwise():
    raw = np.random.default_rng(1).uniform(0, 2, size=(2, 3, 3, 5))
    norms = np.linalg.norm(raw, axis=-1)
    unit = raw / norms[..., None]
    assert np.allclose(caam_maps(unit, norms), raw.sum(axis=-1), rtol=1e-5)


def test_centre_gaussian_peaks_at_the_centre_and_is_symmetric():
    maps = centre_gaussian_maps(2, 5, 7)
    assert maps.shape == (2, 5, 7)
    assert np.unravel_index(maps[0].argmax(), (5, 7)) == (2, 3)
    assert np.allclose(maps[0], maps[0][::-1, ::-1])


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
