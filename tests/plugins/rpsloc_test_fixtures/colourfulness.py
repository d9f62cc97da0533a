"""The model of the test suite's backbone plugin (`rpsloc_test_fixtures`): the colourfulness
fixture, imported when the workflow first builds it."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from rpsloc.transforms import IMAGENET_MEAN, IMAGENET_STD


class ColourfulnessFixture(nn.Module):
    """TEST FIXTURE, no learned weights: a hand-made "backbone" whose features say how colourful
    each region is, so the workflow can be tested end to end on synthetic images in seconds.

    Normalised image -> un-normalise to [0, 1] RGB -> saturation s = max(rgb) - min(rgb) ->
    `avg_pool2d(kernel=output_stride, stride=output_stride)` -> channels `[8 s, 1 - s]`.
    Not a model of anything; never use it for real results.
    """

    def __init__(self, output_stride: int = 16) -> None:
        super().__init__()
        self.output_stride = output_stride
        self.feature_dim = 2
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = (x * self.std + self.mean).clamp(0.0, 1.0)
        s = rgb.amax(dim=1, keepdim=True) - rgb.amin(dim=1, keepdim=True)
        s = F.avg_pool2d(s, kernel_size=self.output_stride, stride=self.output_stride)
        return torch.cat([8.0 * s, 1.0 - s], dim=1)
