"""The checkpoints of today's self-supervised backbones as their projects publish them: DINOv2
(with and without registers), MoCo v3 (pretraining and linear-eval), SwAV, iBOT, MAE, and
safetensors files, timm's names included (METHOD.md section 4, docs/backbones.md).

Each file holds a random state dict with exactly the published key set and shapes (tests/
published.py writes them from the official model definitions) in its project's container, and
must load strictly, be detected by its format, and give features of the documented shape.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import arch_shapes
from published import (
    DINOV2_ARCHS,
    FEATURES,
    Shapes,
    Tensors,
    constant_state,
    dinov2_vit,
    ibot_full,
    mae_pretraining,
    moco_v3_linear_eval,
    moco_v3_pretraining,
    prefixed,
    random_state,
    swav_heads,
    timm_dinov2,
    timm_layout_vit,
    torchvision_resnet50,
)
from safetensors.torch import save_file

from rpsloc.backbones.build import build_backbone
from rpsloc.backbones.checkpoints import check_checkpoint, fit_checkpoint, load_checkpoint_state
from rpsloc.backbones.formats import from_timm_dinov2
from rpsloc.cli import main
from rpsloc.errors import CheckpointError


@dataclass(frozen=True)
class Published:
    """One project's checkpoint: the arch it is for, its published file name, its format, how
    its training script wraps the backbone state, and where that state sits in the file."""

    arch: str
    file: str
    format: str
    wrap: Callable[[Tensors], object]
    container: str | None
    prefix: str


PUBLISHED = {
    "dinov2": Published("dinov2_vits14", "dinov2_vits14_pretrain.pth", "dinov2", dict, None, ""),
    "dinov2_reg": Published(
        "dinov2_vits14_reg", "dinov2_vits14_reg4_pretrain.pth", "dinov2", dict, None, ""
    ),
    "moco_v3_vit_s": Published(
        "mocov3_vits16",
        "vit-s-300ep.pth.tar",
        "moco_v3_pretrain",
        lambda state: moco_v3_pretraining(state, "vit_small"),
        "state_dict",
        "module.base_encoder.",
    ),
    "moco_v3_vit_s_linear": Published(
        "mocov3_vits16",
        "linear-vit-s-300ep.pth.tar",
        "moco_v3",
        lambda state: moco_v3_linear_eval(state, "vit_small", 384),
        "state_dict",
        "module.",
    ),
    "moco_v3_resnet50": Published(
        "resnet50",
        "r-50-1000ep.pth.tar",
        "moco_v3_pretrain",
        lambda state: moco_v3_pretraining(state, "resnet50"),
        "state_dict",
        "module.base_encoder.",
    ),
    "swav": Published(
        "resnet50",
        "swav_800ep_pretrain.pth.tar",
        "swav",
        lambda state: prefixed(state, "module.") | constant_state(swav_heads("module.")),
        None,
        "module.",
    ),
    "ibot": Published(
        "vit_s16",
        "checkpoint_teacher.pth",
        "ibot",
        lambda state: {"state_dict": state},
        "state_dict",
        "",
    ),
    "ibot_full": Published(
        "vit_s16", "checkpoint.pth", "teacher", ibot_full, "teacher", "backbone."
    ),
    "mae": Published(
        "vit_b16", "mae_pretrain_vit_base.pth", "mae", lambda state: {"model": state}, "model", ""
    ),
}

#: The published backbone key sets, by arch.
BACKBONES: dict[str, Shapes] = {
    "dinov2_vits14": dinov2_vit(384, 12),
    "dinov2_vits14_reg": dinov2_vit(384, 12, registers=4),
    "mocov3_vits16": timm_layout_vit(384, 12),
    "vit_s16": timm_layout_vit(384, 12),
    "vit_b16": timm_layout_vit(768, 12),
    "resnet50": torchvision_resnet50(),
}

#: A key of each backbone to delete, and one to give the wrong shape.
MISSING = {"resnet50": "layer4.2.conv3.weight"}
MISSHAPEN = {"resnet50": "conv1.weight"}


@pytest.fixture(scope="module")
def sources() -> dict[str, Tensors]:
    return {
        arch: random_state(shapes, seed=i) for i, (arch, shapes) in enumerate(BACKBONES.items())
    }


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The published files of this module (large: removed when it is done)."""
    path = tmp_path_factory.mktemp("published")
    yield path
    shutil.rmtree(path)


@pytest.fixture(scope="module")
def written(sources, folder) -> Callable[[str], Path]:
    """Write (once) and return the path of a published checkpoint, saved as its project does."""
    paths: dict[str, Path] = {}

    def write(name: str) -> Path:
        if name not in paths:
            entry = PUBLISHED[name]
            paths[name] = folder / name / entry.file
            paths[name].parent.mkdir()
            torch.save(entry.wrap(sources[entry.arch]), paths[name])
        return paths[name]

    return write


def features(model: torch.nn.Module, height: int, width: int) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_a_published_checkpoint_is_detected_and_loads_every_backbone_tensor(name, sources, written):
    entry = PUBLISHED[name]
    state, report = load_checkpoint_state(written(name), entry.arch)
    source = sources[entry.arch]
    assert report.format == entry.format
    assert set(state) | set(report.defaulted_keys) == set(BACKBONES[entry.arch])
    assert all(torch.equal(value, source[key]) for key, value in state.items())


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_a_published_checkpoint_gives_features_of_the_documented_shape_at_two_sizes(name, written):
    entry = PUBLISHED[name]
    model = build_backbone({"arch": entry.arch, "weights": str(written(name))}, 32)
    dim, stride = FEATURES[entry.arch]
    for height, width in ((224, 224), (4 * stride, 6 * stride)):
        out = features(model, height, width)
        assert tuple(out.shape) == (1, dim, height // stride, width // stride)
        assert torch.isfinite(out).all()
    assert model.provenance["checkpoint_format"] == entry.format


def backbone_of(raw: object, entry: Published) -> dict:
    return raw if entry.container is None else raw[entry.container]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_a_published_checkpoint_without_a_block_is_refused_naming_its_key(name, sources, written):
    entry = PUBLISHED[name]
    raw = entry.wrap(dict(sources[entry.arch]))
    key = entry.prefix + MISSING.get(entry.arch, "blocks.11.attn.qkv.weight")
    del backbone_of(raw, entry)[key]
    with pytest.raises(CheckpointError, match=rf"1 missing: {key}"):
        fit_checkpoint(raw, written(name), entry.arch, arch_shapes(entry.arch))


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_a_published_checkpoint_with_a_wrong_shape_is_refused_naming_its_key(
    name, sources, written
):
    entry = PUBLISHED[name]
    raw = entry.wrap(dict(sources[entry.arch]))
    key = entry.prefix + MISSHAPEN.get(entry.arch, "pos_embed")
    backbone_of(raw, entry)[key] = torch.zeros(1, 50, 384)
    with pytest.raises(CheckpointError, match=rf"1 with the wrong shape: {key} \(expected"):
        fit_checkpoint(raw, written(name), entry.arch, arch_shapes(entry.arch))


# ----------------------------------------------------------------------------- ignored entries


def test_moco_v3_ignores_the_momentum_encoder_predictor_and_projector_and_lists_them(
    written, capsys
):
    path = written("moco_v3_vit_s")
    code = main(["weights", "check", "--backbone", "mocov3_vits16", "--checkpoint", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "format moco_v3_pretrain, arch mocov3_vits16: 150 backbone tensors loaded" in out
    assert "module.momentum_encoder.* (166)" in out  # the 150 tensors and its 16-entry head
    assert "module.predictor.* (10), module.base_encoder.head.* (16)" in out


def test_swav_ignores_its_projection_head_and_prototypes_and_lists_them(written, capsys):
    path = written("swav")
    code = main(["weights", "check", "--backbone", "resnet50", "--checkpoint", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "format swav, arch resnet50: 318 backbone tensors loaded" in out
    assert "10 checkpoint entries ignored" in out
    assert "module.projection_head.* (9), module.prototypes.* (1)" in out


def test_a_mae_pretraining_checkpoint_ignores_the_decoder_and_lists_it(sources, written):
    raw = mae_pretraining(sources["vit_b16"])
    _, report = fit_checkpoint(raw, written("mae"), "vit_b16", arch_shapes("vit_b16"))
    text = report.summary()
    assert report.format == "mae"
    assert (
        "mask_token (1), decoder_pos_embed (1), decoder_embed.* (2), decoder_blocks.* (96)" in text
    )
    assert "decoder_norm.* (2), decoder_pred.* (2)" in text


def test_the_ibot_full_checkpoint_ignores_the_teachers_head_and_lists_it(written):
    _, report = load_checkpoint_state(written("ibot_full"), "vit_s16")
    assert report.format == "teacher"
    assert "outside the backbone prefix): head.* (5)\n" in report.summary()


def test_a_moco_v3_vit_s_checkpoint_is_refused_by_dinos_six_head_vit_s(written):
    with pytest.raises(CheckpointError) as error:
        load_checkpoint_state(written("moco_v3_vit_s"), "vit_s16")
    assert "the layout of formats published for other archs: moco_v3_pretrain" in str(error.value)
    assert "mocov3_vits16" in str(error.value)


def test_a_format_named_for_an_arch_it_is_not_published_for_is_refused(written):
    with pytest.raises(CheckpointError, match="format moco_v3 is published for the archs"):
        load_checkpoint_state(written("moco_v3_vit_s_linear"), "vit_s16", "moco_v3")


# ----------------------------------------------------------------------------- safetensors


@pytest.fixture(scope="module")
def dinov2_reg_files(sources, written, folder) -> dict[str, Path]:
    """The same DINOv2 ViT-S/14 weights with registers: DINOv2's own file, a safetensors copy
    with DINOv2's names, and timm's safetensors (its names and layout)."""
    state = sources["dinov2_vits14_reg"]
    save_file(state, folder / "dinov2_vits14_reg4.safetensors")
    (folder / "timm").mkdir()
    save_file(timm_dinov2(state), folder / "timm" / "model.safetensors")
    return {
        "torch.save": written("dinov2_reg"),
        "safetensors": folder / "dinov2_vits14_reg4.safetensors",
        "timm": folder / "timm" / "model.safetensors",
    }


@pytest.fixture(scope="module")
def dinov2_reg_features(dinov2_reg_files) -> dict[str, torch.Tensor]:
    """The features of one image from each of `dinov2_reg_files`."""
    return {
        copy: features(
            build_backbone({"arch": "dinov2_vits14_reg", "weights": str(path)}, 14), 224, 224
        )
        for copy, path in dinov2_reg_files.items()
    }


def test_safetensors_and_torch_save_copies_give_identical_features(
    dinov2_reg_files, dinov2_reg_features
):
    _, report = load_checkpoint_state(dinov2_reg_files["safetensors"], "dinov2_vits14_reg")
    assert (report.format, report.reader) == ("dinov2", "safetensors")
    assert torch.equal(dinov2_reg_features["safetensors"], dinov2_reg_features["torch.save"])


def test_timms_dinov2_with_registers_gives_the_features_of_dinov2s_own_file(
    dinov2_reg_files, dinov2_reg_features
):
    _, report = load_checkpoint_state(dinov2_reg_files["timm"], "dinov2_vits14_reg")
    assert (report.format, report.filled_keys) == ("timm", ["mask_token"])
    assert torch.equal(dinov2_reg_features["timm"], dinov2_reg_features["torch.save"])


def test_the_check_of_a_timm_file_says_safetensors_and_the_zeroed_mask_token(dinov2_reg_files):
    text = check_checkpoint(dinov2_reg_files["timm"], "dinov2_vits14_reg").summary()
    assert "read by safetensors (nothing unpickled)" in text
    assert "format timm, arch dinov2_vits14_reg: 175 backbone tensors loaded" in text
    assert "mask_token absent: format timm does not keep it (used only in training), set to 0" in (
        text
    )


@pytest.mark.parametrize("arch", ["dinov2_vitg14", "dinov2_vitg14_reg", "dinov2_vitl14_reg"])
def test_timms_names_map_onto_dinov2s_exactly(arch):
    expected = dinov2_vit(*DINOV2_ARCHS[arch])
    with torch.device("meta"):
        timm = timm_dinov2({key: torch.empty(shape) for key, shape in expected.items()})
    converted, filled = from_timm_dinov2(timm, expected)
    assert {key: tuple(value.shape) for key, value in converted.items()} == expected
    assert filled == ["mask_token"]


def test_a_timm_dino_vit_safetensors_file_loads_with_dinos_names(sources, folder):
    # timm/vit_small_patch16_224.dino keeps DINO's names
    path = folder / "vit_small_patch16_224.dino.safetensors"
    save_file(sources["vit_s16"], path)
    state, report = load_checkpoint_state(path, "vit_s16")
    assert (report.format, report.reader, len(state)) == ("torchvision", "safetensors", 150)
