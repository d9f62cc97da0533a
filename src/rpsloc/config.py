"""Checks of the workflow configuration that a JSON schema cannot express (references between
sections, sizes that must agree). The schema (config/schema.yaml) catches misspelt keys and
wrong types first; these errors name the key path too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rpsloc.backbones import parse_weights
from rpsloc.backbones.checkpoints import require_checkpoint_file
from rpsloc.backbones.classifiers import checkpoint_files, classifier_settings
from rpsloc.datasets import check_dataset, dataset_settings
from rpsloc.errors import InputError
from rpsloc.variants import parse_variant


def check_config(config: Mapping[str, Any]) -> None:
    """Raise `InputError` naming the key of the first inconsistency found."""
    for name, dataset in config["datasets"].items():
        where = f"datasets.{name}"
        check_dataset(name, dataset)
        sizes = dataset_settings(dataset)  # image and crop sizes default per adapter
        if sizes["crop_size"] > sizes["image_size"]:
            raise InputError(
                f"config: {where}.crop_size ({sizes['crop_size']}) is larger than "
                f"image_size ({sizes['image_size']})"
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
        for variant_name in dataset["variants"]:
            _check_variant(config, name, variant_name)
        for backbone in dataset["backbones"]:
            if backbone not in config["backbones"]:
                raise InputError(
                    f"config: {where}.backbones names '{backbone}', which is not a "
                    f"key of backbones ({sorted(config['backbones'])})"
                )
        classifiers = config.get("classifiers", {})
        if "classifier" in dataset and dataset["classifier"] not in classifiers:
            raise InputError(
                f"config: {where}.classifier names '{dataset['classifier']}', which is not a "
                f"key of classifiers ({sorted(classifiers)})"
            )
    for name, classifier in config.get("classifiers", {}).items():
        try:
            classifier_settings(classifier)
        except InputError as error:
            raise InputError(f"config: classifiers.{name}: {error}") from error


def check_checkpoint_files(config: Mapping[str, Any]) -> None:
    """Every checkpoint file the configured datasets need exists: backbone `weights` and their
    classifier's files. Run before the workflow builds any job, so a missing file is a
    `CheckpointError` naming the file, its config key and who publishes the format, not a
    failure hours later (METHOD.md 4). Only `weights` of kind `file` name one (`Weights`):
    `random` and `none` need none, and `pretrain` gets its file from the pretrain stage."""
    for dataset in config["datasets"].values():
        for backbone_name in dataset["backbones"]:
            backbone = config["backbones"][backbone_name]
            weights = parse_weights(backbone["weights"])
            if weights.kind == "file":
                require_checkpoint_file(
                    weights.path,
                    backbone["arch"],
                    backbone.get("checkpoint_format", "auto"),
                    key=f"backbones.{backbone_name}.weights",
                )
        if "classifier" in dataset:
            classifier = dataset["classifier"]
            settings = classifier_settings(config["classifiers"][classifier])
            checkpoint_files(settings, f"classifiers.{classifier}")


def _check_variant(config: Mapping[str, Any], name: str, variant_name: str) -> None:
    where = f"config: datasets.{name}.variants '{variant_name}'"
    try:
        variant = parse_variant(variant_name)
    except ValueError as error:
        raise InputError(f"{where}: {error}") from error
    dataset = config["datasets"][name]
    if variant.class_source == "top1" and "classifier" not in dataset:
        raise InputError(f"{where} needs datasets.{name}.classifier (whose top-1 picks w*_k)")
    base = variant.base_dataset
    if base is None:
        return
    if base not in config["datasets"]:
        raise InputError(f"{where}: base dataset '{base}' is not a key of datasets")
    missing = set(dataset["backbones"]) - set(config["datasets"][base]["backbones"])
    if missing:
        raise InputError(
            f"{where}: base dataset '{base}' does not list backbones {sorted(missing)}, so "
            "it has no w* for them"
        )
