"""rpsloc reproduces the authors' released code: on a CUB-shaped set (real CUB sizes and boxes,
drawn images) with a seeded random ResNet-50, `w*` points where theirs points and the `authors_*`
numbers, thresholds included, are the ones their code printed (tests/data/
authors_cub_parity.json, which says how they were obtained; docs/method.md "Reproducing the
authors' numbers")."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO, run_snakemake
from cub_shaped import fidelity_config, image_digest, write_cub_shaped

from rpsloc import paths
from rpsloc.backbones.build import build_backbone
from rpsloc.readers import read_predictors

pytestmark = pytest.mark.workflow

AUTHORS = json.loads((REPO / "tests" / "data" / "authors_cub_parity.json").read_text())


@pytest.fixture(scope="module")
def parity(tmp_path_factory, wsol_metadata):
    folder = tmp_path_factory.mktemp("parity")
    root = folder / "CUB"
    ids = write_cub_shaped(root, wsol_metadata / "CUB", AUTHORS["counts"], AUTHORS["seed"])
    model = build_backbone(
        {"arch": "resnet50", "weights": "random", "seed": AUTHORS["weights_seed"]}, 32
    )
    torch.save({"state_dict": model.state_dict()}, folder / "resnet50-random.pth")
    config = fidelity_config(
        root,
        folder / "resnet50-random.pth",
        {"shard_size": 100, "batch_size": 8, "num_workers": 0, "device": "cpu"},
    )
    workdir = folder / "run"
    run_snakemake(workdir, config, paths.SUMMARY.format(dataset="cub"))
    summary = pd.read_csv(workdir / paths.SUMMARY.format(dataset="cub")).set_index("split")
    representer = paths.REPRESENTER.format(dataset="cub", backbone="r50", selection="global")
    return {"root": root, "ids": ids, "summary": summary, "w": workdir / representer}


def test_the_images_are_the_ones_the_authors_code_saw(parity):
    digests = {split: image_digest(parity["root"], ids) for split, ids in parity["ids"].items()}
    assert digests == AUTHORS["digests"]


def test_w_star_points_where_the_authors_w_star_points(parity):
    ours = read_predictors(parity["w"]).predictors[0]
    theirs = np.array(AUTHORS["w"])
    assert ours @ theirs / (np.linalg.norm(ours) * np.linalg.norm(theirs)) >= 0.9999


@pytest.mark.parametrize("split", ["val", "test"])
def test_the_threshold_chosen_on_val_is_the_authors(parity, split):
    row = parity["summary"].loc[split]
    assert (row["authors_threshold_split"], row["authors_threshold"]) == (
        "val",
        AUTHORS["val"]["BestThreshold"],
    )


@pytest.mark.parametrize("split", ["val", "test"])
def test_box_accuracies_equal_the_authors_to_the_image(parity, split):
    row = parity["summary"].loc[split]
    theirs = AUTHORS[split]
    ours = [row[f"authors_box_acc_{iou}"] for iou in (30, 50, 70)]
    assert ours == pytest.approx([theirs["IOU30"], theirs["IOU50"], theirs["IOU70"]], abs=1e-4)
    assert row["authors_box_acc_mean"] == pytest.approx(theirs["MaxBoxAccV2"], abs=1e-4)
