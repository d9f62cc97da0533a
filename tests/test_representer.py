"""The foreground predictor and its representer decomposition (METHOD.md section 1)."""

import h5py
import numpy as np
import pytest
import torch

from rpsloc.features import image_statistics
from rpsloc.io import atomic_h5, write_strings
from rpsloc.representer import (
    PredictorSums,
    compute_representers,
    foreground_predictor,
    representer_values,
    representer_vectors,
    write_representer,
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
    alphas = representer_values(statistics.position_norms, predictor.norm_ratio, 5)
    rebuilt = np.einsum("nhw,nchw->c", alphas, raw_features)
    assert np.allclose(rebuilt, predictor.unnormalised, atol=1e-12)
    assert np.allclose(rebuilt / np.linalg.norm(rebuilt), predictor.w, atol=1e-6)


def test_representer_vectors_sum_to_the_unnormalised_predictor(statistics):
    predictor = foreground_predictor(statistics.mean_features, statistics.mean_unit_features)
    vectors = representer_vectors(
        statistics.mean_features, statistics.mean_unit_features, predictor.norm_ratio, 5
    )
    assert vectors.shape == (5, 6)
    assert np.allclose(vectors.sum(axis=0), predictor.unnormalised, atol=1e-12)


def test_representer_vector_of_an_image_sums_its_representer_points(raw_features, statistics):
    predictor = foreground_predictor(statistics.mean_features, statistics.mean_unit_features)
    alphas = representer_values(statistics.position_norms, predictor.norm_ratio, 5)
    vectors = representer_vectors(
        statistics.mean_features, statistics.mean_unit_features, predictor.norm_ratio, 5
    )
    assert np.allclose(np.einsum("hw,chw->c", alphas[2], raw_features[2]), vectors[2], atol=1e-12)


def test_representer_values_are_positive_exactly_where_the_norm_exceeds_c(statistics):
    c = 1.5
    alphas = representer_values(statistics.position_norms, c, 5)
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


def write_training_shards(folder, raw: np.ndarray, labels: np.ndarray, sizes: list[int]):
    """Training shards as the features stage writes them, `sizes` images each, in order."""
    statistics = image_statistics(torch.from_numpy(raw))
    paths, start = [], 0
    for index, size in enumerate(sizes):
        stop = start + size
        path = folder / f"shard-{index}.h5"
        with atomic_h5(path, {"role": "train", "dataset": "toy"}) as handle:
            write_strings(handle, "image_ids", [f"img-{i}" for i in range(start, stop)])
            handle.create_dataset("labels", data=labels[start:stop])
            handle.create_dataset("mean_features", data=statistics.mean_features[start:stop])
            handle.create_dataset(
                "mean_unit_features", data=statistics.mean_unit_features[start:stop]
            )
            handle.create_dataset("position_norms", data=statistics.position_norms[start:stop])
        paths.append(path)
        start = stop
    return paths


@pytest.fixture
def training_split():
    generator = np.random.default_rng(3)
    raw = np.abs(generator.normal(size=(24, 6, 3, 4))) * generator.uniform(0.2, 3, (24, 1, 3, 4))
    return raw, np.repeat([0, 1, 2], 8)


@pytest.mark.parametrize("classwise", [False, True])
def test_the_representer_file_is_bit_identical_however_the_training_split_is_sharded(
    tmp_path, training_split, classwise
):
    raw, labels = training_split
    files = []
    for name, sizes in (("one", [24]), ("three", [7, 9, 8])):
        (tmp_path / name).mkdir()
        shards = write_training_shards(tmp_path / name, raw, labels, sizes)
        files.append(tmp_path / name / "representer.h5")
        write_representer(shards, files[-1], classwise=classwise, sampling_ratio=0.5, seed=1)
    with h5py.File(files[0]) as one, h5py.File(files[1]) as three:
        assert sorted(one) == sorted(three)
        for name in one:
            np.testing.assert_array_equal(one[name][()], three[name][()], err_msg=name)


def test_the_streamed_representer_file_holds_the_in_memory_representers(tmp_path, training_split):
    raw, labels = training_split
    shards = write_training_shards(tmp_path, raw, labels, [10, 14])
    write_representer(shards, tmp_path / "representer.h5", classwise=True, sampling_ratio=0.5)
    expected = compute_representers(
        image_statistics(torch.from_numpy(raw)), labels, classwise=True, sampling_ratio=0.5
    )
    with h5py.File(tmp_path / "representer.h5") as handle:
        assert handle["image_ids"].asstr()[()].tolist() == [
            f"img-{i}" for i in expected.image_indices
        ]
        assert np.allclose(handle["representer_vectors"][()], expected.vectors, rtol=1e-6)
        assert np.allclose(handle["image_values"][()], expected.image_values, rtol=1e-12)
        assert np.allclose(handle["representer_values"][()], expected.position_values, rtol=1e-6)
        for row, label in enumerate(handle["predictor_labels"][()]):
            predictor = expected.predictors[int(label)]
            assert np.array_equal(handle["foreground_predictors"][row], predictor.w)


def test_the_sums_behind_the_predictor_do_not_depend_on_how_images_are_chunked(statistics):
    whole = PredictorSums(1, 6)
    whole.add(np.zeros(5, dtype=np.int64), statistics.mean_features, statistics.mean_unit_features)
    chunked = PredictorSums(1, 6)
    for rows in (slice(0, 2), slice(2, 3), slice(3, 5)):
        count = rows.stop - rows.start
        chunked.add(
            np.zeros(count, dtype=np.int64),
            statistics.mean_features[rows],
            statistics.mean_unit_features[rows],
        )
    assert np.array_equal(whole.feature_sums, chunked.feature_sums)
    assert np.array_equal(whole.unit_feature_sums, chunked.unit_feature_sums)


def write_predictions(path, image_ids: list[str], top1: np.ndarray) -> None:
    """A classify-stage file whose top-1 class of each image is `top1`."""
    top5 = np.stack([top1, *(np.full_like(top1, -1) for _ in range(4))], axis=1)
    with atomic_h5(path, {"stage": "classify"}) as handle:
        write_strings(handle, "image_ids", image_ids)
        handle.create_dataset("top5", data=top5.astype(np.int64))


def test_classwise_predictors_from_predicted_classes_ignore_the_labels(tmp_path, training_split):
    raw, labels = training_split
    shards = write_training_shards(tmp_path, raw, labels, [10, 14])
    predicted = (labels + 1) % 3
    write_predictions(tmp_path / "train.h5", [f"img-{i}" for i in range(len(raw))], predicted)
    write_representer(
        shards, tmp_path / "pred.h5", classwise=True, predictions=tmp_path / "train.h5"
    )
    expected = compute_representers(
        image_statistics(torch.from_numpy(raw)), predicted, classwise=True
    )
    with h5py.File(tmp_path / "pred.h5") as handle:
        assert handle.attrs["classes"] == "classifier top-1"
        assert np.array_equal(handle["labels"][()], predicted)
        for row, label in enumerate(handle["predictor_labels"][()]):
            assert np.array_equal(
                handle["foreground_predictors"][row], expected.predictors[int(label)].w
            )


def test_predicted_classes_only_serve_classwise_predictors(tmp_path, training_split):
    raw, labels = training_split
    shards = write_training_shards(tmp_path, raw, labels, [24])
    with pytest.raises(ValueError, match="only serve class-wise predictors"):
        write_representer(shards, tmp_path / "x.h5", predictions=tmp_path / "train.h5")
