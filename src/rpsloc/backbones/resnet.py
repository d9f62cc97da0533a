"""torchvision's ResNet with its parameter names: ResNet-50, CCAM's ResNet-50 and the small
ResNet pretrained here, one class (METHOD.md section 4).

The stride sits on the 3x3 conv ("v1.5"). Output stride 32 / 16 / 8 sets the strides of
layer1..layer4 to (1,2,2,2) / (1,2,2,1) / (1,2,1,1): the stride is removed, no dilation. Which
output strides each architecture offers is the registry's (`rpsloc.backbones`).

Each block adds its shortcut into its own output in place, as torchvision's do: a sum into a
new tensor streams a third activation-sized buffer, which made a CPU forward of ResNet-50 3-8%
slower for the same bits (bench/RESULTS.md). Once its BatchNorms are folded, a block run for
inference on the CPU computes each ReLU and its shortcut sum inside the convolution before
(`fusion`): the same bits, 5 % faster at 448 px. Within ResNet's own forward, where no one
reads a block's input again, the shortcut sum is written over it (`run_layer`): 2.5 % (448 px)
to 4.5 % (224) more. A model with hooks, which may have been handed any activation, overwrites
none (`fusion.hooked`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from rpsloc.backbones.folding import fold_batch_norm
from rpsloc.backbones.fusion import conv_add_relu, conv_relu, fusable, hooked
from rpsloc.errors import InputError

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "ccam_resnet50", "resnet50", "resnet_small"]


def overwritable(
    block: nn.Module, x: torch.Tensor, identity: torch.Tensor, overwrite_input: bool
) -> bool:
    """Whether a block's fused shortcut sum may be written over `identity`: over its input `x`
    when the caller says so, over its downsample output unless a hook was handed that."""
    return overwrite_input if identity is x else not hooked(block.downsample)


class Bottleneck(nn.Module):
    """torchvision's Bottleneck: 1x1 -> 3x3 (carries the stride) -> 1x1, expansion 4."""

    expansion = 4
    #: (convolution, the BatchNorm it feeds), as `fold_batch_norms` folds them.
    normalised_convolutions = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor, overwrite_input: bool = False) -> torch.Tensor:
        """`overwrite_input`: the caller no longer needs `x`, so the fused shortcut sum may be
        written over it (ResNet's own forward says so)."""
        identity = x if self.downsample is None else self.downsample(x)
        if folded(self) and fusable(x):
            out = conv_relu(self.conv2, conv_relu(self.conv1, x))
            return conv_add_relu(
                self.conv3, out, identity, overwritable(self, x, identity, overwrite_input)
            )
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity
        return self.relu(out)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: 3x3 (carries the stride) -> 3x3, expansion 1."""

    expansion = 1
    normalised_convolutions = (("conv1", "bn1"), ("conv2", "bn2"))

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor, overwrite_input: bool = False) -> torch.Tensor:
        """`overwrite_input`: as Bottleneck's."""
        identity = x if self.downsample is None else self.downsample(x)
        if folded(self) and fusable(x):
            out = conv_relu(self.conv1, x)
            return conv_add_relu(
                self.conv2, out, identity, overwritable(self, x, identity, overwrite_input)
            )
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


def folded(block: Bottleneck | BasicBlock) -> bool:
    """Whether every BatchNorm of `block` is folded into its convolution (`fold_batch_norms`),
    so that each convolution is followed by a ReLU or the shortcut sum alone and may run
    fused with it (`fusion`)."""
    return all(
        isinstance(getattr(block, norm), nn.Identity) for _, norm in block.normalised_convolutions
    )


class ResNet(nn.Module):
    """torchvision's ResNet (`conv1`, `bn1`, `layerN.M.*`, `fc`); forward returns the features.

    The four stages have `width`, 2, 4 and 8 x `width` planes and `blocks` blocks of `block`, so
    `Bottleneck, (3, 4, 6, 3), 64` is ResNet-50 and `BasicBlock, (2, 2, 2, 2), 64` ResNet-18.
    Features = layer4, or with `with_layer3` layer3 and layer4 concatenated (CCAM; both at one
    resolution only at output stride 16 or 8). torchvision's init: kaiming normal (fan_out)
    convolutions, unit BatchNorm. With `num_classes` the model also has torchvision's `fc` head,
    used by `logits`; a feature backbone has none (checkpoint heads are ignored).
    """

    def __init__(
        self,
        block: type[Bottleneck | BasicBlock],
        blocks: Sequence[int],
        width: int,
        output_stride: int,
        num_classes: int | None = None,
        with_layer3: bool = False,
    ) -> None:
        super().__init__()
        # layer1 keeps the stem's stride 4; layer2..layer4 halve until output_stride is reached
        strides = [1] + [2 if 4 * 2**stage <= output_stride else 1 for stage in (1, 2, 3)]
        self.output_stride = output_stride
        self.with_layer3 = with_layer3
        channels = [width * 2**stage * block.expansion for stage in range(4)]
        self.feature_dim = channels[3] + (channels[2] if with_layer3 else 0)
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, blocks[0], strides[0])
        self.layer2 = self._make_layer(block, 2 * width, blocks[1], strides[1])
        self.layer3 = self._make_layer(block, 4 * width, blocks[2], strides[2])
        self.layer4 = self._make_layer(block, 8 * width, blocks[3], strides[3])
        self.fc = None if num_classes is None else nn.Linear(channels[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(
        self, block: type[Bottleneck | BasicBlock], planes: int, blocks: int, stride: int
    ) -> nn.Sequential:
        out = planes * block.expansion
        downsample = None
        if stride != 1 or self.inplanes != out:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, out, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = out
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def fold_batch_norms(self) -> None:
        """For inference: every BatchNorm folded into the convolution feeding it (`folding`):
        the stem's, each block's and each downsample's."""
        fold_batch_norm(self, "conv1", "bn1")
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                for convolution, norm in block.normalised_convolutions:
                    fold_batch_norm(block, convolution, norm)
                if block.downsample is not None:
                    fold_batch_norm(block.downsample, "0", "1")

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """conv1 -> bn1 -> relu -> maxpool (stride 4); the ReLU inside the convolution once
        the BatchNorm is folded (`fusion`)."""
        if isinstance(self.bn1, nn.Identity) and fusable(x):
            return self.maxpool(conv_relu(self.conv1, x))
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        overwrite = not hooked(self)
        x3 = self.stem(x)
        for layer in (self.layer1, self.layer2, self.layer3):
            x3 = self.run_layer(layer, x3, overwrite)
        x4 = self.run_layer(self.layer4, x3, overwrite, keep_input=self.with_layer3)
        return torch.cat([x3, x4], dim=1) if self.with_layer3 else x4

    @staticmethod
    def run_layer(
        layer: nn.Sequential, x: torch.Tensor, overwrite: bool, keep_input: bool = False
    ) -> torch.Tensor:
        """The blocks of `layer` in turn, with `overwrite` each allowed to write its output over
        its input (a tensor of this forward's own that nothing reads again;
        `fusion.conv_add_relu`), except the first when the caller keeps `x` (CCAM's layer3)."""
        for index, block in enumerate(layer):
            x = block(x, overwrite_input=overwrite and (index > 0 or not keep_input))
        return x

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Classifier scores: global average pool of layer4, then `fc` (needs `num_classes`)."""
        if self.fc is None:
            raise InputError("this ResNet was built without a classification head (num_classes)")
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.forward(x), 1), 1))


def resnet50(output_stride: int = 32, num_classes: int | None = None) -> ResNet:
    """ResNet-50: Bottleneck blocks (3, 4, 6, 3), features = layer4, 2048 channels."""
    return ResNet(Bottleneck, (3, 4, 6, 3), 64, output_stride, num_classes)


def ccam_resnet50(output_stride: int = 16) -> ResNet:
    """CCAM's backbone: ResNet-50 whose features are layer3 and layer4 concatenated (1024 + 2048
    channels; output stride 16 or 8, where both layers share one resolution)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), 64, output_stride, with_layer3=True)


def resnet_small(output_stride: int = 32, width: int = 32, depth: int = 1) -> ResNet:
    """A BasicBlock ResNet of configurable size, for backbones pretrained here (rpsloc.pretrain):
    `depth` blocks per stage and `width`, 2, 4, 8 x `width` channels, so `width=64, depth=2`
    is exactly torchvision's ResNet-18. Features = layer4, 8 x `width` channels."""
    if width < 1 or depth < 1:
        raise InputError(
            f"backbone 'resnet_small': width and depth must be >= 1, got {width}, {depth}"
        )
    return ResNet(BasicBlock, (depth,) * 4, width, output_stride)
