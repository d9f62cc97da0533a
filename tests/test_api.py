"""The Python API (`rpsloc.api.Localizer`, README "Localize your own images"): its README
example runs as written, it reuses the workflow's stages (fitted on the workflow's feature
shards it predicts the workflow's boxes), and it refuses what it cannot do."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import torch
from conftest import REPO, random_config

from rpsloc import features, paths
from rpsloc.api import Localizer
from rpsloc.backbones.build import build_backbone
from rpsloc.errors import InputError
from rpsloc.io import read_attrs
from rpsloc.synthetic import generate_synthetic_folder

FIXTURE = {"arch": "fixture-colourfulness", "weights": "none"}


def readme_example() -> str:
    """The README's Python example of the Localizer."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    (example,) = [block for block in blocks if "Localizer" in block]
    return example


@pytest.mark.workflow
def test_the_readme_example_runs_as_written(tmp_path, monkeypatch):
    generate_synthetic_folder(tmp_path / "photos", {"mine": 6}, empty=0.25, max_side=96)
    checkpoint = tmp_path / "resnet50.pth"
    torch.save(build_backbone(random_config(), 16).state_dict(), checkpoint)
    monkeypatch.chdir(tmp_path)
    namespace = {"CHECKPOINT": str(checkpoint)}
    exec(compile(readme_example(), "README.md", "exec"), namespace)  # noqa: S102
    prediction = namespace["prediction"]
    assert list(prediction.boxes.columns) == ["image_id", "rank", "x0", "y0", "x1", "y1", "score"]
    assert len(prediction.images) == 6
    assert len(namespace["why"].support) == 5


@pytest.mark.workflow
def test_fitted_on_the_workflows_feature_shards_it_predicts_the_workflows_boxes(
    folder_run, tmp_path
):
    names = {"dataset": "photos", "backbone": "fixture"}
    first = folder_run / paths.FEATURE_SHARD.format(**names, split="all", shard=0)
    shards = sorted(first.parent.glob("shard-*.h5"))
    localizer = Localizer(FIXTURE, image_size=128, device="cpu", workdir=tmp_path)
    prediction = localizer.fit(shards=shards).predict(folder_run / "photos")
    workflow = pd.read_csv(
        folder_run / paths.BOXES.format(**names, variant="rps", split="everything")
    )
    pd.testing.assert_frame_equal(prediction.boxes, workflow)


def test_predicting_before_fitting_is_an_error(tmp_path):
    with pytest.raises(InputError, match=r"call fit\(\) before predict"):
        Localizer(FIXTURE, workdir=tmp_path).predict(tmp_path)


def test_a_work_folder_made_with_other_settings_is_refused(tmp_path):
    Localizer(FIXTURE, image_size=128, workdir=tmp_path)
    with pytest.raises(InputError, match=r"other settings \(crop_size, image_size differ\)"):
        Localizer(FIXTURE, image_size=160, workdir=tmp_path)


def test_a_labelled_threshold_needs_ground_truth_the_api_does_not_have(tmp_path):
    localizer = Localizer(FIXTURE, threshold="labelled", workdir=tmp_path)
    generate_synthetic_folder(tmp_path / "photos", {"mine": 2}, empty=0, max_side=64)
    localizer.fit(tmp_path / "photos")
    with pytest.raises(InputError, match="has no ground truth to choose it on"):
        localizer.predict(tmp_path / "photos")


def test_training_images_are_resized_to_the_training_size_without_a_crop(tmp_path):
    generate_synthetic_folder(tmp_path / "photos", {"mine": 2}, empty=0, max_side=64)
    localizer = Localizer(
        FIXTURE, image_size=96, crop_size=80, train_image_size=64, device="cpu", workdir=tmp_path
    )
    localizer.fit(tmp_path / "photos").predict(tmp_path / "photos")
    geometry = {
        split: (attrs["image_size"], attrs["crop_size"])
        for split in ("train", "predicted")
        for attrs in [read_attrs(next((tmp_path / "results").rglob(f"{split}/shard-0.h5")))]
    }
    assert geometry == {"train": (64, 64), "predicted": (96, 80)}


def test_a_localizer_builds_its_backbone_once_for_all_its_shards_and_calls(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(
        features, "build_backbone", lambda *args: built.append(args) or build_backbone(*args)
    )
    generate_synthetic_folder(tmp_path / "photos", {"mine": 4}, empty=0, max_side=64)
    localizer = Localizer(FIXTURE, image_size=64, shard_size=2, device="cpu", workdir=tmp_path)
    localizer.fit(tmp_path / "photos").predict(tmp_path / "photos")
    assert len(list((tmp_path / "results").rglob("shard-*.h5"))) == 4
    assert len(built) == 1
