"""Benchmark 2: how close to the machine's limit the bare forward pass runs, per architecture
and memory format.

For ResNet-50 at 224 (output stride 16) and 448 (stride 32, the fine-grained protocol),
ViT-S/16 and VGG16 at 224: the floating-point operations of one forward (torch's
FlopCounterMode), images/s of the bare forward on pre-loaded random batches (the fastest of
PASSES passes) in the default (contiguous) and the channels-last memory format, each in a
fresh process, and their GFLOP/s against a large fp32 matrix multiply on the same threads,
timed just before each forward it is compared with: the median of `--rounds` such pairs, as a
VM's speed drifts by several percent over the minutes between the first and the last
architecture (bench/RESULTS.md). The channels-last speed-up per
architecture is what `Architecture.channels_last_on_cpu` was set from (goal: forward / matmul
>= 0.9 for ResNet-50 in the format the features stage uses). Every forward runs as the stage
runs it, BatchNorms folded into their convolutions (`backbones.folding`); ResNet-50 is also
timed as published, unfolded, for what folding gains.

    .venv/bin/python bench/forward_efficiency.py [--images 32] [--batch-size 16] [--threads 2]
        [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from _common import bare_forward_seconds, machine, result_row, write_json
from torch.utils.flop_counter import FlopCounterMode

from rpsloc.backbones import architecture
from rpsloc.backbones.build import build_backbone

#: (arch, image size, output stride) measured.
MODELS = (("resnet50", 224, 16), ("resnet50", 448, 32), ("vit_s16", 224, 16), ("vgg16", 224, 8))
#: A speed-up smaller than this is run-to-run noise here (two runs differ by about 1%): the
#: default memory format is kept for an architecture whose channels-last gain stays below it.
NOISE = 0.02
#: Passes over the images per measurement, the fastest kept, as the multiply keeps its fastest
#: of 5: a single pass is one sample of a VM whose speed drifts by several percent a minute.
PASSES = 3
#: The measured architectures with BatchNorms to fold (`fold_batch_norms`; VGG16 and ViTs have
#: none), each also timed as published.
FOLDED = ("resnet50",)


def forward_flops(backbone_config: dict, stride: int, batch: torch.Tensor) -> int:
    """Floating-point operations (a multiply-add counts 2) of one forward over `batch`."""
    backbone = build_backbone(backbone_config, stride).eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        backbone(batch)
    return counter.get_total_flops()


def matmul_gflops(n: int = 4096, repeats: int = 5) -> float:
    """Best GFLOP/s of an n x n fp32 matrix multiply (2 n^3 operations)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def random_batches(count: int, batch: int, size: int) -> list[torch.Tensor]:
    """`count` seeded random images of `size` x `size` in batches of at most `batch`."""
    generator = torch.Generator().manual_seed(0)
    return [
        torch.randn(min(batch, count - i), 3, size, size, generator=generator)
        for i in range(0, count, batch)
    ]


def images_per_second(
    arch: str, size: int, stride: int, channels_last: bool, arguments, folded: bool = True
) -> float:
    """The bare forward's images/s, measured in a fresh process: the allocator keeps what one
    measurement freed (`devices.keep_freed_memory`), so a second in the same process would start
    from the first one's heap. `folded`: BatchNorms folded, as the stage runs the model."""
    command = [
        sys.executable,
        __file__,
        "--measure",
        arch,
        str(size),
        str(stride),
        "channels-last" if channels_last else "default",
        "folded" if folded else "published",
        *("--images", str(arguments.images), "--batch-size", str(arguments.batch_size)),
        *("--threads", str(arguments.threads)),
    ]
    run = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(run.stdout.split()[-1])


def measure(arguments) -> None:
    """`--measure`: print the images/s of one architecture in one memory format."""
    arch, size, stride, memory_format, folding = arguments.measure
    config = {"arch": arch, "weights": "random", "seed": 0}
    batches = random_batches(arguments.images, arguments.batch_size, int(size))
    seconds, _ = bare_forward_seconds(
        config, int(stride), batches, memory_format != "default", folding == "folded", PASSES
    )
    print(arguments.images / seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--rounds", type=int, default=3, help="multiply-then-forward pairs, the median kept"
    )
    parser.add_argument("--json", type=Path, help="write the table rows for run_all.py here")
    parser.add_argument("--measure", nargs=5, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    if arguments.measure:
        measure(arguments)
        return
    print(f"machine: {machine()}")
    rows = []
    for arch, size, stride in MODELS:
        config = {"arch": arch, "weights": "random", "seed": 0}
        count, batch = arguments.images, arguments.batch_size
        flops = sum(forward_flops(config, stride, b) for b in random_batches(count, batch, size))
        used = architecture(arch).channels_last_on_cpu
        pairs = [
            (matmul_gflops(), images_per_second(arch, size, stride, used, arguments))
            for _ in range(arguments.rounds)
        ]
        ratios = [flops / count * forward / 1e9 / peak for peak, forward in pairs]
        speed = {
            used: statistics.median(forward for _, forward in pairs),
            not used: images_per_second(arch, size, stride, not used, arguments),
        }
        ratio = statistics.median(ratios)
        name = f"{arch} at {size}"
        print(
            f"{name} (stride {stride}, batch {batch}, {arguments.threads} threads): "
            f"{flops / count / 1e9:.2f} GFLOP per image; default format "
            f"{speed[False]:.2f} images/s, channels-last {speed[True]:.2f} images/s "
            f"(x{speed[True] / speed[False]:.2f}); the stage uses "
            f"{'channels-last' if used else 'the default'}: "
            + ", ".join(
                f"{share:.3f} of the matmul ({peak:.1f} GFLOP/s) at {forward:.2f} images/s"
                for share, (peak, forward) in zip(ratios, pairs, strict=True)
            )
            + f"; median {ratio:.3f}"
        )
        rows.append(
            result_row(
                "2. forward",
                f"{name}: channels-last / default images/s",
                speed[True] / speed[False],
                f"> {1 + NOISE} where the stage uses it"
                if used
                else f"<= {1 + NOISE}, default kept",
                (speed[True] / speed[False] > 1 + NOISE) == used,
            )
        )
        if arch in FOLDED:
            published = images_per_second(arch, size, stride, used, arguments, folded=False)
            print(f"{name}: BatchNorm folded x{speed[used] / published:.2f} ({published:.2f})")
            rows.append(
                result_row(
                    "2. forward",
                    f"{name}: BatchNorm folded / as published images/s",
                    speed[used] / published,
                    f"> {1 + NOISE}",
                    speed[used] / published > 1 + NOISE,
                )
            )
        rows.append(
            result_row(
                "2. forward",
                f"{name}: forward / fp32 matmul GFLOP/s, median of {arguments.rounds} pairs",
                ratio,
                ">= 0.9" if arch == "resnet50" else "",
                ratio >= 0.9 if arch == "resnet50" else None,
            )
        )
    write_json(arguments.json, rows)


if __name__ == "__main__":
    main()
