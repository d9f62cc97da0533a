"""The Vision Transformer of DINO, iBOT, MAE, MoCo v3 and DINOv2, one class with the published
parameter names (METHOD.md section 4; docs/backbones.md).

DINO's `vision_transformer.py`, iBOT's copy of it and timm's `VisionTransformer` (which MAE and
MoCo v3 build on) share one layout: `cls_token`, `pos_embed`, `patch_embed.proj`,
`blocks.<i>.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}`, `norm`. DINOv2 adds
LayerScale (`blocks.<i>.ls1.gamma`, `ls2.gamma`), `register_tokens`, a `mask_token` (used only in
training, but saved), a SwiGLU MLP for ViT-g/14 (`mlp.w12`, `mlp.w3`), a 518-pixel position
table and its own interpolation settings. MoCo v3's position table is a fixed 2-D sin-cos one.
Each of these is an option of `VisionTransformer`; the registry (`rpsloc.backbones`) names the
published combinations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

__all__ = [
    "Encoding",
    "SelfAttention",
    "VisionTransformer",
    "sincos_position_table",
    "swiglu_hidden_features",
    "vision_transformer",
]


class PatchEmbed(nn.Module):
    """Image to patch tokens: one strided convolution (`patch_embed.proj`)."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


@dataclass(frozen=True)
class SelfAttention:
    """The queries, keys and values of one block's attention, each `(B, heads, tokens,
    head_dim)`: what object discovery reads from a ViT's last block (LOST's and TokenCut's keys,
    DINO's CLS attention maps) without a second pass."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    scale: float

    def cls_attention(self) -> torch.Tensor:
        """The CLS token's attention weights over every token, `(B, heads, tokens)`: row 0 of
        softmax(q k^T scale), the map DINO visualises."""
        logits = (self.q[:, :, :1] @ self.k.transpose(-2, -1)) * self.scale
        return logits.softmax(dim=-1)[:, :, 0]


class Attention(nn.Module):
    """Multi-head self-attention with a joint `qkv` projection and an output `proj`."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attend(x)[0]

    def attend(self, x: torch.Tensor) -> tuple[torch.Tensor, SelfAttention]:
        """The attention output and the queries, keys and values it came from."""
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, n, c)), SelfAttention(q, k, v, self.scale)


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def swiglu_hidden_features(dim: int) -> int:
    """DINOv2's `SwiGLUFFNFused` width for an MLP ratio of 4: 2/3 of 4 `dim`, rounded up to a
    multiple of 8 (4096 for ViT-g/14's 1536)."""
    return (int(4 * dim * 2 / 3) + 7) // 8 * 8


class SwiGLU(nn.Module):
    """DINOv2's SwiGLU MLP (ViT-g/14): `w12` packs both input projections, silu(x1) * x2 -> `w3`."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


class LayerScale(nn.Module):
    """DINOv2's per-channel residual scale (`gamma`; the hub models start it at 1)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1(x))), then x + ls2(mlp(norm2(x))); the
    LayerScales are identities outside DINOv2."""

    def __init__(self, dim: int, num_heads: int, layer_scale: bool, swiglu: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim) if layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = SwiGLU(dim, swiglu_hidden_features(dim)) if swiglu else Mlp(dim, 4 * dim)
        self.ls2 = LayerScale(dim) if layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_attention(x)[0]

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, SelfAttention]:
        """The block's output and its attention's queries, keys and values."""
        out, attention = self.attn.attend(self.norm1(x))
        x = x + self.ls1(out)
        return x + self.ls2(self.mlp(self.norm2(x))), attention


def sincos_position_table(grid: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """MoCo v3's fixed 2-D sin-cos position embedding for a `grid` x `grid` patch grid with a
    zero CLS position, `(1, 1 + grid**2, dim)`, computed as its `vits.py` does (including its
    `meshgrid` order)."""
    coords = torch.arange(grid, dtype=torch.float32)
    grid_w, grid_h = torch.meshgrid(coords, coords, indexing="ij")
    omega = 1.0 / temperature ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    out_w = grid_w.flatten()[:, None] * omega[None]
    out_h = grid_h.flatten()[:, None] * omega[None]
    table = torch.cat([out_w.sin(), out_w.cos(), out_h.sin(), out_h.cos()], dim=1)
    return torch.cat([torch.zeros(1, dim), table])[None]


@dataclass(frozen=True)
class Encoding:
    """One pass of a ViT: the final-LayerNorm tokens `(B, prefix + h*w, C)` (CLS first, then
    the registers, then the patches in raster order) and the last block's attention inputs."""

    tokens: torch.Tensor
    prefix: int  # CLS and register tokens before the patches
    grid: tuple[int, int]  # (h, w) patches
    last_attention: SelfAttention

    @property
    def patch_tokens(self) -> torch.Tensor:
        """`(B, h*w, C)`: the tokens without CLS and registers."""
        return self.tokens[:, self.prefix :]


class VisionTransformer(nn.Module):
    """A ViT with the published names of DINO, iBOT, MAE, MoCo v3 and DINOv2 (module docstring).

    Features = ReLU of the final-LayerNorm patch tokens, CLS and register tokens dropped,
    reshaped to (H/patch, W/patch) (METHOD.md 4); the output stride is the patch size. For
    other input sizes the position table of `img_size` is interpolated bicubically as DINO and
    DINOv2 do: with `interpolate_offset` (DINO's 0.1 kludge) through a scale factor of
    (n + offset) / side, else (DINOv2 with registers) to the exact size, with
    `interpolate_antialias`. Options: `layer_scale`, `swiglu`, `registers`, `mask_token`
    (DINOv2), `sincos_position` (MoCo v3's fixed table as its random init). `weights: random`
    gives DINO's init (DINOv2's LayerScale at 1, its registers near 0).
    """

    def __init__(
        self,
        patch_size: int = 16,
        embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        img_size: int = 224,
        arch: str = "vit",
        *,
        layer_scale: bool = False,
        swiglu: bool = False,
        registers: int = 0,
        mask_token: bool = False,
        interpolate_offset: float = 0.1,
        interpolate_antialias: bool = False,
        sincos_position: bool = False,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.output_stride = patch_size
        self.feature_dim = embed_dim
        self.interpolate_offset = interpolate_offset
        self.interpolate_antialias = interpolate_antialias
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        side = img_size // patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, side * side + 1, embed_dim))
        if registers:
            self.register_tokens = nn.Parameter(torch.zeros(1, registers, embed_dim))
        self.num_prefix_tokens = 1 + registers
        self.blocks = nn.ModuleList(
            [Block(embed_dim, num_heads, layer_scale, swiglu) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        if mask_token:
            self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.LayerNorm):
                nn.init.constant_(m.bias, 0)
                nn.init.constant_(m.weight, 1.0)
        if registers:
            nn.init.normal_(self.register_tokens, std=1e-6)
        if sincos_position:
            with torch.no_grad():
                self.pos_embed.copy_(sincos_position_table(side, embed_dim))

    def interpolate_pos_encoding(self, x: torch.Tensor, w: int, h: int) -> torch.Tensor:
        """The position table for the tokens `x` (CLS and patches) of a `w` x `h` image (DINO's
        naming: `w` is the height), interpolated as DINO and DINOv2 do (class docstring)."""
        npatch = x.shape[1] - 1
        n = self.pos_embed.shape[1] - 1
        if npatch == n and w == h:
            return self.pos_embed
        class_pos_embed = self.pos_embed[:, 0]
        dim = x.shape[-1]
        w0 = w // self.patch_embed.patch_size
        h0 = h // self.patch_embed.patch_size
        side = int(math.sqrt(n))
        if self.interpolate_offset:
            offset = self.interpolate_offset
            sizing = {"scale_factor": ((w0 + offset) / side, (h0 + offset) / side)}
        else:
            sizing = {"size": (w0, h0)}
        patch_pos_embed = F.interpolate(
            self.pos_embed[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2),
            mode="bicubic",
            antialias=self.interpolate_antialias,
            **sizing,
        )
        if (w0, h0) != tuple(patch_pos_embed.shape[-2:]):
            raise RuntimeError("position embedding interpolation gave the wrong grid size")
        patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1)

    def prepare_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The CLS token and the patch tokens plus their (interpolated) positions, then the
        registers after the CLS token, which have no position (as DINOv2 inserts them)."""
        b, _, w, h = x.shape
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(b, -1, -1), tokens), dim=1)
        tokens = tokens + self.interpolate_pos_encoding(tokens, w, h)
        if self.num_prefix_tokens == 1:
            return tokens
        registers = self.register_tokens.expand(b, -1, -1)
        return torch.cat((tokens[:, :1], registers, tokens[:, 1:]), dim=1)

    def get_intermediate_layers(self, x: torch.Tensor, n: int = 1) -> list[torch.Tensor]:
        """DINO's: the final-LayerNorm tokens (CLS first) after each of the last `n` blocks."""
        tokens = self.prepare_tokens(x)
        output = []
        for i, blk in enumerate(self.blocks):
            tokens = blk(tokens)
            if len(self.blocks) - i <= n:
                output.append(self.norm(tokens))
        return output

    def encode(self, x: torch.Tensor) -> Encoding:
        """The final-LayerNorm tokens and the last block's queries, keys and values, in one
        pass (the features, and object discovery's inputs, come from the same forward)."""
        p = self.patch_embed.patch_size
        tokens = self.prepare_tokens(x)
        *first, last = self.blocks
        for blk in first:
            tokens = blk(tokens)
        tokens, attention = last.forward_with_attention(tokens)
        grid = (x.shape[2] // p, x.shape[3] // p)
        return Encoding(self.norm(tokens), self.num_prefix_tokens, grid, attention)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(self.encode(x))

    def feature_map(self, encoding: Encoding) -> torch.Tensor:
        """`(B, C, h, w)` features of an encoding: ReLU of its patch tokens (class docstring)."""
        patches = F.relu(encoding.patch_tokens)
        return patches.transpose(1, 2).reshape(-1, self.feature_dim, *encoding.grid)

    def discovery_inputs(self, encoding: Encoding) -> dict[str, torch.Tensor]:
        """What object discovery reads from the last block (rpsloc.discovery): the patch keys,
        heads concatenated, `keys` (B, h, w, heads * head_dim), as LOST and TokenCut take them,
        and the CLS token's attention over the patches `cls_attention` (B, heads, h, w)."""
        attention = encoding.last_attention
        batch, heads = attention.k.shape[:2]
        keys = (
            attention.k[:, :, encoding.prefix :].transpose(1, 2).reshape(batch, *encoding.grid, -1)
        )
        cls = attention.cls_attention()[:, :, encoding.prefix :].reshape(
            batch, heads, *encoding.grid
        )
        return {"keys": keys, "cls_attention": cls}


def vision_transformer(
    output_stride: int, arch: str, embed_dim: int, depth: int, num_heads: int, **options: Any
) -> VisionTransformer:
    """The ViT `arch` with patch size `output_stride`: a ViT's features lie on its patch grid,
    so its output stride is its patch size (METHOD.md 4). `options`: `VisionTransformer`'s."""
    return VisionTransformer(output_stride, embed_dim, depth, num_heads, arch=arch, **options)
