"""torchvision's VGG16 conv stack at output stride 8 (METHOD.md section 4)."""

from __future__ import annotations

import torch
from conftest import random_config

from rpsloc.backbones import build_backbone


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
