"""Frozen feature extractors with the original parameter names, and strict, safe checkpoint
loading (METHOD.md section 4).

Every backbone maps `(B, 3, H, W)` ImageNet-normalised images to `(B, C, H/s, W/s)` features and
carries `feature_dim`, `output_stride` and `provenance` (docs/architecture.md, "Backbones").
Models keep torchvision's (ResNet-50, VGG16) and DINO's (ViT) parameter names, so the checkpoints
users bring load without renaming. Checkpoints are unpickled with `weights_only=True`: a file that
needs arbitrary code to load is refused, never run.
"""

from __future__ import annotations

import argparse
import logging
import math
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from rpsloc.errors import CheckpointError, InputError
from rpsloc.io import file_sha256

__all__ = [
    "ARCH_OPTIONS",
    "BACKBONES",
    "CHECKPOINT_FORMATS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BasicBlock",
    "Bottleneck",
    "CCAMResNet50",
    "CheckpointFormat",
    "ColourfulnessFixture",
    "LoadReport",
    "ResNet50",
    "ResNetSmall",
    "VGG16",
    "VisionTransformer",
    "apply_checkpoint_state",
    "arch_options",
    "build_backbone",
    "check_checkpoint",
    "fit_checkpoint",
    "load_checkpoint_state",
    "read_checkpoint",
    "require_checkpoint_file",
]

logger = logging.getLogger("rpsloc.backbones")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Strides of layer1..layer4 for each output stride; the stride is removed, no dilation.
RESNET_LAYER_STRIDES: dict[int, tuple[int, int, int, int]] = {
    32: (1, 2, 2, 2),
    16: (1, 2, 2, 1),
    8: (1, 2, 1, 1),
}


def _check_stride(arch: str, output_stride: int, allowed: tuple[int, ...]) -> None:
    if output_stride not in allowed:
        raise InputError(
            f"backbone {arch!r}: output_stride must be one of {list(allowed)}, "
            f"got {output_stride!r}"
        )


# --------------------------------------------------------------------------------------------
# ResNet-50 (torchvision names; stride on the 3x3 conv, "v1.5")
# --------------------------------------------------------------------------------------------


class Bottleneck(nn.Module):
    """torchvision's Bottleneck: 1x1 -> 3x3 (carries the stride) -> 1x1, expansion 4."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """ResNet-50 with torchvision's parameter names; forward returns layer4 (METHOD.md 4).

    `output_stride` 32 / 16 / 8 sets the strides of layer1..layer4 to (1,2,2,2) / (1,2,2,1) /
    (1,2,1,1) (stride removed, no dilation). With `num_classes` the model also has torchvision's
    `fc` head, used by `logits`; the feature backbone has none (checkpoint heads are ignored).
    """

    arch = "resnet50"

    def __init__(self, output_stride: int = 32, num_classes: int | None = None) -> None:
        super().__init__()
        _check_stride(self.arch, output_stride, tuple(RESNET_LAYER_STRIDES))
        strides = RESNET_LAYER_STRIDES[output_stride]
        self.output_stride = output_stride
        self.feature_dim = 2048
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 3, strides[0])
        self.layer2 = self._make_layer(128, 4, strides[1])
        self.layer3 = self._make_layer(256, 6, strides[2])
        self.layer4 = self._make_layer(512, 3, strides[3])
        self.fc = None if num_classes is None else nn.Linear(2048, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * 4),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """conv1 -> bn1 -> relu -> maxpool (stride 4)."""
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Classifier scores: global average pool of layer4, then `fc` (needs `num_classes`)."""
        if self.fc is None:
            raise InputError("this ResNet50 was built without a classification head (num_classes)")
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.forward(x), 1), 1))


class CCAMResNet50(ResNet50):
    """CCAM's backbone: ResNet-50 whose features are layer3 and layer4 concatenated (1024 + 2048
    channels); output stride 16 or 8 only, where both layers share one resolution (METHOD.md 4)."""

    arch = "ccam"

    def __init__(self, output_stride: int = 16) -> None:
        _check_stride(self.arch, output_stride, (16, 8))
        super().__init__(output_stride)
        self.feature_dim = 1024 + 2048

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x3 = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return torch.cat([x3, self.layer4(x3)], dim=1)


# --------------------------------------------------------------------------------------------
# Small ResNet (torchvision's BasicBlock names; width and depth configurable)
# --------------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: 3x3 (carries the stride) -> 3x3, expansion 1."""

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetSmall(nn.Module):
    """A BasicBlock ResNet of configurable size, for backbones pretrained here (rpsloc.pretrain).

    torchvision's stem and names (`conv1`, `bn1`, `layerN.M.*`); the four stages have `width`,
    2, 4 and 8 x `width` channels and `depth` blocks each, so `width=64, depth=2` is exactly
    torchvision's ResNet-18. Features = layer4 output; output stride as for ResNet-50.
    """

    arch = "resnet_small"

    def __init__(self, output_stride: int = 32, width: int = 32, depth: int = 1) -> None:
        super().__init__()
        _check_stride(self.arch, output_stride, tuple(RESNET_LAYER_STRIDES))
        if width < 1 or depth < 1:
            raise InputError(
                f"backbone {self.arch!r}: width and depth must be >= 1, got {width}, {depth}"
            )
        strides = RESNET_LAYER_STRIDES[output_stride]
        self.output_stride = output_stride
        self.feature_dim = 8 * width
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(width, depth, strides[0])
        self.layer2 = self._make_layer(2 * width, depth, strides[1])
        self.layer3 = self._make_layer(4 * width, depth, strides[2])
        self.layer4 = self._make_layer(8 * width, depth, strides[3])
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


# --------------------------------------------------------------------------------------------
# VGG16 (torchvision names, the last two max-pools replaced by identities)
# --------------------------------------------------------------------------------------------

_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip


class VGG16(nn.Module):
    """torchvision's VGG16 conv stack (`features.N`), without the last two max-pools, so the
    output stride is 8; features = output of the conv stack (last ReLU), 512 channels.

    The removed pools are `nn.Identity` at their original indices, so `features.24` etc. keep
    torchvision's names. The `classifier` head of a checkpoint is ignored.
    """

    arch = "vgg16"

    def __init__(self, output_stride: int = 8) -> None:
        super().__init__()
        _check_stride(self.arch, output_stride, (8,))
        self.output_stride = 8
        self.feature_dim = 512
        pools = [i for i, v in enumerate(_VGG16_CFG) if v == "M"]
        layers: list[nn.Module] = []
        in_channels = 3
        for i, v in enumerate(_VGG16_CFG):
            if v == "M":
                removed = i in pools[-2:]
                layers.append(nn.Identity() if removed else nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, int(v), 3, padding=1), nn.ReLU(inplace=True)]
                in_channels = int(v)
        self.features = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


# --------------------------------------------------------------------------------------------
# DINO Vision Transformer (DINO's parameter names)
# --------------------------------------------------------------------------------------------


class PatchEmbed(nn.Module):
    """Image to patch tokens: one strided convolution (`patch_embed.proj`)."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a joint `qkv` projection, as in DINO."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """DINO's ViT (names `cls_token`, `pos_embed`, `patch_embed.proj`, `blocks.N.*`, `norm`).

    Features = ReLU of the final-LayerNorm patch tokens without the CLS token, reshaped to
    (H/patch, W/patch) (METHOD.md 4). Position embeddings are interpolated bicubically for other
    input sizes exactly as DINO's `interpolate_pos_encoding`. The output stride is the patch size.
    """

    def __init__(
        self,
        patch_size: int = 16,
        embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        img_size: int = 224,
        output_stride: int | None = None,
        arch: str = "vit",
    ) -> None:
        super().__init__()
        self.arch = arch
        if output_stride is not None and output_stride != patch_size:
            logger.warning(
                "backbone %s: output_stride %s requested, but a ViT's output stride is its "
                "patch size; using %s",
                arch,
                output_stride,
                patch_size,
            )
        self.output_stride = patch_size
        self.feature_dim = embed_dim
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        num_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.LayerNorm):
                nn.init.constant_(m.bias, 0)
                nn.init.constant_(m.weight, 1.0)

    def interpolate_pos_encoding(self, x: torch.Tensor, w: int, h: int) -> torch.Tensor:
        """DINO's interpolation (its `w` is the image height, `h` the width)."""
        npatch = x.shape[1] - 1
        n = self.pos_embed.shape[1] - 1
        if npatch == n and w == h:
            return self.pos_embed
        class_pos_embed = self.pos_embed[:, 0]
        patch_pos_embed = self.pos_embed[:, 1:]
        dim = x.shape[-1]
        w0 = w // self.patch_embed.patch_size + 0.1
        h0 = h // self.patch_embed.patch_size + 0.1
        side = int(math.sqrt(n))
        patch_pos_embed = F.interpolate(
            patch_pos_embed.reshape(1, side, side, dim).permute(0, 3, 1, 2),
            scale_factor=(w0 / math.sqrt(n), h0 / math.sqrt(n)),
            mode="bicubic",
        )
        if int(w0) != patch_pos_embed.shape[-2] or int(h0) != patch_pos_embed.shape[-1]:
            raise RuntimeError("position embedding interpolation gave the wrong grid size")
        patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1)

    def prepare_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens with the CLS token in front, plus (interpolated) position embeddings."""
        b, _, w, h = x.shape
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(b, -1, -1), tokens), dim=1)
        return tokens + self.interpolate_pos_encoding(tokens, w, h)

    def get_intermediate_layers(self, x: torch.Tensor, n: int = 1) -> list[torch.Tensor]:
        """DINO's: the final-LayerNorm tokens (CLS first) after each of the last `n` blocks."""
        tokens = self.prepare_tokens(x)
        output = []
        for i, blk in enumerate(self.blocks):
            tokens = blk(tokens)
            if len(self.blocks) - i <= n:
                output.append(self.norm(tokens))
        return output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, w, h = x.shape
        tokens = self.prepare_tokens(x)
        for blk in self.blocks:
            tokens = blk(tokens)
        patches = F.relu(self.norm(tokens)[:, 1:])
        p = self.patch_embed.patch_size
        return patches.transpose(1, 2).reshape(b, self.feature_dim, w // p, h // p)


# --------------------------------------------------------------------------------------------
# Test fixture
# --------------------------------------------------------------------------------------------


class ColourfulnessFixture(nn.Module):
    """TEST FIXTURE, no learned weights: a hand-made "backbone" whose features say how colourful
    each region is, so the workflow can be tested end to end on synthetic images in seconds.

    Normalised image -> un-normalise to [0, 1] RGB -> saturation s = max(rgb) - min(rgb) ->
    `avg_pool2d(kernel=output_stride, stride=output_stride)` -> channels `[8 s, 1 - s]`.
    Not a model of anything; never use it for real results.
    """

    arch = "fixture-colourfulness"

    def __init__(self, output_stride: int = 16) -> None:
        super().__init__()
        _check_stride(self.arch, output_stride, (4, 8, 16, 32))
        self.output_stride = output_stride
        self.feature_dim = 2
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = (x * self.std + self.mean).clamp(0.0, 1.0)
        s = rgb.amax(dim=1, keepdim=True) - rgb.amin(dim=1, keepdim=True)
        s = F.avg_pool2d(s, kernel_size=self.output_stride, stride=self.output_stride)
        return torch.cat([8.0 * s, 1.0 - s], dim=1)


#: Architectures by config name; each factory takes `output_stride` (with a sensible default).
BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "resnet50": ResNet50,
    "ccam": CCAMResNet50,
    ResNetSmall.arch: ResNetSmall,
    "vgg16": VGG16,
    "vit_s16": partial(VisionTransformer, 16, 384, 12, 6, arch="vit_s16"),
    "vit_s8": partial(VisionTransformer, 8, 384, 12, 6, arch="vit_s8"),
    "vit_b16": partial(VisionTransformer, 16, 768, 12, 12, arch="vit_b16"),
    "vit_b8": partial(VisionTransformer, 8, 768, 12, 12, arch="vit_b8"),
    ColourfulnessFixture.arch: ColourfulnessFixture,
}

_FIXTURES = {ColourfulnessFixture.arch}

#: Config keys that size an architecture, passed to its factory (schema: `backbone`).
ARCH_OPTIONS: dict[str, tuple[str, ...]] = {ResNetSmall.arch: ("width", "depth")}


def arch_options(arch: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The architecture-sizing keys of a backbone config entry; an error for keys `arch` lacks."""
    allowed = ARCH_OPTIONS.get(arch, ())
    every = {key for keys in ARCH_OPTIONS.values() for key in keys}
    wrong = sorted(key for key in every - set(allowed) if key in config)
    if wrong:
        raise InputError(
            f"backbone {arch!r} takes no {', '.join(wrong)}: those keys size only the "
            f"architectures {sorted(ARCH_OPTIONS)}"
        )
    return {key: config[key] for key in allowed if key in config}


def _factory(arch: str) -> Callable[..., nn.Module]:
    try:
        return BACKBONES[arch]
    except KeyError:
        raise InputError(
            f"unknown backbone arch {arch!r}; expected one of {sorted(BACKBONES)}"
        ) from None


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointFormat:
    """Where a project keeps the backbone weights in its checkpoint (METHOD.md 4 table)."""

    name: str
    container: str | None  # key of the state dict in the file; None: the file is the state dict
    prefix: str  # prefix of the backbone keys, stripped before loading
    published_by: str


CHECKPOINT_FORMATS: dict[str, CheckpointFormat] = {
    f.name: f
    for f in (
        CheckpointFormat(
            "moco_v2", "state_dict", "module.encoder_q.", "facebookresearch/moco (MoCo v1, v2)"
        ),
        CheckpointFormat(
            "moco_v2_converted",
            "state_dict",
            "",
            "WXinlong/DenseCL (DenseCL), xieenze/DetCo (DetCo), MoCo v2 converted",
        ),
        CheckpointFormat(
            "moco_v3", "state_dict", "module.", "facebookresearch/moco-v3 (linear-eval checkpoint)"
        ),
        CheckpointFormat(
            "torchvision",
            None,
            "",
            "pytorch/vision (supervised), facebookresearch/dino (DINO ResNet-50 and ViTs), "
            "BYOL converted to torchvision names",
        ),
        CheckpointFormat("simsiam", "state_dict", "module.encoder.", "facebookresearch/simsiam"),
        CheckpointFormat("supcon", "model", "module.encoder.", "HobbitLong/SupContrast"),
        CheckpointFormat("ccam", "state_dict", "backbone.", "CVI-SZU/CCAM"),
        CheckpointFormat(
            "dawsol", "state_dict_extractor", "", "zh460045050/DA-WSOL_CVPR2022 (DA-WSOL)"
        ),
        CheckpointFormat(
            "dataparallel",
            None,
            "module.",
            "any model saved from nn.DataParallel (e.g. CUB-trained ResNet-50 classifiers)",
        ),
    )
}

#: Other names users may write for a format.
FORMAT_ALIASES: dict[str, str] = {
    "moco_v1": "moco_v2",
    "densecl": "moco_v2_converted",
    "detco": "moco_v2_converted",
    "dino": "torchvision",
    "byol": "torchvision",
    "supervised": "torchvision",
}

#: First key component of classification / projection heads: may be missing or extra.
HEAD_MODULES = frozenset({"fc", "head", "heads", "projector", "predictor", "classifier"})

#: Objects besides tensors and containers that a checkpoint may hold (all inert).
SAFE_GLOBALS: list[Any] = [argparse.Namespace]


@dataclass
class LoadReport:
    """What loading a checkpoint did: `rpsloc weights check` prints its `summary()`."""

    format: str
    n_loaded: int
    ignored_keys: list[str]
    checkpoint_sha256: str
    path: str = ""
    arch: str = ""
    defaulted_keys: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    kind: str = "backbone"  # what the tensors are: "backbone", "classifier", "linear head"

    def summary(self) -> str:
        """A few lines for humans: file, hash, format, counts and the first ignored keys."""
        lines = [
            f"checkpoint {self.path}",
            f"  sha256 {self.checkpoint_sha256}",
            f"  format {self.format}, arch {self.arch}{_described(self.options)}: "
            f"{self.n_loaded} {self.kind} tensors loaded",
        ]
        if self.defaulted_keys:
            lines.append(
                f"  {len(self.defaulted_keys)} BatchNorm num_batches_tracked counters absent "
                "(unused in eval mode, set to 0)"
            )
        lines.append(
            f"  {len(self.ignored_keys)} checkpoint entries ignored (heads, or outside the "
            f"{self.kind} prefix){_first(self.ignored_keys)}"
        )
        return "\n".join(lines)


def _described(options: Mapping[str, Any]) -> str:
    return f" ({', '.join(f'{k} {v}' for k, v in options.items())})" if options else ""


def _first(keys: list[str], n: int = 5) -> str:
    if not keys:
        return ""
    more = f", ... ({len(keys) - n} more)" if len(keys) > n else ""
    return ": " + ", ".join(keys[:n]) + more


def _publishers(checkpoint_format: str, formats: Mapping[str, CheckpointFormat]) -> str:
    name = FORMAT_ALIASES.get(checkpoint_format, checkpoint_format)
    if name in formats:
        return f"{checkpoint_format} checkpoints are published by {formats[name].published_by}"
    return "checkpoints of the supported formats are published by: " + "; ".join(
        f"{f.name}: {f.published_by}" for f in formats.values()
    )


def require_checkpoint_file(
    path: str | Path,
    arch: str,
    checkpoint_format: str = "auto",
    formats: Mapping[str, CheckpointFormat] = CHECKPOINT_FORMATS,
    key: str = "backbone `weights`",
) -> Path:
    """`path` if it is a file; else a `CheckpointError` naming the file, the config `key` that
    expects it and the projects that publish the format (nothing is downloaded)."""
    path = Path(path)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise CheckpointError(
            f"checkpoint file {path} {what}: the config's {key} for arch {arch!r} expects it "
            f"there. Nothing is downloaded; {_publishers(checkpoint_format, formats)}."
        )
    return path


def read_checkpoint(
    path: str | Path,
    arch: str,
    checkpoint_format: str = "auto",
    formats: Mapping[str, CheckpointFormat] = CHECKPOINT_FORMATS,
    key: str = "backbone `weights`",
) -> Any:
    """torch.load with weights_only=True; anything beyond tensors and SAFE_GLOBALS is refused.
    A missing file is reported by `require_checkpoint_file`."""
    path = require_checkpoint_file(path, arch, checkpoint_format, formats, key)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        needs = ""
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
            needs = f" (it needs {', '.join(unsafe)})" if unsafe else ""
        except Exception:  # only decorates the message
            pass
        raise CheckpointError(
            f"checkpoint {path} needs arbitrary code to unpickle{needs} and was not loaded: "
            "only tensors, plain containers and argparse.Namespace are accepted "
            "(torch.load weights_only=True). If you trust its source, re-save only its "
            "tensors with torch.save."
        ) from exc
    except Exception as exc:  # corrupt or foreign files
        raise CheckpointError(f"checkpoint {path} could not be read by torch.load: {exc}") from exc


def _expected_shapes(arch: str, options: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every parameter and buffer the architecture needs, with its shape (built on `meta`)."""
    with torch.device("meta"):
        model = _factory(arch)(**options)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@dataclass
class _Fit:
    fmt: CheckpointFormat
    state: dict[str, torch.Tensor]
    ignored: list[str]
    defaulted: list[str]
    missing: list[str]
    unexpected: list[str]
    misshaped: list[str]
    kind: str = "backbone"

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.misshaped)

    def describe(self, path: Path, n_expected: int) -> str:
        container = "the file itself" if self.fmt.container is None else repr(self.fmt.container)
        return (
            f"checkpoint {path} as format {self.fmt.name} (container {container}, prefix "
            f"{self.fmt.prefix!r}): {len(self.state)} of {n_expected} {self.kind} tensors match; "
            f"{len(self.missing)} missing{_first(self.missing)}; "
            f"{len(self.unexpected)} unexpected{_first(self.unexpected)}; "
            f"{len(self.misshaped)} with the wrong shape{_first(self.misshaped)}"
        )


def _fit(
    raw: Any, fmt: CheckpointFormat, expected: Mapping[str, tuple[int, ...]], kind: str
) -> _Fit | None:
    """Strip container and prefix, and compare with the architecture; None if not applicable."""
    if not isinstance(raw, Mapping):
        return None
    source = raw if fmt.container is None else raw.get(fmt.container)
    if not isinstance(source, Mapping):
        return None
    keys = [str(k) for k in source]
    if fmt.prefix and not any(k.startswith(fmt.prefix) for k in keys):
        return None
    state: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    unexpected: list[str] = []
    misshaped: list[str] = []
    wrong: set[str] = set()
    for key, value in source.items():
        key = str(key)
        if not key.startswith(fmt.prefix):
            ignored.append(key)
            continue
        name = key[len(fmt.prefix) :]
        if name not in expected:
            (ignored if name.split(".", 1)[0] in HEAD_MODULES else unexpected).append(key)
        elif not isinstance(value, torch.Tensor):
            wrong.add(name)
            misshaped.append(f"{key} (a {type(value).__name__}, not a tensor)")
        elif tuple(value.shape) != expected[name]:
            wrong.add(name)
            misshaped.append(f"{key} (expected {list(expected[name])}, found {list(value.shape)})")
        else:
            state[name] = value
    absent = [k for k in expected if k not in state and k not in wrong]
    defaulted = [k for k in absent if k.endswith("num_batches_tracked")]
    missing = [fmt.prefix + k for k in absent if not k.endswith("num_batches_tracked")]
    return _Fit(fmt, state, ignored, defaulted, missing, unexpected, misshaped, kind)


def _resolve_format(
    checkpoint_format: str, formats: Mapping[str, CheckpointFormat] = CHECKPOINT_FORMATS
) -> CheckpointFormat | None:
    if checkpoint_format == "auto":
        return None
    name = FORMAT_ALIASES.get(checkpoint_format, checkpoint_format)
    if name not in formats:
        aliases = [alias for alias, target in FORMAT_ALIASES.items() if target in formats]
        raise InputError(
            f"unknown checkpoint_format {checkpoint_format!r}; expected 'auto' or one of "
            f"{sorted([*formats, *aliases])}"
        )
    return formats[name]


def _recorded_options(raw: Any, arch: str) -> dict[str, Any]:
    """The `arch_options` a checkpoint records for `arch` (rpsloc.pretrain writes them)."""
    if isinstance(raw, Mapping) and raw.get("arch") == arch:
        recorded = raw.get("arch_options", {})
        if isinstance(recorded, Mapping):
            return {str(key): value for key, value in recorded.items()}
    return {}


def load_checkpoint_state(
    path: Path,
    arch: str,
    checkpoint_format: str = "auto",
    options: Mapping[str, Any] | None = None,
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """The backbone state dict of a checkpoint, checked strictly against `arch` (METHOD.md 4).

    The container key and key prefix of `checkpoint_format` are stripped; every backbone
    parameter and buffer must then be present with the right shape (BatchNorm's
    `num_batches_tracked` may be absent); only heads (`fc`, `head`, projector, predictor,
    classifier) may be missing or extra, and keys outside the prefix are ignored. With "auto"
    every applicable format is tried and exactly one must fit. `options` size a configurable
    architecture (ARCH_OPTIONS); None takes those the checkpoint records, else the defaults.
    Raises `CheckpointError`.
    """
    path = Path(path)
    _factory(arch)
    _resolve_format(checkpoint_format)
    raw = read_checkpoint(path, arch, checkpoint_format)
    if options is None:
        options = _recorded_options(raw, arch)
    options = arch_options(arch, options)
    expected = _expected_shapes(arch, options)
    return fit_checkpoint(raw, path, arch, expected, checkpoint_format, options=options)


def fit_checkpoint(
    raw: Any,
    path: Path,
    arch: str,
    expected: Mapping[str, tuple[int, ...]],
    checkpoint_format: str = "auto",
    formats: Mapping[str, CheckpointFormat] = CHECKPOINT_FORMATS,
    kind: str = "backbone",
    options: Mapping[str, Any] | None = None,
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """The state dict of a checkpoint `raw` (read from `path`) that fits the parameter and
    buffer shapes `expected` of `arch`, in `checkpoint_format` or, with "auto", in exactly one
    of `formats` (the rules of `load_checkpoint_state`). `kind` names the tensors in messages.
    Raises `CheckpointError`."""
    path = Path(path)
    fmt = _resolve_format(checkpoint_format, formats)
    if fmt is not None:
        fit = _fit(raw, fmt, expected, kind)
        if fit is None:
            top = list(raw)[:10] if isinstance(raw, Mapping) else type(raw).__name__
            raise CheckpointError(
                f"checkpoint {path} is not in format {fmt.name}: it needs container "
                f"{fmt.container!r} and keys with prefix {fmt.prefix!r}; top-level entries: {top}"
            )
        if not fit.ok:
            raise CheckpointError(
                f"{fit.describe(path, len(expected))}; only heads may be missing or extra"
            )
    else:
        fits = [f for f in (_fit(raw, x, expected, kind) for x in formats.values()) if f]
        good = [f for f in fits if f.ok]
        if len(good) > 1:
            raise CheckpointError(
                f"checkpoint {path} fits several formats for arch {arch!r}: "
                f"{[f.fmt.name for f in good]}; set the {kind}'s checkpoint_format to the "
                "project that published it"
            )
        if not good:
            top = list(raw)[:10] if isinstance(raw, Mapping) else type(raw).__name__
            if not fits:
                raise CheckpointError(
                    f"checkpoint {path} matches no known format's container and prefix "
                    f"(top-level entries: {top}); known formats: {sorted(formats)}"
                )
            best = max(fits, key=lambda f: len(f.state))
            raise CheckpointError(
                f"checkpoint {path} does not fit arch {arch!r} in any format "
                f"(tried {[f.fmt.name for f in fits]}). "
                f"Closest: {best.describe(path, len(expected))}"
            )
        fit = good[0]
    report = LoadReport(
        format=fit.fmt.name,
        n_loaded=len(fit.state),
        ignored_keys=fit.ignored,
        checkpoint_sha256=file_sha256(path),
        path=str(path),
        arch=arch,
        defaulted_keys=fit.defaulted,
        options=dict(options or {}),
        kind=kind,
    )
    return fit.state, report


def apply_checkpoint_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load `state` strictly; absent `num_batches_tracked` counters are set to 0."""
    full = dict(state)
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in full:
            full[key] = torch.zeros_like(value)
    model.load_state_dict(full, strict=True)


def check_checkpoint(
    path: Path,
    arch: str,
    checkpoint_format: str = "auto",
    options: Mapping[str, Any] | None = None,
) -> LoadReport:
    """Load a checkpoint into `arch` strictly without running anything; for `rpsloc weights
    check` (METHOD.md 4). Raises `CheckpointError` when it does not fit."""
    state, report = load_checkpoint_state(Path(path), arch, checkpoint_format, options)
    with torch.device("meta"):
        model = _factory(arch)(**report.options)
    full = dict(state)
    for key in report.defaulted_keys:
        full[key] = torch.zeros((), dtype=torch.long)
    model.load_state_dict(full, strict=True, assign=True)
    return report


# --------------------------------------------------------------------------------------------
# build_backbone
# --------------------------------------------------------------------------------------------


def build_backbone(config: Mapping[str, Any], output_stride: int) -> nn.Module:
    """A frozen backbone in eval mode from a config entry (docs/architecture.md, "Backbones").

    `config`: `arch` (a key of BACKBONES), `weights` ("random" or a checkpoint path; the test
    fixture takes "random" or "none"), `checkpoint_format` ("auto" or a format name), `seed`
    (random init: torchvision's init under `torch.manual_seed(seed)`, same seed same weights),
    and the arch's sizing keys (ARCH_OPTIONS, e.g. `width` and `depth` of `resnet_small`).
    """
    arch = str(config.get("arch", ""))
    factory = partial(_factory(arch), **arch_options(arch, config))
    weights = str(config.get("weights", "random"))
    checkpoint_format = str(config.get("checkpoint_format", "auto"))
    seed = config.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"backbone {arch!r}: seed must be an integer, got {seed!r}")
    sha = ""
    if arch in _FIXTURES:
        if weights not in ("random", "none"):
            raise InputError(
                f"backbone {arch!r} is a test fixture without weights: weights must be "
                f"'random' or 'none', got {weights!r}"
            )
        model = factory(output_stride=output_stride)
        fmt_name = weights
    elif weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = factory(output_stride=output_stride)
        fmt_name = "random"
    else:
        state, report = load_checkpoint_state(
            Path(weights), arch, checkpoint_format, arch_options(arch, config)
        )
        with torch.device("meta"):
            model = factory(output_stride=output_stride)
        model.to_empty(device="cpu")
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
        **arch_options(arch, config),
    }
    return model
