"""Every variant of the paper against a brute-force computation (METHOD.md section 1)."""

import re

import numpy as np
import pytest
import torch

from rpsloc.features import image_statistics
from rpsloc.io import atomic_h5, write_strings
from rpsloc.maps import caam_maps, ddt_direction, ddt_maps, variant_maps
from rpsloc.readers import GLOBAL, EvalShard, PredictorTable
from rpsloc.representer import (
    compute_representers,
    foreground_predictor,
    select_training_images,
)
from rpsloc.variants import WILDCARD, parse_selection, parse_variant


def brute_force_predictor(raw: np.ndarray) -> np.ndarray:
    """w* straight from METHOD.md: raw features (N, C, h, w) -> unit vector (C,)."""
    flat = raw.transpose(0, 2, 3, 1).reshape(-1, raw.shape[1])
    v = flat.mean(axis=0)
    u = (flat / np.linalg.norm(flat, axis=1, keepdims=True)).mean(axis=0)
    w = v - np.linalg.norm(v) / np.linalg.norm(u) * u
    return w / np.linalg.norm(w)


@pytest.fixture
def training():
    generator = np.random.default_rng(7)
    raw = np.abs(generator.normal(size=(24, 5, 3, 3))) * generator.uniform(0.3, 3, (24, 1, 3, 3))
    labels = np.repeat([0, 1, 2], 8)
    return raw, labels, image_statistics(torch.from_numpy(raw))


def test_classwise_predictors_equal_brute_force_per_class(training):
    raw, labels, statistics = training
    representers = compute_representers(statistics, labels, classwise=True)
    assert sorted(representers.predictors) == [0, 1, 2]
    for label in (0, 1, 2):
        expected = brute_force_predictor(raw[labels == label])
        assert np.allclose(representers.predictors[label].w, expected, atol=1e-10)


def test_global_predictor_equals_brute_force(training):
    raw, labels, statistics = training
    representers = compute_representers(statistics, labels)
    assert list(representers.predictors) == [GLOBAL]
    assert np.allclose(representers.predictors[GLOBAL].w, brute_force_predictor(raw), atol=1e-10)


def test_sampling_keeps_floor_n_r_images_with_a_fixed_seed():
    labels = np.zeros(103, dtype=int)
    first = select_training_images(labels, 0.25, seed=3, classwise=False)
    again = select_training_images(labels, 0.25, seed=3, classwise=False)
    other = select_training_images(labels, 0.25, seed=4, classwise=False)
    assert len(first) == 25
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert np.array_equal(first, np.sort(first)) and len(set(first)) == 25


def test_classwise_sampling_takes_a_quota_of_floor_n_r_over_k_per_class():
    labels = np.array([0] * 40 + [1] * 40 + [2] * 20)
    chosen = select_training_images(labels, 0.3, seed=0, classwise=True)
    counts = np.bincount(labels[chosen])
    assert counts.tolist() == [10, 10, 10]


def test_classwise_sampling_takes_all_of_a_class_smaller_than_its_quota():
    labels = np.array([0] * 95 + [1] * 5)
    chosen = select_training_images(labels, 0.2, seed=0, classwise=True)
    assert np.bincount(labels[chosen]).tolist() == [10, 5]


def test_a_sampled_predictor_equals_brute_force_on_the_sampled_images(training):
    raw, labels, statistics = training
    representers = compute_representers(statistics, labels, sampling_ratio=0.5, seed=1)
    kept = select_training_images(labels, 0.5, seed=1, classwise=False)
    assert np.array_equal(representers.image_indices, kept)
    assert np.allclose(
        representers.predictors[GLOBAL].w, brute_force_predictor(raw[kept]), atol=1e-10
    )


def test_a_sampling_ratio_that_keeps_no_image_is_an_error():
    with pytest.raises(ValueError, match="keeps none"):
        select_training_images(np.zeros(3, dtype=int), 0.1, seed=0, classwise=False)


def _shard(raw_eval: np.ndarray, labels: np.ndarray) -> EvalShard:
    norms = np.linalg.norm(raw_eval, axis=-1)
    return EvalShard(
        image_ids=[f"t{i}" for i in range(len(raw_eval))],
        labels=labels,
        unit_features=raw_eval / norms[..., None],
        norms=norms,
        boxes=[np.zeros((0, 4), int)] * len(raw_eval),
        crop_size=32,
        authors_boxes=[np.zeros((0, 4), int)] * len(raw_eval),
    )


def test_classwise_gt_maps_use_each_images_own_class_predictor():
    generator = np.random.default_rng(0)
    raw_eval = np.abs(generator.normal(size=(4, 3, 3, 5)))
    predictors = generator.normal(size=(2, 5))
    table = PredictorTable(np.array([3, 8]), predictors, np.ones(2), source="test")
    shard = _shard(raw_eval, np.array([8, 3, 3, 8]))
    maps = variant_maps(parse_variant("rps_classwise_gt"), shard, table)
    for index, row in enumerate([1, 0, 0, 1]):
        expected = np.maximum(shard.unit_features[index] @ predictors[row], 0)
        assert np.allclose(maps[index], expected, atol=1e-6)


def test_classwise_maps_for_an_unknown_class_name_the_class():
    table = PredictorTable(np.array([0, 1]), np.eye(2, 5), np.ones(2), source="rep.h5")
    shard = _shard(np.ones((1, 2, 2, 5)), np.array([4]))
    with pytest.raises(ValueError, match="rep.h5.*class 4"):
        variant_maps(parse_variant("rps_classwise_gt"), shard, table)


def test_top1_maps_use_the_classifier_class_not_the_ground_truth():
    generator = np.random.default_rng(1)
    shard = _shard(np.abs(generator.normal(size=(2, 2, 2, 5))), np.array([0, 0]))
    predictors = generator.normal(size=(2, 5))
    table = PredictorTable(np.array([0, 1]), predictors, np.ones(2), source="test")
    maps = variant_maps(
        parse_variant("rps_classwise_top1"), shard, table, class_labels=np.array([1, 1])
    )
    assert np.allclose(maps[0], np.maximum(shard.unit_features[0] @ predictors[1], 0), atol=1e-6)


def test_caam_equals_the_channel_sum_of_raw_features():
    raw = np.abs(np.random.default_rng(2).normal(size=(3, 4, 4, 6)))
    shard = _shard(raw, np.zeros(3, int))
    assert np.allclose(caam_maps(shard.unit_features, shard.norms), raw.sum(-1), rtol=1e-5)


def test_ddt_projects_on_the_first_principal_component(tmp_path):
    generator = np.random.default_rng(3)
    raw = np.abs(generator.normal(size=(5, 4, 4, 6)))
    raw[:, 1:3, 1:3] += 4 * np.array([1, 2, 0, 0, 1, 0])  # a common "object" direction
    shard = _shard(raw, np.zeros(5, int))
    flat = raw.reshape(-1, 6)
    mean = flat.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(flat.T, bias=True))
    component = eigenvectors[:, -1]
    component *= np.sign(component @ np.array([1, 2, 0, 0, 1, 0]))
    expected = np.maximum((raw - mean) @ component, 0)

    path = tmp_path / "shard.h5"
    _write_eval_shard(path, shard)
    found_mean, found_component = ddt_direction([path])
    assert np.allclose(found_mean, mean, atol=1e-3)
    assert np.allclose(found_component, component, atol=1e-3)
    maps = ddt_maps(shard, found_mean, found_component)
    assert np.allclose(maps, expected, atol=1e-2)
    assert maps[:, 1:3, 1:3].min() > maps[:, 0].max()


def _write_eval_shard(path, shard: EvalShard) -> None:
    with atomic_h5(path, {"role": "eval", "crop_size": 32}) as handle:
        write_strings(handle, "image_ids", shard.image_ids)
        handle["labels"] = shard.labels
        handle["unit_features"] = shard.unit_features.astype(np.float16)
        handle["norms"] = shard.norms.astype(np.float32)
        handle["boxes"] = np.zeros((0, 4), np.int32)
        handle["authors_boxes"] = np.zeros((0, 4), np.int32)
        handle["box_offsets"] = np.zeros(len(shard.image_ids) + 1, np.int64)


@pytest.mark.parametrize(
    ("name", "class_source", "ratio", "base", "selection"),
    [
        ("rps", None, 1.0, None, "global"),
        ("rps-r0.1", None, 0.1, None, "global-r0.1"),
        ("rps_classwise_gt", "gt", 1.0, None, "classwise"),
        ("rps_classwise_top1-r.5", "top1", 0.5, None, "classwise-r0.5"),
        ("rps-from-cifar10", None, 1.0, "cifar10", "global"),
        ("rps_classwise_pred", "pred", 1.0, None, "classwise-pred"),
        ("rps_classwise_pred-r0.1", "pred", 0.1, None, "classwise-pred-r0.1"),
    ],
)
def test_variant_names_say_what_they_compute(name, class_source, ratio, base, selection):
    variant = parse_variant(name)
    assert (variant.kind, variant.class_source, variant.sampling_ratio, variant.base_dataset) == (
        "rps",
        class_source,
        ratio,
        base,
    )
    assert variant.representer_selection == selection


@pytest.mark.parametrize("name", ["rps-r0", "rps-r1.5", "rpss", "rps_classwise_gt-from-cub"])
def test_malformed_variant_names_are_errors(name):
    with pytest.raises(ValueError):
        parse_variant(name)


@pytest.mark.parametrize(
    "name",
    [
        "rps",
        "rps_classwise_pred-r0.25",
        "rps-from-cub",
        "caam",
        "ddt",
        "centre_gaussian",
        "lost",
        "tokencut",
        "dino_attention",
    ],
)
def test_the_workflow_wildcard_accepts_every_valid_name(name):
    assert re.fullmatch(WILDCARD, name)


@pytest.mark.parametrize("name", ["rpss", "rps_classwise_x", "caam2"])
def test_the_workflow_wildcard_refuses_names_the_grammar_refuses(name):
    assert re.fullmatch(WILDCARD, name) is None


@pytest.mark.parametrize(
    ("selection", "classwise", "predicted", "ratio"),
    [
        ("global", False, False, 1.0),
        ("classwise-r0.5", True, False, 0.5),
        ("classwise-pred", True, True, 1.0),
        ("classwise-pred-r0.1", True, True, 0.1),
    ],
)
def test_representer_file_names_say_what_they_are_computed_from(
    selection, classwise, predicted, ratio
):
    spec = parse_selection(selection)
    assert (spec.classwise, spec.predicted_classes, spec.sampling_ratio) == (
        classwise,
        predicted,
        ratio,
    )


def test_a_classwise_pred_variant_needs_a_classifier():
    assert parse_variant("rps_classwise_pred").needs_classifier


def test_the_foreground_predictor_of_a_subset_differs_from_the_full_one(training):
    _, labels, statistics = training
    full = foreground_predictor(statistics.mean_features, statistics.mean_unit_features)
    sampled = compute_representers(statistics, labels, sampling_ratio=0.25, seed=0)
    assert not np.allclose(full.w, sampled.predictors[GLOBAL].w)


def test_the_peers_are_variants_that_say_what_they_read_and_whether_they_give_a_box():
    lost_variant, tokencut_variant, attention = (
        parse_variant(name) for name in ("lost", "tokencut", "dino_attention")
    )
    assert (lost_variant.discovery_input, lost_variant.box_only) == ("keys", True)
    assert (tokencut_variant.discovery_input, tokencut_variant.box_only) == ("keys", True)
    assert (attention.discovery_input, attention.box_only) == ("cls_attention", False)
    assert not lost_variant.needs_representer
    assert parse_variant("rps").discovery_input is None
