"""Benchmark 4: peak memory of every stage at 1k versus 10k synthetic images, and HDF5 bytes
per image per stage.

Runs the workflow up to the summary on synthetic datasets of 1,000 and 10,000 images (half
training, a quarter each for val and test; 1,000 images per features shard) and reads every
job's peak RSS from Snakemake's benchmark files. It uses the colourfulness fixture backbone (2
channels; the tests' plugin in tests/plugins, put on the workflow's PYTHONPATH): ResNet-50 on 10k
images would take hours on CPU, and the backbone's own memory does not depend on the dataset
size, only on the batch. Prints the 10k / 1k ratio of each stage's
largest peak RSS (goal: under 1.2) and the bytes per image of each stage's HDF5 files.

    .venv/bin/python bench/memory_scaling.py [--sizes 1000 10000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml
from _common import machine

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
STAGES = ("synth", "manifest", "features", "representer", "maps", "metrics", "summary")
#: Where the fixture backbone's plugin lives (an entry point of group rpsloc.backbones).
TEST_PLUGINS = REPO / "tests" / "plugins"


def workflow_config(n_images: int) -> dict:
    splits = {"train": n_images // 2, "val": n_images // 4, "test": n_images // 4}
    return {
        "datasets": {
            "scale": {
                "adapter": "synthetic",
                "synthetic": {"splits": splits, "classes": 4, "seed": 0, "max_side": 320},
                "train_split": "train",
                "eval_splits": ["val", "test"],
                "threshold_split": "val",
                "image_size": 224,
                "crop_size": 224,
                "output_stride": 16,
                "backbones": ["fixture"],
                "variants": ["rps", "caam"],
            }
        },
        "backbones": {"fixture": {"arch": "fixture-colourfulness", "weights": "random"}},
        "features": {
            "shard_size": 1000,
            "batch_size": 32,
            "num_workers": 1,
            "device": "cpu",
            "warm_process": False,
        },
        "evaluation": {
            "cam_curve_interval": 0.01,
            "iou_thresholds": [30, 50, 70],
            "overlay_images": 2,
        },
    }


def run(workdir: Path, n_images: int) -> tuple[pd.Series, pd.Series]:
    """Largest peak RSS (MiB) per stage, and HDF5 bytes per image per stage."""
    workdir.mkdir(parents=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(workflow_config(n_images)))
    command = [
        str(SNAKEMAKE),
        "--snakefile",
        str(REPO / "workflow" / "Snakefile"),
        "--directory",
        str(workdir),
    ]
    command += ["--configfile", str(workdir / "config.yaml"), "--cores", "2"]
    path = os.pathsep.join(filter(None, [str(TEST_PLUGINS), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    subprocess.run(
        [*command, "results/scale/summary.csv"], check=True, capture_output=True, env=env
    )
    peaks = {}
    for stage in STAGES:
        files = [
            path
            for path in (workdir / "benchmarks/scale").rglob("*.tsv")
            if _stage_of(path, workdir) == stage
        ]
        if files:
            peaks[stage] = max(pd.read_csv(path, sep="\t")["max_rss"].max() for path in files)
    results = workdir / "results/scale/fixture"
    n_train, n_eval = n_images // 2, n_images // 2
    sizes = {
        "features (train)": _bytes(results / "features/train") / n_train,
        "features (eval)": (_bytes(results / "features/val") + _bytes(results / "features/test"))
        / n_eval,
        "representer": (_bytes(results / "representer.h5") + _bytes(results / "representer"))
        / n_train,
        "maps": _bytes(results, "*/maps/*.h5") / n_eval,
    }
    return pd.Series(peaks), pd.Series(sizes)


def _stage_of(path: Path, workdir: Path) -> str:
    """The rule a benchmark file belongs to, from its path (benchmarks/<dataset>/...)."""
    parts = path.relative_to(workdir / "benchmarks/scale").parts
    if parts[0] in ("synth.tsv", "summary.tsv"):
        return parts[0].removesuffix(".tsv")
    if parts[0] == "manifest":
        return "manifest"
    if parts[1] == "features":
        return "features"
    if parts[1].startswith("representer"):  # representer.tsv or representer/<selection>.tsv
        return "representer"
    return parts[2] if len(parts) > 2 and parts[2] in ("maps", "metrics") else "other"


def _bytes(path: Path, pattern: str = "*.h5") -> int:
    """Bytes of a file, or of the files matching `pattern` under a folder (0 if neither)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob(pattern)) if path.is_dir() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[1000, 10000])
    arguments = parser.parse_args()
    small, large = arguments.sizes
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="rpsloc-bench-") as folder:
        peaks_small, bytes_small = run(Path(folder) / str(small), small)
        peaks_large, bytes_large = run(Path(folder) / str(large), large)
    table = pd.DataFrame(
        {
            f"peak RSS MiB ({small})": peaks_small,
            f"peak RSS MiB ({large})": peaks_large,
            "ratio": peaks_large / peaks_small,
        }
    )
    print(table.round(2).to_string())
    print(f"largest ratio {large} / {small} images: {table['ratio'].max():.3f} (goal < 1.2)")
    sizes = pd.DataFrame(
        {f"bytes/image ({small})": bytes_small, f"bytes/image ({large})": bytes_large}
    )
    print(sizes.round(1).to_string())


if __name__ == "__main__":
    main()
