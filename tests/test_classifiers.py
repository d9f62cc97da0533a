"""Classifiers for Top-1/Top-5 Loc: strict, safe loading of each published format, DINO's
linear evaluation, the Top-k Loc formulas, and the classify stage in the workflow
(METHOD.md sections 3 and 4; docs/classifiers.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_snakemake, tiny_config
from efficientnet_pytorch import EfficientNet

from rpsloc.backbones import ResNet50, VisionTransformer
from rpsloc.boxes import best_iou_per_threshold
from rpsloc.classifiers import (
    DinoLinearClassifier,
    build_classifier,
    classifier_settings,
    read_top5,
    top_k_loc,
)
from rpsloc.config import check_checkpoint_files
from rpsloc.datasets.records import read_manifest
from rpsloc.errors import CheckpointError, InputError
from rpsloc.evaluation import top_k_headline
from rpsloc.features import iter_eval_shards
from rpsloc.io import open_h5, read_attrs, read_json, read_strings
from rpsloc.maps import score_map
from rpsloc.metrics import BoxAccuracy


def seeded_state(model: torch.nn.Module, seed: int = 7) -> dict[str, torch.Tensor]:
    """A model's state dict with every float tensor replaced by seeded random values."""
    generator = torch.Generator().manual_seed(seed)
    return {
        key: torch.rand(value.shape, generator=generator) + 0.5
        if value.is_floating_point()
        else value
        for key, value in model.state_dict().items()
    }


def assert_same_tensors(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert set(loaded) == set(expected)
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key


# ------------------------------------------------------------------------- Top-k Loc formulas


def test_top_k_loc_matches_a_hand_computation():
    ious = np.array([0.6, 0.4, 0.5, 0.9])
    labels = np.array([1, 2, 3, 0])
    top5 = np.array(
        [
            [1, 0, 2, 3, 4],  # located, top-1 right
            [2, 0, 1, 3, 4],  # top-1 right but IoU 0.4 < 0.5: not located
            [0, 1, 2, 3, 4],  # located (IoU exactly 0.5), label 3 only in the top-5
            [5, 6, 7, 8, 9],  # located, label 0 not in the top-5
        ]
    )
    assert top_k_loc(ious, labels, top5) == {
        "gt_known_loc": 75.0,
        "top1_loc": 25.0,
        "top5_loc": 50.0,
    }


def test_top_k_headline_takes_the_threshold_maximising_largest_contour_box_acc_50():
    largest = BoxAccuracy(np.array([0.1, 0.2, 0.3]), (30, 50, 70), multi_contour=False)
    # best IoU per image (rows) at each threshold (columns): BoxAcc@50 is 1/3, 2/3, 1/3
    largest._best_ious = list(np.array([[0.6, 0.4, 0.2], [0.2, 0.7, 0.6], [0.1, 0.55, 0.1]]))
    labels = np.array([0, 1, 2])
    top5 = np.array([[0, 1, 2, 3, 4], [1, 0, 2, 3, 4], [0, 2, 1, 3, 4]])
    headline = top_k_headline(largest, labels, top5)
    assert headline["loc_threshold"] == 0.2
    assert headline["loc_protocol"] == "benchmark_largest"
    assert headline["gt_known_loc"] == pytest.approx(200 / 3)
    assert headline["gt_known_loc"] == pytest.approx(largest.max_box_acc()[50])
    assert headline["top1_loc"] == pytest.approx(100 / 3)
    assert headline["top5_loc"] == pytest.approx(200 / 3)


def test_top_k_loc_needs_iou_50_among_the_evaluated_thresholds():
    largest = BoxAccuracy(np.array([0.1]), (30, 70), multi_contour=False)
    largest._best_ious = [np.array([0.6])]
    with pytest.raises(InputError, match="iou_thresholds must include 50"):
        top_k_headline(largest, np.array([0]), np.zeros((1, 5), dtype=np.int64))


# ---------------------------------------------------------------------------- configuration


def test_efficientnet_b7_runs_at_its_own_resolution_600_by_default():
    settings = classifier_settings({"arch": "efficientnet-b7", "weights": "random"})
    assert (settings["image_size"], settings["crop_size"], settings["num_classes"]) == (
        600,
        600,
        1000,
    )


def test_dino_linear_defaults_follow_dino_for_small_and_base_vits():
    small = classifier_settings({"arch": "vit_s8", "weights": "random"})
    base = classifier_settings({"arch": "vit_b16", "weights": "random"})
    assert (small["n_last_blocks"], small["avgpool_patchtokens"]) == (4, False)
    assert (base["n_last_blocks"], base["avgpool_patchtokens"]) == (1, True)
    assert (small["image_size"], small["crop_size"]) == (256, 224)


def test_a_head_file_is_refused_for_a_classifier_that_has_its_own_head():
    with pytest.raises(InputError, match="takes no head"):
        classifier_settings({"arch": "resnet50", "weights": "random", "head": "x.pth"})


# ----------------------------------------------------------------------------- ResNet-50


def test_imagenet_resnet50_in_torchvision_names_loads_every_tensor_with_its_fc(tmp_path):
    expected = seeded_state(ResNet50(num_classes=10))
    path = tmp_path / "resnet50.pth"
    torch.save(expected, path)
    classifier = build_classifier({"arch": "resnet50", "weights": str(path), "num_classes": 10})
    assert_same_tensors(classifier.model, expected)
    assert classifier.provenance["checkpoint_format"] == "torchvision"
    assert classifier.model.fc.weight.shape == (10, 2048)


def test_cub_resnet50_with_module_prefix_loads_200_classes(tmp_path):
    expected = seeded_state(ResNet50(num_classes=200))
    path = tmp_path / "cub_resnet50.pth"
    torch.save({f"module.{key}": value for key, value in expected.items()}, path)
    classifier = build_classifier({"arch": "resnet50", "weights": str(path), "num_classes": 200})
    assert_same_tensors(classifier.model, expected)
    assert classifier.provenance["checkpoint_format"] == "dataparallel"


def test_a_classifier_checkpoint_without_its_fc_head_is_refused(tmp_path):
    state = seeded_state(ResNet50())  # a backbone: no fc
    path = tmp_path / "backbone.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"318 of 320 classifier tensors match; 2 missing"):
        build_classifier({"arch": "resnet50", "weights": str(path), "num_classes": 10})


def test_a_head_with_another_number_of_classes_is_refused_with_both_shapes(tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save(seeded_state(ResNet50(num_classes=10)), path)
    with pytest.raises(CheckpointError, match=r"fc.weight \(expected \[200, 2048\], found \[10,"):
        build_classifier({"arch": "resnet50", "weights": str(path), "num_classes": 200})


def test_resnet50_classifier_scores_are_its_logits():
    classifier = build_classifier({"arch": "resnet50", "weights": "random", "num_classes": 6})
    images = torch.randn(2, 3, 64, 64)
    pooled = classifier.model(images).mean(dim=(2, 3))
    expected = pooled @ classifier.model.fc.weight.T + classifier.model.fc.bias
    assert torch.allclose(classifier.scores(images), expected, atol=1e-5)


# ---------------------------------------------------------------------------- EfficientNet


def test_efficientnet_pytorch_state_dict_loads_strictly_into_from_name(tmp_path):
    reference = EfficientNet.from_name("efficientnet-b0", num_classes=7, image_size=64)
    expected = seeded_state(reference)
    path = tmp_path / "efficientnet-b0.pth"
    torch.save(expected, path)
    classifier = build_classifier(
        {
            "arch": "efficientnet-b0",
            "weights": str(path),
            "num_classes": 7,
            "image_size": 64,
            "crop_size": 64,
        }
    )
    assert_same_tensors(classifier.model, expected)
    assert classifier.provenance["checkpoint_format"] == "efficientnet_pytorch"
    assert classifier.scores(torch.randn(1, 3, 64, 64)).shape == (1, 7)


def test_missing_efficientnet_weights_name_the_file_and_lukemelas(tmp_path):
    path = tmp_path / "efficientnet-b7-dcc49843.pth"
    with pytest.raises(CheckpointError) as error:
        build_classifier({"arch": "efficientnet-b7", "weights": str(path)})
    assert f"checkpoint file {path} does not exist" in str(error.value)
    assert "lukemelas/EfficientNet-PyTorch" in str(error.value)


# ------------------------------------------------------------------------- DINO linear head


def dino_linear_checkpoint(weight: torch.Tensor, bias: torch.Tensor) -> dict:
    """What DINO's eval_linear.py saves: the DistributedDataParallel head, plus training state."""
    return {
        "epoch": 100,
        "state_dict": {"module.linear.weight": weight, "module.linear.bias": bias},
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.001, "params": [0, 1]}]},
        "scheduler": {"last_epoch": 100},
        "best_acc": 79.7,
    }


@pytest.fixture(scope="module")
def vit_s8_files(tmp_path_factory) -> tuple[Path, Path, dict[str, torch.Tensor]]:
    folder = tmp_path_factory.mktemp("dino")
    backbone = seeded_state(VisionTransformer(8, 384, 12, 6, arch="vit_s8"), seed=3)
    torch.save(backbone, folder / "dino_deitsmall8_pretrain.pth")
    head = {"weight": torch.randn(5, 4 * 384) * 0.01, "bias": torch.randn(5)}
    torch.save(dino_linear_checkpoint(head["weight"], head["bias"]), folder / "linear.pth")
    return (
        folder / "dino_deitsmall8_pretrain.pth",
        folder / "linear.pth",
        backbone | {f"linear.{k}": v for k, v in head.items()},
    )


def test_dino_vit_s8_and_its_linear_head_load_from_the_two_files(vit_s8_files):
    weights, head, expected = vit_s8_files
    classifier = build_classifier(
        {"arch": "vit_s8", "weights": str(weights), "head": str(head), "num_classes": 5}
    )
    loaded = classifier.model.state_dict()
    assert torch.equal(loaded["linear.weight"], expected["linear.weight"])
    assert torch.equal(loaded["linear.bias"], expected["linear.bias"])
    last_layer = "blocks.11.mlp.fc2.weight"
    assert torch.equal(loaded[f"backbone.{last_layer}"], expected[last_layer])
    assert classifier.provenance["head_format"] == "dino_linear"
    assert classifier.provenance["checkpoint_format"] == "torchvision"


def test_dino_linear_head_reads_the_cls_tokens_of_the_last_four_blocks(vit_s8_files):
    weights, head, _ = vit_s8_files
    classifier = build_classifier(
        {"arch": "vit_s8", "weights": str(weights), "head": str(head), "num_classes": 5}
    )
    vit, linear = classifier.model.backbone, classifier.model.linear
    images = torch.randn(2, 3, 32, 32)
    tokens = vit.prepare_tokens(images)
    cls_tokens = []
    for block in vit.blocks:
        tokens = block(tokens)
        cls_tokens.append(vit.norm(tokens)[:, 0])
    expected = linear(torch.cat(cls_tokens[-4:], dim=1))
    assert torch.allclose(classifier.scores(images), expected, atol=1e-5)


def test_dino_avgpool_interleaves_the_cls_and_mean_patch_token_as_dino_does():
    vit = VisionTransformer(patch_size=8, embed_dim=4, depth=2, num_heads=2, img_size=16)
    model = DinoLinearClassifier(vit, num_classes=3, n_last_blocks=1, avgpool_patchtokens=True)
    images = torch.randn(1, 3, 16, 16)
    last = vit.get_intermediate_layers(images, 1)[0]
    cls, mean = last[0, 0], last[0, 1:].mean(dim=0)
    interleaved = torch.stack([cls, mean], dim=1).reshape(1, 8)  # cls_0, mean_0, cls_1, ...
    expected = model.linear(interleaved)
    assert torch.allclose(model(images), expected, atol=1e-6)


def test_dino_avgpool_with_several_blocks_is_refused_like_dino():
    vit = VisionTransformer(patch_size=8, embed_dim=4, depth=2, num_heads=2, img_size=16)
    with pytest.raises(InputError, match="avgpool_patchtokens needs n_last_blocks 1"):
        DinoLinearClassifier(vit, num_classes=3, n_last_blocks=2, avgpool_patchtokens=True)


def test_dino_vit_weights_without_a_head_file_are_refused(vit_s8_files):
    weights, _, _ = vit_s8_files
    with pytest.raises(InputError, match="needs `head`"):
        build_classifier({"arch": "vit_s8", "weights": str(weights), "num_classes": 5})


def test_a_linear_head_for_another_number_of_classes_is_refused(vit_s8_files):
    weights, head, _ = vit_s8_files
    with pytest.raises(CheckpointError, match=r"module.linear.weight \(expected \[1000, 1536\]"):
        build_classifier({"arch": "vit_s8", "weights": str(weights), "head": str(head)})


def test_missing_head_file_is_named_with_its_config_key_and_dino(tmp_path, vit_s8_files):
    weights, _, _ = vit_s8_files
    head = tmp_path / "dino_deitsmall8_linearweights.pth"
    config = {
        "datasets": {"d": {"backbones": [], "classifier": "dino"}},
        "backbones": {},
        "classifiers": {"dino": {"arch": "vit_s8", "weights": str(weights), "head": str(head)}},
    }
    with pytest.raises(CheckpointError) as error:
        check_checkpoint_files(config)
    assert f"checkpoint file {head} does not exist" in str(error.value)
    assert "classifiers.dino.head" in str(error.value)
    assert "facebookresearch/dino" in str(error.value)


# --------------------------------------------------------------- the classify stage, end to end


def classifier_config() -> dict:
    """The synthetic set with 8 classes (each among the 10 training images, so every w*_k
    exists) and a random-weight ResNet-50 classifier over them: top-1 is often wrong, the
    top-5 holds the label more often."""
    config = tiny_config(
        backbones=["fixture"],
        variants=["rps", "rps_classwise_top1"],
        eval_splits=["val"],
        classifier="random8",
    )
    config["datasets"] = {"tiny": config["datasets"]["tiny"]}
    config["datasets"]["tiny"]["synthetic"]["classes"] = 8
    config["classifiers"] = {
        "random8": {
            "arch": "resnet50",
            "weights": "random",
            "num_classes": 8,
            "image_size": 64,
            "crop_size": 64,
            "seed": 3,  # a seed whose top-1 is right for one of the 6 images, top-5 for 4
        }
    }
    return config


@pytest.fixture(scope="module")
def classified(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("classify")
    run_snakemake(workdir, classifier_config(), "results/tiny/summary.csv")
    return workdir


@pytest.mark.workflow
def test_predictions_file_holds_top5_classes_and_scores_in_manifest_order(classified):
    path = classified / "results/tiny/classifiers/random8/val.h5"
    manifest = read_manifest(classified / "results/tiny/manifest/val.csv")
    with open_h5(path) as handle:
        assert read_strings(handle["image_ids"]) == [r.image_id for r in manifest]
        top5, scores = handle["top5"][()], handle["top5_scores"][()]
    assert top5.shape == (6, 5) and top5.dtype == np.int64
    assert scores.dtype == np.float32
    assert ((top5 >= 0) & (top5 < 8)).all()
    assert all(len(set(row)) == 5 for row in top5)
    assert (np.diff(scores, axis=1) <= 0).all() and (scores.sum(axis=1) <= 1 + 1e-6).all()
    attrs = read_attrs(path)
    assert (attrs["classifier_arch"], attrs["classifier_weights"]) == ("resnet50", "random")
    assert (attrs["classifier_num_classes"], attrs["classifier_crop_size"]) == (8, 64)
    assert attrs["split"] == "val" and attrs["classifier"] == "random8"


@pytest.mark.workflow
def test_top1_and_top5_loc_of_the_workflow_match_a_hand_computation(classified):
    metrics = read_json(classified / "results/tiny/fixture/rps/metrics/val.json")
    maps_path = classified / "results/tiny/fixture/rps/maps/val.h5"
    shards = sorted((classified / "results/tiny/fixture/features/val").glob("shard-*.h5"))
    with open_h5(maps_path) as handle:
        activations = handle["maps"][()]
    located, top1_right, top5_right = [], [], []
    ids = [image_id for shard in iter_eval_shards(shards, False) for image_id in shard.image_ids]
    top5 = read_top5(classified / "results/tiny/classifiers/random8/val.h5", ids)
    index = 0
    for shard in iter_eval_shards(shards, with_features=False):
        for label, boxes in zip(shard.labels, shard.boxes, strict=True):
            scores = score_map(activations[index], shard.crop_size)
            threshold = np.array([metrics["loc_threshold"]])
            iou = best_iou_per_threshold(scores, boxes, threshold, multi_contour=False)[0]
            located.append(iou >= 0.5)
            top1_right.append(top5[index, 0] == label)
            top5_right.append(label in top5[index])
            index += 1
    located = np.array(located)
    assert metrics["gt_known_loc"] == pytest.approx(100 * located.mean())
    assert metrics["top1_loc"] == pytest.approx(100 * (located & top1_right).mean())
    assert metrics["top5_loc"] == pytest.approx(100 * (located & top5_right).mean())
    assert metrics["gt_known_loc"] == pytest.approx(metrics["max_box_acc_v1"])
    assert 0 < metrics["top1_loc"] < metrics["top5_loc"] < metrics["gt_known_loc"]


@pytest.mark.workflow
def test_summary_reports_top1_top5_and_gt_known_loc_per_variant(classified):
    summary = pd.read_csv(classified / "results/tiny/summary.csv")
    assert list(summary["variant"]) == ["rps", "rps_classwise_top1"]
    for _, row in summary.iterrows():
        metrics = read_json(classified / f"results/tiny/fixture/{row['variant']}/metrics/val.json")
        for column in ("top1_loc", "top5_loc", "gt_known_loc", "loc_threshold"):
            assert row[column] == pytest.approx(metrics[column], abs=1e-4)
        assert row["loc_protocol"] == "benchmark_largest"
