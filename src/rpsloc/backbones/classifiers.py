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
from efficientnet_pytorch.utils import efficientnet_params
from torch import nn

from rpsloc.backbones import (
    architecture,
    build_backbone,
    materialize_on_cpu,
    on_meta_device,
    parse_weights,
)
from rpsloc.backbones.checkpoints import (
    CHECKPOINT_FORMATS,
    CheckpointFormat,
    LoadReport,
    apply_checkpoint_state,
    fit_checkpoint,
    read_checkpoint,
    require_checkpoint_file,
)
from rpsloc.backbones.resnet import ResNet, resnet50
from rpsloc.backbones.vit import VisionTransformer
from rpsloc.errors import InputError

__all__ = [
    "CLASSIFIER_ARCHS",
    "DINO_LINEAR_FORMATS",
    "EFFICIENTNET_FORMATS",
    "RESNET_FORMATS",
    "Classifier",
    "DinoLinearClassifier",
    "build_classifier",
    "checkpoint_files",
    "classifier_settings",
]

logger = logging.getLogger(__name__)

RESNETS = ("resnet50",)
EFFICIENTNETS = tuple(f"efficientnet-b{i}" for i in range(8))
DINO_VITS = ("vit_s8", "vit_s16", "vit_b8", "vit_b16")
CLASSIFIER_ARCHS = (*RESNETS, *EFFICIENTNETS, *DINO_VITS)

RESNET_FORMATS: dict[str, CheckpointFormat] = {
    **CHECKPOINT_FORMATS,
    "cub_resnet50": CheckpointFormat(
        "cub_resnet50",
        None,
        "module.base_model.",
        "yeonghwansong/UOLwRPS (its CUB-200 ResNet-50, models/cubresnet.py: a bare state dict "
        "of a DataParallel-wrapped module with `base_model`, model_best.pth.tar)",
    ),
}

EFFICIENTNET_FORMATS: dict[str, CheckpointFormat] = {
    "efficientnet_pytorch": CheckpointFormat(
        "efficientnet_pytorch",
        None,
        "",
        "lukemelas/EfficientNet-PyTorch (efficientnet-pytorch releases, e.g. "
        "efficientnet-b7-dcc49843.pth)",
    ),
    "dataparallel": CHECKPOINT_FORMATS["dataparallel"],
    "dataparallel_state_dict": CheckpointFormat(
        "dataparallel_state_dict",
        "state_dict",
        "module.",
        "yeonghwansong/UOLwRPS (its CUB-200 EfficientNet-B7, "
        "efficientnetb7-cub200-best-epoch.pth: {'state_dict': {'module.<names>': ...}})",
    ),
}

#: The authors' resize before the centre crop of EfficientNet-B7 (`Resize((685, 685))`,
#: `CenterCrop((600, 600))` in their datasets); the other EfficientNets at their resolution.
AUTHORS_EFFICIENTNET_RESIZE = {"efficientnet-b7": 685}

DINO_LINEAR_FORMATS: dict[str, CheckpointFormat] = {
    "dino_linear": CheckpointFormat(
        "dino_linear",
        "state_dict",
        "module.",
        "facebookresearch/dino (eval_linear.py heads, e.g. dino_deitsmall8_linearweights.pth)",
    ),
}


def classifier_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """A classifier config entry with every default filled in (docs/classifiers.md).

    `num_classes` 1000; `image_size`/`crop_size` 256/224 for ResNet-50 and the ViTs (their
    evaluation transforms; the authors' CUB ResNet-50 wants 448/448, set in its config), the
    model's own resolution for EfficientNet, resized first to 685 for B7 as the authors do;
    DINO's linear-evaluation defaults `n_last_blocks` 4 without the mean patch token for ViT-S,
    1 with it for ViT-B; `checkpoint_format` auto; `seed` 0 (random init only). `weights` is
    `random` or a checkpoint file (`rpsloc.backbones.Weights`): a classifier has learned
    parameters, and none is pretrained here.
    """
    arch = str(config.get("arch", ""))
    if arch not in CLASSIFIER_ARCHS:
        raise InputError(
            f"unknown classifier arch {arch!r}; expected one of {list(CLASSIFIER_ARCHS)}"
        )
    if arch in EFFICIENTNETS:
        resolution = efficientnet_params(arch)[2]
        resize = AUTHORS_EFFICIENTNET_RESIZE.get(arch, resolution)
        sizes = {"image_size": resize, "crop_size": resolution}
    else:
        sizes = {"image_size": 256, "crop_size": 224}
    defaults: dict[str, Any] = {
        "weights": "random",
        "checkpoint_format": "auto",
        "num_classes": 1000,
        "seed": 0,
        **sizes,
    }
    if arch in DINO_VITS:
        small = arch.startswith("vit_s")
        defaults |= {"n_last_blocks": 4 if small else 1, "avgpool_patchtokens": not small}
    elif "head" in config or "n_last_blocks" in config or "avgpool_patchtokens" in config:
        raise InputError(
            f"classifier {arch!r} takes no head, n_last_blocks or avgpool_patchtokens: those "
            f"describe a DINO linear head ({list(DINO_VITS)})"
        )
    settings = {**defaults, **config}
    if parse_weights(settings["weights"]).kind not in ("random", "file"):
        raise InputError(
            f"classifier {arch!r}: weights must be 'random' or a checkpoint file, got "
            f"{settings['weights']!r}"
        )
    if settings["crop_size"] > settings["image_size"]:
        raise InputError(
            f"classifier {arch!r}: crop_size ({settings['crop_size']}) is larger than "
            f"image_size ({settings['image_size']})"
        )
    return settings


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


def checkpoint_files(settings: Mapping[str, Any], where: str) -> list[str]:
    """The checkpoint files a classifier reads (`weights` when a file, and `head`), each
    checked to exist: a missing one is a `CheckpointError` naming the file, the config key
    (`where` + `.weights` / `.head`) and the project that publishes its format."""
    arch = settings["arch"]
    formats = EFFICIENTNET_FORMATS if arch in EFFICIENTNETS else RESNET_FORMATS
    files = []
    weights = parse_weights(settings["weights"])
    if weights.kind == "file":
        fmt = str(settings.get("checkpoint_format", "auto"))
        files.append(require_checkpoint_file(weights.path, arch, fmt, formats, f"{where}.weights"))
    if settings.get("head") is not None:
        files.append(
            require_checkpoint_file(
                settings["head"], arch, "dino_linear", DINO_LINEAR_FORMATS, f"{where}.head"
            )
        )
    return [str(path) for path in files]
