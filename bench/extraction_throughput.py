"""Benchmark 3: throughput of the real `features` rule versus a bare forward loop.

Runs the workflow's `features` rule on a split of `--shards` shards of `--images` images each
(Snakemake jobs: decoding and resizing, the backbone, HDF5 writes) in one run, reads every
job's wall time from its benchmark file, and compares it with a bare forward loop of the same
model, batch size and threads on pre-loaded tensors of one shard, in the memory format the
stage uses. The jobs hand their shards to the warm process (`features.warm_process`, the
default): a run's first job starts it and pays a fresh Python's start-up (imports, building
the model, the first batch's kernels), each later one does not, which is what the goal is
about (at least 0.90 at 448 with 64-image shards and `num_workers: auto`). Also runs one job
with `warm_process: false`, which pays the start-up every time.

    .venv/bin/python bench/extraction_throughput.py [--images 64] [--shards 4]
        [--batch-size 16] [--size 448] [--output-stride 32] [--num-workers auto]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch
import yaml
from _common import bare_forward_seconds, machine, preloaded_batches, result_row, write_json

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
RULE_THREADS = 2  # `threads:` of the features rule (workflow/rules/features.smk)


def workflow_config(
    n_images: int,
    batch_size: int,
    num_workers: int | str,
    size: int,
    stride: int,
    shard_size: int,
    warm_process: bool,
) -> dict:
    return {
        "datasets": {
            "bench": {
                "adapter": "synthetic",
                "synthetic": {
                    "splits": {"train": 4, "val": n_images},
                    "classes": 4,
                    "seed": 0,
                    "max_side": 320,
                },
                "train_split": "train",
                "eval_splits": ["val"],
                "threshold_split": "val",
                "image_size": size,
                "crop_size": size,
                "output_stride": stride,
                "backbones": ["resnet50-random"],
                "variants": ["rps"],
            }
        },
        "backbones": {"resnet50-random": {"arch": "resnet50", "weights": "random", "seed": 0}},
        "features": {
            "shard_size": shard_size,
            "batch_size": batch_size,
            "num_workers": num_workers,
            "device": "cpu",
            "warm_process": warm_process,
        },
        "evaluation": {
            "cam_curve_interval": 0.01,
            "iou_thresholds": [30, 50, 70],
            "overlay_images": 2,
        },
    }


def job_seconds(workdir: Path, config: dict, shards: int) -> list[tuple[float, bool]]:
    """Wall seconds of the features jobs of the val split's `shards` shards, in the order
    they ran, each with whether a warm process that had served a job before ran it."""
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    base = [
        str(SNAKEMAKE),
        "--snakefile",
        str(REPO / "workflow" / "Snakefile"),
        "--directory",
        str(workdir),
    ]
    base += ["--configfile", str(workdir / "config.yaml"), "--cores", str(RULE_THREADS)]
    # Inputs first, so the features jobs run alone.
    subprocess.run([*base, "results/bench/manifest/val.csv"], check=True, capture_output=True)
    shard = "bench/resnet50-random/features/val/shard-{}"
    targets = [f"results/{shard.format(k)}.h5" for k in range(shards)]
    subprocess.run([*base, *targets], check=True, capture_output=True)
    jobs = []
    for k in range(shards):
        table = pd.read_csv(workdir / f"benchmarks/{shard.format(k)}.tsv", sep="\t")
        log = (workdir / f"logs/{shard.format(k)}.log").read_text()
        served = re.search(r"in the warm process \d+ \(its job (\d+)\)", log)
        order = int(served[1]) if served else 0
        jobs.append((order, float(table["s"].iloc[0]), bool(served) and order > 1))
    return [(seconds, warm) for _, seconds, warm in sorted(jobs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="images per shard")
    parser.add_argument("--shards", type=int, default=4, help="shards of the warm run")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-workers", type=workers, default="auto")
    parser.add_argument("--size", type=int, default=448)
    parser.add_argument("--output-stride", type=int, default=32)
    parser.add_argument("--json", type=Path, help="write the table rows for run_all.py here")
    arguments = parser.parse_args()
    n, shards, batch, size = (
        arguments.images,
        arguments.shards,
        arguments.batch_size,
        arguments.size,
    )
    stride = arguments.output_stride
    backbone = {"arch": "resnet50", "weights": "random", "seed": 0}
    torch.set_num_threads(RULE_THREADS)
    print(f"machine: {machine()}")
    settings = (batch, arguments.num_workers, size, stride, n)
    with tempfile.TemporaryDirectory(prefix="rpsloc-bench-") as folder:
        workdir = Path(folder)
        warm_run = job_seconds(
            workdir / "warm", workflow_config(n * shards, *settings, True), shards
        )
        own_run = job_seconds(workdir / "own", workflow_config(n, *settings, False), 1)
        manifest = workdir / "own/results/bench/manifest/val.csv"
        bare, _ = bare_forward_seconds(
            backbone, stride, preloaded_batches(manifest, batch, size, size)
        )
    first = warm_run[0][0]
    later = [seconds for seconds, warm in warm_run if warm]
    if len(later) != shards - 1:
        raise SystemExit(f"expected {shards - 1} jobs served warm, found {len(later)}: {warm_run}")
    later_mean = sum(later) / len(later)
    whole = sum(seconds for seconds, _ in warm_run)
    print(
        f"ResNet-50 at {size}, output stride {stride}, batch {batch}, {RULE_THREADS} threads, "
        f"{shards} shards of {n} images, num_workers {arguments.num_workers}"
    )
    timings = [
        ("bare forward loop, one shard (pre-loaded tensors)", n, [bare]),
        ("a run's first job (it starts the warm process)", n, [first]),
        ("each later job (the warm process), mean", n, later),
        (f"the whole split, {shards} jobs", n * shards, [whole]),
        ("a job in its own process (warm_process: false)", n, [own_run[0][0]]),
    ]
    for label, images, seconds in timings:
        mean = sum(seconds) / len(seconds)
        each = ", ".join(f"{value:.1f}" for value in seconds)
        print(f"{label + ':':52} {images / mean:7.2f} images/s ({each} s)")
    ratios = {
        "each job after a run's first (warm process)": bare / later_mean,
        "a run's first job": bare / first,
        f"the whole split of {shards} shards": shards * bare / whole,
        "a job in its own process (warm_process: false)": bare / own_run[0][0],
    }
    for what, ratio in ratios.items():
        print(f"ratio rule / bare forward, {what}: {ratio:.3f}")
    print(f"load average {os.getloadavg()[0]:.1f}")
    measure = f"features rule / bare forward, ResNet-50 at {size}, {n}-image shards"
    rows = [
        result_row("3. extraction", f"{measure}: {what}", ratio, goal, met)
        for (what, ratio), (goal, met) in zip(
            ratios.items(),
            [(">= 0.9", ratios["each job after a run's first (warm process)"] >= 0.9)]
            + [("", None)] * 3,
            strict=True,
        )
    ]
    write_json(arguments.json, rows)


def workers(value: str) -> int | str:
    """A `--num-workers` value: a number, or `auto` as in the config."""
    return value if value == "auto" else int(value)


if __name__ == "__main__":
    main()
