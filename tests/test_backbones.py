"""Backbone architectures, random initialisation and the test fixture (METHOD.md section 4)."""

from __future__ import annotations

import pytest
import torch
from conftest import state_digest

from rpsloc.backbones import (
    BACKBONES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ResNet50,
    build_backbone,
)
from rpsloc.errors import InputError


def random_config(arch: str = "resnet50", seed: int = 0) -> dict[str, object]:
    return {"arch": arch, "weights": "random", "checkpoint_format": "auto", "seed": seed}


@pytest.fixture(scope="module")
def resnets() -> dict[int, torch.nn.Module]:
    """One random ResNet-50 per output stride, built once for the module."""
    return {s: build_backbone(random_config(seed=0), s) for s in (32, 16, 8)}


@pytest.mark.parametrize("size", [224, 448])
@pytest.mark.parametrize("output_stride", [32, 16, 8])
def test_resnet50_features_have_2048_channels_at_the_output_stride(resnets, size, output_stride):
    with torch.no_grad():
        out = resnets[output_stride](torch.randn(1, 3, size, size))
    side = size // output_stride
    assert tuple(out.shape) == (1, 2048, side, side)


def test_resnet50_output_stride_sets_the_strides_of_layer1_to_layer4(resnets):
    strides = {
        os_: tuple(getattr(m, f"layer{i}")[0].conv2.stride[0] for i in range(1, 5))
        for os_, m in resnets.items()
    }
    assert strides == {32: (1, 2, 2, 2), 16: (1, 2, 2, 1), 8: (1, 2, 1, 1)}


def test_resnet50_stride_sits_on_the_3x3_conv_and_downsample_without_dilation(resnets):
    block = resnets[32].layer2[0]
    assert block.conv1.stride == (1, 1)
    assert block.conv2.stride == (2, 2)
    assert block.downsample[0].stride == (2, 2)
    convs = [m for m in resnets[8].modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 53
    assert all(m.dilation == (1, 1) for m in convs)


def test_resnet50_has_torchvision_parameter_names_and_counts(resnets):
    state = resnets[32].state_dict()
    assert len(state) == 318
    assert sum(p.numel() for p in resnets[32].parameters()) == 23_508_032
    assert "layer4.2.bn3.running_var" in state
    assert "layer3.0.downsample.1.weight" in state
    assert not any(k.startswith("fc.") for k in state)


def test_resnet50_with_classes_has_a_torchvision_fc_head():
    with torch.device("meta"):
        model = ResNet50(num_classes=200)
    assert tuple(model.state_dict()["fc.weight"].shape) == (200, 2048)


def test_backbone_attributes_and_provenance_say_random_init(resnets):
    model = resnets[16]
    assert (model.feature_dim, model.output_stride) == (2048, 16)
    assert model.provenance == {
        "arch": "resnet50",
        "weights": "random",
        "checkpoint_sha256": "",
        "checkpoint_format": "random",
        "seed": 0,
    }


def test_backbone_is_frozen_in_eval_mode(resnets):
    model = resnets[32]
    assert not model.training
    assert not any(m.training for m in model.modules())
    assert not any(p.requires_grad for p in model.parameters())


def test_random_init_is_identical_for_the_same_seed(resnets):
    again = build_backbone(random_config(seed=0), 32)
    first = resnets[32].state_dict()
    assert all(torch.equal(v, first[k]) for k, v in again.state_dict().items())


def test_random_init_differs_across_seeds(resnets):
    other = build_backbone(random_config(seed=1), 32)
    assert not torch.equal(other.conv1.weight, resnets[32].conv1.weight)
    assert not torch.equal(other.layer4[2].conv3.weight, resnets[32].layer4[2].conv3.weight)


def test_random_init_leaves_the_global_random_state_alone():
    before = torch.random.get_rng_state()
    build_backbone(random_config("fixture-colourfulness"), 8)
    build_backbone(random_config("vgg16"), 8)
    assert torch.equal(torch.random.get_rng_state(), before)


#: Digests of `weights: random, seed: 0`, computed before backbones.py became a package: a
#: change of construction or initialisation order changes every random-init result.
RANDOM_INIT_DIGESTS = {
    "resnet50": ({}, 32, "d7d7c20196ade9df9b2b1ae4c0007df571111590e1d4daa0c59ba0499d90e3d6"),
    "resnet_small": (
        {"width": 32, "depth": 1},
        32,
        "38e165ba5283a8acf419a8bd8b506a0d50cf841e95d257aa37f0746db65f88da",
    ),
    "vgg16": ({}, 8, "7b1d44c8adbab3ad02b79c56f9c12fab26351ea0c6f750c1651c38995b5eed18"),
    "vit_s16": ({}, 16, "1de335c7d803bb82470f080759034cb9dc8e19ddbc4bad031497cbcf94415d87"),
}


@pytest.mark.parametrize("arch", sorted(RANDOM_INIT_DIGESTS))
def test_random_init_with_seed_0_gives_the_pinned_weights(arch):
    options, output_stride, expected = RANDOM_INIT_DIGESTS[arch]
    model = build_backbone({**random_config(arch), **options}, output_stride)
    assert state_digest(model) == expected


def test_random_init_follows_torchvision_kaiming_fan_out_and_unit_batchnorm(resnets):
    model = resnets[32]
    expected_std = (2.0 / (64 * 7 * 7)) ** 0.5  # kaiming normal, fan_out, relu
    assert abs(model.conv1.weight.std().item() / expected_std - 1) < 0.05
    assert torch.equal(model.bn1.weight, torch.ones(64))
    assert torch.equal(model.layer1[0].bn3.bias, torch.zeros(256))


@pytest.mark.parametrize(("arch", "output_stride"), [("resnet50", 4), ("ccam", 32), ("vgg16", 16)])
def test_unsupported_output_stride_is_refused(arch, output_stride):
    with pytest.raises(InputError, match="output_stride must be one of"):
        build_backbone(random_config(arch), output_stride)


def test_unknown_arch_is_refused_with_the_known_names():
    with pytest.raises(InputError, match="resnet50"):
        build_backbone(random_config("resnet51"), 32)


@pytest.mark.parametrize(("output_stride", "side"), [(16, 14), (8, 28)])
def test_ccam_concatenates_layer3_and_layer4(output_stride, side):
    model = build_backbone(random_config("ccam"), output_stride)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
        x3 = model.layer3(model.layer2(model.layer1(model.stem(torch.zeros(1, 3, 224, 224)))))
    assert tuple(out.shape) == (1, 3072, side, side)
    assert model.feature_dim == 3072
    assert tuple(x3.shape[-2:]) == (side, side)


def test_vgg16_keeps_torchvision_names_without_the_last_two_pools():
    model = build_backbone(random_config("vgg16"), 8)
    names = set(model.state_dict())
    assert {"features.0.weight", "features.28.weight", "features.28.bias"} <= names
    assert len(names) == 26
    assert isinstance(model.features[23], torch.nn.Identity)
    assert isinstance(model.features[30], torch.nn.Identity)
    assert isinstance(model.features[16], torch.nn.MaxPool2d)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
    assert tuple(out.shape) == (1, 512, 28, 28)
    assert out.min().item() >= 0.0


@pytest.fixture(scope="module")
def vit_s16() -> torch.nn.Module:
    return build_backbone(random_config("vit_s16"), 16)


def test_vit_has_dino_parameter_names(vit_s16):
    state = vit_s16.state_dict()
    assert tuple(state["pos_embed"].shape) == (1, 197, 384)
    assert tuple(state["cls_token"].shape) == (1, 1, 384)
    assert tuple(state["patch_embed.proj.weight"].shape) == (384, 3, 16, 16)
    assert tuple(state["blocks.11.attn.qkv.weight"].shape) == (1152, 384)
    assert {"blocks.0.norm1.weight", "blocks.0.mlp.fc2.bias", "norm.weight"} <= set(state)
    assert sum(p.numel() for p in vit_s16.parameters()) == 21_665_664


@pytest.mark.parametrize(("height", "width"), [(224, 224), (448, 448), (160, 96)])
def test_vit_gives_relu_patch_tokens_on_the_patch_grid(vit_s16, height, width):
    with torch.no_grad():
        out = vit_s16(torch.randn(1, 3, height, width))
    assert tuple(out.shape) == (1, 384, height // 16, width // 16)
    assert out.min().item() >= 0.0


def test_vit_features_are_the_final_norm_patch_tokens_without_cls(vit_s16):
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        tokens = vit_s16.patch_embed(x)
        tokens = torch.cat((vit_s16.cls_token, tokens), dim=1) + vit_s16.pos_embed
        for blk in vit_s16.blocks:
            tokens = blk(tokens)
        expected = torch.relu(vit_s16.norm(tokens)[0, 1:]).T.reshape(384, 14, 14)
        out = vit_s16(x)[0]
    assert torch.allclose(out, expected, atol=1e-5)


def test_vit_position_embedding_is_kept_at_the_training_size(vit_s16):
    tokens = torch.zeros(1, 1 + 14 * 14, 384)
    assert vit_s16.interpolate_pos_encoding(tokens, 224, 224) is vit_s16.pos_embed


def test_vit_position_embedding_is_interpolated_bicubically_as_dino_does(vit_s16):
    tokens = torch.zeros(1, 1 + 28 * 24, 384)
    pos = vit_s16.interpolate_pos_encoding(tokens, 448, 384)
    grid = vit_s16.pos_embed[:, 1:].reshape(1, 14, 14, 384).permute(0, 3, 1, 2)
    # DINO passes scale_factor (n + 0.1) / 14, not a size: the sampling grid differs slightly
    scale = ((28 + 0.1) / 14, (24 + 0.1) / 14)
    expected = torch.nn.functional.interpolate(grid, scale_factor=scale, mode="bicubic")
    assert tuple(pos.shape) == (1, 1 + 28 * 24, 384)
    assert torch.equal(pos[:, 0], vit_s16.pos_embed[:, 0])
    assert torch.allclose(pos[0, 1:].T.reshape(384, 28, 24), expected[0], atol=1e-6)


def test_vit_warns_when_asked_for_another_output_stride(caplog):
    with torch.device("meta"):
        model = BACKBONES["vit_s16"](output_stride=32)
    assert model.output_stride == 16
    assert "a ViT's output stride is its patch size; using 16" in caplog.text


def test_vit_output_stride_is_its_patch_size():
    with torch.device("meta"):
        model = BACKBONES["vit_b8"](output_stride=8)
    assert (model.output_stride, model.feature_dim) == (8, 768)


def normalise(rgb: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (rgb - mean) / std


def test_colourfulness_fixture_gives_8s_and_1_minus_s_per_cell():
    rgb = torch.full((1, 3, 8, 8), 0.5)  # grey: saturation 0
    rgb[0, :, 0:4, 0:4] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)  # red: s = 1
    rgb[0, :, 0:4, 4:8] = torch.tensor([0.2, 0.6, 0.4]).view(3, 1, 1)  # s = 0.4
    rgb[0, :, 4:8, 0:2] = torch.tensor([0.1, 0.3, 0.9]).view(3, 1, 1)  # half the cell, s = 0.8
    model = build_backbone(random_config("fixture-colourfulness"), 4)
    out = model(normalise(rgb))
    s = torch.tensor([[1.0, 0.4], [0.4, 0.0]])
    assert tuple(out.shape) == (1, 2, 2, 2)
    assert torch.allclose(out[0, 0], 8 * s, atol=1e-5)
    assert torch.allclose(out[0, 1], 1 - s, atol=1e-6)
    assert model.feature_dim == 2


@pytest.mark.parametrize("output_stride", [4, 8, 16, 32])
def test_colourfulness_fixture_accepts_any_output_stride(output_stride):
    model = build_backbone(random_config("fixture-colourfulness"), output_stride)
    out = model(torch.zeros(1, 3, 64, 64))
    assert tuple(out.shape) == (1, 2, 64 // output_stride, 64 // output_stride)
    assert model.provenance["checkpoint_format"] == "random"


def test_colourfulness_fixture_refuses_a_checkpoint(tmp_path):
    config = {"arch": "fixture-colourfulness", "weights": str(tmp_path / "w.pth"), "seed": 0}
    with pytest.raises(InputError, match="test fixture without weights"):
        build_backbone(config, 16)
