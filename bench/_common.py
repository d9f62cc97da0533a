"""What the benchmarks share: the machine's description, a synthetic split on disk, and the
bare forward loop every extraction number is compared with."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

from rpsloc.backbones.build import build_backbone, for_inference
from rpsloc.datasets.records import read_manifest, write_manifest
from rpsloc.devices import keep_freed_memory
from rpsloc.manifest import build_manifest
from rpsloc.synthetic import generate_synthetic_dataset
from rpsloc.transforms import load_rgb, preprocess


def machine() -> str:
    """CPU model, cores, torch version and threads, as written into bench/RESULTS.md."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as stream:
            model = next(line.split(":", 1)[1].strip() for line in stream if "model name" in line)
    except (OSError, StopIteration):
        pass
    return (
        f"{model}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} intra-op threads"
    )


def write_json(path: Path | None, rows: list[dict]) -> None:
    """The rows a benchmark hands `run_all.py` for bench/RESULTS.md's table: each names the
    benchmark, what was measured, the value (a ratio), the goal and whether it was met."""
    if path is not None:
        Path(path).write_text(json.dumps(rows, indent=1))


def result_row(benchmark: str, measure: str, value: float, goal: str, met: bool | None) -> dict:
    return {"benchmark": benchmark, "measure": measure, "value": value, "goal": goal, "met": met}


def synthetic_split(folder: Path, n_images: int, split: str = "val", seed: int = 0) -> Path:
    """A synthetic split of `n_images` (default image sizes up to 320 px) and its manifest."""
    generate_synthetic_dataset(folder / "data", splits={split: n_images}, seed=seed)
    records = build_manifest({"adapter": "synthetic", "root": str(folder / "data")}, split)
    write_manifest(records, folder / f"{split}.csv")
    return folder / f"{split}.csv"


def preloaded_batches(
    manifest: Path, batch_size: int, image_size: int, crop_size: int
) -> list[torch.Tensor]:
    """The split's images decoded and preprocessed up front, in batches."""
    images = [preprocess(load_rgb(r.path), image_size, crop_size) for r in read_manifest(manifest)]
    return [torch.stack(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]


#: Batches run before a bare forward is timed: the allocator's heap (`devices.keep_freed_memory`)
#: grows through the first two batches of a ResNet-50 at 448 (251k, then 132k page faults, then
#: none), and it is the warm forward that the fp32 matrix multiply (best of 5) is compared with.
WARM_UP_BATCHES = 2


def bare_forward_seconds(
    backbone_config: dict,
    output_stride: int,
    batches: list[torch.Tensor],
    channels_last: bool | None = None,
    fold_batch_norms: bool = True,
    passes: int = 1,
) -> tuple[float, float]:
    """Wall and CPU seconds of one pass of the backbone over pre-loaded batches (after
    WARM_UP_BATCHES warm-up batches), the fastest of `passes`, under inference_mode, with the
    current torch thread setting, run as the features stage runs it (`for_inference`:
    BatchNorms folded unless `fold_batch_norms` says, its memory format unless `channels_last`
    says), with the stage's allocator setting (`devices.keep_freed_memory`)."""
    cpu = torch.device("cpu")
    keep_freed_memory(cpu)
    backbone, channels_last = for_inference(
        build_backbone(backbone_config, output_stride),
        backbone_config["arch"],
        cpu,
        channels_last,
        fold_batch_norms,
    )
    if channels_last:
        batches = [batch.to(memory_format=torch.channels_last) for batch in batches]
    with torch.inference_mode():
        for index in range(WARM_UP_BATCHES):
            backbone(batches[index % len(batches)])
        timings = []
        for _ in range(passes):
            start, cpu = time.perf_counter(), time.process_time()
            for batch in batches:
                backbone(batch)
            timings.append((time.perf_counter() - start, time.process_time() - cpu))
        return min(timings)
