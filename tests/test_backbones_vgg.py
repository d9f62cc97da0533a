"""VGG16 and VGG16-BN as the authors use them (METHOD.md section 4; their `vggcamtf`):
torchvision's names, the last two max-pools 3 x 3 with stride 1 and padding 1, output stride 8."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rpsloc.backbones.build import build_backbone

#: torchvision's layer indices of the convolutions, batch norms and pools of each model.
CONVS = {
    "vgg16": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
    "vgg16_bn": (0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40),
}
BATCH_NORMS = {"vgg16": (), "vgg16_bn": (1, 4, 8, 11, 15, 18, 21, 25, 28, 31, 35, 38, 41)}
POOLS = {"vgg16": (4, 9, 16, 23, 30), "vgg16_bn": (6, 13, 23, 33, 43)}
CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)


def published_state(arch: str, seed: int = 3) -> dict[str, torch.Tensor]:
    """A random state dict with exactly torchvision's keys and shapes for `arch`'s features,
    plus one key of its classifier head (its last bias: small, and ignored like the rest)."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    in_channels = 3
    for index, channels in zip(CONVS[arch], CHANNELS, strict=True):
        state[f"features.{index}.weight"] = (
            torch.randn(channels, in_channels, 3, 3, generator=generator)
            * (2 / (9 * in_channels)) ** 0.5
        )
        state[f"features.{index}.bias"] = torch.randn(channels, generator=generator) * 0.01
        in_channels = channels
    for index, channels in zip(BATCH_NORMS[arch], CHANNELS, strict=False):
        state[f"features.{index}.weight"] = 1 + 0.1 * torch.randn(channels, generator=generator)
        state[f"features.{index}.bias"] = 0.1 * torch.randn(channels, generator=generator)
        state[f"features.{index}.running_mean"] = 0.1 * torch.randn(channels, generator=generator)
        state[f"features.{index}.running_var"] = 1 + torch.rand(channels, generator=generator)
        state[f"features.{index}.num_batches_tracked"] = torch.tensor(7)
    state["classifier.6.bias"] = torch.zeros(1000)
    return state


#: The authors' `cfg['vggcam16']`: "N" is their 3 x 3, stride-1, padding-1 max-pool.
AUTHORS_CFG = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "N",
    512,
    512,
    512,
    "N",
)


def independent_forward(arch: str, state: dict[str, torch.Tensor]) -> nn.Sequential:
    """The authors' `make_layers(cfg['vggcam16'], batch_norm=...)`, written out in plain
    torch.nn, loaded with the same state dict."""
    layers: list[nn.Module] = []
    in_channels = 3
    for v in AUTHORS_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        elif v == "N":
            layers.append(nn.MaxPool2d(kernel_size=3, stride=1, padding=1))
        else:
            layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))
            if arch == "vgg16_bn":
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            in_channels = v
    model = nn.Sequential(*layers)
    model.load_state_dict({k[len("features.") :]: v for k, v in state.items() if "features" in k})
    return model.eval()


@pytest.mark.parametrize("arch", ["vgg16", "vgg16_bn"])
def test_a_checkpoint_in_torchvision_names_loads_strictly(arch, tmp_path):
    torch.save(published_state(arch), tmp_path / f"{arch}.pth")
    model = build_backbone({"arch": arch, "weights": str(tmp_path / f"{arch}.pth")}, 8)
    expected = {k: v for k, v in published_state(arch).items() if k.startswith("features")}
    assert set(model.state_dict()) == set(expected)
    for key, value in expected.items():
        assert torch.equal(model.state_dict()[key], value), key


@pytest.mark.parametrize("arch", ["vgg16", "vgg16_bn"])
def test_the_last_two_pools_are_3x3_stride_1_so_the_output_stride_is_8(arch):
    model = build_backbone({"arch": arch, "weights": "random"}, 8)
    first, *_, fourth, fifth = (model.features[i] for i in POOLS[arch])
    assert (first.kernel_size, first.stride) == (2, 2)
    for pool in (fourth, fifth):
        assert (pool.kernel_size, pool.stride, pool.padding) == (3, 1, 1)
    with torch.no_grad():
        features = model(torch.randn(1, 3, 224, 224))
    assert tuple(features.shape) == (1, 512, 28, 28)


@pytest.mark.parametrize("arch", ["vgg16", "vgg16_bn"])
def test_features_equal_an_independent_forward_of_the_authors_layers(arch, tmp_path):
    state = published_state(arch)
    torch.save(state, tmp_path / f"{arch}.pth")
    model = build_backbone({"arch": arch, "weights": str(tmp_path / f"{arch}.pth")}, 8)
    images = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = model(images), independent_forward(arch, state)(images)
    assert tuple(ours.shape) == (2, 512, 8, 12)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_a_vgg16_bn_checkpoint_does_not_load_into_plain_vgg16(tmp_path):
    torch.save(published_state("vgg16_bn"), tmp_path / "bn.pth")
    with pytest.raises(Exception, match="features.2.weight"):
        build_backbone({"arch": "vgg16", "weights": str(tmp_path / "bn.pth")}, 8)
