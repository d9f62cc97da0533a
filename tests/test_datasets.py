"""The adapter registry (docs/datasets.md): every layout registered with its keys and its
protocol defaults (METHOD.md section 1), and an example configuration for every real dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from rpsloc.config import check_config
from rpsloc.datasets import (
    ADAPTERS,
    PROTOCOL_DEFAULTS,
    adapter_defaults,
    dataset_settings,
    manifest_settings,
)
from rpsloc.errors import InputError
from rpsloc.manifest import build_manifest

# ----------------------------------------------------------------------------- defaults


def test_fine_grained_datasets_default_to_resize_480_crop_448_stride_32():
    for adapter in ("cub", "cars", "dogs", "aircraft"):
        settings = dataset_settings({"adapter": adapter, "eval_splits": ["test"]})
        assert (settings["image_size"], settings["crop_size"], settings["output_stride"]) == (
            480,
            448,
            32,
        )


def test_imagenet_and_openimages_default_to_resize_256_crop_224_stride_16():
    for adapter in ("ilsvrc", "openimages", "csv", "wsol"):
        settings = dataset_settings({"adapter": adapter, "eval_splits": ["test"]})
        assert (settings["image_size"], settings["crop_size"], settings["output_stride"]) == (
            256,
            224,
            16,
        )


def test_cub_and_imagenet_choose_the_threshold_on_val_as_the_authors_do():
    assert (
        dataset_settings({"adapter": "cub", "eval_splits": ["val", "test"]})["threshold_split"]
        == "val"
    )
    assert (
        dataset_settings({"adapter": "ilsvrc", "eval_splits": ["val", "test"]})["threshold_split"]
        == "val"
    )
    assert "threshold_split" not in dataset_settings({"adapter": "cars", "eval_splits": ["test"]})


def test_values_set_in_the_config_win_over_the_defaults():
    settings = dataset_settings(
        {"adapter": "cub", "eval_splits": ["val"], "image_size": 256, "threshold_split": "x"}
    )
    assert (settings["image_size"], settings["crop_size"], settings["threshold_split"]) == (
        256,
        448,
        "x",
    )


def test_the_manifest_depends_only_on_the_adapter_keys():
    dataset = {"adapter": "cars", "root": "/c", "image_size": 480, "on_bad_image": "skip"}
    assert manifest_settings(dataset) == {"adapter": "cars", "root": "/c", "on_bad_image": "skip"}


def test_every_documented_adapter_is_registered():
    assert set(ADAPTERS) == {
        "wsol",
        "synthetic",
        "cub",
        "ilsvrc",
        "openimages",
        "cars",
        "dogs",
        "aircraft",
        "cifar10",
        "cifar100",
        "cifar100_coarse",
        "csv",
    }


def test_every_adapter_has_protocol_defaults():
    assert set(PROTOCOL_DEFAULTS) == set(ADAPTERS)


def test_adapter_defaults_give_the_evaluation_protocol_of_a_layout():
    assert adapter_defaults("cub") == {
        "image_size": 480,
        "crop_size": 448,
        "output_stride": 32,
        "threshold_split": "val",
    }
    assert adapter_defaults("cifar10") == {
        "image_size": 224,
        "crop_size": 224,
        "output_stride": 16,
        "threshold_split": None,
    }


def test_adapter_defaults_of_an_unknown_adapter_is_an_error_naming_the_known_ones():
    with pytest.raises(InputError, match=r"unknown adapter 'voc'; expected one of aircraft, cars"):
        adapter_defaults("voc")


# ----------------------------------------------------------------------------- dispatch


def test_build_manifest_rejects_an_unknown_adapter():
    with pytest.raises(InputError, match=r"unknown adapter 'voc'"):
        build_manifest({"adapter": "voc"}, "test")


def test_build_manifest_names_a_missing_configuration_key():
    with pytest.raises(InputError, match=r"key 'images' is missing"):
        build_manifest({"adapter": "wsol", "metadata": "/nowhere"}, "test")


# ----------------------------------------------------------------------------- example configs

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "config/examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_config_passes_the_schema_and_the_config_checks(path):
    config = yaml.safe_load(path.read_text())
    validate(config, str(path.parents[1] / "schema.yaml"))
    config["datasets"] = {name: dataset_settings(d) for name, d in config["datasets"].items()}
    check_config(config)
    assert {d["adapter"] for d in config["datasets"].values()} <= set(ADAPTERS)


def test_there_is_an_example_config_for_every_real_dataset():
    adapters = {
        d["adapter"] for p in EXAMPLES for d in yaml.safe_load(p.read_text())["datasets"].values()
    }
    assert adapters == set(ADAPTERS) - {"wsol", "synthetic"}
