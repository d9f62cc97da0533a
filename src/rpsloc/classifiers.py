"""Classifiers for Top-1 / Top-5 Loc, loaded strictly and safely from local checkpoints, and
the predictions file the classify stage writes (METHOD.md sections 3 and 4; docs/classifiers.md).

Three families, each with the parameter names of the project that publishes its weights:

- `resnet50`: torchvision's ResNet-50 with its `fc` head (ImageNet: 1000 classes; a CUB-trained
  one has 200 and usually a `module.` prefix: format `dataparallel`).
- `efficientnet-b0` ... `efficientnet-b7`: `efficientnet_pytorch.EfficientNet.from_name` (never
  `from_pretrained`, which downloads), weights from a local state dict, at the model's own input
  resolution (600 for B7) unless configured otherwise.
- `vit_s8`, `vit_s16`, `vit_b8`, `vit_b16`: a DINO ViT with the linear head of DINO's
  `eval_linear.py` (CLS tokens of the last `n_last_blocks` blocks, optionally the mean patch
  token), backbone weights from `weights` and the head from `head`.

Every checkpoint goes through `rpsloc.backbones`' loader: `weights_only=True`, container and
prefix stripped, every tensor present with the right shape, the head included.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from efficientnet_pytorch import EfficientNet
from efficientnet_pytorch.utils import efficientnet_params
from torch import nn
from tqdm import tqdm

from rpsloc import __version__
from rpsloc.backbones import (
    BACKBONES,
    CHECKPOINT_FORMATS,
    CheckpointFormat,
    LoadReport,
    ResNet50,
    VisionTransformer,
    apply_checkpoint_state,
    build_backbone,
    fit_checkpoint,
    read_checkpoint,
    require_checkpoint_file,
)
from rpsloc.datasets.records import read_manifest
from rpsloc.errors import InputError
from rpsloc.features import _PreprocessedImages, resolve_device
from rpsloc.io import atomic_h5, open_h5, read_strings, write_strings

__all__ = [
    "CLASSIFIER_ARCHS",
    "Classifier",
    "DinoLinearClassifier",
    "build_classifier",
    "checkpoint_files",
    "classifier_settings",
    "predict_split",
    "read_top5",
    "top_k_loc",
]

logger = logging.getLogger("rpsloc.classifiers")

TOP_K = 5

RESNETS = ("resnet50",)
EFFICIENTNETS = tuple(f"efficientnet-b{i}" for i in range(8))
DINO_VITS = ("vit_s8", "vit_s16", "vit_b8", "vit_b16")
CLASSIFIER_ARCHS = (*RESNETS, *EFFICIENTNETS, *DINO_VITS)

EFFICIENTNET_FORMATS: dict[str, CheckpointFormat] = {
    "efficientnet_pytorch": CheckpointFormat(
        "efficientnet_pytorch",
        None,
        "",
        "lukemelas/EfficientNet-PyTorch (efficientnet-pytorch releases, e.g. "
        "efficientnet-b7-dcc49843.pth)",
    ),
    "dataparallel": CHECKPOINT_FORMATS["dataparallel"],
}

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
    evaluation transforms), the model's own resolution for EfficientNet (600/600 for B7);
    DINO's linear-evaluation defaults `n_last_blocks` 4 without the mean patch token for ViT-S,
    1 with it for ViT-B; `checkpoint_format` auto; `seed` 0 (random init only).
    """
    arch = str(config.get("arch", ""))
    if arch not in CLASSIFIER_ARCHS:
        raise InputError(
            f"unknown classifier arch {arch!r}; expected one of {list(CLASSIFIER_ARCHS)}"
        )
    if arch in EFFICIENTNETS:
        resolution = efficientnet_params(arch)[2]
        sizes = {"image_size": resolution, "crop_size": resolution}
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
    model.to_empty(device="cpu")
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
            factory = lambda: ResNet50(num_classes=num_classes)  # noqa: E731
            formats = CHECKPOINT_FORMATS
        else:
            factory = lambda: EfficientNet.from_name(  # noqa: E731
                arch, num_classes=num_classes, image_size=int(settings["crop_size"])
            )
            formats = EFFICIENTNET_FORMATS
        if weights == "random":
            model = _random(factory, seed)
        else:
            with torch.device("meta"):
                model = factory()
            model, report = _load_strict(
                model, weights, arch, checkpoint_format, formats, "classifier `weights`",
                "classifier",
            )  # fmt: skip
            provenance["checkpoint_sha256"] = report.checkpoint_sha256
            provenance["checkpoint_format"] = report.format
        scores = model.logits if isinstance(model, ResNet50) else model
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
    if weights != "random" and head_path is None:
        raise InputError(
            f"classifier {arch!r} with weights {weights!r} needs `head`: the linear head file of "
            "DINO's eval_linear.py (e.g. dino_deitsmall8_linearweights.pth)"
        )
    patch_size = BACKBONES[arch].args[0]  # the ViT factories are partials: patch size first
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
        with torch.device("meta"):
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
    """The checkpoint files a classifier reads (`weights` unless random, and `head`), each
    checked to exist: a missing one is a `CheckpointError` naming the file, the config key
    (`where` + `.weights` / `.head`) and the project that publishes its format."""
    arch = settings["arch"]
    formats = EFFICIENTNET_FORMATS if arch in EFFICIENTNETS else CHECKPOINT_FORMATS
    files = []
    if settings["weights"] != "random":
        fmt = str(settings.get("checkpoint_format", "auto"))
        files.append(
            require_checkpoint_file(settings["weights"], arch, fmt, formats, f"{where}.weights")
        )
    if settings.get("head") is not None:
        files.append(
            require_checkpoint_file(
                settings["head"], arch, "dino_linear", DINO_LINEAR_FORMATS, f"{where}.head"
            )
        )
    return [str(path) for path in files]


def predict_split(
    manifest: str | Path,
    classifier_config: Mapping[str, Any],
    out: str | Path,
    batch_size: int = 32,
    num_workers: int = 0,
    device: str = "auto",
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """The classify stage: top-5 classes and softmax scores of every image of a manifest, in
    manifest order (= features order), written to HDF5 (docs/classifiers.md). Runs in fp32 on
    every device, so the ranking does not depend on reduced precision."""
    records = read_manifest(manifest)
    classifier = build_classifier(classifier_config)
    torch_device = resolve_device(device)
    classifier.model.to(torch_device)
    loader = torch.utils.data.DataLoader(
        _PreprocessedImages(records, classifier.image_size, classifier.crop_size),
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=torch_device.type == "cuda",
        shuffle=False,
    )
    k = min(TOP_K, classifier.num_classes)
    indices, probabilities = [], []
    with torch.inference_mode():
        for images in tqdm(loader, desc="classify", unit="batch", mininterval=5):
            logits = classifier.scores(images.to(torch_device)).float()
            start = sum(len(batch) for batch in indices)
            finite = torch.isfinite(logits).all(dim=1)
            if not bool(finite.all()):
                first = start + int(torch.nonzero(~finite)[0])
                raise ValueError(
                    f"classifier {classifier.provenance['arch']!r} gave non-finite scores for "
                    f"image {records[first].image_id!r}"
                )
            top = torch.softmax(logits, dim=1).topk(k, dim=1)
            indices.append(top.indices.cpu().numpy())
            probabilities.append(top.values.cpu().numpy())
    top5 = np.full((len(records), TOP_K), -1, dtype=np.int64)
    scores = np.zeros((len(records), TOP_K), dtype=np.float32)
    if records:
        top5[:, :k] = np.concatenate(indices)
        scores[:, :k] = np.concatenate(probabilities)
    attrs = {
        "stage": "classify",
        "n_images": len(records),
        "device": torch_device.type,
        "precision": "fp32",
        "rpsloc_version": __version__,
        **{f"classifier_{key}": value for key, value in classifier.provenance.items()},
        **(provenance or {}),
    }
    with atomic_h5(out, attrs) as handle:
        write_strings(handle, "image_ids", [record.image_id for record in records])
        ranks = handle.create_dataset("top5", data=top5)
        ranks.attrs["meaning"] = "0-based class indices, best first; -1 beyond num_classes"
        probs = handle.create_dataset("top5_scores", data=scores)
        probs.attrs["meaning"] = "softmax probabilities of the top5 classes"


def read_top5(predictions: str | Path, image_ids: Sequence[str]) -> np.ndarray:
    """The `(n, 5)` top-5 classes of `image_ids` from a classify-stage file; an error naming
    the file and the images it has no prediction for."""
    with open_h5(predictions) as handle:
        predicted_ids = read_strings(handle["image_ids"])
        top5 = handle["top5"][()]
    position = {image_id: i for i, image_id in enumerate(predicted_ids)}
    missing = [image_id for image_id in image_ids if image_id not in position]
    if missing:
        raise InputError(
            f"{predictions}: no prediction for {len(missing)} image(s), first {missing[:5]}"
        )
    return top5[[position[image_id] for image_id in image_ids]].reshape(-1, TOP_K)


def top_k_loc(
    ious: np.ndarray, labels: np.ndarray, top5: np.ndarray, iou_threshold: float = 0.5
) -> dict[str, float]:
    """GT-known, Top-1 and Top-5 Loc in percent from per-image best IoUs at one score-map
    threshold (METHOD.md 3): IoU >= `iou_threshold`, and for Top-1 / Top-5 the label is the
    classifier's first class / among its five."""
    ious = np.asarray(ious, dtype=np.float64)
    labels = np.asarray(labels)
    top5 = np.asarray(top5).reshape(len(labels), -1)
    if not len(ious) == len(labels) == len(top5) or len(ious) == 0:
        raise InputError(
            f"top_k_loc: expected as many IoUs, labels and top-5 rows (at least one), found "
            f"{len(ious)}, {len(labels)}, {len(top5)}"
        )
    located = ious >= iou_threshold
    return {
        "gt_known_loc": 100.0 * float(located.mean()),
        "top1_loc": 100.0 * float((located & (top5[:, 0] == labels)).mean()),
        "top5_loc": 100.0 * float((located & (top5 == labels[:, None]).any(axis=1)).mean()),
    }
