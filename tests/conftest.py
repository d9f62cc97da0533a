"""Shared test helpers: where the repository and ../shared live, and how to run Snakemake."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


@pytest.fixture(scope="session")
def wsol_metadata() -> Path:
    """The real WSOL benchmark metadata, read in place from ../shared (never copied)."""
    folder = SHARED / "wsol-metadata"
    if not folder.is_dir():
        pytest.fail(f"{folder} is missing: the tests read the shared benchmark metadata there")
    return folder


def tiny_config(**dataset_overrides) -> dict:
    """A workflow configuration small enough to run in seconds: the synthetic set, the
    colourfulness fixture backbone and a small random ResNet-50 pass."""
    dataset = {
        "adapter": "synthetic",
        "synthetic": {
            "splits": {"train": 10, "val": 6, "test": 6},
            "classes": 2,
            "seed": 1,
            "max_side": 160,
        },
        "train_split": "train",
        "eval_splits": ["val", "test"],
        "threshold_split": "val",
        "image_size": 128,
        "crop_size": 112,
        "output_stride": 16,
        "backbones": ["fixture", "resnet50-random"],
        "variants": ["rps", "caam", "centre_gaussian"],
        **dataset_overrides,
    }
    return {
        "datasets": {"tiny": dataset},
        "backbones": {
            "fixture": {"arch": "fixture-colourfulness", "weights": "random"},
            "resnet50-random": {"arch": "resnet50", "weights": "random", "seed": 0},
        },
        "features": {"shard_size": 4, "batch_size": 4, "num_workers": 0, "device": "cpu"},
        "evaluation": {
            "cam_curve_interval": 0.01,
            "iou_thresholds": [30, 50, 70],
            "overlay_images": 2,
        },
    }


def run_snakemake(
    workdir: Path, config: dict, *arguments: str, check: bool = True
) -> subprocess.CompletedProcess:
    """Run the repository's workflow in `workdir` with `config` written to its config file."""
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    command = [
        str(SNAKEMAKE),
        *arguments,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        "--configfile",
        str(workdir / "config" / "config.yaml"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stderr[-6000:]}")
    return result
