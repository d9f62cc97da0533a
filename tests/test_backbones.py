"""The backbone registry and `build_backbone`: which output strides each architecture gives,
seeded random initialisation, provenance (METHOD.md section 4)."""

from __future__ import annotations

import platform
from collections import Counter
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import rpsloc_test_fixtures
import torch
from batch_norms import with_trained_batch_norms
from conftest import packages_imported_by, random_config, state_digest

from rpsloc.backbones import (
    PLUGIN_GROUP,
    Architecture,
    Weights,
    architecture,
    effective_output_stride,
    fusion,
    parse_weights,
    resnet,
)
from rpsloc.backbones.build import build_backbone, for_inference
from rpsloc.backbones.folding import fold_batch_norm
from rpsloc.errors import InputError


def test_backbone_attributes_and_provenance_say_random_init(random_resnet50s):
    model = random_resnet50s[16]
    assert (model.feature_dim, model.output_stride) == (2048, 16)
    assert model.provenance == {
        "arch": "resnet50",
        "weights": "random",
        "checkpoint_sha256": "",
        "checkpoint_format": "random",
        "seed": 0,
    }


def test_backbone_is_frozen_in_eval_mode(random_resnet50s):
    model = random_resnet50s[32]
    assert not model.training
    assert not any(m.training for m in model.modules())
    assert not any(p.requires_grad for p in model.parameters())


def test_random_init_is_identical_for_the_same_seed(random_resnet50s):
    again = build_backbone(random_config(seed=0), 32)
    first = random_resnet50s[32].state_dict()
    assert all(torch.equal(v, first[k]) for k, v in again.state_dict().items())


def test_random_init_differs_across_seeds(random_resnet50s):
    other = build_backbone(random_config(seed=1), 32)
    assert not torch.equal(other.conv1.weight, random_resnet50s[32].conv1.weight)
    assert not torch.equal(
        other.layer4[2].conv3.weight, random_resnet50s[32].layer4[2].conv3.weight
    )


def test_random_init_leaves_the_global_random_state_alone():
    before = torch.random.get_rng_state()
    build_backbone(random_config("fixture-colourfulness"), 8)
    build_backbone(random_config("vgg16"), 8)
    assert torch.equal(torch.random.get_rng_state(), before)


#: Digests of `weights: random, seed: 0`, computed before backbones.py became a package: a
#: change of construction or initialisation order changes every random-init result.
RANDOM_INIT_DIGESTS = {
    "resnet50": ({}, 32, "d7d7c20196ade9df9b2b1ae4c0007df571111590e1d4daa0c59ba0499d90e3d6"),
    "resnet_small": (
        {"width": 32, "depth": 1},
        32,
        "38e165ba5283a8acf419a8bd8b506a0d50cf841e95d257aa37f0746db65f88da",
    ),
    "vgg16": ({}, 8, "7b1d44c8adbab3ad02b79c56f9c12fab26351ea0c6f750c1651c38995b5eed18"),
    "vit_s16": ({}, 16, "1de335c7d803bb82470f080759034cb9dc8e19ddbc4bad031497cbcf94415d87"),
}


@pytest.mark.parametrize("arch", sorted(RANDOM_INIT_DIGESTS))
def test_random_init_with_seed_0_gives_the_pinned_weights(arch):
    options, output_stride, expected = RANDOM_INIT_DIGESTS[arch]
    model = build_backbone({**random_config(arch), **options}, output_stride)
    assert state_digest(model) == expected


@pytest.mark.parametrize(("arch", "output_stride"), [("resnet50", 4), ("ccam", 32), ("vgg16", 16)])
def test_unsupported_output_stride_is_refused(arch, output_stride):
    with pytest.raises(InputError, match="output_stride must be one of"):
        build_backbone(random_config(arch), output_stride)


def test_unknown_arch_is_refused_with_the_known_names():
    with pytest.raises(InputError, match="resnet50"):
        build_backbone(random_config("resnet51"), 32)


def test_an_unknown_arch_is_refused_naming_the_built_in_archs_and_the_installed_plugins():
    with pytest.raises(InputError) as error:
        architecture("resnet51")
    assert "the built-in ['ccam', 'dinov2_vitb14', 'dinov2_vitb14_reg'" in str(error.value)
    assert "installed plugins ['fixture-colourfulness']" in str(error.value)


def test_a_plugin_arch_is_found_through_its_entry_point():
    points = {point.name: point.value for point in entry_points(group=PLUGIN_GROUP)}
    assert points["fixture-colourfulness"] == "rpsloc_test_fixtures:COLOURFULNESS"
    assert architecture("fixture-colourfulness") is rpsloc_test_fixtures.COLOURFULNESS


def test_the_registry_and_a_plugin_record_are_read_without_torch():
    """The workflow looks archs up while it parses: each Snakemake start would pay for torch."""
    assert "torch" not in packages_imported_by("rpsloc.backbones, rpsloc_test_fixtures")


def test_a_record_naming_its_factory_by_path_imports_it_at_the_first_build():
    record = Architecture("rpsloc.backbones.resnet:resnet_small", (32, 16, 8), ("width",))
    assert record.build(16, width=8).feature_dim == 8 * 8


def test_a_factory_path_that_cannot_be_imported_is_refused_naming_it():
    record = Architecture("rpsloc.backbones.resnet:resnet_tiny", (32,))
    with pytest.raises(InputError, match="backbone factory 'rpsloc.backbones.resnet:resnet_tiny'"):
        record.build(32)


def test_a_factory_path_without_its_colon_is_refused_when_the_record_is_made():
    with pytest.raises(ValueError, match="'package.module:name', got 'rpsloc.backbones.resnet'"):
        Architecture("rpsloc.backbones.resnet", (32,))


PLUGIN = """
from torch import nn
from rpsloc.backbones import Architecture


class PointwiseNet(nn.Module):
    def __init__(self, output_stride, width=3):
        super().__init__()
        self.output_stride, self.feature_dim = output_stride, width
        self.pool = nn.AvgPool2d(output_stride)
        self.proj = nn.Conv2d(3, width, 1)

    def forward(self, x):
        return self.proj(self.pool(x))


POINTWISE = Architecture(PointwiseNet, output_strides=(8, 16), options=("width",))
"""


def install_plugin(folder: Path, module: str, points: dict[str, str]) -> None:
    """A distribution in `folder` whose module `module` holds PLUGIN and whose entry points in
    PLUGIN_GROUP are `points` (name -> object of the module)."""
    (folder / f"{module}.py").write_text(PLUGIN)
    info = folder / f"{module}-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0\n")
    lines = "".join(f"{name} = {module}:{target}\n" for name, target in points.items())
    (info / "entry_points.txt").write_text(f"[{PLUGIN_GROUP}]\n{lines}")


def test_a_plugin_arch_is_built_with_its_options_and_strides(tmp_path, monkeypatch):
    install_plugin(tmp_path, "rpsloc_plugin_built", {"pointwise": "POINTWISE"})
    monkeypatch.syspath_prepend(tmp_path)
    model = build_backbone({**random_config("pointwise"), "width": 5}, 16)
    assert tuple(model(torch.zeros(1, 3, 64, 64)).shape) == (1, 5, 4, 4)
    assert model.provenance == {
        "arch": "pointwise",
        "weights": "random",
        "checkpoint_sha256": "",
        "checkpoint_format": "random",
        "seed": 0,
        "width": 5,
    }
    with pytest.raises(InputError, match=r"output_stride must be one of \[8, 16\], got 32"):
        build_backbone(random_config("pointwise"), 32)


def test_a_plugin_arch_loads_a_checkpoint_strictly(tmp_path, monkeypatch):
    install_plugin(tmp_path, "rpsloc_plugin_loaded", {"pointwise": "POINTWISE"})
    monkeypatch.syspath_prepend(tmp_path)
    saved = build_backbone(random_config("pointwise", seed=4), 8).state_dict()
    torch.save(saved, tmp_path / "pointwise.pth")
    config = {"arch": "pointwise", "weights": str(tmp_path / "pointwise.pth")}
    model = build_backbone(config, 8)
    assert model.provenance["checkpoint_format"] == "torchvision"
    assert all(torch.equal(value, saved[key]) for key, value in model.state_dict().items())


def test_a_plugin_entry_point_that_gives_no_architecture_is_refused(tmp_path, monkeypatch):
    install_plugin(tmp_path, "rpsloc_plugin_wrong", {"pointwise-class": "PointwiseNet"})
    monkeypatch.syspath_prepend(tmp_path)
    with pytest.raises(InputError, match="gives a type, not an rpsloc.backbones.Architecture"):
        architecture("pointwise-class")


def test_a_vit_asked_for_another_stride_gives_its_patch_size_with_a_warning(caplog):
    assert effective_output_stride("vit_s8", 16) == 8
    assert "a ViT's output stride is its patch size; using 8" in caplog.text


def test_vit_warns_when_asked_for_another_output_stride(caplog):
    model = build_backbone(random_config("vit_s16"), 32)
    assert model.output_stride == 16
    assert "a ViT's output stride is its patch size; using 16" in caplog.text


@pytest.mark.parametrize(("arch", "output_stride"), [("resnet50", 8), ("ccam", 16), ("vgg16", 8)])
def test_an_allowed_output_stride_is_the_effective_one(arch, output_stride):
    assert effective_output_stride(arch, output_stride) == output_stride


@pytest.mark.parametrize("word", ["random", "none", "pretrain"])
def test_the_three_weights_words_are_kinds_without_a_path(word):
    assert parse_weights(word) == Weights(word)


def test_any_other_weights_value_is_a_checkpoint_file():
    assert parse_weights("ckpt/none.pth") == Weights("file", Path("ckpt/none.pth"))


def test_weights_none_is_refused_for_a_model_with_learned_parameters():
    with pytest.raises(InputError, match="'resnet_small' has learned parameters: weights 'none'"):
        build_backbone({"arch": "resnet_small", "weights": "none"}, 32)


def test_weights_pretrain_is_refused_without_the_pretrain_stage_file():
    with pytest.raises(InputError, match="'pretrain' names the pretrain stage's checkpoint"):
        build_backbone({"arch": "resnet_small", "weights": "pretrain"}, 32)


#: Largest relative difference of the features of a folded model to its published form: fp32
#: rounding of the scaled weights (1e-7 per layer) through a network's depth.
FOLDING_TOLERANCE = 1e-5


@pytest.mark.parametrize(
    ("arch", "size", "stride"), [("resnet_small", 64, 32), ("ccam", 64, 16), ("vgg16_bn", 48, 8)]
)
def test_a_model_with_its_batch_norms_folded_gives_the_published_features(arch, size, stride):
    published = with_trained_batch_norms(build_backbone(random_config(arch), stride))
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = published(images)
        published.fold_batch_norms()
        folded = published(images)
    assert (folded - expected).abs().max() <= FOLDING_TOLERANCE * expected.abs().max()


def operator_counts(model: torch.nn.Module, images: torch.Tensor) -> Counter[str]:
    """How many times an inference forward of `model` runs each operator."""
    with torch.inference_mode(), torch.profiler.profile() as profile:
        model(images)
    return Counter({event.key: event.count for event in profile.key_averages()})


#: Whether this machine runs a folded ResNet's fused convolutions (`fusion.fusable`).
FUSION_HERE = torch.backends.mkldnn.is_available() and platform.machine() in fusion.CHECKED_MACHINES


@pytest.mark.skipif(
    not FUSION_HERE, reason="oneDNN's fused convolutions are used on x86 CPUs with oneDNN only"
)
@pytest.mark.parametrize("arch", ["resnet_small", "resnet50"])
def test_a_folded_resnet_on_the_cpu_runs_its_relus_and_shortcut_sums_inside_its_convolutions(
    arch,
):
    model, _ = for_inference(build_backbone(random_config(arch), 32), arch, torch.device("cpu"))
    operators = operator_counts(model, torch.randn(1, 3, 64, 64))
    assert operators["mkldnn::_convolution_pointwise"] > 0
    assert not set(operators) & {"aten::relu", "aten::relu_", "aten::add", "aten::add_"}


def blocks(model: torch.nn.Module) -> int:
    """The residual blocks of `model`, each with one shortcut sum."""
    return sum(isinstance(m, (resnet.Bottleneck, resnet.BasicBlock)) for m in model.modules())


@pytest.mark.skipif(
    not (FUSION_HERE and fusion.in_place_sum_exact()),
    reason="the shortcut sum is written in place on x86 CPUs with AVX2 or AVX-512 only",
)
@pytest.mark.parametrize("arch", ["resnet_small", "resnet50"])
def test_a_folded_resnet_writes_every_shortcut_sum_over_a_tensor_of_its_own_forward(arch):
    model, _ = for_inference(build_backbone(random_config(arch), 32), arch, torch.device("cpu"))
    counts = operator_counts(model, torch.randn(1, 3, 64, 64))
    assert counts["mkldnn::_convolution_pointwise_"] == blocks(model)


@pytest.mark.skipif(
    not FUSION_HERE, reason="oneDNN's fused convolutions are used on x86 CPUs with oneDNN only"
)
def test_on_a_cpu_without_avx2_the_shortcut_sum_goes_into_a_new_tensor(monkeypatch):
    model, _ = for_inference(
        build_backbone(random_config("resnet_small"), 32), "resnet_small", torch.device("cpu")
    )
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")
    counts = operator_counts(model, torch.randn(1, 3, 64, 64))
    assert counts["mkldnn::_convolution_pointwise_"] == 0


@pytest.mark.parametrize("arch", ["resnet_small", "resnet50"])
def test_a_fused_block_called_alone_leaves_its_input_as_it_was(arch):
    model, _ = for_inference(build_backbone(random_config(arch), 32), arch, torch.device("cpu"))
    block = next(block for block in model.layer1 if block.downsample is None)
    images = torch.rand(1, block.conv1.in_channels, 16, 16).to(memory_format=torch.channels_last)
    before = images.clone()
    with torch.inference_mode():
        block(images)
    assert torch.equal(images, before)


@pytest.mark.parametrize("hooked", ["block output", "block input", "downsample output"])
def test_a_tensor_a_hook_was_handed_is_not_overwritten_by_a_shortcut_sum(hooked):
    model, _ = for_inference(build_backbone(random_config(), 32), "resnet50", torch.device("cpu"))
    first, second = model.layer1[0], model.layer1[1]
    seen = []
    if hooked == "block output":
        hook = first.register_forward_hook(lambda module, args, out: seen.append(out))
    elif hooked == "block input":
        hook = second.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    else:
        hook = first.downsample.register_forward_hook(lambda m, args, out: seen.append(out))
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        model(images)
        hook.remove()
        stem = model.stem(images)
        expected = first.downsample(stem) if hooked == "downsample output" else first(stem)
    assert torch.equal(seen[0], expected)


def test_ccams_layer3_features_are_not_overwritten_by_layer4():
    model, _ = for_inference(build_backbone(random_config("ccam"), 16), "ccam", torch.device("cpu"))
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        layer3 = model.layer3(model.layer2(model.layer1(model.stem(images))))
        features = model(images)
    assert torch.equal(features[:, : layer3.shape[1]], layer3)


@pytest.mark.parametrize(
    ("arch", "stride", "channels_last"),
    [
        ("resnet_small", 32, True),
        ("resnet50", 32, True),
        ("resnet50", 32, False),
        ("ccam", 16, True),
    ],
)
def test_the_fused_convolutions_give_the_features_of_the_unfused_modules(
    monkeypatch, arch, stride, channels_last
):
    model, _ = for_inference(
        build_backbone(random_config(arch), stride), arch, torch.device("cpu"), channels_last
    )
    images = torch.randn(2, 3, 80, 80, generator=torch.Generator().manual_seed(1))
    if channels_last:
        images = images.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        fused = model(images)
        monkeypatch.setattr(resnet, "fusable", lambda _: False)
        unfused = model(images)
    torch.testing.assert_close(fused, unfused, rtol=0, atol=FOLDING_TOLERANCE * unfused.abs().max())


def test_only_an_fp32_cpu_forward_without_autograd_or_autocast_runs_fused():
    images = torch.zeros(1, 3, 8, 8)
    with torch.inference_mode():
        assert fusion.fusable(images) == FUSION_HERE
        assert not fusion.fusable(images.double())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not fusion.fusable(images)
    assert not fusion.fusable(images)  # autograd records (a training forward)


def test_a_folded_resnet_has_no_batch_norm_left():
    model, _ = for_inference(
        build_backbone(random_config("resnet50"), 32), "resnet50", torch.device("cpu")
    )
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_a_model_is_run_as_published_when_folding_is_turned_off():
    model = build_backbone(random_config("resnet_small"), 32)
    published = [type(m) for m in model.modules()]
    model, _ = for_inference(model, "resnet_small", torch.device("cpu"), fold_batch_norms=False)
    assert [type(m) for m in model.modules()] == published
    assert torch.nn.BatchNorm2d in published


def test_folding_a_folded_model_again_changes_nothing():
    model = build_backbone(random_config("resnet_small"), 32)
    model.fold_batch_norms()
    folded = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    model.fold_batch_norms()
    assert all(torch.equal(folded[name], t) for name, t in model.state_dict().items())


def test_a_pair_that_is_not_a_convolution_and_its_batch_norm_is_refused_naming_both():
    block = build_backbone(random_config("resnet_small"), 32).layer1[0]
    with pytest.raises(TypeError, match=r"BasicBlock.bn1 / .conv1 are a BatchNorm2d and a Conv2d"):
        fold_batch_norm(block, "bn1", "conv1")


def test_batch_norms_are_folded_only_in_eval_mode():
    model = build_backbone(random_config("resnet_small"), 32).train()
    with pytest.raises(ValueError, match="only into a model in eval mode"):
        model.fold_batch_norms()
