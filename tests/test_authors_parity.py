"""rpsloc reproduces the authors' released code: on a CUB-shaped set (real CUB sizes and boxes,
drawn images) and an ImageNet-shaped one (real ImageNetV2 / ILSVRC val sizes and boxes, several
boxes per image among them, made-up training images), each with a seeded random ResNet-50,
`w*` points where theirs points and the `authors_*` numbers, thresholds included, are the ones
their code printed (tests/data/authors_<dataset>_parity.json, which says how they were
obtained; docs/method.md "Reproducing the authors' numbers")."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO, run_snakemake
from cub_shaped import fidelity_config, image_digest, write_cub_shaped
from ilsvrc_shaped import ilsvrc_parity_config, write_ilsvrc_shaped

from rpsloc import paths
from rpsloc.backbones.build import build_backbone
from rpsloc.readers import read_predictors

pytestmark = pytest.mark.workflow

#: Per dataset: the set's writer, rpsloc's configuration of it, the WSOL metadata it draws on.
WORKLOADS = {
    "cub": (write_cub_shaped, fidelity_config, "CUB"),
    "ilsvrc": (write_ilsvrc_shaped, ilsvrc_parity_config, "ILSVRC"),
}
AUTHORS = {
    dataset: json.loads((REPO / "tests" / "data" / f"authors_{dataset}_parity.json").read_text())
    for dataset in WORKLOADS
}


@pytest.fixture(scope="module", params=sorted(WORKLOADS))
def parity(request, tmp_path_factory, wsol_metadata):
    dataset = request.param
    authors = AUTHORS[dataset]
    write_set, config_of, metadata = WORKLOADS[dataset]
    folder = tmp_path_factory.mktemp(f"parity-{dataset}")
    root = folder / metadata
    ids = write_set(root, wsol_metadata / metadata, authors["counts"], authors["seed"])
    model = build_backbone(
        {"arch": "resnet50", "weights": "random", "seed": authors["weights_seed"]}, 32
    )
    torch.save({"state_dict": model.state_dict()}, folder / "resnet50-random.pth")
    config = config_of(
        root,
        folder / "resnet50-random.pth",
        {"shard_size": 100, "batch_size": 8, "num_workers": 0, "device": "cpu"},
    )
    workdir = folder / "run"
    run_snakemake(workdir, config, paths.SUMMARY.format(dataset=dataset))
    summary = pd.read_csv(workdir / paths.SUMMARY.format(dataset=dataset)).set_index("split")
    representer = paths.REPRESENTER.format(dataset=dataset, backbone="r50", selection="global")
    return {
        "authors": authors,
        "root": root,
        "ids": ids,
        "summary": summary,
        "w": workdir / representer,
    }


def test_the_images_are_the_ones_the_authors_code_saw(parity):
    digests = {split: image_digest(parity["root"], ids) for split, ids in parity["ids"].items()}
    assert digests == parity["authors"]["digests"]


def test_w_star_points_where_the_authors_w_star_points(parity):
    ours = read_predictors(parity["w"]).predictors[0]
    theirs = np.array(parity["authors"]["w"])
    assert ours @ theirs / (np.linalg.norm(ours) * np.linalg.norm(theirs)) >= 0.9999


@pytest.mark.parametrize("split", ["val", "test"])
def test_the_threshold_chosen_on_val_is_the_authors(parity, split):
    row = parity["summary"].loc[split]
    assert (row["authors_threshold_split"], row["authors_threshold"]) == (
        "val",
        parity["authors"]["val"]["BestThreshold"],
    )


@pytest.mark.parametrize("split", ["val", "test"])
def test_box_accuracies_equal_the_authors_to_the_image(parity, split):
    row = parity["summary"].loc[split]
    theirs = parity["authors"][split]
    ours = [row[f"authors_box_acc_{iou}"] for iou in (30, 50, 70)]
    assert ours == pytest.approx([theirs["IOU30"], theirs["IOU50"], theirs["IOU70"]], abs=1e-4)
    assert row["authors_box_acc_mean"] == pytest.approx(theirs["MaxBoxAccV2"], abs=1e-4)
