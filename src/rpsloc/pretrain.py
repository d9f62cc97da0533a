"""Self-supervised pretraining of a backbone on a dataset's unlabeled images (docs/pretraining.md).

The method needs a frozen self-supervised backbone (METHOD.md section 1); where no published
checkpoint fits, this trains one: SimCLR (Chen et al., ICML 2020). Each step takes a batch of
training images, makes two augmented views of each (random resized crop, horizontal flip, colour
jitter, random greyscale), pools the backbone's features, maps them through a projection head and
minimises the InfoNCE (NT-Xent) loss at a temperature: each view must pick its partner out of
the 2B - 1 other views of the batch. Only image paths are read, never labels or boxes.

The backbone is written in MoCo v2's checkpoint layout (`state_dict` with keys prefixed
`module.encoder_q.`, the projection head as `fc.*`), so `rpsloc weights check` and the features
stage load it strictly, like any downloaded checkpoint (METHOD.md section 4). The same seed, data,
settings and thread count give a byte-identical checkpoint on CPU.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image
from torch import nn

from rpsloc.backbones import arch_options
from rpsloc.backbones.build import build_backbone
from rpsloc.devices import resolve_device
from rpsloc.errors import InputError
from rpsloc.io import atomic_path, write_csv_atomic
from rpsloc.settings import PretrainSettings
from rpsloc.transforms import IMAGENET_MEAN, IMAGENET_STD, load_rgb

log = logging.getLogger(__name__)

#: Key prefix of the backbone in the checkpoint (MoCo v2's layout, format `moco_v2`).
CHECKPOINT_PREFIX = "module.encoder_q."
#: ITU-R 601 luma weights, as torchvision's rgb_to_grayscale.
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class PretrainResult:
    """A pretrained backbone, its projection head and the per-step losses."""

    arch: str
    options: dict[str, Any]
    backbone: dict[str, torch.Tensor]
    head: dict[str, torch.Tensor]
    losses: pd.DataFrame  # step, loss, lr, seconds


# --------------------------------------------------------------------------------------------
# Data: image paths only, decoded once
# --------------------------------------------------------------------------------------------


def manifest_image_paths(manifest: str | Path) -> list[Path]:
    """The `path` column of a manifest, nothing else: pretraining never reads labels or boxes."""
    manifest = Path(manifest)
    with manifest.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        if reader.fieldnames is None or "path" not in reader.fieldnames:
            raise InputError(f"{manifest}, line 1: expected a 'path' column, found none")
        paths = [Path(row["path"]) for row in reader]
    if not paths:
        raise InputError(f"{manifest}: no images to pretrain on")
    return paths


def load_images(paths: Sequence[Path], size: int) -> torch.Tensor:
    """Every image resized (bilinear, whole image, like `transforms.preprocess`) to
    `(size, size)`, as one `(N, 3, size, size)` uint8 tensor."""
    images = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for index, path in enumerate(paths):
        images[index] = np.asarray(load_rgb(path).resize((size, size), Image.BILINEAR))
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------------------------
# Augmentations, batched, every random number from one seeded generator
# --------------------------------------------------------------------------------------------


def _uniform(generator: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _coin(generator: torch.Generator, n: int, p: float) -> torch.Tensor:
    return torch.rand(n, generator=generator) < p


def random_resized_crop(
    images: torch.Tensor, generator: torch.Generator, min_scale: float
) -> torch.Tensor:
    """A random crop of each image (area fraction in [min_scale, 1], aspect ratio in
    [3/4, 4/3], sides clipped to the image), flipped horizontally with p 0.5 and resized back to
    the input size (bilinear)."""
    n = len(images)
    area = _uniform(generator, n, min_scale, 1.0)
    ratio = torch.exp(_uniform(generator, n, math.log(3 / 4), math.log(4 / 3)))
    width = torch.sqrt(area * ratio).clamp(max=1.0)
    height = torch.sqrt(area / ratio).clamp(max=1.0)
    x0 = torch.rand(n, generator=generator) * (1 - width)
    y0 = torch.rand(n, generator=generator) * (1 - height)
    flip = torch.where(_coin(generator, n, 0.5), -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = width * flip
    theta[:, 0, 2] = 2 * x0 + width - 1
    theta[:, 1, 1] = height
    theta[:, 1, 2] = 2 * y0 + height - 1
    grid = F.affine_grid(theta.to(images.device), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _grey(images: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(LUMA, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def _per_image(values: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    return values.to(images.device).view(-1, 1, 1, 1)


def _rotate_hue(images: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate the chroma plane of YIQ by `turns` x 360 degrees (luma kept)."""
    to_yiq = torch.tensor(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
        device=images.device,
    )
    yiq = torch.einsum("ij,bjhw->bihw", to_yiq, images)
    angle = 2 * math.pi * turns.to(images.device).view(-1, 1, 1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    i = cos * yiq[:, 1] - sin * yiq[:, 2]
    q = sin * yiq[:, 1] + cos * yiq[:, 2]
    rotated = torch.stack([yiq[:, 0], i, q], dim=1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(to_yiq), rotated)


def colour_jitter(
    images: torch.Tensor, generator: torch.Generator, strength: float, p: float = 0.8
) -> torch.Tensor:
    """SimCLR's colour distortion with strength s, applied with probability `p` per image:
    brightness, contrast and saturation factors in [1 - 0.8s, 1 + 0.8s], hue shift in
    [-0.2s, 0.2s] turns, in that order, clamped to [0, 1] after each."""
    n = len(images)
    amount = 0.8 * strength
    brightness = _uniform(generator, n, 1 - amount, 1 + amount)
    contrast = _uniform(generator, n, 1 - amount, 1 + amount)
    saturation = _uniform(generator, n, 1 - amount, 1 + amount)
    hue = _uniform(generator, n, -0.2 * strength, 0.2 * strength)
    apply = _coin(generator, n, p)
    out = (images * _per_image(brightness, images)).clamp(0, 1)
    mean = _grey(out).mean(dim=(1, 2, 3), keepdim=True)
    out = ((out - mean) * _per_image(contrast, images) + mean).clamp(0, 1)
    grey = _grey(out)
    out = ((out - grey) * _per_image(saturation, images) + grey).clamp(0, 1)
    out = _rotate_hue(out, hue).clamp(0, 1)
    return torch.where(_per_image(apply, images), out, images)


def random_greyscale(images: torch.Tensor, generator: torch.Generator, p: float) -> torch.Tensor:
    """Replace each image by its luma in all three channels with probability `p`."""
    apply = _coin(generator, len(images), p)
    return torch.where(_per_image(apply, images), _grey(images).expand_as(images), images)


def augmented_view(
    images: torch.Tensor, generator: torch.Generator, settings: PretrainSettings
) -> torch.Tensor:
    """One view of each uint8 image: crop + flip, colour jitter, greyscale, ImageNet
    normalisation (so views look like `transforms.preprocess` output)."""
    view = random_resized_crop(images.float() / 255.0, generator, settings.min_scale)
    view = colour_jitter(view, generator, settings.colour_jitter)
    view = random_greyscale(view, generator, settings.greyscale)
    mean = torch.tensor(IMAGENET_MEAN, device=view.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=view.device).view(1, 3, 1, 1)
    return (view - mean) / std


# --------------------------------------------------------------------------------------------
# Model and loss
# --------------------------------------------------------------------------------------------


class ContrastiveModel(nn.Module):
    """Backbone -> global average pool -> projection head `fc` (Linear, ReLU, Linear; MoCo v2's
    and SimCLR's MLP head, named like MoCo v2's so the loader ignores it as a head)."""

    def __init__(self, backbone: nn.Module, projection_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        dim = backbone.feature_dim
        self.fc = nn.Sequential(
            nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, projection_dim)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(images).mean(dim=(2, 3)))


def info_nce_loss(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent: for 2B L2-normalised projections, cross-entropy of each view's cosine
    similarities / temperature against the other 2B - 1 views, its partner the target."""
    z = F.normalize(torch.cat([first, second]), dim=1)
    n = len(first)
    logits = (z @ z.T) / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), -math.inf)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, partner)


def _batch(generator: torch.Generator, n_images: int, batch_size: int) -> torch.Tensor:
    """Indices of one batch: distinct images (a duplicate would be its own negative)."""
    return torch.randperm(n_images, generator=generator)[: min(batch_size, n_images)]


def _learning_rate(step: int, settings: PretrainSettings) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay to 0 at `steps`."""
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
    return settings.lr * 0.5 * (1 + math.cos(math.pi * progress))


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def pretrain_backbone(
    paths: Sequence[Path], backbone_config: Mapping[str, Any], settings: PretrainSettings
) -> PretrainResult:
    """Train `backbone_config`'s architecture with SimCLR on the images at `paths`.

    The starting point is the backbone's fixed-seed random init (`weights: random` with the
    entry's `seed`), so a `weights: random` entry with the same seed is exactly the untrained
    network. Batches and augmentations come from `settings.seed`.
    """
    arch = str(backbone_config.get("arch", ""))
    if settings.steps < 1 or settings.batch_size < 2:
        raise InputError(
            f"pretrain: steps must be >= 1 and batch_size >= 2, got {settings.steps} and "
            f"{settings.batch_size}"
        )
    if len(paths) < 2:
        raise InputError(f"pretrain: InfoNCE needs at least 2 images, got {len(paths)}")
    device = resolve_device(settings.device)
    options = arch_options(arch, backbone_config)
    backbone = build_backbone({**backbone_config, "weights": "random"}, output_stride=32)
    if not any(True for _ in backbone.parameters()):
        raise InputError(f"backbone {arch!r} has no weights to pretrain (a test fixture)")
    images = load_images(paths, settings.image_size).to(device)
    log.info(
        "pretrain: %s %s on %d images of %dpx, %d steps of %d on %s",
        arch,
        options,
        len(images),
        settings.image_size,
        settings.steps,
        min(settings.batch_size, len(images)),
        device,
    )
    with _deterministic(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)  # the head's init
        model = ContrastiveModel(backbone, settings.projection_dim).to(device)
        model.requires_grad_(True).train()
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
        )
        generator = torch.Generator().manual_seed(settings.seed)
        rows = []
        start = time.monotonic()
        for step in range(settings.steps):
            lr = _learning_rate(step, settings)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = images[_batch(generator, len(images), settings.batch_size).to(device)]
            views = torch.cat([augmented_view(batch, generator, settings) for _ in range(2)])
            first, second = model(views).chunk(2)
            loss = info_nce_loss(first, second, settings.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seconds = time.monotonic() - start
            rows.append({"step": step + 1, "loss": loss.item(), "lr": lr, "seconds": seconds})
            if step % 50 == 0 or step + 1 == settings.steps:
                log.info("step %d: loss %.4f, lr %.2e, %.1f s", step + 1, loss.item(), lr, seconds)
            if not math.isfinite(loss.item()):
                raise ValueError(f"pretrain: loss is {loss.item()} at step {step + 1}; lower lr")
            if settings.time_budget_s is not None and seconds >= settings.time_budget_s:
                log.info("pretrain: time budget of %s s reached at step %d", seconds, step + 1)
                break
    model.eval()
    return PretrainResult(
        arch=arch,
        options=options,
        backbone=_cpu_state(model.backbone),
        head=_cpu_state(model.fc),
        losses=pd.DataFrame(rows, columns=["step", "loss", "lr", "seconds"]),
    )


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().cpu().clone() for key, value in module.state_dict().items()}


def write_checkpoint(result: PretrainResult, settings: PretrainSettings, out: str | Path) -> None:
    """The backbone (and head, as `fc.*`) in MoCo v2's layout, with the architecture's sizing
    options and the settings beside it; serialised in memory so that the bytes do not depend on
    the file name, then moved into place atomically."""
    state = {CHECKPOINT_PREFIX + key: value for key, value in result.backbone.items()}
    state |= {f"{CHECKPOINT_PREFIX}fc.{key}": value for key, value in result.head.items()}
    payload = {
        "arch": result.arch,
        "arch_options": result.options,
        "method": "simclr",
        "steps": len(result.losses),
        "settings": asdict(settings),
        "state_dict": state,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_path(out) as temporary:
        temporary.write_bytes(buffer.getvalue())


def pretrain(
    manifest: str | Path,
    backbone_config: Mapping[str, Any],
    settings: PretrainSettings,
    checkpoint: str | Path,
    losses: str | Path,
) -> PretrainResult:
    """The `pretrain` stage: images of a manifest -> checkpoint and loss CSV (the figures
    stage plots the loss)."""
    result = pretrain_backbone(manifest_image_paths(manifest), backbone_config, settings)
    write_checkpoint(result, settings, checkpoint)
    write_csv_atomic(result.losses, losses)
    return result
