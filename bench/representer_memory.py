"""Benchmark 4b: peak memory of the representer and explanation stages at ResNet-50's width.

The workflow benchmark (memory_scaling.py) runs the colourfulness fixture, whose 2 channels
hide anything that grows as N x C. This one writes training shards as the features stage
would for ResNet-50 (C = 2048, 14 x 14 positions, 1,000 images per shard) with random
statistics, at 1k and 10k training images, and measures in a fresh process each the peak RSS
of `write_representer` and of `write_test_explanations` (200 test images). Holding a_n and
b_n of every training image would need 2 x 8 x 2048 bytes per image (328 MB at 10k).

    .venv/bin/python bench/representer_memory.py [--sizes 1000 10000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import machine

from rpsloc.io import atomic_h5, write_strings

CHANNELS, GRID, SHARD = 2048, 14, 1000
PROVENANCE = {"dataset": "bench", "backbone": "resnet50", "image_size": 224, "crop_size": 224}


def write_training_shards(folder: Path, n_images: int) -> list[Path]:
    generator = np.random.default_rng(0)
    shards = []
    for index, start in enumerate(range(0, n_images, SHARD)):
        count = min(SHARD, n_images - start)
        path = folder / f"train-{index}.h5"
        with atomic_h5(path, {**PROVENANCE, "role": "train"}) as handle:
            write_strings(handle, "image_ids", [f"train/{start + i}" for i in range(count)])
            handle.create_dataset("labels", data=np.arange(start, start + count) % 10)
            means = np.abs(generator.normal(size=(count, CHANNELS)))
            handle.create_dataset("mean_features", data=means)
            unit = means / np.linalg.norm(means, axis=1, keepdims=True) * 0.8
            handle.create_dataset("mean_unit_features", data=unit)
            norms = generator.uniform(0.5, 3.0, size=(count, GRID, GRID)).astype(np.float32)
            handle.create_dataset("position_norms", data=norms)
        shards.append(path)
    return shards


def write_test_shard(folder: Path, n_images: int = 200) -> Path:
    generator = np.random.default_rng(1)
    path = folder / "test-0.h5"
    features = np.abs(generator.normal(size=(n_images, GRID, GRID, CHANNELS)))
    features /= np.linalg.norm(features, axis=-1, keepdims=True)
    with atomic_h5(path, {**PROVENANCE, "role": "eval"}) as handle:
        write_strings(handle, "image_ids", [f"test/{i}" for i in range(n_images)])
        handle.create_dataset("labels", data=np.zeros(n_images, dtype=np.int64))
        handle.create_dataset("unit_features", data=features.astype(np.float16))
        handle.create_dataset("norms", data=np.ones((n_images, GRID, GRID), dtype=np.float32))
        handle.create_dataset("boxes", data=np.tile([[10, 10, 100, 100]], (n_images, 1)))
        handle.create_dataset("authors_boxes", data=np.tile([[10, 10, 100, 100]], (n_images, 1)))
        handle.create_dataset("box_offsets", data=np.arange(n_images + 1))
    return path


def peak_rss_mib(statement: str) -> float:
    """Peak RSS of a fresh Python process that runs `statement` after importing rpsloc."""
    code = (  # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent
        "from rpsloc.representer import write_representer\n"
        "from rpsloc.explanations import write_test_explanations\n"
        f"{statement}\n"
        "status = open('/proc/self/status').read().split('VmHWM:')[1]\n"
        "print(status.split()[0])"
    )
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return int(result.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    arguments = parser.parse_args()
    print(f"machine: {machine()}")
    peaks = {}
    with tempfile.TemporaryDirectory(prefix="rpsloc-bench-") as folder:
        test_shard = write_test_shard(Path(folder))
        for size in arguments.sizes:
            workdir = Path(folder) / str(size)
            workdir.mkdir()
            shards = [str(path) for path in write_training_shards(workdir, size)]
            representer = workdir / "representer.h5"
            peaks[size] = {
                "representer": peak_rss_mib(f"write_representer({shards!r}, {str(representer)!r})"),
                "explanations": peak_rss_mib(
                    f"write_test_explanations({str(representer)!r}, [{str(test_shard)!r}],"
                    f" {str(workdir / 'explanations.h5')!r})"
                ),
            }
            print(f"{size} training images: peak RSS (MiB) {peaks[size]}")
    first, last = arguments.sizes[0], arguments.sizes[-1]
    for stage in ("representer", "explanations"):
        ratio = peaks[last][stage] / peaks[first][stage]
        before, after = peaks[first][stage], peaks[last][stage]
        print(f"{stage}: {before:.0f} -> {after:.0f} MiB, ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
