"""The checkpoint formats in the wild, by name: where each project keeps the backbone in its
file, for which archs, who publishes it (METHOD.md section 4 table; docs/backbones.md).

The tables, the size limit and the check that a configured file exists need no torch: the
workflow checks every checkpoint a config names while it parses its rules, before any job, and
reads them from here. Reading and fitting a checkpoint is `rpsloc.backbones.checkpoints`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rpsloc.backbones import BUILT_IN
from rpsloc.errors import CheckpointError

__all__ = [
    "CHECKPOINT_FORMATS",
    "DEFAULT_MAX_BYTES",
    "DINO_LINEAR_FORMATS",
    "EFFICIENTNET_FORMATS",
    "FORMAT_ALIASES",
    "RESNET_FORMATS",
    "TIMM_DINOV2_NAMES",
    "CheckpointFormat",
    "from_timm_dinov2",
    "require_checkpoint_file",
]

Shapes = Mapping[str, tuple[int, ...]]
#: A format's conversion of its project's names and layout to the model's: the converted state
#: and the entries it set itself (absent from the file); None when the file is not in its layout.
Conversion = Callable[[dict[str, Any], Shapes], tuple[dict[str, Any], list[str]] | None]


@dataclass(frozen=True)
class CheckpointFormat:
    """Where a project keeps the backbone weights in its checkpoint (METHOD.md 4 table).

    `archs`: the archs the project publishes in this layout (None: any); a file in a format
    made for other archs is not loaded into this one (MoCo v3's ViT-S has DINO's ViT-S tensors
    but twice its heads). `ignored`: first name components of the project's own extra entries
    (SwAV's prototypes, MAE's decoder), ignored and listed like heads. `convert`: renames a
    project's names to the model's (`from_timm_dinov2`).
    """

    name: str
    container: str | None  # key of the state dict in the file; None: the file is the state dict
    prefix: str  # prefix of the backbone keys, stripped before loading
    published_by: str
    archs: tuple[str, ...] | None = None
    ignored: tuple[str, ...] = ()
    convert: Conversion | None = None

    def holds(self, arch: str) -> bool:
        """Whether the format is published for `arch`."""
        return self.archs is None or arch in self.archs


#: timm's names for DINOv2 tensors where they differ from DINOv2's (timm's `_convert_dinov2`
#: read backwards), timm's name part -> DINOv2's. A rename applies only where the model has the
#: DINOv2 name and not timm's: the MLP ones in ViT-g/14 (SwiGLU), whose `mlp.fc1` is `mlp.w12`.
TIMM_DINOV2_NAMES: dict[str, str] = {
    "reg_token": "register_tokens",
    "mlp.fc1.": "mlp.w12.",
    "mlp.fc2.": "mlp.w3.",
}


def from_timm_dinov2(
    state: dict[str, Any], expected: Shapes
) -> tuple[dict[str, Any], list[str]] | None:
    """A timm DINOv2 state dict in DINOv2's names and layout; None when `state` holds the
    `mask_token` that timm always drops (then it is not timm's layout).

    Besides the renames of TIMM_DINOV2_NAMES, timm's DINOv2 with registers keeps no position for
    the CLS token (its `cls_token` already holds cls + that position): a `pos_embed` one
    position short gets a zero CLS position, which computes the same tokens. DINOv2's
    `mask_token`, used only in training, is set to zeros and listed.
    """
    import torch  # here, not above: the format tables are read without torch (module docstring)

    if "mask_token" in state:
        return None
    converted: dict[str, Any] = {}
    for key, value in state.items():
        for timm_name, dinov2_name in TIMM_DINOV2_NAMES.items():
            renamed = key.replace(timm_name, dinov2_name)
            if renamed != key and renamed in expected and key not in expected:
                key = renamed
        converted[key] = value
    position = converted.get("pos_embed")
    if isinstance(position, torch.Tensor) and position.ndim == 3:
        _, n, dim = position.shape
        if expected.get("pos_embed") == (1, n + 1, dim):
            converted["pos_embed"] = torch.cat([position.new_zeros(1, 1, dim), position], dim=1)
    if "mask_token" not in expected:
        return converted, []
    converted["mask_token"] = torch.zeros(expected["mask_token"])
    return converted, ["mask_token"]


#: The archs whose checkpoints MoCo v3 publishes, and DINOv2's.
_MOCO_V3 = ("resnet50", "mocov3_vits16", "mocov3_vitb16")
_DINOV2 = tuple(arch for arch in BUILT_IN if arch.startswith("dinov2_"))

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
            "moco_v3",
            "state_dict",
            "module.",
            "facebookresearch/moco-v3 (linear-eval checkpoints: linear-1000ep.pth.tar, "
            "linear-vit-s-300ep.pth.tar, linear-vit-b-300ep.pth.tar)",
            archs=_MOCO_V3,
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
        CheckpointFormat(
            "moco_v3_pretrain",
            "state_dict",
            "module.base_encoder.",
            "facebookresearch/moco-v3 (pretraining checkpoints: r-50-1000ep.pth.tar, "
            "vit-s-300ep.pth.tar, vit-b-300ep.pth.tar; momentum encoder and predictor ignored)",
            archs=_MOCO_V3,
        ),
        CheckpointFormat(
            "swav",
            None,
            "module.",
            "facebookresearch/swav (swav_800ep_pretrain.pth.tar, also its DeepCluster-v2 and "
            "SeLa-v2 ResNet-50s; projection_head and prototypes ignored)",
            archs=("resnet50",),
            ignored=("projection_head", "prototypes"),
        ),
        CheckpointFormat(
            "ibot",
            "state_dict",
            "",
            "bytedance/ibot (checkpoint_teacher.pth of vits_16, vitb_16: the teacher backbone)",
            archs=("vit_s16", "vit_b16"),
        ),
        CheckpointFormat(
            "teacher",
            "teacher",
            "backbone.",
            "bytedance/ibot and facebookresearch/dino full checkpoints (checkpoint.pth): the "
            "teacher's backbone; student, heads and optimizer ignored",
        ),
        CheckpointFormat(
            "mae",
            "model",
            "",
            "facebookresearch/mae (mae_pretrain_vit_base.pth; the decoder of a main_pretrain.py "
            "checkpoint is ignored)",
            archs=("vit_b16",),
            ignored=(
                "mask_token",
                "decoder_embed",
                "decoder_blocks",
                "decoder_norm",
                "decoder_pred",
                "decoder_pos_embed",
            ),
        ),
        CheckpointFormat(
            "dinov2",
            None,
            "",
            "facebookresearch/dinov2 (dinov2_vits14_pretrain.pth, ..., dinov2_vitg14_pretrain.pth"
            "; with registers dinov2_vits14_reg4_pretrain.pth, ...)",
            archs=_DINOV2,
        ),
        CheckpointFormat(
            "timm",
            None,
            "",
            "huggingface/pytorch-image-models (timm's DINOv2 model.safetensors: "
            "timm/vit_small_patch14_dinov2.lvd142m, timm/vit_small_patch14_reg4_dinov2.lvd142m, "
            "...)",
            archs=_DINOV2,
            convert=from_timm_dinov2,
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

#: The most bytes a checkpoint may hold uncompressed (its tensors in memory) unless configured
#: otherwise (`checkpoints.max_size_gb`): a full DINO ViT-B/8 training checkpoint (student,
#: teacher and optimizer state) holds 1.4 GB.
DEFAULT_MAX_BYTES = 2 * 10**9


def _publishers(checkpoint_format: str, formats: Mapping[str, CheckpointFormat]) -> str:
    """Who publishes checkpoints of `checkpoint_format` (a name or an alias among `formats`),
    else of every format: the hint of an error about a missing or foreign file."""
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


#: The classifiers' formats (docs/classifiers.md): a ResNet-50's are the backbones' and the
#: authors' CUB one; EfficientNet's and DINO's linear heads have their own.
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

DINO_LINEAR_FORMATS: dict[str, CheckpointFormat] = {
    "dino_linear": CheckpointFormat(
        "dino_linear",
        "state_dict",
        "module.",
        "facebookresearch/dino (eval_linear.py heads, e.g. dino_deitsmall8_linearweights.pth)",
    ),
}
