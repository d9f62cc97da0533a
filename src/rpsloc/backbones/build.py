"""A backbone from its config entry: built, filled from its checkpoint, frozen (METHOD.md
section 4; docs/architecture.md, "Backbones").

`build_backbone` looks the architecture up in the registry (`rpsloc.backbones`), builds it for
its effective output stride and fills it with a seeded random init or strictly from a checkpoint
file (`rpsloc.backbones.checkpoints`, where a model meant for a checkpoint is built on the meta
device). `for_inference` readies a built backbone the way the features stage runs it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

import torch
from torch import nn

from rpsloc.backbones import arch_options, architecture, effective_output_stride, parse_weights
from rpsloc.backbones.checkpoints import (
    apply_checkpoint_state,
    load_checkpoint_state,
    materialize_on_cpu,
    on_meta_device,
)
from rpsloc.backbones.formats import DEFAULT_MAX_BYTES
from rpsloc.errors import InputError

__all__ = ["build_backbone", "for_inference"]

logger = logging.getLogger(__name__)


def build_backbone(
    config: Mapping[str, Any], output_stride: int, checkpoint_sha256: str | None = None
) -> nn.Module:
    """A frozen backbone in eval mode from a config entry (docs/architecture.md, "Backbones").

    `config`: `arch` (a built-in or a plugin architecture), `weights` (`random`, `none` or a
    checkpoint path: `Weights`), `checkpoint_format` ("auto" or a format name), `seed` (for
    `random`), the arch's sizing keys (its record's `options`, e.g. `width` and `depth` of
    `resnet_small`) and `max_checkpoint_bytes` (the size limit of a checkpoint file; default
    `formats.DEFAULT_MAX_BYTES`). The model is built for
    `effective_output_stride(arch, output_stride)`.
    """
    arch = str(config.get("arch", ""))
    options = arch_options(arch, config)
    record, stride = architecture(arch), effective_output_stride(arch, output_stride)
    factory = partial(record.build, stride)
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


def for_inference(
    backbone: nn.Module,
    arch: str,
    device: torch.device,
    channels_last: bool | None = None,
    fold_batch_norms: bool = True,
) -> tuple[nn.Module, bool]:
    """A frozen backbone as the features stage runs it, and whether its images go in
    channels-last: BatchNorms folded into their convolutions (in place) where the model offers
    it (`folding`), moved to `device`, channels-last by default on CUDA and, on the CPU, for the
    architectures where it was measured faster (`channels_last_on_cpu`). Both change the
    numbers by fp32 rounding only (bench/RESULTS.md, 2b); `fold_batch_norms=False` and
    `channels_last=False` run the model as published. The model's `provenance` says which
    (`memory_format`, `batch_norms_folded`), so every file it writes does."""
    folded = fold_batch_norms and hasattr(backbone, "fold_batch_norms")
    if folded:
        backbone.fold_batch_norms()
    backbone = backbone.to(device)
    if channels_last is None:
        channels_last = device.type == "cuda" or architecture(arch).channels_last_on_cpu
    if channels_last:
        backbone = backbone.to(memory_format=torch.channels_last)
    backbone.provenance = {
        **backbone.provenance,
        "memory_format": "channels_last" if channels_last else "contiguous",
        "batch_norms_folded": folded,
    }
    return backbone, channels_last
