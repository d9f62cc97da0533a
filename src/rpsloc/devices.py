"""Which torch device a stage runs on: `auto` is CUDA when one is visible, else the CPU."""

from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    """The torch device of a config value (`auto`, `cpu`, `cuda`, `cuda:N`)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
