"""Benchmark 3: throughput of the real `features` rule versus a bare forward loop.

Runs the workflow's `features` rule (Snakemake job: decode and resize in DataLoader workers,
backbone, HDF5 writes) on one shard of a synthetic split, reads its wall time from the rule's
benchmark file, and compares it with a bare forward loop of the same model, batch size and
threads on pre-loaded tensors, in the memory format the stage uses. Prints images/s of both
and their ratio (goal: at least 0.90 at 448 with 64-image shards and `num_workers: auto`).
Also times `extract_shard` in this process, which leaves out the job's start-up (Python,
imports, Snakemake), to show where the difference goes.

    .venv/bin/python bench/extraction_throughput.py [--images 64] [--batch-size 16]
        [--size 448] [--output-stride 32] [--num-workers auto]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import yaml
from _common import bare_forward_seconds, machine, preloaded_batches, result_row, write_json

from rpsloc.features import extract_shard

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
RULE_THREADS = 2  # `threads:` of the features rule (workflow/rules/features.smk)


def workflow_config(
    n_images: int, batch_size: int, num_workers: int | str, size: int, stride: int
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
            "shard_size": n_images,
            "batch_size": batch_size,
            "num_workers": num_workers,
            "device": "cpu",
        },
        "evaluation": {
            "cam_curve_interval": 0.01,
            "iou_thresholds": [30, 50, 70],
            "overlay_images": 2,
        },
    }


def rule_seconds(workdir: Path, config: dict) -> tuple[float, float]:
    """Wall and CPU seconds of the features job of the val split, from its benchmark file."""
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    target = "results/bench/resnet50-random/features/val/shard-0.h5"
    base = [
        str(SNAKEMAKE),
        "--snakefile",
        str(REPO / "workflow" / "Snakefile"),
        "--directory",
        str(workdir),
    ]
    base += ["--configfile", str(workdir / "config.yaml"), "--cores", str(RULE_THREADS)]
    # Inputs first, so the features job runs alone.
    subprocess.run([*base, "results/bench/manifest/val.csv"], check=True, capture_output=True)
    subprocess.run([*base, target], check=True, capture_output=True)
    table = pd.read_csv(
        workdir / "benchmarks/bench/resnet50-random/features/val/shard-0.tsv", sep="\t"
    )
    return float(table["s"].iloc[0]), float(table["cpu_time"].iloc[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="one shard of this many")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-workers", type=workers, default="auto")
    parser.add_argument("--size", type=int, default=448)
    parser.add_argument("--output-stride", type=int, default=32)
    parser.add_argument("--json", type=Path, help="write the table rows for run_all.py here")
    arguments = parser.parse_args()
    n, batch, size = arguments.images, arguments.batch_size, arguments.size
    stride = arguments.output_stride
    backbone = {"arch": "resnet50", "weights": "random", "seed": 0}
    torch.set_num_threads(RULE_THREADS)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="rpsloc-bench-") as folder:
        workdir = Path(folder)
        config = workflow_config(n, batch, arguments.num_workers, size, stride)
        rule, rule_cpu = rule_seconds(workdir / "workflow", config)
        manifest = workdir / "workflow/results/bench/manifest/val.csv"
        start = time.perf_counter()
        extract_shard(
            manifest,
            "eval",
            0,
            n,
            backbone,
            size,
            size,
            stride,
            workdir / "shard.h5",
            batch_size=batch,
            num_workers=arguments.num_workers,
            device="cpu",
        )
        in_process = time.perf_counter() - start
        batches = preloaded_batches(manifest, batch, size, size)
        bare, bare_cpu = bare_forward_seconds(backbone, stride, batches)
    print(
        f"ResNet-50 at {size}, output stride {stride}, batch {batch}, {RULE_THREADS} threads, "
        f"{n} images, num_workers {arguments.num_workers}"
    )
    print(f"bare forward loop (pre-loaded tensors): {n / bare:7.2f} images/s ({bare:.1f} s)")
    print(f"features rule (Snakemake job):          {n / rule:7.2f} images/s ({rule:.1f} s)")
    timing = f"{n / in_process:7.2f} images/s ({in_process:.1f} s)"
    print(f"extract_shard in this process:          {timing}")
    print(f"ratio rule / bare forward: {bare / rule:.3f} (goal >= 0.90)")
    print(f"ratio extract_shard / bare forward: {bare / in_process:.3f}")
    print(
        f"CPU seconds per image: rule {rule_cpu / n:.3f}, bare forward {bare_cpu / n:.3f}; "
        f"ratio bare / rule {bare_cpu / rule_cpu:.3f}; load average {os.getloadavg()[0]:.1f}"
    )
    measure = f"features rule / bare forward, ResNet-50 at {size}, {n}-image shard"
    write_json(
        arguments.json,
        [result_row("3. extraction", measure, bare / rule, ">= 0.9", bare / rule >= 0.9)],
    )


def workers(value: str) -> int | str:
    """A `--num-workers` value: a number, or `auto` as in the config."""
    return value if value == "auto" else int(value)


if __name__ == "__main__":
    main()
