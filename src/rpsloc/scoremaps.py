"""From an activation map to the score map the protocols threshold (METHOD.md sections 1
and 3): min-max normalised per image, bilinearly upsampled to the crop, values in [0, 1].

Every consumer of maps files (metrics, boxes, figures) converts through here, so the conversion
is defined once.
"""

from __future__ import annotations

import numpy as np


def normalize_map(activation: np.ndarray) -> np.ndarray:
    """Min-max normalise one map to [0, 1]; a constant map becomes all zeros, never NaN."""
    activation = activation.astype(np.float32)
    if not np.isfinite(activation).all():
        raise ValueError("activation map has non-finite values")
    low, high = activation.min(), activation.max()  # float32 scalars: every step in float32,
    span = high - low  # as the authors' `(att - min) / (max - min)` on float32 tensors
    if span <= 0:
        return np.zeros_like(activation)
    return (activation - low) / span


def upsample_map(score_map: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling to `size` x `size` with align_corners=True, as the authors do:
    torch's own kernel, for their numbers to the bit (imported here, not with the module, so
    that jobs and commands reading score maps without upsampling start without torch)."""
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(score_map, dtype=np.float32))[None, None]
    resized = torch.nn.functional.interpolate(
        tensor, size=(size, size), mode="bilinear", align_corners=True
    )
    return resized[0, 0].clamp_(0.0, 1.0).numpy()


def score_map(activation: np.ndarray, size: int) -> np.ndarray:
    """The map the protocol thresholds: normalised, then upsampled to the crop."""
    return upsample_map(normalize_map(activation), size)
