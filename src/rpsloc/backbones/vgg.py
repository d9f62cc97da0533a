"""torchvision's VGG16 conv stack with its parameter names, at output stride 8 (METHOD.md
section 4)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["VGG16"]

_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip


class VGG16(nn.Module):
    """torchvision's VGG16 conv stack (`features.N`) without the max-pools past `output_stride`
    (at 8, the only stride the registry offers for VGG: the last two); features = output of the
    conv stack (last ReLU), 512 channels.

    The removed pools are `nn.Identity` at their original indices, so `features.24` etc. keep
    torchvision's names. The `classifier` head of a checkpoint is ignored.
    """

    def __init__(self, output_stride: int = 8) -> None:
        super().__init__()
        self.output_stride = output_stride
        self.feature_dim = 512
        pools = [i for i, v in enumerate(_VGG16_CFG) if v == "M"]
        removed = {i for k, i in enumerate(pools) if 2 ** (k + 1) > output_stride}
        layers: list[nn.Module] = []
        in_channels = 3
        for i, v in enumerate(_VGG16_CFG):
            if v == "M":
                layers.append(nn.Identity() if i in removed else nn.MaxPool2d(2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, int(v), 3, padding=1), nn.ReLU(inplace=True)]
                in_channels = int(v)
        self.features = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
