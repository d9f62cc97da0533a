"""Activation maps and baselines (METHOD.md section 1)."""

from pathlib import Path

import numpy as np
import pytest
from conftest import peak_traced_bytes

from rpsloc.maps import activation_maps, caam_maps, centre_gaussian_maps, variant_maps
from rpsloc.readers import GLOBAL, IMAGES_AT_A_TIME, EvalShard, PredictorTable
from rpsloc.variants import parse_variant


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


def _shard_of(images: int) -> EvalShard:
    """An evaluation shard of `images` random 8 x 8 x 64 float16 unit features."""
    unit = np.random.default_rng(0).uniform(0, 1, size=(images, 8, 8, 64)).astype(np.float16)
    return EvalShard(
        image_ids=[str(i) for i in range(images)],
        labels=np.zeros(images, dtype=np.int64),
        unit_features=unit,
        norms=np.ones((images, 8, 8), dtype=np.float32),
        boxes=[np.zeros((0, 4))] * images,
        crop_size=64,
        authors_boxes=[np.zeros((0, 4))] * images,
    )


@pytest.mark.parametrize("variant", ["rps", "caam", "ddt", "lost"])
def test_a_maps_job_copies_a_few_images_of_a_shard_at_a_time_never_the_whole_shard(variant):
    """A 1,000-image ResNet-50 shard is 800 MB of float16: a float32 copy of it all would
    double a maps job's memory, a float64 copy (the peers on a CNN) quintuple it."""
    shard = _shard_of(8 * IMAGES_AT_A_TIME)
    predictors = PredictorTable(np.array([GLOBAL]), np.ones((1, 64)), np.ones(1), Path("w.h5"))
    ddt = (np.zeros(64), np.ones(64) / 8)
    whole_shard_float32 = shard.unit_features.size * 4
    peak = peak_traced_bytes(
        lambda: variant_maps(parse_variant(variant), shard, predictors, ddt=ddt)
    )
    assert peak < whole_shard_float32 / 2
