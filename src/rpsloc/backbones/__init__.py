"""Frozen feature extractors by config name: the registry of architectures (METHOD.md section 4;
docs/architecture.md, "Backbones").

Every backbone maps `(B, 3, H, W)` ImageNet-normalised images to `(B, C, H/s, W/s)` features and
carries `feature_dim`, `output_stride` and `provenance`. The models keep torchvision's (ResNet,
VGG16) and the publishing projects' (DINO, iBOT, MAE, MoCo v3, DINOv2 ViTs) parameter names, so
the checkpoints users bring load without renaming (`rpsloc.backbones.checkpoints`; every arch
and format in docs/backbones.md); `rpsloc.backbones.build.build_backbone` builds one from a
config entry. The registry is the one place that says which output strides an architecture
gives (`effective_output_stride`); architectures that are not built in come from installed
plugins (entry points of the group `rpsloc.backbones`).

This module does not import torch: the workflow reads the registry while it parses its rules,
in every Snakemake start and every cluster job, and a record names its model's module, which is
imported when a model is first built.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rpsloc.errors import InputError

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "BUILT_IN",
    "PLUGIN_GROUP",
    "Architecture",
    "Weights",
    "arch_options",
    "architecture",
    "effective_output_stride",
    "parse_weights",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Architecture:
    """One backbone architecture: how to build it and which output strides it gives.

    `factory(output_stride, **arguments, **options)` returns the model: an `nn.Module` with the
    attributes `feature_dim` (channels of its features) and `output_stride` (the one it was
    built for). `factory` is the callable itself or its import path `"package.module:name"`,
    imported at the first `build`, so that reading the registry imports no model code. It is
    called only with a stride of `output_strides` (`effective_output_stride` decides), with the
    record's fixed `arguments` and with the config keys named in `options` that a backbone entry
    sets (sizing keys such as `width` and `depth`). `patch_grid`: the features lie on a ViT's
    patch grid, so its single output stride is its patch size and another requested stride is
    replaced by it, with a warning, instead of refused (METHOD.md 4). `channels_last_on_cpu`:
    the features stage runs model and images in channels-last memory format on the CPU too (as
    on CUDA), where that was measured faster (bench/RESULTS.md, the forward benchmark).
    """

    factory: str | Callable[..., nn.Module]
    output_strides: tuple[int, ...]
    options: tuple[str, ...] = ()
    patch_grid: bool = False
    channels_last_on_cpu: bool = False
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.output_strides or (self.patch_grid and len(self.output_strides) != 1):
            raise ValueError(
                "an Architecture gives at least one output stride, and exactly one (its patch "
                f"size) with patch_grid; got {self.output_strides}"
            )
        if isinstance(self.factory, str) and self.factory.count(":") != 1:
            raise ValueError(
                f"an Architecture's factory path reads 'package.module:name', got {self.factory!r}"
            )

    def build(self, output_stride: int, **options: Any) -> nn.Module:
        """The model for `output_stride`, its factory imported if the record names it."""
        factory = self.factory
        if isinstance(factory, str):
            module, name = factory.split(":")
            try:
                factory = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError) as error:
                raise InputError(
                    f"backbone factory {self.factory!r} cannot be imported: {error}"
                ) from error
        return factory(output_stride, **self.arguments, **options)


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
    arguments = {
        "arch": arch,
        "embed_dim": embed_dim,
        "depth": depth,
        "num_heads": num_heads,
        **options,
    }
    return Architecture(
        "rpsloc.backbones.vit:vision_transformer",
        (patch_size,),
        patch_grid=True,
        arguments=arguments,
    )


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
    "resnet50": Architecture(
        "rpsloc.backbones.resnet:resnet50", (32, 16, 8), channels_last_on_cpu=True
    ),
    "ccam": Architecture(
        "rpsloc.backbones.resnet:ccam_resnet50", (16, 8), channels_last_on_cpu=True
    ),
    "resnet_small": Architecture(
        "rpsloc.backbones.resnet:resnet_small",
        (32, 16, 8),
        options=("width", "depth"),
        channels_last_on_cpu=True,
    ),
    "vgg16": Architecture("rpsloc.backbones.vgg:vgg16", (8,), channels_last_on_cpu=True),
    "vgg16_bn": Architecture("rpsloc.backbones.vgg:vgg16_bn", (8,), channels_last_on_cpu=True),
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
