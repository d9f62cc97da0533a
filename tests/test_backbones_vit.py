"""The Vision Transformer of DINO, MoCo v3 and DINOv2: patch-token features, position
embeddings interpolated as each project does, registers, LayerScale, SwiGLU, and the last
block's attention from the same pass (METHOD.md section 4, docs/backbones.md)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from conftest import arch_shapes, random_config
from published import DINOV2_ARCHS, FEATURES, dinov2_vit, timm_layout_vit

from rpsloc.backbones import BUILT_IN, architecture
from rpsloc.backbones.build import build_backbone
from rpsloc.backbones.vit import SwiGLU


@pytest.fixture(scope="module")
def vit_s16() -> torch.nn.Module:
    return build_backbone(random_config("vit_s16"), 16)


@pytest.fixture(scope="module")
def dinov2_reg() -> torch.nn.Module:
    return build_backbone(random_config("dinov2_vits14_reg"), 14)


@pytest.fixture(scope="module")
def dinov2() -> torch.nn.Module:
    return build_backbone(random_config("dinov2_vits14"), 14)


@pytest.mark.parametrize("arch", sorted(DINOV2_ARCHS))
def test_every_dinov2_arch_has_exactly_the_published_key_set_and_shapes(arch):
    assert arch_shapes(arch) == dinov2_vit(*DINOV2_ARCHS[arch])


@pytest.mark.parametrize(
    ("arch", "dim", "patch"),
    [("vit_s16", 384, 16), ("vit_s8", 384, 8), ("vit_b16", 768, 16), ("vit_b8", 768, 8),
     ("mocov3_vits16", 384, 16), ("mocov3_vitb16", 768, 16)],
)  # fmt: skip
def test_the_dino_ibot_mae_and_moco_v3_vits_have_exactly_the_published_key_set(arch, dim, patch):
    assert arch_shapes(arch) == timm_layout_vit(dim, 12, patch, grid=224 // patch)


def test_vit_has_dino_parameter_names(vit_s16):
    state = vit_s16.state_dict()
    assert tuple(state["pos_embed"].shape) == (1, 197, 384)
    assert tuple(state["cls_token"].shape) == (1, 1, 384)
    assert tuple(state["patch_embed.proj.weight"].shape) == (384, 3, 16, 16)
    assert tuple(state["blocks.11.attn.qkv.weight"].shape) == (1152, 384)
    assert {"blocks.0.norm1.weight", "blocks.0.mlp.fc2.bias", "norm.weight"} <= set(state)
    assert sum(p.numel() for p in vit_s16.parameters()) == 21_665_664


@pytest.mark.parametrize(("height", "width"), [(224, 224), (448, 448), (160, 96)])
def test_vit_gives_relu_patch_tokens_on_the_patch_grid(vit_s16, height, width):
    with torch.no_grad():
        out = vit_s16(torch.randn(1, 3, height, width))
    assert tuple(out.shape) == (1, 384, height // 16, width // 16)
    assert out.min().item() >= 0.0


def test_vit_tokens_are_the_cls_token_then_the_patches_plus_their_positions(vit_s16):
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        tokens = torch.cat((vit_s16.cls_token, vit_s16.patch_embed(x)), dim=1) + vit_s16.pos_embed
        assert torch.equal(vit_s16.prepare_tokens(x), tokens)


@pytest.mark.parametrize(("model", "prefix", "side"), [("vit_s16", 1, 14), ("dinov2_reg", 5, 16)])
def test_vit_features_are_the_final_norm_patch_tokens_without_cls_and_registers(
    model, prefix, side, request
):
    model = request.getfixturevalue(model)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        tokens = model.prepare_tokens(x)
        for blk in model.blocks:
            tokens = blk(tokens)
        expected = torch.relu(model.norm(tokens)[0, prefix:]).T.reshape(384, side, side)
        out = model(x)[0]
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize(("model", "side", "size"), [("vit_s16", 14, 224), ("dinov2", 37, 518)])
def test_vit_position_embedding_is_kept_at_the_training_size(model, side, size, request):
    model = request.getfixturevalue(model)
    tokens = torch.zeros(1, 1 + side * side, 384)
    assert model.interpolate_pos_encoding(tokens, size, size) is model.pos_embed


def test_vit_position_embedding_is_interpolated_bicubically_as_dino_does(vit_s16):
    tokens = torch.zeros(1, 1 + 28 * 24, 384)
    pos = vit_s16.interpolate_pos_encoding(tokens, 448, 384)
    grid = vit_s16.pos_embed[:, 1:].reshape(1, 14, 14, 384).permute(0, 3, 1, 2)
    # DINO passes scale_factor (n + 0.1) / 14, not a size: the sampling grid differs slightly
    scale = ((28 + 0.1) / 14, (24 + 0.1) / 14)
    expected = torch.nn.functional.interpolate(grid, scale_factor=scale, mode="bicubic")
    assert tuple(pos.shape) == (1, 1 + 28 * 24, 384)
    assert torch.equal(pos[:, 0], vit_s16.pos_embed[:, 0])
    assert torch.allclose(pos[0, 1:].T.reshape(384, 28, 24), expected[0], atol=1e-6)


def test_vit_output_stride_is_its_patch_size():
    with torch.device("meta"):
        model = architecture("vit_b8").build(8)
    assert (model.output_stride, model.feature_dim) == (8, 768)


# ----------------------------------------------------------------------------- DINOv2


def test_register_tokens_follow_the_cls_token_and_get_no_position(dinov2_reg):
    tokens = dinov2_reg.prepare_tokens(torch.randn(1, 3, 518, 518))
    cls = dinov2_reg.cls_token + dinov2_reg.pos_embed[:, :1]
    assert tuple(tokens.shape) == (1, 1 + 4 + 37 * 37, 384)
    assert torch.equal(tokens[:, :1], cls)
    assert torch.equal(tokens[:, 1:5], dinov2_reg.register_tokens)


def patch_positions(model: torch.nn.Module, side: int) -> torch.Tensor:
    """The patch part of a model's position table after interpolation to side x side."""
    tokens = torch.zeros(1, 1 + side * side, model.feature_dim)
    with torch.no_grad():
        pos = model.interpolate_pos_encoding(tokens, 14 * side, 14 * side)
    assert torch.equal(pos[:, 0], model.pos_embed[:, 0])
    return pos[0, 1:].T.reshape(model.feature_dim, side, side)


def table_grid(model: torch.nn.Module) -> torch.Tensor:
    return model.pos_embed[:, 1:].detach().reshape(1, 37, 37, -1).permute(0, 3, 1, 2)


@pytest.mark.parametrize("size", [224, 448])
def test_dinov2_interpolates_its_position_table_with_its_offset_scale_factor(dinov2, size):
    side = size // 14
    # dinov2/models/vision_transformer.py, interpolate_offset 0.1, antialias off (the hub's)
    scale = ((side + 0.1) / 37, (side + 0.1) / 37)
    expected = F.interpolate(table_grid(dinov2), scale_factor=scale, mode="bicubic")
    assert torch.allclose(patch_positions(dinov2, side), expected[0], atol=1e-6)


@pytest.mark.parametrize("size", [224, 448])
def test_dinov2_with_registers_interpolates_to_the_exact_size_with_antialiasing(dinov2_reg, size):
    side = size // 14
    # dinov2/hub/backbones.py *_reg: interpolate_offset 0.0 (a size), interpolate_antialias True
    expected = F.interpolate(
        table_grid(dinov2_reg), size=(side, side), mode="bicubic", antialias=True
    )
    assert torch.allclose(patch_positions(dinov2_reg, side), expected[0], atol=1e-6)


def test_layer_scale_scales_each_residual_branch(dinov2):
    block = dinov2.blocks[0]
    x = torch.randn(1, 5, 384)
    with torch.no_grad():
        y = x + block.ls1.gamma * block.attn(block.norm1(x))
        expected = y + block.ls2.gamma * block.mlp(block.norm2(y))
        assert torch.allclose(block(x), expected, atol=1e-6)


def test_vitg14_has_dinov2s_swiglu_mlp_of_width_4096():
    with torch.device("meta"):
        mlp = architecture("dinov2_vitg14").build(14).blocks[0].mlp
    assert isinstance(mlp, SwiGLU)
    assert (mlp.w12.out_features, mlp.w3.in_features) == (2 * 4096, 4096)


def test_swiglu_gates_the_second_half_of_w12_with_silu_of_the_first():
    mlp = SwiGLU(12, 32)
    x = torch.randn(3, 12)
    with torch.no_grad():
        x1, x2 = mlp.w12(x)[:, :32], mlp.w12(x)[:, 32:]
        assert torch.allclose(mlp(x), mlp.w3(F.silu(x1) * x2), atol=1e-6)


# ----------------------------------------------------------------------------- MoCo v3


def test_mocov3_vit_s_has_twelve_heads_where_dinos_has_six():
    with torch.device("meta"):
        moco = architecture("mocov3_vits16").build(16)
        dino = architecture("vit_s16").build(16)
    assert (moco.blocks[0].attn.num_heads, dino.blocks[0].attn.num_heads) == (12, 6)


def test_mocov3_random_init_has_its_fixed_sincos_position_table():
    model = build_backbone(random_config("mocov3_vits16"), 16)
    # moco-v3 vits.py build_2d_sincos_position_embedding for the 14 x 14 grid of 224 pixels
    grid_w, grid_h = torch.meshgrid(torch.arange(14.0), torch.arange(14.0), indexing="ij")
    omega = 1.0 / 10000.0 ** (torch.arange(96.0) / 96)
    out_w = torch.einsum("m,d->md", grid_w.flatten(), omega)
    out_h = torch.einsum("m,d->md", grid_h.flatten(), omega)
    table = torch.cat([out_w.sin(), out_w.cos(), out_h.sin(), out_h.cos()], dim=1)
    expected = torch.cat([torch.zeros(1, 1, 384), table[None]], dim=1)
    assert torch.allclose(model.pos_embed, expected, atol=1e-6)


# ----------------------------------------------------------------------------- every ViT

#: Every built-in ViT (each documented in FEATURES).
VITS = sorted(arch for arch, record in BUILT_IN.items() if record.patch_grid)


@pytest.mark.parametrize("arch", VITS)
def test_every_vit_gives_features_of_its_documented_shape_at_two_input_sizes(arch):
    dim, patch = FEATURES[arch]
    with torch.device("meta"):
        model = architecture(arch).build(patch)
        shapes = [tuple(model(torch.zeros(2, 3, *size)).shape) for size in ((224, 224), (448, 336))]
    assert (model.feature_dim, model.output_stride) == (dim, patch)
    assert shapes == [(2, dim, 224 // patch, 224 // patch), (2, dim, 448 // patch, 336 // patch)]


def test_one_pass_gives_the_features_the_last_blocks_keys_and_the_cls_attention(dinov2_reg):
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        encoding = dinov2_reg.encode(x)
        tokens = dinov2_reg.prepare_tokens(x)
        for blk in dinov2_reg.blocks[:-1]:
            tokens = blk(tokens)
        last = dinov2_reg.blocks[-1].attn
        q, k, v = last.qkv(dinov2_reg.blocks[-1].norm1(tokens)).reshape(2, 69, 3, 6, 64).unbind(2)
        attention = (q.transpose(1, 2) @ k.transpose(1, 2).transpose(-2, -1)) * 64**-0.5
        features = dinov2_reg(x)
    assert (encoding.prefix, encoding.grid) == (5, (8, 8))
    assert torch.allclose(encoding.last_attention.k, k.transpose(1, 2), atol=1e-5)
    assert torch.allclose(encoding.last_attention.v, v.transpose(1, 2), atol=1e-5)
    cls_attention = encoding.last_attention.cls_attention()
    assert torch.allclose(cls_attention, attention.softmax(-1)[:, :, 0], atol=1e-5)
    patches = torch.relu(encoding.patch_tokens).transpose(1, 2).reshape(2, 384, 8, 8)
    assert torch.equal(features, patches)


def test_the_discovery_inputs_are_the_patch_keys_and_the_cls_attention_over_patches(dinov2_reg):
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        encoding = dinov2_reg.encode(x)
        inputs = dinov2_reg.discovery_inputs(encoding)
        features = dinov2_reg.feature_map(encoding)
    k = encoding.last_attention.k  # (2, 6 heads, 5 + 64 tokens, 64)
    assert inputs["keys"].shape == (2, 8, 8, 384)
    assert torch.equal(inputs["keys"][1, 2, 3, 64:128], k[1, 1, 5 + 2 * 8 + 3])
    cls = encoding.last_attention.cls_attention()
    assert torch.equal(inputs["cls_attention"][0, 4].reshape(-1), cls[0, 4, 5:])
    assert torch.equal(features, dinov2_reg(x))
