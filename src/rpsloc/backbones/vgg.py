"""VGG16 and VGG16-BN as the authors use them (METHOD.md section 4; their `models/vggtf.py`,
`vggcamtf('vggcam16bn')`): torchvision's conv stacks with torchvision's parameter names, whose
last two max-pools are replaced by 3 x 3 max-pools with stride 1 and padding 1, so the output
stride is 8 and the features are the output of the last of those pools, 512 channels."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from rpsloc.backbones.folding import fold_batch_norm

__all__ = ["VGG16", "vgg16", "vgg16_bn"]

#: torchvision's VGG16 configuration: channels, and "M" for a max-pool.
_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip

#: Pools (counted from the first) that keep torchvision's 2 x 2, stride-2 max-pool; the later
#: ones become the authors' 3 x 3, stride-1, padding-1 max-pools.
_STRIDED_POOLS = 3


class VGG16(nn.Module):
    """torchvision's `vgg16` / `vgg16_bn` conv stack (`features.N`, every index as in
    torchvision), the last two pools stride 1 (output stride 8). The `classifier` head of a
    checkpoint is ignored."""

    def __init__(self, output_stride: int = 8, batch_norm: bool = False) -> None:
        super().__init__()
        self.output_stride = output_stride
        self.feature_dim = 512
        layers: list[nn.Module] = []
        in_channels, pools = 3, 0
        for v in _VGG16_CFG:
            if v == "M":
                strided = pools < _STRIDED_POOLS
                layers.append(
                    nn.MaxPool2d(2, stride=2) if strided else nn.MaxPool2d(3, stride=1, padding=1)
                )
                pools += 1
                continue
            layers.append(nn.Conv2d(in_channels, int(v), 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(v)))
            layers.append(nn.ReLU(inplace=True))
            in_channels = int(v)
        self.features = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def fold_batch_norms(self) -> None:
        """For inference: VGG16-BN's BatchNorms folded into the convolutions before them
        (`folding`); VGG16 has none."""
        for index, layer in enumerate(self.features):
            if isinstance(layer, nn.BatchNorm2d):
                fold_batch_norm(self.features, str(index - 1), str(index))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


vgg16 = partial(VGG16, batch_norm=False)
vgg16_bn = partial(VGG16, batch_norm=True)
