"""The accelerator benchmark (needs a CUDA device): fp32 versus bf16, speed and numbers.

1. Images/s of the bare forward (pre-loaded batches on the GPU, channels last, inference mode)
   for ResNet-50 at 224 and 448 and ViT-S/16 at 224, in fp32 and under bf16 autocast.
2. MaxBoxAccV2 of the method on a synthetic set with the features extracted in fp32 and in bf16
   (the workflow's `extract_shard`, everything else identical); the goal is a difference under
   0.1 points. Pass `--weights resnet50=CKPT` to use a real checkpoint instead of random init.

    .venv/bin/python bench/accelerator.py [--batch-size 64] [--weights resnet50=FILE ...]

Without CUDA it says so and exits with status 0.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _common import machine, result_row, synthetic_split, write_json

from rpsloc.backbones.build import build_backbone, for_inference
from rpsloc.features import extract_shard
from rpsloc.maps import write_maps
from rpsloc.metrics import evaluate_split
from rpsloc.representer import write_representer

MODELS = (("resnet50", 224, 16), ("resnet50", 448, 32), ("vit_s16", 224, 16))


def images_per_second(config: dict, size: int, stride: int, batch: int, bf16: bool) -> float:
    cuda = torch.device("cuda")
    backbone, _ = for_inference(build_backbone(config, stride), config["arch"], cuda)
    images = torch.randn(batch, 3, size, size, device="cuda").to(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
        for _ in range(3):
            backbone(images)
        torch.cuda.synchronize()
        repeats, start = 20, time.perf_counter()
        for _ in range(repeats):
            backbone(images)
        torch.cuda.synchronize()
    return repeats * batch / (time.perf_counter() - start)


def max_box_acc_v2(folder: Path, config: dict, size: int, stride: int, bf16: bool) -> float:
    """The method end to end (features -> w* -> maps -> metrics) on the synthetic split."""
    out = folder / ("bf16" if bf16 else "fp32")
    out.mkdir()
    shards = {}
    for split, role in (("train", "train"), ("test", "eval")):
        shards[split] = out / f"{split}.h5"
        extract_shard(
            folder / f"{split}.csv",
            role,
            0,
            100_000,
            config,
            size,
            size,
            stride,
            shards[split],
            batch_size=64,
            num_workers=4,
            device="cuda",
            precision="bf16" if bf16 else "fp32",
        )
    write_representer([shards["train"]], out / "representer.h5")
    write_maps("rps", [shards["test"]], out / "maps.h5", representer=out / "representer.h5")
    _, summary = evaluate_split(out / "maps.h5", [shards["test"]], folder / "test.csv", workers=8)
    return summary["max_box_acc_v2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=500, help="per split, for MaxBoxAccV2")
    parser.add_argument("--weights", nargs="*", default=[], help="ARCH=CHECKPOINT")
    parser.add_argument("--json", type=Path, help="write the table rows for run_all.py here")
    arguments = parser.parse_args()
    if not torch.cuda.is_available():
        print("accelerator benchmark not run: no CUDA device (torch.cuda.is_available() is False)")
        row = result_row("accelerator", "not run: no CUDA device", "", "< 0.1 points", None)
        write_json(arguments.json, [row])
        return
    rows = []
    weights = dict(item.split("=", 1) for item in arguments.weights)
    print(f"machine: {machine()}, GPU {torch.cuda.get_device_name()}")
    with tempfile.TemporaryDirectory(prefix="rpsloc-bench-") as name:
        folder = Path(name)
        for split in ("train", "test"):
            synthetic_split(folder / split, arguments.images, split)
            (folder / split / f"{split}.csv").rename(folder / f"{split}.csv")
        for arch, size, stride in MODELS:
            config = {"arch": arch, "weights": weights.get(arch, "random"), "seed": 0}
            fp32, bf16 = (
                images_per_second(config, size, stride, arguments.batch_size, b)
                for b in (False, True)
            )
            accuracy = {b: max_box_acc_v2(folder, config, size, stride, b) for b in (False, True)}
            for b in (False, True):
                (folder / ("bf16" if b else "fp32")).rename(folder / f"{arch}-{size}-{b}")
            print(
                f"{arch} at {size} ({config['weights']}): fp32 {fp32:8.1f} images/s, "
                f"bf16 {bf16:8.1f} images/s (x{bf16 / fp32:.2f}); MaxBoxAccV2 fp32 "
                f"{accuracy[False]:.2f}, bf16 {accuracy[True]:.2f}, difference "
                f"{abs(accuracy[True] - accuracy[False]):.2f} points (goal < 0.1)"
            )
            difference = abs(accuracy[True] - accuracy[False])
            measure = f"{arch} at {size}: MaxBoxAccV2 points, bf16 - fp32"
            rows.append(result_row("accelerator", measure, difference, "< 0.1", difference < 0.1))
            measure = f"{arch} at {size}: bf16 / fp32 images/s"
            rows.append(result_row("accelerator", measure, bf16 / fp32, "", None))
    write_json(arguments.json, rows)


if __name__ == "__main__":
    main()
