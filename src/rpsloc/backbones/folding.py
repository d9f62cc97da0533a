"""BatchNorm folded into the convolution it follows, for inference (docs/architecture.md,
"Backbones").

A frozen BatchNorm is a per-channel affine map of its convolution's output, so the convolution
can carry it: its weights scaled by `gamma / sqrt(running_var + eps)`, a bias of `beta` minus the
running mean times that scale. The folded model computes the same function up to fp32 rounding
and skips a pass over each of those activations (bench/RESULTS.md, 2b and 2). Only models that
name their convolution / BatchNorm pairs fold (`fold_batch_norms` on ResNet and VGG16): which
module feeds which is never guessed from a model's layout.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fold_batch_norm"]


def fold_batch_norm(owner: nn.Module, convolution: str, norm: str) -> None:
    """Fold `owner`'s BatchNorm child `norm` into its convolution child `convolution`, which
    feeds it and nothing else; the BatchNorm becomes an identity. A pair folded already is
    left as it is."""
    conv, batch_norm = getattr(owner, convolution), getattr(owner, norm)
    if isinstance(batch_norm, nn.Identity):
        return
    if not isinstance(conv, nn.Conv2d) or not isinstance(batch_norm, nn.BatchNorm2d):
        raise TypeError(
            f"{type(owner).__name__}.{convolution} / .{norm} are a {type(conv).__name__} and a "
            f"{type(batch_norm).__name__}, not a Conv2d followed by a BatchNorm2d"
        )
    if conv.training or batch_norm.training:
        raise ValueError("BatchNorm is folded only into a model in eval mode (inference)")
    setattr(owner, convolution, fuse_conv_bn_eval(conv, batch_norm))
    setattr(owner, norm, nn.Identity())
