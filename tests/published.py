"""Checkpoints as each project publishes them (METHOD.md section 4, docs/backbones.md): the key
sets and shapes written here from the official model definitions, never from rpsloc's models,
and the containers each project's training script wraps them in. Shared by the backbone tests.

Entries a loader must ignore (momentum encoders, projection heads, decoders) are stride-0 views
of one value: the right shapes, a few bytes on disk."""

from __future__ import annotations

import argparse

import torch

Shapes = dict[str, tuple[int, ...]]
Tensors = dict[str, torch.Tensor]


def timm_layout_vit(dim: int, depth: int, patch: int = 16, grid: int = 14) -> Shapes:
    """DINO's vision_transformer.py (which iBOT copies) and timm's VisionTransformer (which MAE
    and MoCo v3 build on): a 224-pixel position table, qkv with bias, MLP ratio 4, no head."""
    shapes: Shapes = {
        "cls_token": (1, 1, dim),
        "pos_embed": (1, 1 + grid * grid, dim),
        "patch_embed.proj.weight": (dim, 3, patch, patch),
        "patch_embed.proj.bias": (dim,),
    }
    for i in range(depth):
        shapes |= {
            f"blocks.{i}.norm1.weight": (dim,),
            f"blocks.{i}.norm1.bias": (dim,),
            f"blocks.{i}.attn.qkv.weight": (3 * dim, dim),
            f"blocks.{i}.attn.qkv.bias": (3 * dim,),
            f"blocks.{i}.attn.proj.weight": (dim, dim),
            f"blocks.{i}.attn.proj.bias": (dim,),
            f"blocks.{i}.norm2.weight": (dim,),
            f"blocks.{i}.norm2.bias": (dim,),
            f"blocks.{i}.mlp.fc1.weight": (4 * dim, dim),
            f"blocks.{i}.mlp.fc1.bias": (4 * dim,),
            f"blocks.{i}.mlp.fc2.weight": (dim, 4 * dim),
            f"blocks.{i}.mlp.fc2.bias": (dim,),
        }
    return shapes | {"norm.weight": (dim,), "norm.bias": (dim,)}


def dinov2_vit(dim: int, depth: int, registers: int = 0, swiglu: bool = False) -> Shapes:
    """dinov2/models/vision_transformer.py as dinov2/hub/backbones.py builds it: img_size 518
    (a 37 x 37 position table), patch 14, init_values 1 (`ls1`, `ls2`), block_chunks 0 (plain
    `blocks.<i>`), a `mask_token`, `register_tokens` with registers, and for ViT-g/14
    SwiGLUFFNFused (`w12`, `w3`; hidden (int(4 dim * 2 / 3) + 7) // 8 * 8)."""
    shapes: Shapes = {
        "cls_token": (1, 1, dim),
        "pos_embed": (1, 1 + 37 * 37, dim),
        "mask_token": (1, dim),
        "patch_embed.proj.weight": (dim, 3, 14, 14),
        "patch_embed.proj.bias": (dim,),
    }
    if registers:
        shapes["register_tokens"] = (1, registers, dim)
    hidden = (int(4 * dim * 2 / 3) + 7) // 8 * 8
    for i in range(depth):
        block = f"blocks.{i}."
        shapes |= {
            block + "norm1.weight": (dim,),
            block + "norm1.bias": (dim,),
            block + "attn.qkv.weight": (3 * dim, dim),
            block + "attn.qkv.bias": (3 * dim,),
            block + "attn.proj.weight": (dim, dim),
            block + "attn.proj.bias": (dim,),
            block + "ls1.gamma": (dim,),
            block + "norm2.weight": (dim,),
            block + "norm2.bias": (dim,),
        }
        if swiglu:
            shapes |= {
                block + "mlp.w12.weight": (2 * hidden, dim),
                block + "mlp.w12.bias": (2 * hidden,),
                block + "mlp.w3.weight": (dim, hidden),
                block + "mlp.w3.bias": (dim,),
            }
        else:
            shapes |= {
                block + "mlp.fc1.weight": (4 * dim, dim),
                block + "mlp.fc1.bias": (4 * dim,),
                block + "mlp.fc2.weight": (dim, 4 * dim),
                block + "mlp.fc2.bias": (dim,),
            }
        shapes[block + "ls2.gamma"] = (dim,)
    return shapes | {"norm.weight": (dim,), "norm.bias": (dim,)}


#: DINOv2's eight hub models: (embed dim, depth, registers, SwiGLU).
DINOV2_ARCHS = {
    f"dinov2_vit{size}14{suffix}": (dim, depth, registers, size == "g")
    for suffix, registers in (("", 0), ("_reg", 4))
    for size, dim, depth in (("s", 384, 12), ("b", 768, 12), ("l", 1024, 24), ("g", 1536, 40))
}


#: Feature dimension and output stride (a ViT's patch size) of every built-in ViT and of
#: ResNet-50 at its default stride, as docs/backbones.md documents them.
FEATURES = {
    "resnet50": (2048, 32),
    "vit_s16": (384, 16),
    "vit_s8": (384, 8),
    "vit_b16": (768, 16),
    "vit_b8": (768, 8),
    "mocov3_vits16": (384, 16),
    "mocov3_vitb16": (768, 16),
} | {arch: (dim, 14) for arch, (dim, *_) in DINOV2_ARCHS.items()}


def torchvision_resnet50() -> Shapes:
    """torchvision's resnet50 without its `fc` head (SwAV's hubconf and MoCo v3 build on it):
    Bottleneck blocks (3, 4, 6, 3), the first of each stage with a `downsample`."""
    shapes: Shapes = {"conv1.weight": (64, 3, 7, 7), **batchnorm("bn1.", 64)}
    inplanes = 64
    stages = zip((64, 128, 256, 512), (3, 4, 6, 3), strict=True)
    for stage, (planes, blocks) in enumerate(stages, start=1):
        for index in range(blocks):
            block = f"layer{stage}.{index}."
            width = inplanes if index == 0 else 4 * planes
            shapes |= {
                block + "conv1.weight": (planes, width, 1, 1),
                **batchnorm(block + "bn1.", planes),
            }
            shapes |= {
                block + "conv2.weight": (planes, planes, 3, 3),
                **batchnorm(block + "bn2.", planes),
            }
            shapes |= {
                block + "conv3.weight": (4 * planes, planes, 1, 1),
                **batchnorm(block + "bn3.", 4 * planes),
            }
            if index == 0:
                shapes |= {
                    block + "downsample.0.weight": (4 * planes, width, 1, 1),
                    **batchnorm(block + "downsample.1.", 4 * planes),
                }
        inplanes = 4 * planes
    return shapes


def batchnorm(prefix: str, width: int, affine: bool = True) -> Shapes:
    shapes: Shapes = {f"{prefix}weight": (width,), f"{prefix}bias": (width,)} if affine else {}
    return shapes | {
        f"{prefix}running_mean": (width,),
        f"{prefix}running_var": (width,),
        f"{prefix}num_batches_tracked": (),
    }


def moco_v3_mlp(prefix: str, layers: int, in_dim: int, last_bn: bool = True) -> Shapes:
    """MoCo v3's `_build_mlp(layers, in_dim, 4096, 256, last_bn)` (moco/builder.py): bias-free
    Linear layers, BatchNorm1d between them, an affine-free BatchNorm1d last."""
    shapes: Shapes = {}
    index = 0
    for layer in range(layers):
        dim1 = in_dim if layer == 0 else 4096
        dim2 = 256 if layer == layers - 1 else 4096
        shapes[f"{prefix}{index}.weight"] = (dim2, dim1)
        if layer < layers - 1:
            shapes |= batchnorm(f"{prefix}{index + 1}.", dim2)
            index += 3
        elif last_bn:
            shapes |= batchnorm(f"{prefix}{index + 1}.", dim2, affine=False)
    return shapes


def swav_heads(prefix: str) -> Shapes:
    """SwAV's ResNet-50 heads (src/resnet50.py, as swav_800ep_pretrain was trained: hidden_mlp
    2048, feat_dim 128, 3000 prototypes)."""
    return {
        f"{prefix}projection_head.0.weight": (2048, 2048),
        f"{prefix}projection_head.0.bias": (2048,),
        **batchnorm(f"{prefix}projection_head.1.", 2048),
        f"{prefix}projection_head.3.weight": (128, 2048),
        f"{prefix}projection_head.3.bias": (128,),
        f"{prefix}prototypes.weight": (3000, 128),
    }


def mae_decoder() -> Shapes:
    """MAE's decoder of mae_vit_base_patch16_dec512d8b (models_mae.py): 512 wide, 8 blocks."""
    shapes: Shapes = {
        "mask_token": (1, 1, 512),
        "decoder_pos_embed": (1, 197, 512),
        "decoder_embed.weight": (512, 768),
        "decoder_embed.bias": (512,),
    }
    for key, shape in timm_layout_vit(512, 8).items():
        if key.startswith("blocks."):
            shapes[f"decoder_{key}"] = shape
    return shapes | {
        "decoder_norm.weight": (512,),
        "decoder_norm.bias": (512,),
        "decoder_pred.weight": (16 * 16 * 3, 512),
        "decoder_pred.bias": (16 * 16 * 3,),
    }


def random_state(shapes: Shapes, seed: int = 0) -> Tensors:
    """Seeded random tensors of `shapes`: small normal weights, BatchNorm variances in
    [0.5, 1.5), counters as int64."""
    generator = torch.Generator().manual_seed(seed)
    state: Tensors = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(100)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=generator)
        else:
            state[key] = 0.02 * torch.randn(shape, generator=generator)
    return state


def constant_state(shapes: Shapes, value: float = 7.0) -> Tensors:
    """Tensors of `shapes` that all view one stored value: entries to be ignored."""
    return {key: torch.full((), value).expand(shape) for key, shape in shapes.items()}


def prefixed(state: Tensors, prefix: str) -> Tensors:
    return {prefix + key: value for key, value in state.items()}


def optimizer_state() -> dict[str, object]:
    return {"state": {}, "param_groups": [{"lr": 1.5e-4, "weight_decay": 0.1, "params": [0, 1]}]}


def moco_v3_pretraining(backbone: Tensors, arch: str) -> dict[str, object]:
    """main_moco.py's save_checkpoint: the DDP-wrapped MoCo model (base encoder with its
    projection MLP in `head` / `fc`, momentum encoder, predictor), optimizer and AMP scaler."""
    vit = arch.startswith("vit")
    head, width = ("head.", backbone["norm.weight"].shape[0]) if vit else ("fc.", 2048)
    projector = moco_v3_mlp(head, 3 if vit else 2, width)
    predictor = moco_v3_mlp("module.predictor.", 2, 256, last_bn=vit)
    state = prefixed(backbone | constant_state(projector), "module.base_encoder.")
    momentum = {key: tuple(value.shape) for key, value in backbone.items()} | projector
    state |= prefixed(constant_state(momentum, 3.0), "module.momentum_encoder.")
    state |= constant_state(predictor)
    return {
        "epoch": 300,
        "arch": arch,
        "state_dict": state,
        "optimizer": optimizer_state(),
        "scaler": {"scale": 65536.0, "growth_factor": 2.0, "_growth_tracker": 10},
    }


def moco_v3_linear_eval(backbone: Tensors, arch: str, width: int) -> dict[str, object]:
    """main_lincls.py's checkpoint: the DDP-wrapped model with its linear `head` / `fc`."""
    head = "head" if arch.startswith("vit") else "fc"
    state = prefixed(backbone, "module.") | {
        f"module.{head}.weight": torch.zeros(1000, width),
        f"module.{head}.bias": torch.zeros(1000),
    }
    return {
        "epoch": 90,
        "arch": arch,
        "state_dict": state,
        "best_acc1": torch.tensor(73.2),
        "optimizer": optimizer_state(),
    }


def mae_pretraining(backbone: Tensors) -> dict[str, object]:
    """main_pretrain.py's misc.save_model: the whole MAE (encoder and decoder) in `model`."""
    return {
        "model": backbone | constant_state(mae_decoder()),
        "optimizer": optimizer_state(),
        "epoch": 1599,
        "scaler": {"scale": 65536.0},
        "args": argparse.Namespace(model="mae_vit_base_patch16", mask_ratio=0.75),
    }


def ibot_full(backbone: Tensors) -> dict[str, object]:
    """main_ibot.py's checkpoint.pth: the DDP student (with its `masked_embed`) and the plain
    teacher, each a MultiCropWrapper of `backbone` and the iBOT head."""
    dim = backbone["norm.weight"].shape[0]
    head = {"mlp.0.weight": (2048, dim), "mlp.0.bias": (2048,), "last_layer.weight_g": (8192, 1)}
    head |= {"last_layer.weight_v": (8192, 256), "last_layer2.weight_v": (8192, 256)}
    student = constant_state({key: tuple(value.shape) for key, value in backbone.items()})
    student["masked_embed"] = torch.zeros(1, dim)
    return {
        "student": prefixed(student, "module.backbone.")
        | prefixed(constant_state(head), "module.head."),
        "teacher": prefixed(backbone, "backbone.") | prefixed(constant_state(head), "head."),
        "optimizer": optimizer_state(),
        "epoch": 800,
        "args": argparse.Namespace(arch="vit_small", patch_size=16, out_dim=8192),
        "ibot_loss": {"center": torch.zeros(1, 8192)},
    }


def timm_dinov2(state: Tensors) -> Tensors:
    """timm's `_convert_dinov2` (timm/models/vision_transformer.py), restated: `mask_token`
    dropped; with registers `reg_token`, the CLS position folded into `cls_token` and dropped
    from `pos_embed`; SwiGLU `w12`/`w3` renamed `fc1`/`fc2`."""
    state = dict(state)
    state.pop("mask_token")
    out: Tensors = {}
    if "register_tokens" in state:
        out["reg_token"] = state.pop("register_tokens")
        out["cls_token"] = state.pop("cls_token") + state["pos_embed"][:, 0]
        out["pos_embed"] = state.pop("pos_embed")[:, 1:]
    for key, value in state.items():
        out[key.replace("mlp.w12.", "mlp.fc1.").replace("mlp.w3.", "mlp.fc2.")] = value
    return out
