"""Checks of the workflow configuration that a JSON schema cannot express (references between
sections, sizes that must agree). The schema (config/schema.yaml) catches misspelt keys and
wrong types first; these errors name the key path too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rpsloc.errors import InputError

ADAPTER_KEYS = {"synthetic": ("synthetic",), "wsol": ("metadata", "images")}


def check_config(config: Mapping[str, Any]) -> None:
    """Raise `InputError` naming the key of the first inconsistency found."""
    for name, dataset in config["datasets"].items():
        where = f"datasets.{name}"
        for key in ADAPTER_KEYS[dataset["adapter"]]:
            if key not in dataset:
                raise InputError(
                    f"config: {where}.{key} is required by adapter '{dataset['adapter']}'"
                )
        if dataset["crop_size"] > dataset["image_size"]:
            raise InputError(
                f"config: {where}.crop_size ({dataset['crop_size']}) is larger than "
                f"image_size ({dataset['image_size']})"
            )
        if dataset["train_split"] in dataset["eval_splits"]:
            raise InputError(
                f"config: {where}.train_split '{dataset['train_split']}' is also "
                "listed in eval_splits; w* must come from images it is not tested on"
            )
        threshold_split = dataset.get("threshold_split")
        if threshold_split is not None and threshold_split not in dataset["eval_splits"]:
            raise InputError(
                f"config: {where}.threshold_split '{threshold_split}' is not one of "
                f"eval_splits {dataset['eval_splits']}"
            )
        for backbone in dataset["backbones"]:
            if backbone not in config["backbones"]:
                raise InputError(
                    f"config: {where}.backbones names '{backbone}', which is not a "
                    f"key of backbones ({sorted(config['backbones'])})"
                )
