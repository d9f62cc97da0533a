"""The foreground predictor and its representer decomposition (METHOD.md section 1)."""

import numpy as np
import pytest
import torch

from rpsloc.features import image_statistics
from rpsloc.representer import (
    foreground_predictor,
    representer_values,
    representer_vectors,
)


@pytest.fixture
def raw_features() -> np.ndarray:
    """Five training images, 3x4 positions, 6 channels of non-negative (post-ReLU) features."""
    generator = np.random.default_rng(0)
    return np.abs(generator.normal(size=(5, 6, 3, 4))) * generator.uniform(0.2, 3, (5, 1, 3, 4))


@pytest.fixture
def statistics(raw_features):
    return image_statistics(torch.from_numpy(raw_features))


def test_foreground_predictor_follows_the_closed_form(raw_features, statistics):
    flat = raw_features.transpose(0, 2, 3, 1).reshape(5, 12, 6)
    v = flat.mean(axis=(0, 1))
    u = (flat / np.linalg.norm(flat, axis=2, keepdims=True)).mean(axis=(0, 1))
    c = np.linalg.norm(v) / np.linalg.norm(u)
    expected = (v - c * u) / np.linalg.norm(v - c * u)
    predictor = foreground_predictor(statistics.mean_features, statistics.mean_unit_features)
    assert predictor.norm_ratio == pytest.approx(c, rel=1e-12)
    assert np.allclose(predictor.w, expected, atol=1e-12)


def test_foreground_predictor_is_the_sum_of_representer_points(raw_features, statistics):
    predictor = foreground_predictor(statistics.mean_features, statistics.mean_unit_features)
    alphas = representer_values(statistics.position_norms, predictor.norm_ratio)
    rebuilt = np.einsum("nhw,nchw->c", alphas, raw_features)
    assert np.allclose(rebuilt, predictor.unnormalised, atol=1e-12)
    assert np.allclose(rebuilt / np.linalg.norm(rebuilt), predictor.w, atol=1e-6)


def test_representer_vectors_sum_to_the_unnormalised_predictor(statistics):
    predictor = foreground_predictor(statistics.mean_features, statistics.mean_unit_features)
    vectors = representer_vectors(
        statistics.mean_features, statistics.mean_unit_features, predictor.norm_ratio
    )
    assert vectors.shape == (5, 6)
    assert np.allclose(vectors.sum(axis=0), predictor.unnormalised, atol=1e-12)


def test_representer_vector_of_an_image_sums_its_representer_points(raw_features, statistics):
    predictor = foreground_predictor(statistics.mean_features, statistics.mean_unit_features)
    alphas = representer_values(statistics.position_norms, predictor.norm_ratio)
    vectors = representer_vectors(
        statistics.mean_features, statistics.mean_unit_features, predictor.norm_ratio
    )
    assert np.allclose(np.einsum("hw,chw->c", alphas[2], raw_features[2]), vectors[2], atol=1e-12)


def test_representer_values_are_positive_exactly_where_the_norm_exceeds_c(statistics):
    c = 1.5
    alphas = representer_values(statistics.position_norms, c)
    assert np.array_equal(alphas > 0, statistics.position_norms > c)


def test_high_norm_features_define_the_foreground_direction():
    foreground, background = np.array([8.0, 0.0]), np.array([0.0, 1.0])
    features = np.stack([foreground, background, background, background])[None].transpose(0, 2, 1)
    statistics = image_statistics(torch.from_numpy(features[..., None]))
    predictor = foreground_predictor(statistics.mean_features, statistics.mean_unit_features)
    assert predictor.w @ foreground > 0
    assert predictor.w @ background < 0


def test_features_of_equal_norm_have_no_foreground_direction():
    features = np.ones((2, 3, 2, 2))
    statistics = image_statistics(torch.from_numpy(features))
    with pytest.raises(ValueError, match="zero"):
        foreground_predictor(statistics.mean_features, statistics.mean_unit_features)


def test_non_finite_training_features_are_refused_with_the_image_index(statistics):
    means = statistics.mean_features.copy()
    means[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"\[3\]"):
        foreground_predictor(means, statistics.mean_unit_features)


def test_zero_feature_vectors_are_guarded_not_divided_by_zero():
    features = np.zeros((1, 4, 2, 2))
    features[0, :, 0, 0] = 1.0
    statistics = image_statistics(torch.from_numpy(features))
    assert np.isfinite(statistics.mean_unit_features).all()
    assert np.allclose(statistics.mean_unit_features, 0.125)
