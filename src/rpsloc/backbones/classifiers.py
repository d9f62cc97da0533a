"""Classifiers for Top-1 / Top-5 Loc, loaded strictly and safely from local checkpoints
(METHOD.md sections 3 and 4; docs/classifiers.md).

Three families, each with the parameter names of the project that publishes its weights:

- `resnet50`: torchvision's ResNet-50 with its `fc` head (ImageNet: 1000 classes; a CUB-trained
  one has 200 and usually a `module.` prefix: format `dataparallel`).
- `efficientnet-b0` ... `efficientnet-b7`: `efficientnet_pytorch.EfficientNet.from_name` (never
  `from_pretrained`, which downloads), weights from a local state dict, at the model's own input
  resolution (600 for B7) unless configured otherwise.
- `vit_s8`, `vit_s16`, `vit_b8`, `vit_b16`: a DINO ViT with the linear head of DINO's
  `eval_linear.py` (CLS tokens of the last `n_last_blocks` blocks, optionally the mean patch
  token), backbone weights from `weights` and the head from `head`.

Every checkpoint goes through `rpsloc.backbones.checkpoints`: `weights_only=True`, container and
prefix stripped, every tensor present with the right shape, the head included. The classify
stage that runs them is `rpsloc.classify`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from efficientnet_pytorch import EfficientNet
from torch import nn

from rpsloc.backbones import architecture, parse_weights
from rpsloc.backbones.build import build_backbone
from rpsloc.backbones.checkpoints import (
    LoadReport,
    apply_checkpoint_state,
    fit_checkpoint,
    materialize_on_cpu,
    on_meta_device,
    read_checkpoint,
)
from rpsloc.backbones.formats import (
    DINO_LINEAR_FORMATS,
    EFFICIENTNET_FORMATS,
    RESNET_FORMATS,
    CheckpointFormat,
)
from rpsloc.backbones.resnet import ResNet, resnet50
from rpsloc.backbones.vit import VisionTransformer
from rpsloc.errors import InputError
from rpsloc.settings import DINO_VITS, RESNETS, classifier_settings

__all__ = ["Classifier", "DinoLinearClassifier", "build_classifier"]

logger = logging.getLogger(__name__)


@dataclass
class Classifier:
    """A frozen classifier: `scores` maps normalised `(B, 3, crop, crop)` images to logits."""

    model: nn.Module
    scores: Callable[[torch.Tensor], torch.Tensor]
    image_size: int
    crop_size: int
    num_classes: int
    provenance: dict[str, Any]


class DinoLinearClassifier(nn.Module):
    """DINO's linear evaluation (eval_linear.py): the final-norm CLS tokens of the last
    `n_last_blocks` blocks concatenated, with `avgpool_patchtokens` the mean patch token of the
    last block interleaved as DINO does (`cat(..., dim=-1)` of two columns, then flattened; DINO
    only allows it with one block), then `linear`."""

    def __init__(
        self,
        backbone: VisionTransformer,
        num_classes: int,
        n_last_blocks: int,
        avgpool_patchtokens: bool,
    ) -> None:
        super().__init__()
        if n_last_blocks < 1 or n_last_blocks > len(backbone.blocks):
            raise InputError(
                f"classifier {backbone.arch!r}: n_last_blocks must be in 1..{len(backbone.blocks)}"
                f", got {n_last_blocks}"
            )
        if avgpool_patchtokens and n_last_blocks != 1:
            raise InputError(
                f"classifier {backbone.arch!r}: avgpool_patchtokens needs n_last_blocks 1 (as in "
                f"DINO's eval_linear.py), got {n_last_blocks}"
            )
        self.backbone = backbone
        self.n_last_blocks = n_last_blocks
        self.avgpool_patchtokens = avgpool_patchtokens
        dim = backbone.feature_dim * (n_last_blocks + int(avgpool_patchtokens))
        self.linear = nn.Linear(dim, num_classes)
        self.linear.weight.data.normal_(mean=0.0, std=0.01)
        self.linear.bias.data.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.backbone.get_intermediate_layers(x, self.n_last_blocks)
        output = torch.cat([t[:, 0] for t in tokens], dim=-1)
        if self.avgpool_patchtokens:
            mean_patch = tokens[-1][:, 1:].mean(dim=1)
            output = torch.cat((output.unsqueeze(-1), mean_patch.unsqueeze(-1)), dim=-1)
            output = output.reshape(output.shape[0], -1)
        return self.linear(output)


def _expected(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def _load_strict(
    model: nn.Module,
    path: str,
    arch: str,
    checkpoint_format: str,
    formats: Mapping[str, CheckpointFormat],
    key: str,
    kind: str,
) -> tuple[nn.Module, LoadReport]:
    """Fill a model built on the meta device from a checkpoint that must fit it entirely."""
    raw = read_checkpoint(path, arch, checkpoint_format, formats, key)
    state, report = fit_checkpoint(
        raw, Path(path), arch, _expected(model), checkpoint_format, formats, kind
    )
    materialize_on_cpu(model)
    apply_checkpoint_state(model, state)
    logger.info("%s", report.summary())
    return model, report


def _random(factory: Callable[[], nn.Module], seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


def build_classifier(config: Mapping[str, Any]) -> Classifier:
    """A frozen classifier in eval mode from a `classifiers:` config entry (defaults from
    `classifier_settings`); `weights: random` gives a seeded random init, labelled `random`."""
    settings = classifier_settings(config)
    arch, weights = settings["arch"], str(settings["weights"])
    checkpoint_format, seed = str(settings["checkpoint_format"]), int(settings["seed"])
    num_classes = int(settings["num_classes"])
    provenance: dict[str, Any] = {
        "arch": arch,
        "weights": weights,
        "checkpoint_sha256": "",
        "checkpoint_format": "random",
        "seed": seed,
        "num_classes": num_classes,
        "image_size": int(settings["image_size"]),
        "crop_size": int(settings["crop_size"]),
    }
    if arch in DINO_VITS:
        model = _dino_linear(settings, provenance)
        scores = model
    else:
        if arch in RESNETS:
            factory = lambda: resnet50(num_classes=num_classes)  # noqa: E731
            formats = RESNET_FORMATS
        else:
            factory = lambda: EfficientNet.from_name(  # noqa: E731
                arch, num_classes=num_classes, image_size=int(settings["crop_size"])
            )
            formats = EFFICIENTNET_FORMATS
        if parse_weights(weights).kind == "random":
            model = _random(factory, seed)
        else:
            with on_meta_device():
                model = factory()
            model, report = _load_strict(
                model, weights, arch, checkpoint_format, formats, "classifier `weights`",
                "classifier",
            )  # fmt: skip
            provenance["checkpoint_sha256"] = report.checkpoint_sha256
            provenance["checkpoint_format"] = report.format
        scores = model.logits if isinstance(model, ResNet) else model
    model.eval()
    model.requires_grad_(False)
    return Classifier(
        model,
        scores,
        int(settings["image_size"]),
        int(settings["crop_size"]),
        num_classes,
        provenance,
    )


def _dino_linear(settings: Mapping[str, Any], provenance: dict[str, Any]) -> DinoLinearClassifier:
    """A DINO ViT (backbone loader: strict, safe) with its eval_linear head (from `head`)."""
    arch, weights = settings["arch"], str(settings["weights"])
    vit_config = {
        "arch": arch,
        "weights": weights,
        "checkpoint_format": settings["checkpoint_format"],
        "seed": settings["seed"],
    }
    head_path = settings.get("head")
    if parse_weights(weights).kind == "file" and head_path is None:
        raise InputError(
            f"classifier {arch!r} with weights {weights!r} needs `head`: the linear head file of "
            "DINO's eval_linear.py (e.g. dino_deitsmall8_linearweights.pth)"
        )
    (patch_size,) = architecture(arch).output_strides
    backbone = build_backbone(vit_config, output_stride=patch_size)
    options = (int(settings["num_classes"]), int(settings["n_last_blocks"]))
    avgpool = bool(settings["avgpool_patchtokens"])
    provenance |= {
        "checkpoint_sha256": backbone.provenance["checkpoint_sha256"],
        "checkpoint_format": backbone.provenance["checkpoint_format"],
        "n_last_blocks": options[1],
        "avgpool_patchtokens": int(avgpool),
        "head": str(head_path or ""),
        "head_sha256": "",
        "head_format": "random",
    }
    model = _random(lambda: DinoLinearClassifier(backbone, *options, avgpool), settings["seed"])
    if head_path is not None:
        with on_meta_device():
            head = nn.Module()
            head.linear = nn.Linear(model.linear.in_features, model.linear.out_features)
        head, report = _load_strict(
            head, str(head_path), arch, "auto", DINO_LINEAR_FORMATS, "classifier `head`",
            "linear head",
        )  # fmt: skip
        model.linear = head.linear
        provenance |= {"head_sha256": report.checkpoint_sha256, "head_format": report.format}
    return model
