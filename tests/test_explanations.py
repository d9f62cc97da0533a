"""Representer explanations: exact decompositions of the method's maps over training images."""

import h5py
import numpy as np
import pytest

from rpsloc import explanations
from rpsloc.datasets.records import write_manifest
from rpsloc.explanations import (
    RunningTopK,
    position_contributions,
    region_contributions,
    selected_predictors,
    selection_curve,
    selection_sizes,
    training_image_ranking,
    write_test_explanations,
)
from rpsloc.features import extract_shard
from rpsloc.manifest import build_manifest
from rpsloc.readers import iter_eval_shards
from rpsloc.representer import write_representer
from rpsloc.synthetic import generate_synthetic_dataset

FIXTURE = {"arch": "fixture-colourfulness", "weights": "random"}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Training and test features of a small synthetic set, and its global w*."""
    folder = tmp_path_factory.mktemp("explain")
    generate_synthetic_dataset(folder / "data", splits={"train": 12, "test": 6}, seed=5)
    files = {}
    for split, role in (("train", "train"), ("test", "eval")):
        records = build_manifest({"adapter": "synthetic", "root": str(folder / "data")}, split)
        write_manifest(records, folder / f"{split}.csv")
        files[split] = folder / f"{split}.h5"
        extract_shard(folder / f"{split}.csv", role, 0, 100, FIXTURE, 96, 96, 8, files[split])
    files["representer"] = folder / "representer.h5"
    write_representer([files["train"]], files["representer"])
    with h5py.File(files["representer"]) as handle:
        files["vectors"] = handle["representer_vectors"][()].astype(np.float64)
        files["values"] = handle["image_values"][()]
        files["w"] = handle["foreground_predictors"][0]
        files["w_norm"] = float(np.linalg.norm(handle["unnormalised_predictors"][0]))
    files["test_features"] = next(iter_eval_shards([files["test"]])).unit_features
    return files


def test_contributions_of_all_training_images_sum_to_the_map_value(pipeline):
    features = pipeline["test_features"][0].astype(np.float64)
    contributions = position_contributions(pipeline["vectors"], features, pipeline["w_norm"])
    assert contributions.shape == (12, 12, 12)
    assert np.allclose(contributions.sum(axis=0), features @ pipeline["w"], atol=1e-5)


def test_region_contributions_sum_to_the_mean_activation_over_the_region(pipeline):
    features = pipeline["test_features"][1]
    contributions, size = region_contributions(
        pipeline["vectors"], features, pipeline["w"], pipeline["w_norm"]
    )
    activation = features.reshape(-1, features.shape[-1]).astype(np.float64) @ pipeline["w"]
    assert size == int((activation > 0).sum()) > 0
    assert contributions.sum() == pytest.approx(activation[activation > 0].mean(), abs=1e-5)


def test_top_k_lists_are_ordered_and_reproducible(pipeline, tmp_path):
    first, second = tmp_path / "a.h5", tmp_path / "b.h5"
    write_test_explanations(pipeline["representer"], [pipeline["test"]], first, top_k=3)
    write_test_explanations(pipeline["representer"], [pipeline["test"]], second, top_k=3)
    with h5py.File(first) as a, h5py.File(second) as b:
        support, oppose = a["support_contributions"][()], a["oppose_contributions"][()]
        assert support.shape == oppose.shape == (6, 3)
        assert (np.diff(support, axis=1) <= 0).all()
        assert (np.diff(oppose, axis=1) >= 0).all()
        assert (support[:, -1] >= oppose[:, -1]).all()
        for name in ("support_indices", "oppose_indices", "support_contributions"):
            assert np.array_equal(a[name][()], b[name][()])


def test_rebuilding_from_all_training_images_gives_back_the_predictor_exactly(pipeline):
    [rebuilt] = selected_predictors([pipeline["vectors"]], pipeline["values"], [12])
    assert np.allclose(rebuilt, pipeline["w"], atol=1e-6)


def test_the_selection_curve_ends_with_the_full_predictor(pipeline):
    curve = selection_curve(pipeline["representer"], [pipeline["test"]])
    assert curve["m"].tolist() == [1, 2, 4, 8, 12]
    assert curve["cosine_to_full"].iloc[-1] == pytest.approx(1.0, abs=1e-6)
    assert curve["max_box_acc_v2"].between(0, 100).all()


def test_selection_sizes_are_geometric_and_end_at_n():
    assert selection_sizes(10) == [1, 2, 4, 8, 10]
    assert selection_sizes(10, [3, 50]) == [3, 10]


def test_training_images_are_ranked_by_representer_value(pipeline):
    ranking = training_image_ranking(pipeline["representer"])
    assert ranking["rank"].tolist() == list(range(1, 13))
    assert ranking["value"].is_monotonic_decreasing
    assert ranking["value"].sum() == pytest.approx(pipeline["w_norm"], rel=1e-5)


def test_a_running_top_k_over_chunks_equals_a_stable_sort_of_all_scores():
    scores = np.random.default_rng(0).integers(0, 6, size=(4, 50)).astype(float)  # many ties
    running = RunningTopK(rows=4, k=5)
    for start in range(0, 50, 7):
        running.update(scores[:, start : start + 7], start)
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    assert np.array_equal(running.indices, expected)
    assert np.array_equal(running.scores, np.take_along_axis(scores, expected, axis=1))


def test_streamed_explanations_equal_each_test_images_full_contributions(
    pipeline, tmp_path, monkeypatch
):
    monkeypatch.setattr(explanations, "TRAINING_CHUNK", 5)  # 12 training images: 3 chunks
    write_test_explanations(pipeline["representer"], [pipeline["test"]], tmp_path / "e.h5", 3)
    with h5py.File(tmp_path / "e.h5") as handle:
        for image, features in enumerate(pipeline["test_features"]):
            contributions, size = region_contributions(
                pipeline["vectors"], features, pipeline["w"], pipeline["w_norm"]
            )
            support = np.argsort(-contributions, kind="stable")[:3]
            oppose = np.argsort(contributions, kind="stable")[:3]
            assert handle["support_indices"][image].tolist() == support.tolist()
            assert handle["oppose_indices"][image].tolist() == oppose.tolist()
            assert np.allclose(handle["support_contributions"][image], contributions[support])
            assert handle["region_sizes"][image] == size
            assert handle["region_activation"][image] == pytest.approx(contributions.sum())
