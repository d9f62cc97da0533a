"""Which torch device a stage runs on (`auto` is CUDA when one is visible, else the CPU), and
how many DataLoader processes decode its images (`auto`: chosen from the machine's cores)."""

from __future__ import annotations

import os

import torch

#: The most decoding workers `num_workers: auto` starts: enough to keep a GPU fed at 224 px.
MAX_AUTO_WORKERS = 8
#: Batches kept decoded ahead of the backbone, over all workers, under `auto`.
BATCHES_AHEAD = 4


def resolve_device(device: str) -> torch.device:
    """The torch device of a config value (`auto`, `cpu`, `cuda`, `cuda:N`)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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
    `auto` none on one core (a worker would only take turns with the backbone), else the cores
    the backbone's `threads` leave free, at least one (decoding then overlaps the forward pass)
    and at most `MAX_AUTO_WORKERS`."""
    if num_workers != "auto":
        return int(num_workers)
    cores = usable_cores()
    if cores <= 1:
        return 0
    return min(MAX_AUTO_WORKERS, max(1, cores - threads))


def prefetch_factor(workers: int) -> int | None:
    """Batches each worker decodes ahead: `BATCHES_AHEAD` in all, at least torch's 2 each
    (None without workers, as the DataLoader requires)."""
    if workers == 0:
        return None
    return max(2, BATCHES_AHEAD // workers)
