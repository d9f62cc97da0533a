"""Checkpoints as each project publishes them (METHOD.md section 4, docs/backbones.md): the key
sets and shapes written here from the official model definitions, never from rpsloc's models.
Shared by the backbone tests."""

from __future__ import annotations

Shapes = dict[str, tuple[int, ...]]


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
