"""A folded convolution's ReLU, and a block's residual sum, computed inside the convolution on
the CPU (oneDNN post-operations), for inference (docs/architecture.md, "Backbones").

Once its BatchNorm is folded in (`folding`), a ResNet convolution is followed by a ReLU or by
the block's shortcut sum and a ReLU: each a pass over an activation-sized tensor in memory,
8.7 % of a ResNet-50 forward at 448 px on two cores (bench/RESULTS.md). oneDNN applies them to
the convolution's float32 results before it stores them, the same operations in the same order:
the features are the same bits (checked with oneDNN's AVX-512, AVX2 and SSE4.1 kernels), and the
forward takes 5 % less time at 448 px, 1 % at 224. Only an fp32 CPU forward without autograd
and without autocast runs fused (`fusable`): training, bf16 and CUDA run the modules as written.
"""

from __future__ import annotations

import platform

import torch
from torch import nn

__all__ = ["conv_add_relu", "conv_relu", "fusable", "hooked", "in_place_sum_exact"]

#: Processors whose oneDNN post-operations were checked against the unfused forward.
CHECKED_MACHINES = ("x86_64", "AMD64")


#: ATen's CPU capabilities under which oneDNN runs ResNet's convolutions with its brgemm
#: kernels, whose shortcut sum written in place adds the bias first, as the sum into a new
#: tensor does: the same bits. The older SSE4.1 kernels add the bias after the shortcut, one
#: rounding apart (6.7e-6 in features of magnitude 4.5), so they sum into a new tensor.
IN_PLACE_SUM_CAPABILITIES = ("AVX2", "AVX512")


def fusable(x: torch.Tensor) -> bool:
    """Whether a convolution of `x` may run with its pointwise operations fused: an fp32
    tensor on the CPU of a checked processor, with oneDNN, outside autograd and autocast."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and platform.machine() in CHECKED_MACHINES
    )


def conv_relu(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """`relu(conv(x))` in one pass."""
    return torch.ops.mkldnn._convolution_pointwise(x, *_geometry(conv), "relu", [], "")


def conv_add_relu(
    conv: nn.Conv2d, x: torch.Tensor, residual: torch.Tensor, overwrite_residual: bool = False
) -> torch.Tensor:
    """`relu(conv(x) + residual)` in one pass. With `overwrite_residual` (the caller no longer
    needs `residual`) the result is written over `residual`, which oneDNN then reads and writes
    in place instead of streaming a third activation-sized buffer: the same bits, a ResNet-50
    forward 2.5 % faster at 448 px and 4.5 % at 224 on two cores (bench/RESULTS.md)."""
    if overwrite_residual and in_place_sum_exact():
        return torch.ops.mkldnn._convolution_pointwise_.binary(
            residual, x, *_geometry(conv), "add", 1.0, "relu", [], ""
        )
    return torch.ops.mkldnn._convolution_pointwise.binary(
        x, residual, *_geometry(conv), "add", 1.0, "relu", [], ""
    )


def _geometry(conv: nn.Conv2d) -> tuple:
    return (
        conv.weight,
        conv.bias,
        list(conv.padding),
        list(conv.stride),
        list(conv.dilation),
        conv.groups,
    )


def in_place_sum_exact() -> bool:
    """Whether a shortcut sum written over its residual gives the bits of one into a new
    tensor on this CPU (`IN_PLACE_SUM_CAPABILITIES`)."""
    return torch.backends.cpu.get_cpu_capability().startswith(IN_PLACE_SUM_CAPABILITIES)


def hooked(module: nn.Module) -> bool:
    """Whether a forward or forward-pre hook, on `module`, on one of its submodules or on every
    module, may be handed a tensor of its forward: one that must then not be written over.
    torch offers no public query, so this reads the hook tables `register_*_hook` fill."""
    from torch.nn.modules import module as modules

    if modules._global_forward_hooks or modules._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())
