"""The adapter registry (docs/datasets.md): every layout registered with its keys."""

from __future__ import annotations

import pytest

from rpsloc.datasets import ADAPTERS, manifest_settings
from rpsloc.errors import InputError
from rpsloc.manifest import build_manifest


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
        "voc",
        "coco20k",
        "folder",
    }


# ----------------------------------------------------------------------------- dispatch


def test_build_manifest_rejects_an_unknown_adapter():
    with pytest.raises(InputError, match=r"unknown adapter 'pascal'"):
        build_manifest({"adapter": "pascal"}, "test")


def test_build_manifest_names_a_missing_configuration_key():
    with pytest.raises(InputError, match=r"key 'images' is missing"):
        build_manifest({"adapter": "wsol", "metadata": "/nowhere"}, "test")
