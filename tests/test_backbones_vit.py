"""DINO's Vision Transformer: DINO's names, patch-token features, position embeddings
(METHOD.md section 4)."""

from __future__ import annotations

import pytest
import torch
from conftest import random_config

from rpsloc.backbones import architecture, build_backbone


@pytest.fixture(scope="module")
def vit_s16() -> torch.nn.Module:
    return build_backbone(random_config("vit_s16"), 16)


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


def test_vit_features_are_the_final_norm_patch_tokens_without_cls(vit_s16):
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        tokens = vit_s16.patch_embed(x)
        tokens = torch.cat((vit_s16.cls_token, tokens), dim=1) + vit_s16.pos_embed
        for blk in vit_s16.blocks:
            tokens = blk(tokens)
        expected = torch.relu(vit_s16.norm(tokens)[0, 1:]).T.reshape(384, 14, 14)
        out = vit_s16(x)[0]
    assert torch.allclose(out, expected, atol=1e-5)


def test_vit_position_embedding_is_kept_at_the_training_size(vit_s16):
    tokens = torch.zeros(1, 1 + 14 * 14, 384)
    assert vit_s16.interpolate_pos_encoding(tokens, 224, 224) is vit_s16.pos_embed


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
        model = architecture("vit_b8").factory(8)
    assert (model.output_stride, model.feature_dim) == (8, 768)
