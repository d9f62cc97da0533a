"""The colourfulness fixture: a backbone without learned weights for fast end-to-end tests,
registered from tests/plugins (docs/architecture.md, "Your own backbone")."""

from __future__ import annotations

import pytest
import torch
from conftest import random_config

from rpsloc.backbones.build import build_backbone
from rpsloc.errors import InputError
from rpsloc.transforms import IMAGENET_MEAN, IMAGENET_STD


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
    with pytest.raises(
        InputError, match="a model without learned parameters, so no checkpoint fits it"
    ):
        build_backbone(config, 16)


def test_colourfulness_fixture_takes_weights_none_and_says_so():
    model = build_backbone({"arch": "fixture-colourfulness", "weights": "none"}, 16)
    assert (model.provenance["weights"], model.provenance["checkpoint_format"]) == ("none", "none")
