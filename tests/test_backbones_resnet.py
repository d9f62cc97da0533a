"""torchvision's ResNet: ResNet-50, CCAM's ResNet-50 and the small ResNet (METHOD.md section 4)."""

from __future__ import annotations

import pytest
import torch
from conftest import random_config

from rpsloc.backbones.build import build_backbone
from rpsloc.backbones.resnet import resnet50, resnet_small
from rpsloc.errors import InputError


@pytest.mark.parametrize("size", [224, 448])
@pytest.mark.parametrize("output_stride", [32, 16, 8])
def test_resnet50_features_have_2048_channels_at_the_output_stride(
    random_resnet50s, size, output_stride
):
    with torch.no_grad():
        out = random_resnet50s[output_stride](torch.randn(1, 3, size, size))
    side = size // output_stride
    assert tuple(out.shape) == (1, 2048, side, side)


def test_resnet50_output_stride_sets_the_strides_of_layer1_to_layer4(random_resnet50s):
    strides = {
        os_: tuple(getattr(m, f"layer{i}")[0].conv2.stride[0] for i in range(1, 5))
        for os_, m in random_resnet50s.items()
    }
    assert strides == {32: (1, 2, 2, 2), 16: (1, 2, 2, 1), 8: (1, 2, 1, 1)}


def test_resnet50_stride_sits_on_the_3x3_conv_and_downsample_without_dilation(random_resnet50s):
    block = random_resnet50s[32].layer2[0]
    assert block.conv1.stride == (1, 1)
    assert block.conv2.stride == (2, 2)
    assert block.downsample[0].stride == (2, 2)
    convs = [m for m in random_resnet50s[8].modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 53
    assert all(m.dilation == (1, 1) for m in convs)


def test_resnet50_has_torchvision_parameter_names_and_counts(random_resnet50s):
    state = random_resnet50s[32].state_dict()
    assert len(state) == 318
    assert sum(p.numel() for p in random_resnet50s[32].parameters()) == 23_508_032
    assert "layer4.2.bn3.running_var" in state
    assert "layer3.0.downsample.1.weight" in state
    assert not any(k.startswith("fc.") for k in state)


def test_resnet50_with_classes_has_a_torchvision_fc_head():
    with torch.device("meta"):
        model = resnet50(num_classes=200)
    assert tuple(model.state_dict()["fc.weight"].shape) == (200, 2048)


def test_random_init_follows_torchvision_kaiming_fan_out_and_unit_batchnorm(random_resnet50s):
    model = random_resnet50s[32]
    expected_std = (2.0 / (64 * 7 * 7)) ** 0.5  # kaiming normal, fan_out, relu
    assert abs(model.conv1.weight.std().item() / expected_std - 1) < 0.05
    assert torch.equal(model.bn1.weight, torch.ones(64))
    assert torch.equal(model.layer1[0].bn3.bias, torch.zeros(256))


@pytest.mark.parametrize(("output_stride", "side"), [(16, 14), (8, 28)])
def test_ccam_concatenates_layer3_and_layer4(output_stride, side):
    model = build_backbone(random_config("ccam"), output_stride)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
        x3 = model.layer3(model.layer2(model.layer1(model.stem(torch.zeros(1, 3, 224, 224)))))
    assert tuple(out.shape) == (1, 3072, side, side)
    assert model.feature_dim == 3072
    assert tuple(x3.shape[-2:]) == (side, side)


def test_small_resnet_of_width_64_and_depth_2_is_torchvision_resnet18_without_fc():
    with torch.device("meta"):
        model = resnet_small(width=64, depth=2)
    assert sum(p.numel() for p in model.parameters()) == 11_689_512 - (512 * 1000 + 1000)
    assert tuple(model.state_dict()["layer4.1.conv2.weight"].shape) == (512, 512, 3, 3)
    assert model.feature_dim == 512


def test_small_resnet_refuses_a_width_or_depth_below_1():
    with pytest.raises(InputError, match="width and depth must be >= 1, got 8, 0"):
        resnet_small(width=8, depth=0)


@pytest.mark.parametrize("block", ["bottleneck", "basic"])
def test_a_block_adds_its_shortcut_into_its_own_output_without_a_new_tensor(block):
    model = resnet50() if block == "bottleneck" else resnet_small(width=8, depth=1)
    model.eval()
    with torch.inference_mode(), torch.profiler.profile() as profile:
        model(torch.randn(1, 3, 64, 64))
    operators = [event.name for event in profile.events()]
    assert "aten::add" not in operators
    assert operators.count("aten::add_") == (16 if block == "bottleneck" else 4)
