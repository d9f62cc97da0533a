"""The configuration resolved once (rpsloc.settings): per-adapter defaults (METHOD.md section 1),
the threshold and headline splits, each backbone's effective output stride, `weights` as a kind
and a path, and the cross-key checks, each error naming its key."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import REPO, packages_imported_by, resolved, tiny_config, validated
from snakemake.exceptions import WorkflowError

from rpsloc.configfile import read_config
from rpsloc.datasets import ADAPTERS
from rpsloc.errors import CheckpointError, InputError
from rpsloc.settings import PROTOCOL_DEFAULTS, adapter_defaults, require_checkpoint_files

#: The configuration keys each adapter requires, with placeholder values.
LAYOUT_KEYS = {
    "cub": {"root": "/c", "metadata": "/m"},
    "ilsvrc": {"root": "/i", "metadata": "/m"},
    "openimages": {"root": "/o", "metadata": "/m"},
    "wsol": {"images": "/i", "metadata": "/m"},
    "csv": {"csv": "/own.csv"},
    "folder": {"root": "/photos"},
    "cars": {"root": "/c"},
    "dogs": {"root": "/d"},
    "aircraft": {"root": "/a"},
}


def dataset_config(adapter: str, eval_splits=("test",), **keys) -> dict:
    """The tiny configuration whose dataset `d` has another adapter (nothing is read)."""
    config = tiny_config()
    dataset = {
        **config["datasets"]["tiny"],
        "adapter": adapter,
        **LAYOUT_KEYS.get(adapter, {}),
        "eval_splits": list(eval_splits),
        "variants": ["rps"],
        "backbones": ["resnet50-random"],
    }
    for key in (
        "synthetic",
        "threshold_split",
        "image_size",
        "crop_size",
        "train_image_size",
        "output_stride",
    ):
        dataset.pop(key, None)
    config["datasets"] = {"d": {**dataset, **keys}}
    return config


def dataset(adapter: str, eval_splits=("test",), **keys):
    return resolved(dataset_config(adapter, eval_splits, **keys)).datasets["d"]


# ----------------------------------------------------------------------------- defaults


@pytest.mark.parametrize("adapter", ["cub", "cars", "dogs", "aircraft"])
def test_fine_grained_datasets_default_to_resize_480_crop_448_stride_32(adapter):
    settings = dataset(adapter)
    assert (settings.image_size, settings.crop_size) == (480, 448)
    assert settings.output_strides == {"resnet50-random": 32}


@pytest.mark.parametrize("adapter", ["ilsvrc", "openimages", "csv", "wsol"])
def test_imagenet_and_openimages_default_to_resize_256_crop_224_stride_16(adapter):
    settings = dataset(adapter)
    assert (settings.image_size, settings.crop_size) == (256, 224)
    assert settings.output_strides == {"resnet50-random": 16}


@pytest.mark.parametrize("adapter", ["cub", "ilsvrc"])
def test_cub_and_imagenet_choose_the_threshold_on_val_as_the_authors_do(adapter):
    assert dataset(adapter, eval_splits=("val", "test")).threshold_split == "val"


def test_datasets_without_a_val_split_have_no_threshold_split():
    assert dataset("cars").threshold_split is None


def test_values_set_in_the_config_win_over_the_defaults():
    settings = dataset("cub", eval_splits=("val", "x"), image_size=512, threshold_split="x")
    assert (settings.image_size, settings.crop_size, settings.threshold_split) == (512, 448, "x")


def test_a_folder_of_photos_is_resized_to_224_without_a_crop():
    settings = dataset("folder")
    assert (settings.image_size, settings.crop_size) == (224, 224)
    assert settings.output_strides == {"resnet50-random": 16}


def test_crop_size_null_means_no_centre_crop():
    assert dataset("cub", crop_size=None).crop_size == 480


def test_every_adapter_has_protocol_defaults():
    assert set(PROTOCOL_DEFAULTS) == set(ADAPTERS)


def test_adapter_defaults_give_the_evaluation_protocol_of_a_layout():
    assert adapter_defaults("cub") == {
        "image_size": 480,
        "crop_size": 448,
        "output_stride": 32,
        "threshold_split": "val",
        "mask_resize": "linear",
    }
    assert adapter_defaults("cifar10") == {
        "image_size": 224,
        "crop_size": 224,
        "output_stride": 16,
        "threshold_split": None,
        "mask_resize": "linear",
    }


def test_openimages_masks_are_resized_nearest_neighbour_as_the_authors_do():
    assert dataset("openimages").mask_resize == "nearest"
    assert dataset("cub").mask_resize == "linear"


def test_adapter_defaults_of_an_unknown_adapter_is_an_error_naming_the_known_ones():
    with pytest.raises(InputError, match=r"unknown adapter 'vox'; expected one of aircraft, cars"):
        adapter_defaults("vox")


@pytest.mark.parametrize("adapter", ["cub", "ilsvrc", "cars"])
def test_training_images_are_224_without_crop_for_every_dataset_as_the_authors_do(adapter):
    settings = dataset(adapter, train_split="train")
    assert settings.geometry("train") == (224, 224)
    assert settings.geometry("test") == (settings.image_size, settings.crop_size)


def test_the_training_geometry_is_configurable():
    settings = dataset("cub", train_image_size=256, train_crop_size=224)
    assert settings.geometry("train") == (256, 224)


# ----------------------------------------------------------------------------- derived values


def test_the_headline_split_is_the_last_evaluated_split():
    assert resolved(tiny_config()).datasets["tiny"].headline_split == "test"


def test_a_base_dataset_has_no_headline_split():
    assert resolved(tiny_config()).datasets["base"].headline_split is None


def test_the_figures_picture_the_method_when_it_is_configured():
    config = tiny_config(variants=["caam", "rps"])
    assert resolved(config).datasets["tiny"].pictured_variant == "rps"


def test_the_figures_picture_the_first_variant_without_the_method():
    config = tiny_config(variants=["caam", "ddt"])
    assert resolved(config).datasets["tiny"].pictured_variant == "caam"


def test_the_training_split_has_the_train_role_and_the_others_eval():
    tiny = resolved(tiny_config()).datasets["tiny"]
    assert [tiny.role(split) for split in tiny.splits] == ["train", "eval", "eval"]


# ----------------------------------------------------------------------------- output strides


def test_a_vit_asked_for_another_stride_gets_its_patch_size(caplog):
    config = tiny_config(backbones=["vit"], output_stride=16)
    config["backbones"]["vit"] = {"arch": "vit_s8", "weights": "random"}
    with caplog.at_level(logging.WARNING):
        settings = resolved(config)
    assert settings.datasets["tiny"].output_strides == {"vit": 8}
    assert "output_stride 16 requested" in caplog.text


@pytest.mark.parametrize(("arch", "stride"), [("vgg16", 32), ("ccam", 32)])
def test_a_stride_the_architecture_cannot_give_is_an_error_naming_dataset_and_backbone(
    arch, stride
):
    config = tiny_config(backbones=["net"], output_stride=stride)
    config["backbones"]["net"] = {"arch": arch, "weights": "random"}
    del config["datasets"]["base"]
    with pytest.raises(InputError, match=rf"datasets.tiny, backbone net: .*{arch}.*{stride}"):
        resolved(config)


# ----------------------------------------------------------------------------- weights


def test_pretrained_weights_are_the_pretrain_stages_checkpoint():
    config = tiny_config(backbones=["small"], variants=["rps"])
    config["backbones"]["small"] = {
        "arch": "resnet_small",
        "weights": "pretrain",
        "pretrain": {"dataset": "tiny"},
    }
    del config["datasets"]["base"]
    settings = resolved(config)
    small = settings.backbones["small"]
    assert small.weights.kind == "pretrain"
    assert small.checkpoint == "results/pretrain/small/checkpoint.pth"
    assert settings.pretrained == ("small",)


@pytest.mark.parametrize("weights", ["random", "none"])
def test_random_and_none_weights_name_no_checkpoint(weights):
    config = tiny_config()
    config["backbones"]["fixture"]["weights"] = weights
    assert resolved(config).backbones["fixture"].checkpoint is None


def test_the_checkpoint_size_limit_reaches_the_backbones_that_read_a_checkpoint():
    config = tiny_config()
    config["backbones"]["resnet50-random"]["weights"] = "/data/moco.pth.tar"
    config["checkpoints"] = {"max_size_gb": 3.5}
    backbones = resolved(config).backbones
    assert backbones["resnet50-random"].model_config()["max_checkpoint_bytes"] == 3_500_000_000
    assert "max_checkpoint_bytes" not in backbones["fixture"].model_config()  # a random init


def test_a_missing_checkpoint_file_is_an_error_naming_its_key(tmp_path):
    config = tiny_config()
    config["backbones"]["resnet50-random"]["weights"] = str(tmp_path / "absent.pth")
    with pytest.raises(CheckpointError, match="backbones.resnet50-random.weights"):
        require_checkpoint_files(resolved(config))


# ----------------------------------------------------------------------------- cross-key checks


def test_a_dataset_naming_an_unknown_backbone_is_an_error_naming_the_key():
    with pytest.raises(InputError, match=r"datasets.tiny.backbones names 'other'"):
        resolved(tiny_config(backbones=["other"]))


def test_the_training_split_may_not_be_evaluated():
    with pytest.raises(InputError, match=r"datasets.tiny.train_split 'train' is also listed"):
        resolved(tiny_config(eval_splits=["train", "test"]))


def test_a_threshold_split_that_is_not_evaluated_is_an_error():
    with pytest.raises(InputError, match=r"threshold_split 'val' is not one of"):
        resolved(tiny_config(eval_splits=["test"]))


def test_a_crop_larger_than_the_image_is_an_error():
    with pytest.raises(InputError, match=r"crop_size \(200\) is larger than image_size"):
        resolved(tiny_config(crop_size=200))


def test_decoding_workers_default_to_auto():
    config = tiny_config()
    del config["features"]["num_workers"]
    assert resolved(config).features.num_workers == "auto"


def test_auto_workers_may_be_written_in_the_config():
    config = tiny_config()
    config["features"]["num_workers"] = "auto"
    assert resolved(config).features.num_workers == "auto"


def test_features_jobs_share_a_warm_process_by_default():
    config = tiny_config()
    config["features"].pop("warm_process", None)
    assert resolved(config).features.warm_process is True


def test_the_warm_process_can_be_turned_off():
    config = tiny_config()
    config["features"]["warm_process"] = False
    assert resolved(config).features.warm_process is False


def test_a_warm_process_that_is_not_a_boolean_is_refused_by_the_schema():
    config = tiny_config()
    config["features"]["warm_process"] = "yes"
    with pytest.raises(WorkflowError, match=r"'yes' is not of type 'boolean'[\s\S]*warm_process"):
        validated(config)


def test_a_variant_listed_twice_is_an_error_naming_it():
    with pytest.raises(
        InputError, match=r"datasets.tiny.variants lists 'rps' twice \(entries 1 and 3"
    ):
        resolved(tiny_config(variants=["rps", "caam", "rps"]))


def test_a_crop_of_one_feature_cell_is_an_error_naming_the_backbone_and_stride():
    with pytest.raises(
        InputError, match=r"crop_size 16 gives backbone fixture \(output stride 16\).* >= 32"
    ):
        resolved(tiny_config(image_size=16, crop_size=16))


def test_a_transfer_from_an_unknown_dataset_is_an_error():
    with pytest.raises(InputError, match=r"base dataset 'elsewhere' is not a key of datasets"):
        resolved(tiny_config(variants=["rps-from-elsewhere"]))


# ----------------------------------------------------------------------------- example configs

EXAMPLES = sorted((REPO / "config" / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_config_passes_the_schema_and_the_config_checks(path: Path):
    settings = resolved(read_config(path))
    assert {d.adapter for d in settings.datasets.values()} <= set(ADAPTERS)


def test_there_is_an_example_config_for_every_real_dataset():
    adapters = {d["adapter"] for p in EXAMPLES for d in read_config(p)["datasets"].values()}
    assert adapters == set(ADAPTERS) - {"wsol", "synthetic"}


def test_the_demo_config_resolves():
    settings = resolved(read_config(REPO / "config" / "config.yaml"))
    assert settings.pretrained == ("small-pretrained",)


def test_dino_attention_on_a_cnn_is_refused_naming_the_backbone():
    config = tiny_config(backbones=["resnet50-random"], variants=["dino_attention"])
    with pytest.raises(
        InputError,
        match=r"'dino_attention' reads a ViT's CLS attention; "
        r"backbone 'resnet50-random' \(resnet50\) has none",
    ):
        resolved(config)


def test_the_object_discovery_sets_are_uncropped_at_480():
    for adapter in ("voc", "coco20k"):
        assert (
            adapter_defaults(adapter)["image_size"],
            adapter_defaults(adapter)["crop_size"],
        ) == (
            480,
            480,
        )


# ----------------------------------------------------------------------------- box thresholds


def box_rule(threshold, labelled, threshold_split="val", split="test"):
    config = dataset_config("cub", eval_splits=("val", "test"), threshold_split=threshold_split)
    config["boxes"] = {"threshold": threshold}
    settings = resolved(config)
    return settings.boxes.threshold_rule(settings.datasets["d"], split, labelled)


def test_an_auto_box_threshold_is_chosen_on_the_threshold_split_when_it_has_ground_truth():
    rule = box_rule("auto", labelled=("val", "test"))
    assert rule == {"rule": "labelled", "split": "val", "protocol": "benchmark", "interval": 0.01}


def test_an_auto_box_threshold_without_ground_truth_is_otsus():
    assert box_rule("auto", labelled=()) == {"rule": "otsu"}


def test_a_labelled_box_threshold_without_ground_truth_is_an_error_naming_the_key():
    with pytest.raises(InputError, match=r"boxes.threshold is 'labelled', but split 'val'"):
        box_rule("labelled", labelled=("test",))


def test_a_fixed_box_threshold_is_used_as_it_is():
    assert box_rule(0.35, labelled=("val",)) == {"rule": "fixed", "value": 0.35}


@pytest.mark.parametrize(("variants", "expected"), [("method", ("rps",)), ("all", ("caam", "rps"))])
def test_a_dataset_target_writes_the_boxes_of_the_method_or_of_every_variant(variants, expected):
    config = dataset_config("cub", variants=["caam", "rps"])
    config["boxes"] = {"variants": variants}
    settings = resolved(config)
    assert settings.boxes.variants_of(settings.datasets["d"]) == expected


def test_the_workflow_parses_without_torch():
    """Every module the Snakefile and common.smk import (2.5 s of torch per Snakemake start,
    per cluster job and per dry run otherwise)."""
    modules = {
        line.split()[1]
        for rules in (REPO / "workflow" / "Snakefile", REPO / "workflow/rules/common.smk")
        for line in rules.read_text().splitlines()
        if line.startswith("from rpsloc")
    }
    assert "rpsloc.settings" in modules
    imported = packages_imported_by(", ".join(sorted(modules)))
    assert not imported & {"torch", "efficientnet_pytorch"}
