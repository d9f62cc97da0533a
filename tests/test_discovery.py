"""The peers on cached features (rpsloc.discovery): LOST, TokenCut and DINO attention on
hand-built key matrices whose seed, bipartition and box are known."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from conftest import packages_imported_by

from rpsloc.discovery import (
    component_box,
    dino_attention,
    fiedler_vector,
    lost,
    standardised,
    tokencut,
    tokencut_graph,
)

GRID = (3, 4)


def clustered_keys(object_cells, grid=GRID) -> np.ndarray:
    """(P, 2) keys: e1 on the object's cells, e2 elsewhere (similarity 0 across)."""
    keys = np.tile([0.0, 1.0], (grid[0] * grid[1], 1))
    for row, column in object_cells:
        keys[row * grid[1] + column] = [1.0, 0.0]
    return keys


def test_lost_seeds_at_the_lowest_degree_patch_and_boxes_its_cluster():
    keys = clustered_keys([(1, 1), (1, 2), (2, 2)])  # degree 2 each; background 8
    found = lost(keys, GRID)
    assert found.seed == 1 * 4 + 1  # the first of the lowest degree in raster order
    assert found.box.tolist() == [1, 1, 3, 3]  # x0, y0, x1, y1 in cells, x1 and y1 exclusive
    assert found.mask.sum() == 3


def test_lost_keeps_only_the_seeds_connected_component():
    keys = clustered_keys([(0, 0), (0, 1), (2, 3)])
    found = lost(keys, GRID)
    assert (found.seed, found.box.tolist()) == (0, [0, 0, 2, 1])


def test_lost_with_one_patch_the_object_is_what_the_seed_is_similar_to():
    keys = clustered_keys([(0, 0), (0, 1)])
    keys[5] = [1.0, 1.0]  # cell (1, 1): similar to everything, the highest degree
    found = lost(keys, GRID, k_patches=1)
    assert (found.seed, found.box.tolist()) == (0, [0, 0, 2, 2])  # A[seed] > 0 at 0, 1 and 5
    assert found.mask.sum() == 3


def test_lost_adds_the_rows_of_the_low_degree_patches_similar_to_the_seed():
    keys = np.zeros((12, 3))
    keys[:] = [0.0, 0.0, 1.0]  # background
    keys[0] = [1.0, 0.0, 0.0]  # the seed: similar to patch 1 only (degree 1)
    keys[1] = [1.0, 1.0, 0.0]  # similar to the seed and to patch 2 (degree 2)
    keys[2] = [0.0, 1.0, 0.0]  # similar to patch 1 only
    keys[3:] = [0.0, 0.0, 1.0]
    keys[3] = [0.0, 1.0, 0.1]  # similar to 1, 2 and the background: high degree
    assert lost(keys, GRID, k_patches=1).box.tolist() == [0, 0, 2, 1]  # A[0] > 0 at 0, 1
    # The three lowest are 0, 2, 1; of them 0 and 1 are similar to the seed: row 1 adds 2, 3.
    assert lost(keys, GRID, k_patches=3).box.tolist() == [0, 0, 4, 1]


def test_tokencut_graph_is_one_above_tau_and_eps_elsewhere():
    keys = np.array([[1.0, 0.0], [0.9, 0.1], [0.1, 0.99]])
    graph = tokencut_graph(keys, tau=0.2, eps=1e-5)
    cosine = 0.1 / np.hypot(0.1, 0.99)  # keys 0 and 2: 0.1005, below tau
    assert cosine < 0.2
    assert graph.tolist() == [[1, 1, 1e-5], [1, 1, 1], [1e-5, 1, 1]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_fiedler_vector_is_scipys_generalised_eigenvector(seed):
    keys = np.random.default_rng(seed).normal(size=(30, 8))
    weights = tokencut_graph(keys)
    degrees = np.diag(weights.sum(axis=1))
    _, expected = scipy.linalg.eigh(degrees - weights, degrees, subset_by_index=[1, 1])
    found = fiedler_vector(weights)
    sign = np.sign(found @ expected[:, 0])
    np.testing.assert_allclose(found * sign, expected[:, 0], atol=1e-8)


def test_tokencut_takes_the_side_of_the_largest_entry_its_seeds_component():
    keys = clustered_keys([(0, 2), (0, 3), (1, 3)])
    found = tokencut(keys, GRID)
    # Two cliques joined by eps: the Fiedler vector is constant on each, larger in magnitude
    # on the smaller one, which holds the seed and is the foreground.
    assert found.seed in (2, 3, 7)
    assert (found.box.tolist(), int(found.mask.sum())) == ([2, 0, 4, 2], 3)


def test_a_maps_job_without_peers_starts_without_scipy():
    assert "scipy" not in packages_imported_by("rpsloc.maps")


def test_a_seed_in_the_background_is_an_error():
    with pytest.raises(ValueError, match="background"):
        component_box(np.zeros(GRID, dtype=bool), 0)


def test_dino_attention_sums_the_heads():
    attention = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    assert dino_attention(attention).tolist() == (attention[0] + attention[1]).tolist()


def test_a_cnns_features_are_standardised_over_the_whole_matrix():
    features = np.random.default_rng(0).normal(3.0, 2.0, size=(3, 4, 5))
    flat = standardised(features)
    assert flat.shape == (12, 5)
    assert abs(flat.mean()) < 1e-12 and abs(flat.std() - 1) < 1e-5


# ----------------------------------------------------------------------------- the workflow


@pytest.fixture(scope="module")
def peers_run(tmp_path_factory):
    """The tiny synthetic set through the workflow with a random DINO ViT-S/16 (keys and CLS
    attention) and, on a copy, LOST on the colourfulness fixture's test split (a CNN: the peers
    on its features)."""
    from conftest import run_snakemake, tiny_config

    workdir = tmp_path_factory.mktemp("peers")
    config = tiny_config(backbones=["vit"], variants=["rps", "lost", "tokencut", "dino_attention"])
    cnn = {**config["datasets"]["tiny"], "backbones": ["fixture"], "variants": ["lost"]}
    cnn["eval_splits"] = ["test"]
    del cnn["threshold_split"]
    config["datasets"] = {"tiny": config["datasets"]["tiny"], "cnn": cnn}
    config["backbones"]["vit"] = {"arch": "vit_s16", "weights": "random", "seed": 0}
    run_snakemake(workdir, config, "results/tiny/summary.csv", "results/cnn/summary.csv")
    return workdir


@pytest.mark.workflow
def test_every_peer_comes_from_one_features_job_per_shard(peers_run):
    features = sorted(peers_run.glob("benchmarks/tiny/vit/features/*/shard-*.tsv"))
    # 10 training and 6 + 6 evaluated images in shards of 4: 3 + 2 + 2 shards, one job each.
    assert len(features) == 7
    maps = sorted(peers_run.glob("results/tiny/vit/*/maps/*.h5"))
    assert len(maps) == 4 * 2  # rps, lost, tokencut, dino_attention on val and test
    corloc = sorted(peers_run.glob("results/tiny/vit/*/metrics/*-corloc.json"))
    assert len(corloc) == 4 * 2


@pytest.mark.workflow
def test_every_method_gets_corloc_and_box_only_methods_boxacc_at_their_own_box(peers_run):
    import pandas as pd

    summary = pd.read_csv(peers_run / "results/tiny/summary.csv").set_index(["variant", "split"])
    assert summary["corloc"].notna().all()
    box_only = summary.loc[["lost", "tokencut"]]
    assert box_only[["own_box_acc_30", "own_box_acc_50", "own_box_acc_70"]].notna().all().all()
    assert box_only["max_box_acc_v2"].isna().all()  # no threshold sweep over a box
    assert (box_only["corloc_box"] == "own box").all()
    assert (box_only["peer_input"] == "last-block keys").all()
    assert (summary.loc["dino_attention", "peer_input"] == "CLS attention").all()
    assert summary.loc[["rps", "dino_attention"], "max_box_acc_v2"].notna().all()


@pytest.mark.workflow
def test_on_a_cnn_the_peers_run_on_its_feature_map_and_say_so(peers_run):
    import pandas as pd

    summary = pd.read_csv(peers_run / "results/cnn/summary.csv")
    lost_rows = summary[summary.variant == "lost"]
    assert (lost_rows["peer_input"] == "feature map (no ViT keys)").all()
    assert lost_rows["corloc"].notna().all()


# ----------------------------------------------------------------------------- keys we control


@pytest.fixture(scope="module")
def keyed_shard(tmp_path_factory):
    """A features shard of the synthetic set whose `keys` are ours: one direction on the
    patches whose centre lies in an object's box, another elsewhere."""
    import h5py

    from rpsloc.datasets.records import write_manifest
    from rpsloc.features import extract_shard
    from rpsloc.manifest import build_manifest
    from rpsloc.synthetic import generate_synthetic_dataset

    folder = tmp_path_factory.mktemp("keyed")
    generate_synthetic_dataset(folder / "data", splits={"test": 8}, max_side=160, seed=3)
    records = build_manifest({"adapter": "synthetic", "root": str(folder / "data")}, "test")
    write_manifest(records, folder / "test.csv")
    backbone = {"arch": "resnet_small", "width": 8, "depth": 1, "weights": "random", "seed": 0}
    shard = folder / "shard-0.h5"
    extract_shard(folder / "test.csv", "eval", 0, 8, backbone, 224, 224, 16, shard, device="cpu")
    with h5py.File(shard, "a") as handle:
        offsets, boxes = handle["box_offsets"][()], handle["boxes"][()]
        centres = np.arange(14) * 16 + 8
        keys = np.tile(np.array([0, 1, 0], np.float16), (8, 14, 14, 1))
        for image in range(8):
            for x0, y0, x1, y1 in boxes[offsets[image] : offsets[image + 1]]:
                rows = (centres >= y0) & (centres <= y1)
                columns = (centres >= x0) & (centres <= x1)
                keys[image][np.ix_(rows, columns)] = [1, 0, 0]
        handle.create_dataset("keys", data=keys)
    return shard, {record.image_id: record for record in records}


@pytest.mark.parametrize("variant", ["lost", "tokencut"])
def test_with_keys_that_mark_the_objects_the_peers_locate_every_image(
    keyed_shard, variant, tmp_path
):
    from rpsloc.maps import write_maps
    from rpsloc.metrics.corloc import split_corloc
    from rpsloc.readers import read_maps

    shard, records = keyed_shard
    write_maps(variant, [shard], tmp_path / "maps.h5")
    maps = read_maps(tmp_path / "maps.h5")
    assert maps.attrs["peer_input"] == "last-block keys"
    result = split_corloc(maps, records, None, (30, 50, 70))
    assert (result["corloc"], result["corloc_n_images"]) == (100.0, 8)
    assert result["own_box_acc_50"] == 100.0
