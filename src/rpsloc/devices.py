"""Which torch device a stage runs on (`auto` is CUDA when one is visible, else the CPU), how
many DataLoader processes decode its images (`auto`: chosen from the machine's cores), and how
the C library's allocator serves a CPU forward's tensors."""

from __future__ import annotations

import ctypes
import os
import platform

import torch

#: The most decoding workers `num_workers: auto` starts: enough to keep a GPU fed at 224 px.
MAX_AUTO_WORKERS = 8
#: Batches kept decoded ahead of the backbone, over all workers, under `auto`.
BATCHES_AHEAD = 4
#: glibc's `mallopt` parameters (malloc.h): the free memory at the heap's top kept from the
#: system, and how many allocations may have a memory mapping of their own.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: Freed heap memory kept for the next batch: more than any batch needs.
KEPT_FREE_BYTES = 2**31 - 1


def resolve_device(device: str) -> torch.device:
    """The torch device of a config value (`auto`, `cpu`, `cuda`, `cuda:N`)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def keep_freed_memory(device: torch.device) -> bool:
    """On the CPU, make glibc's malloc serve every tensor from its heap and keep what is freed
    there for the next batch; True when it took effect.

    By default glibc maps each allocation above 32 MB on its own and unmaps it when freed, so
    every batch of a forward at 448 px writes to fresh pages that the kernel must zero first:
    a ResNet-50 forward then spends a third of its time in page faults (2.8 images/s on two
    cores, 4.9 with this; peak memory 1.2 GB -> 2.1 GB at batch 16; bench/RESULTS.md). The
    setting is the process's until it exits and its DataLoader workers inherit it; elsewhere
    than glibc, and on a GPU (whose tensors are not malloc's), nothing changes."""
    if device.type != "cpu" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, KEPT_FREE_BYTES))


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, as a cluster job sees it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def backbone_threads(device: torch.device) -> int:
    """The cores the backbone keeps busy: torch's threads on the CPU, the one feeding a GPU."""
    return torch.get_num_threads() if device.type == "cpu" else 1


def data_loader_workers(num_workers: int | str, threads: int) -> int:
    """DataLoader worker processes for a `features.num_workers` value: a number as given;
    `auto` the cores the backbone's `threads` leave free, at most `MAX_AUTO_WORKERS`, and none
    when its threads take every core: a worker would then take turns with them, and a CPU
    forward waits for its slowest thread (on two cores, ResNet-50 at 448 with two threads:
    one worker made each 64-image shard about 20% slower than decoding in the main process,
    where decoding costs about 4% of the forward; bench/RESULTS.md)."""
    if num_workers != "auto":
        return int(num_workers)
    return min(MAX_AUTO_WORKERS, max(0, usable_cores() - threads))


def prefetch_factor(workers: int) -> int | None:
    """Batches each worker decodes ahead: `BATCHES_AHEAD` in all, at least torch's 2 each
    (None without workers, as the DataLoader requires)."""
    if workers == 0:
        return None
    return max(2, BATCHES_AHEAD // workers)
