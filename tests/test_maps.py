"""Activation maps and baselines (METHOD.md section 1)."""

import numpy as np

from rpsloc.maps import activation_maps, caam_maps, centre_gaussian_maps


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
