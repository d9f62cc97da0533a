"""Frozen feature extractors by config name: the registry of architectures and `build_backbone`
(METHOD.md section 4; docs/architecture.md, "Backbones").

Every backbone maps `(B, 3, H, W)` ImageNet-normalised images to `(B, C, H/s, W/s)` features and
carries `feature_dim`, `output_stride` and `provenance`. The models keep torchvision's (ResNet,
VGG16) and the publishing projects' (DINO, iBOT, MAE, MoCo v3, DINOv2 ViTs) parameter names, so
the checkpoints users bring load without renaming (`rpsloc.backbones.checkpoints`; every arch
and format in docs/backbones.md). The registry is the one place that says which output strides
an architecture gives (`effective_output_stride`); architectures that are not built in come from
installed plugins (entry points of the group `rpsloc.backbones`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from rpsloc.backbones.resnet import ccam_resnet50, resnet50, resnet_small
from rpsloc.backbones.vgg import vgg16, vgg16_bn
from rpsloc.backbones.vit import vision_transformer
from rpsloc.errors import InputError

__all__ = [
    "BUILT_IN",
    "PLUGIN_GROUP",
    "Architecture",
    "Weights",
    "arch_options",
    "architecture",
    "build_backbone",
    "materialize_on_cpu",
    "on_meta_device",
    "effective_output_stride",
    "parse_weights",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Architecture:
    """One backbone architecture: how to build it and which output strides it gives.

    `factory(output_stride, **options)` returns the model: an `nn.Module` with the attributes
    `feature_dim` (channels of its features) and `output_stride` (the one it was built for). It
    is called only with a stride of `output_strides` (`effective_output_stride` decides) and
    with the config keys named in `options` that a backbone entry sets (sizing keys such as
    `width` and `depth`). `patch_grid`: the features lie on a ViT's patch grid, so its single
    output stride is its patch size and another requested stride is replaced by it, with a
    warning, instead of refused (METHOD.md 4). `channels_last_on_cpu`: the features stage runs
    model and images in channels-last memory format on the CPU too (as on CUDA), where that was
    measured faster (bench/RESULTS.md, the forward benchmark).
    """

    factory: Callable[..., nn.Module]
    output_strides: tuple[int, ...]
    options: tuple[str, ...] = ()
    patch_grid: bool = False
    channels_last_on_cpu: bool = False

    def __post_init__(self) -> None:
        if not self.output_strides or (self.patch_grid and len(self.output_strides) != 1):
            raise ValueError(
                "an Architecture gives at least one output stride, and exactly one (its patch "
                f"size) with patch_grid; got {self.output_strides}"
            )


@dataclass(frozen=True)
class Weights:
    """Where a backbone's parameters come from: the `weights` key of its config entry, parsed
    by `parse_weights` (METHOD.md 4). `kind` is one of:

    - `random`: the architecture's own init (torchvision's, DINO's) under
      `torch.manual_seed(seed)`: same seed, same weights; labelled `random` in every output.
    - `none`: a model without learned parameters (a fixed function such as the test fixture):
      no checkpoint and no seed needed.
    - `pretrain`: trained by the workflow's pretrain stage (docs/pretraining.md), which hands
      its checkpoint on to the features stage as a `file`.
    - `file`: the local checkpoint file `path`, loaded strictly and safely; nothing is
      downloaded (rpsloc.backbones.checkpoints).
    """

    kind: Literal["random", "none", "pretrain", "file"]
    path: Path | None = None


_WORDS = {kind: Weights(kind) for kind in ("random", "none", "pretrain")}


def parse_weights(value: str | Path) -> Weights:
    """The meaning of a `weights` value: one of the words `random`, `none`, `pretrain`, else
    the path of a checkpoint file."""
    text = str(value)
    return _WORDS.get(text) or Weights("file", Path(text))


def _vit(
    arch: str, patch_size: int, embed_dim: int, depth: int, num_heads: int, **options: Any
) -> Architecture:
    """A ViT record: its features lie on its patch grid (`rpsloc.backbones.vit`)."""
    factory = partial(
        vision_transformer,
        arch=arch,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        **options,
    )
    return Architecture(factory, (patch_size,), patch_grid=True)


#: DINOv2's hub models (dinov2/hub/backbones.py): a 518-pixel position table, LayerScale and
#: the mask token; with registers, 4 register tokens and interpolation to the exact size with
#: antialiasing instead of DINO's offset scale factor.
_DINOV2: dict[str, Any] = {"img_size": 518, "layer_scale": True, "mask_token": True}
_DINOV2_REG: dict[str, Any] = {
    **_DINOV2,
    "registers": 4,
    "interpolate_offset": 0.0,
    "interpolate_antialias": True,
}

#: The architectures that come with rpsloc, by config name (`arch`). DINO's ViTs (`vit_*`) also
#: hold iBOT's and MAE's checkpoints, which have their names and heads; MoCo v3's ViT-S has 12
#: heads where DINO's has 6, so MoCo v3 has its own (docs/backbones.md).
BUILT_IN: dict[str, Architecture] = {
    "resnet50": Architecture(resnet50, (32, 16, 8), channels_last_on_cpu=True),
    "ccam": Architecture(ccam_resnet50, (16, 8), channels_last_on_cpu=True),
    "resnet_small": Architecture(
        resnet_small, (32, 16, 8), options=("width", "depth"), channels_last_on_cpu=True
    ),
    "vgg16": Architecture(vgg16, (8,), channels_last_on_cpu=True),
    "vgg16_bn": Architecture(vgg16_bn, (8,), channels_last_on_cpu=True),
    "vit_s16": _vit("vit_s16", 16, 384, 12, 6),
    "vit_s8": _vit("vit_s8", 8, 384, 12, 6),
    "vit_b16": _vit("vit_b16", 16, 768, 12, 12),
    "vit_b8": _vit("vit_b8", 8, 768, 12, 12),
    "mocov3_vits16": _vit("mocov3_vits16", 16, 384, 12, 12, sincos_position=True),
    "mocov3_vitb16": _vit("mocov3_vitb16", 16, 768, 12, 12, sincos_position=True),
    "dinov2_vits14": _vit("dinov2_vits14", 14, 384, 12, 6, **_DINOV2),
    "dinov2_vitb14": _vit("dinov2_vitb14", 14, 768, 12, 12, **_DINOV2),
    "dinov2_vitl14": _vit("dinov2_vitl14", 14, 1024, 24, 16, **_DINOV2),
    "dinov2_vitg14": _vit("dinov2_vitg14", 14, 1536, 40, 24, swiglu=True, **_DINOV2),
    "dinov2_vits14_reg": _vit("dinov2_vits14_reg", 14, 384, 12, 6, **_DINOV2_REG),
    "dinov2_vitb14_reg": _vit("dinov2_vitb14_reg", 14, 768, 12, 12, **_DINOV2_REG),
    "dinov2_vitl14_reg": _vit("dinov2_vitl14_reg", 14, 1024, 24, 16, **_DINOV2_REG),
    "dinov2_vitg14_reg": _vit("dinov2_vitg14_reg", 14, 1536, 40, 24, swiglu=True, **_DINOV2_REG),
}


#: The entry-point group in which installed packages register their own architectures.
PLUGIN_GROUP = "rpsloc.backbones"


def architecture(arch: str) -> Architecture:
    """The record of the architecture called `arch` in a backbone config entry: a built-in one,
    else the `Architecture` that the entry point of that name in PLUGIN_GROUP gives (a backbone
    of the user's own, docs/architecture.md "Your own backbone")."""
    if arch in BUILT_IN:
        return BUILT_IN[arch]
    plugins = {point.name: point for point in entry_points(group=PLUGIN_GROUP)}
    if arch not in plugins:
        raise InputError(
            f"unknown backbone arch {arch!r}; expected one of the built-in {sorted(BUILT_IN)} "
            f"or of the installed plugins {sorted(plugins)} (entry points of group "
            f"{PLUGIN_GROUP!r})"
        )
    record = plugins[arch].load()
    if not isinstance(record, Architecture):
        raise InputError(
            f"backbone plugin {arch!r}: its entry point {plugins[arch].value!r} gives a "
            f"{type(record).__name__}, not an rpsloc.backbones.Architecture"
        )
    return record


def effective_output_stride(arch: str, requested: int) -> int:
    """The output stride the model of `arch` really has when `requested` is asked for (METHOD.md
    4): a ViT's patch size, with a warning when another was asked (one dataset stride serves all
    its backbones); else `requested` when `arch` gives it, and an `InputError` when not."""
    record = architecture(arch)
    if record.patch_grid:
        (patch_size,) = record.output_strides
        if requested != patch_size:
            logger.warning(
                "backbone %s: output_stride %s requested, but a ViT's output stride is its "
                "patch size; using %s",
                arch,
                requested,
                patch_size,
            )
        return patch_size
    if requested not in record.output_strides:
        raise InputError(
            f"backbone {arch!r}: output_stride must be one of {list(record.output_strides)}, "
            f"got {requested!r}"
        )
    return requested


def arch_options(arch: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The architecture-sizing keys of a backbone config entry; an error for keys `arch` lacks."""
    allowed = architecture(arch).options
    sized = sorted(name for name, record in BUILT_IN.items() if record.options)
    every = {key for record in BUILT_IN.values() for key in record.options}
    wrong = sorted(key for key in every - set(allowed) if key in config)
    if wrong:
        raise InputError(
            f"backbone {arch!r} takes no {', '.join(wrong)}: those keys size only the "
            f"architectures {sized}"
        )
    return {key: config[key] for key in allowed if key in config}


class _MetaNormalSkipped(TorchFunctionMode):
    """`Tensor.normal_` left undone on meta tensors, whose values a checkpoint replaces anyway:
    on the meta device torch runs it through a Python reference whose first call imports
    torch._dynamo, about 1.5 s paid by every job that loads a ResNet or VGG checkpoint
    (bench/job_overhead.py)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.Tensor.normal_ and args[0].is_meta:
            return args[0]
        return func(*args, **(kwargs or {}))


@contextmanager
def on_meta_device() -> Iterator[None]:
    """Modules built inside hold meta tensors (names and shapes, no memory, no init), for a
    checkpoint to fill."""
    with torch.device("meta"), _MetaNormalSkipped():
        yield


def materialize_on_cpu(model: nn.Module) -> None:
    """`model.to_empty(device="cpu")` for a model built `on_meta_device`, without torch's
    Python reference of `empty_like` for meta tensors, whose first call imports sympy (about
    1 s per job that loads a checkpoint)."""
    model._apply(lambda tensor: torch.empty(tensor.shape, dtype=tensor.dtype))


def build_backbone(
    config: Mapping[str, Any], output_stride: int, checkpoint_sha256: str | None = None
) -> nn.Module:
    """A frozen backbone in eval mode from a config entry (docs/architecture.md, "Backbones").

    `config`: `arch` (a built-in or a plugin architecture), `weights` (`random`, `none` or a
    checkpoint path: `Weights`), `checkpoint_format` ("auto" or a format name), `seed` (for
    `random`), the arch's sizing keys (its record's `options`, e.g. `width` and `depth` of
    `resnet_small`) and `max_checkpoint_bytes` (the size limit of a checkpoint file; default
    `checkpoints.DEFAULT_MAX_BYTES`). The model is built for
    `effective_output_stride(arch, output_stride)`.
    """
    arch = str(config.get("arch", ""))
    options = arch_options(arch, config)
    factory = partial(architecture(arch).factory, effective_output_stride(arch, output_stride))
    weights = str(config.get("weights", "random"))
    source = parse_weights(weights)
    checkpoint_format = str(config.get("checkpoint_format", "auto"))
    seed = config.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"backbone {arch!r}: seed must be an integer, got {seed!r}")
    sha = ""
    if source.kind == "pretrain":
        raise InputError(
            f"backbone {arch!r}: weights 'pretrain' names the pretrain stage's checkpoint, which "
            "the workflow passes on as a file (docs/pretraining.md); build it from that file"
        )
    if source.kind == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = factory(**options)
        fmt_name = "random"
    elif source.kind == "none":
        model = factory(**options)
        if model.state_dict():
            raise InputError(
                f"backbone {arch!r} has learned parameters: weights 'none' is for models "
                "without any; use 'random' (a seeded init) or a checkpoint file"
            )
        fmt_name = "none"
    else:
        with on_meta_device():
            model = factory(**options)
        if not model.state_dict():
            raise InputError(
                f"backbone {arch!r} is a model without learned parameters, so no checkpoint "
                f"fits it: weights must be 'random' or 'none', got {weights!r}"
            )
        # imported here: the checkpoint module looks architectures up in this registry
        from rpsloc.backbones.checkpoints import (
            DEFAULT_MAX_BYTES,
            apply_checkpoint_state,
            load_checkpoint_state,
        )

        max_bytes = int(config.get("max_checkpoint_bytes", DEFAULT_MAX_BYTES))
        state, report = load_checkpoint_state(
            source.path, arch, checkpoint_format, options, max_bytes, checkpoint_sha256
        )
        materialize_on_cpu(model)
        apply_checkpoint_state(model, state)
        sha, fmt_name = report.checkpoint_sha256, report.format
        logger.info("%s", report.summary())
    model.eval()
    model.requires_grad_(False)
    model.provenance = {
        "arch": arch,
        "weights": weights,
        "checkpoint_sha256": sha,
        "checkpoint_format": fmt_name,
        "seed": seed,
        **options,
    }
    return model
