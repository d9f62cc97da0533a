"""Benchmark 2: how close to the machine's limit the backbone's forward pass runs.

Counts the floating-point operations of one ResNet-50 forward (torch's FlopCounterMode, the
workflow's output stride), times the bare forward loop on pre-loaded tensors, and compares its
GFLOP/s with a large fp32 matrix multiply on the same threads. Prints the ratio.

    .venv/bin/python bench/forward_efficiency.py [--images 64] [--batch-size 16] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _common import bare_forward_seconds, machine, preloaded_batches, synthetic_split
from torch.utils.flop_counter import FlopCounterMode

from rpsloc.backbones import build_backbone

OUTPUT_STRIDE = 16


def forward_flops(backbone_config: dict, batch: torch.Tensor) -> int:
    """Floating-point operations (a multiply-add counts 2) of one forward over `batch`."""
    backbone = build_backbone(backbone_config, OUTPUT_STRIDE).eval()
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    backbone = {"arch": "resnet50", "weights": "random", "seed": 0}
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="rpsloc-bench-") as folder:
        manifest = synthetic_split(Path(folder), arguments.images)
        batches = preloaded_batches(manifest, arguments.batch_size, arguments.size, arguments.size)
    flops = sum(forward_flops(backbone, batch) for batch in batches)
    seconds, _ = bare_forward_seconds(backbone, OUTPUT_STRIDE, batches)
    forward = flops / seconds / 1e9
    peak = matmul_gflops()
    print(
        f"ResNet-50 at {arguments.size}, output stride {OUTPUT_STRIDE}, batch "
        f"{arguments.batch_size}, {arguments.threads} threads: "
        f"{flops / arguments.images / 1e9:.2f} GFLOP per image"
    )
    print(f"bare forward: {forward:.1f} GFLOP/s ({arguments.images / seconds:.2f} images/s)")
    print(f"fp32 matmul 4096 x 4096: {peak:.1f} GFLOP/s")
    print(f"ratio forward / matmul: {forward / peak:.3f}")


if __name__ == "__main__":
    main()
