"""Self-supervised pretraining (docs/pretraining.md): unlabeled images -> a backbone the features
stage loads strictly, whose representer points localize where the same network at random init
does not. One short pretraining on a tiny synthetic set in the mosaic style (objects on a
multi-hue texture, where random filters fail) is shared by the tests."""

from pathlib import Path

import h5py
import pytest
import torch
import yaml
from conftest import SCHEMA, resolved, run_snakemake, tiny_config

from rpsloc import paths
from rpsloc.backbones.build import build_backbone
from rpsloc.backbones.checkpoints import check_checkpoint
from rpsloc.cli import main
from rpsloc.datasets.records import write_manifest
from rpsloc.errors import CheckpointError, InputError
from rpsloc.features import extract_shard
from rpsloc.figures.curves import plot_pretraining_loss
from rpsloc.hashing import file_sha256
from rpsloc.io import read_csv
from rpsloc.manifest import build_manifest
from rpsloc.maps import write_maps
from rpsloc.metrics import evaluate_split
from rpsloc.pretrain import pretrain
from rpsloc.representer import write_representer
from rpsloc.settings import PretrainSettings
from rpsloc.synthetic import generate_synthetic_dataset

IMAGE_SIZE, STRIDE = 160, 16
BACKBONE = {"arch": "resnet_small", "width": 32, "depth": 1, "seed": 0}
SETTINGS = PretrainSettings(steps=80, batch_size=48, image_size=64, seed=0, device="cpu")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A small synthetic set in the mosaic style (48 training, 24 test images) and its
    manifests."""
    folder = tmp_path_factory.mktemp("pretrain")
    generate_synthetic_dataset(
        folder / "data",
        splits={"train": 48, "test": 24},
        n_classes=4,
        seed=0,
        max_side=192,
        style="mosaic",
    )
    for split in ("train", "test"):
        records = build_manifest({"adapter": "synthetic", "root": str(folder / "data")}, split)
        write_manifest(records, folder / f"{split}.csv")
    return folder


def pretrain_into(folder: Path, name: str, settings: PretrainSettings, manifest: Path):
    out = folder / name
    result = pretrain(manifest, BACKBONE, settings, out / "checkpoint.pth", out / "loss.csv")
    return result, out / "checkpoint.pth"


@pytest.fixture(scope="module")
def pretrained(folder):
    return pretrain_into(folder, "pretrained", SETTINGS, folder / "train.csv")


def method_box_accuracy(folder: Path, weights: str, name: str) -> float:
    """MaxBoxAccV2 of the method (rps) on the test split, with the library calls the
    workflow's scripts make."""
    out = folder / name
    config = {**BACKBONE, "weights": weights}
    shards = {}
    for split, role in (("train", "train"), ("test", "eval")):
        shards[split] = out / f"{split}.h5"
        extract_shard(
            folder / f"{split}.csv", role, 0, 1000, config, IMAGE_SIZE, IMAGE_SIZE, STRIDE,
            shards[split], batch_size=32,
        )  # fmt: skip
    write_representer([shards["train"]], out / "representer.h5")
    write_maps("rps", [shards["test"]], out / "maps.h5", representer=out / "representer.h5")
    _, summary = evaluate_split(out / "maps.h5", [shards["test"]], folder / "test.csv")
    return summary["max_box_acc_v2"]


@pytest.fixture(scope="module")
def at_random_init(folder) -> float:
    return method_box_accuracy(folder, "random", "features-random")


def test_pretraining_lifts_the_methods_box_accuracy_30_points_above_random_init(
    folder, pretrained, at_random_init
):
    _, checkpoint = pretrained
    with_pretraining = method_box_accuracy(folder, str(checkpoint), "features-pretrained")
    assert with_pretraining >= at_random_init + 30, (with_pretraining, at_random_init)


def test_at_random_init_the_method_localizes_at_most_30_percent_on_the_mosaic_set(at_random_init):
    assert at_random_init <= 30


def test_the_infonce_loss_decreases(pretrained):
    losses = pretrained[0].losses["loss"]
    assert len(losses) == SETTINGS.steps
    assert losses.tail(10).mean() < losses.head(10).mean() - 0.5


def test_the_checkpoint_passes_rpsloc_weights_check(pretrained, capsys):
    _, checkpoint = pretrained
    status = main(
        ["weights", "check", "--backbone", "resnet_small", "--checkpoint", str(checkpoint)]
    )
    printed = capsys.readouterr().out
    assert status == 0
    assert "format moco_v2, arch resnet_small (width 32, depth 1): 72 backbone tensors" in printed
    assert "4 checkpoint entries ignored" in printed  # the projection head, fc.0 and fc.2


def test_the_loss_table_is_written_and_plots(pretrained):
    _, checkpoint = pretrained
    table = (checkpoint.parent / "loss.csv").read_text().splitlines()
    assert table[0] == "step,loss,lr,seconds"
    assert len(table) == 1 + SETTINGS.steps
    plot_pretraining_loss(read_csv(checkpoint.parent / "loss.csv"), checkpoint.parent / "loss.png")
    assert (checkpoint.parent / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_features_stage_refuses_the_checkpoint_for_another_width(pretrained):
    _, checkpoint = pretrained
    with pytest.raises(CheckpointError, match="wrong shape"):
        build_backbone({**BACKBONE, "width": 16, "weights": str(checkpoint)}, STRIDE)


def test_the_pretrained_network_starts_from_the_random_init_with_the_same_seed(folder):
    result, _ = pretrain_into(
        folder, "zero-lr", PretrainSettings(steps=1, batch_size=4, image_size=32, lr=1e-12),
        folder / "train.csv",
    )  # fmt: skip
    random_init = build_backbone({**BACKBONE, "weights": "random"}, 32).state_dict()
    assert torch.allclose(result.backbone["conv1.weight"], random_init["conv1.weight"], atol=1e-8)


@pytest.fixture(scope="module")
def paths_only(folder) -> Path:
    """A manifest with image paths and nothing else: no label, size or box columns."""
    lines = (folder / "train.csv").read_text().splitlines()
    column = lines[0].split(",").index("path")
    manifest = folder / "paths-only.csv"
    manifest.write_text("\n".join(["path", *(line.split(",")[column] for line in lines[1:])]))
    return manifest


def quick(seed: int) -> PretrainSettings:
    return PretrainSettings(steps=3, batch_size=8, image_size=32, seed=seed, device="cpu")


def test_the_same_seed_writes_a_byte_identical_checkpoint(folder, paths_only):
    _, first = pretrain_into(folder, "seed0-a", quick(0), paths_only)
    _, second = pretrain_into(folder, "seed0-b", quick(0), paths_only)
    assert first.read_bytes() == second.read_bytes()


def test_another_seed_writes_another_checkpoint(folder, paths_only):
    _, first = pretrain_into(folder, "seed0-c", quick(0), paths_only)
    _, other = pretrain_into(folder, "seed1", quick(1), paths_only)
    assert first.read_bytes() != other.read_bytes()
    assert check_checkpoint(other, "resnet_small").n_loaded == 72


def test_the_schema_defaults_are_the_library_defaults():
    schema = yaml.safe_load(SCHEMA.read_text())
    properties = schema["$defs"]["pretrain"]["properties"]
    defaults = {key: spec["default"] for key, spec in properties.items() if "default" in spec}
    library = PretrainSettings()
    assert defaults == {key: getattr(library, key) for key in defaults}
    assert len(defaults) == 12


def config_with(**backbone) -> dict:
    """The tiny workflow configuration with one dataset, localized with backbone `small`."""
    config = tiny_config(backbones=["small"], variants=["rps"])
    del config["datasets"]["base"]
    config["backbones"]["small"] = {**BACKBONE, **backbone}
    return config


def test_weights_pretrain_without_a_pretrain_block_is_an_error_naming_the_key():
    with pytest.raises(InputError, match="backbones.small.pretrain is missing"):
        resolved(config_with(weights="pretrain"))


def test_a_pretrain_block_naming_an_unknown_dataset_is_an_error_naming_the_key():
    config = config_with(weights="pretrain", pretrain={"dataset": "tyni"})
    with pytest.raises(InputError, match="backbones.small.pretrain.dataset 'tyni'"):
        resolved(config)


@pytest.mark.workflow
def test_the_workflow_pretrains_and_extracts_features_with_the_checkpoint(tmp_path):
    config = config_with(
        weights="pretrain", pretrain={"dataset": "tiny", "steps": 4, "batch_size": 8,
                                      "image_size": 32}
    )  # fmt: skip
    shard = paths.FEATURE_SHARD.format(dataset="tiny", backbone="small", split="train", shard=0)
    run_snakemake(tmp_path, config, shard)
    checkpoint = tmp_path / paths.PRETRAIN_CHECKPOINT.format(backbone="small")
    with h5py.File(tmp_path / shard) as handle:
        assert handle.attrs["backbone_weights"] == paths.PRETRAIN_CHECKPOINT.format(
            backbone="small"
        )
        assert handle.attrs["backbone_checkpoint_sha256"] == file_sha256(checkpoint)
        assert handle.attrs["backbone_checkpoint_format"] == "moco_v2"
    assert (
        len((tmp_path / paths.PRETRAIN_LOSSES.format(backbone="small")).read_text().splitlines())
        == 5
    )


def test_a_misspelt_pretrain_key_is_an_error_that_names_it(tmp_path):
    config = config_with(weights="pretrain", pretrain={"dataset": "tiny", "stpes": 4})
    result = run_snakemake(tmp_path, config, "tiny", "--dry-run", check=False)
    assert result.returncode != 0
    assert "stpes" in result.stdout + result.stderr
