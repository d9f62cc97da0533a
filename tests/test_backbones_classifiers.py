"""Classifier models for Top-1/Top-5 Loc: their settings, strict and safe loading of each
published format, DINO's linear evaluation (METHOD.md section 4; docs/classifiers.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import resolved, state_digest, tiny_config
from efficientnet_pytorch import EfficientNet
from efficientnet_pytorch.utils import efficientnet_params

from rpsloc.backbones.classifiers import DinoLinearClassifier, build_classifier
from rpsloc.backbones.resnet import resnet50
from rpsloc.backbones.vit import VisionTransformer
from rpsloc.errors import CheckpointError, InputError
from rpsloc.settings import (
    EFFICIENTNET_RESOLUTION,
    EFFICIENTNETS,
    classifier_settings,
    require_checkpoint_files,
)


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


# ---------------------------------------------------------------------------- configuration


def test_efficientnet_b7_resizes_to_685_and_crops_600_as_the_authors_do():
    settings = classifier_settings({"arch": "efficientnet-b7", "weights": "random"})
    assert (settings["image_size"], settings["crop_size"], settings["num_classes"]) == (
        685,
        600,
        1000,
    )


def test_each_efficientnet_resolution_is_efficientnet_pytorchs():
    assert EFFICIENTNET_RESOLUTION == {arch: efficientnet_params(arch)[2] for arch in EFFICIENTNETS}


def test_the_other_efficientnets_run_at_their_own_resolution():
    settings = classifier_settings({"arch": "efficientnet-b0", "weights": "random"})
    assert (settings["image_size"], settings["crop_size"]) == (224, 224)


def test_dino_linear_defaults_follow_dino_for_small_and_base_vits():
    small = classifier_settings({"arch": "vit_s8", "weights": "random"})
    base = classifier_settings({"arch": "vit_b16", "weights": "random"})
    assert (small["n_last_blocks"], small["avgpool_patchtokens"]) == (4, False)
    assert (base["n_last_blocks"], base["avgpool_patchtokens"]) == (1, True)
    assert (small["image_size"], small["crop_size"]) == (256, 224)


@pytest.mark.parametrize("weights", ["none", "pretrain"])
def test_a_classifier_takes_only_random_or_a_checkpoint_file_as_weights(weights):
    with pytest.raises(
        InputError, match=f"weights must be 'random' or a checkpoint file, got '{weights}'"
    ):
        classifier_settings({"arch": "resnet50", "weights": weights})


def test_a_head_file_is_refused_for_a_classifier_that_has_its_own_head():
    with pytest.raises(InputError, match="takes no head"):
        classifier_settings({"arch": "resnet50", "weights": "random", "head": "x.pth"})


# ----------------------------------------------------------------------------- ResNet-50


def test_imagenet_resnet50_in_torchvision_names_loads_every_tensor_with_its_fc(tmp_path):
    expected = seeded_state(resnet50(num_classes=10))
    path = tmp_path / "resnet50.pth"
    torch.save(expected, path)
    classifier = build_classifier({"arch": "resnet50", "weights": str(path), "num_classes": 10})
    assert_same_tensors(classifier.model, expected)
    assert classifier.provenance["checkpoint_format"] == "torchvision"
    assert classifier.model.fc.weight.shape == (10, 2048)


@pytest.mark.parametrize(
    ("prefix", "checkpoint_format"),
    [("module.", "dataparallel"), ("module.base_model.", "cub_resnet50")],
    ids=["dataparallel", "authors_cub_resnet50"],
)
def test_cub_resnet50_with_a_known_prefix_loads_200_classes_strictly(
    tmp_path, prefix, checkpoint_format
):
    expected = seeded_state(resnet50(num_classes=200))
    path = tmp_path / "model_best.pth.tar"
    torch.save({f"{prefix}{key}": value for key, value in expected.items()}, path)
    classifier = build_classifier({"arch": "resnet50", "weights": str(path), "num_classes": 200})
    assert_same_tensors(classifier.model, expected)
    assert classifier.provenance["checkpoint_format"] == checkpoint_format


def test_a_cub_resnet50_with_another_prefix_is_refused_naming_the_keys(tmp_path):
    expected = seeded_state(resnet50(num_classes=200))
    path = tmp_path / "model_best.pth.tar"
    torch.save({f"module.base.{key}": value for key, value in expected.items()}, path)
    with pytest.raises(CheckpointError, match=r"module\.base\.conv1\.weight"):
        build_classifier(
            {
                "arch": "resnet50",
                "weights": str(path),
                "num_classes": 200,
                "checkpoint_format": "dataparallel",
            }
        )


def test_a_classifier_checkpoint_without_its_fc_head_is_refused(tmp_path):
    state = seeded_state(resnet50())  # a backbone: no fc
    path = tmp_path / "backbone.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"318 of 320 classifier tensors match; 2 missing"):
        build_classifier({"arch": "resnet50", "weights": str(path), "num_classes": 10})


def test_a_head_with_another_number_of_classes_is_refused_with_both_shapes(tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save(seeded_state(resnet50(num_classes=10)), path)
    with pytest.raises(CheckpointError, match=r"fc.weight \(expected \[200, 2048\], found \[10,"):
        build_classifier({"arch": "resnet50", "weights": str(path), "num_classes": 200})


def test_random_resnet50_classifier_with_seed_3_gives_the_pinned_weights():
    classifier = build_classifier(
        {"arch": "resnet50", "weights": "random", "num_classes": 6, "seed": 3}
    )
    expected = "71b8ec3a8f3870779a94d49c302d262f6dce86df322de5e7665720df1978b513"
    assert state_digest(classifier.model) == expected  # computed before the backbones package


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


def test_the_authors_cub_efficientnet_b7_state_dict_loads_strictly(tmp_path):
    reference = EfficientNet.from_name("efficientnet-b0", num_classes=200, image_size=64)
    expected = seeded_state(reference)
    path = tmp_path / "efficientnetb7-cub200-best-epoch.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in expected.items()}}, path)
    classifier = build_classifier(
        {
            "arch": "efficientnet-b0",
            "weights": str(path),
            "num_classes": 200,
            "image_size": 64,
            "crop_size": 64,
        }
    )
    assert_same_tensors(classifier.model, expected)
    assert classifier.provenance["checkpoint_format"] == "dataparallel_state_dict"


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


def test_random_dino_vit_s16_with_its_linear_head_gives_the_pinned_weights():
    classifier = build_classifier({"arch": "vit_s16", "weights": "random", "num_classes": 5})
    expected = "0127a8490d696d73e6ca0d9d1bba4316f6cf8c7c88f5106e0bf02e8a97893938"
    assert state_digest(classifier.model) == expected  # computed before the backbones package


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
    config = tiny_config(classifier="dino")
    config["classifiers"] = {"dino": {"arch": "vit_s8", "weights": str(weights), "head": str(head)}}
    with pytest.raises(CheckpointError) as error:
        require_checkpoint_files(resolved(config))
    assert f"checkpoint file {head} does not exist" in str(error.value)
    assert "classifiers.dino.head" in str(error.value)
    assert "facebookresearch/dino" in str(error.value)
