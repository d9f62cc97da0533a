"""From an activation map to the score map the protocols threshold (METHOD.md sections 1
and 3): min-max normalised per image, bilinearly upsampled to the crop, values in [0, 1].

Every consumer of maps files (metrics, boxes, figures) converts through here, so the conversion
is defined once.

The upsampling is the authors' `F.interpolate(..., mode="bilinear", align_corners=True)` on the
CPU, reproduced to the bit in numpy so that the jobs reading maps do not pay torch's start-up
(about 1.3 s a job on two cores). Torch's kernel has two formulas and two ways of rounding,
and all four combinations are reproduced (docs/method.md, "Score maps without torch"):
- the formula: outputs with height + width <= 128 mix the four corners with the products of
  their weights (`_mix_corners`); larger ones interpolate each input row along the width, then
  mix two rows (`_rows_then_columns`);
- the rounding (`torch_rounding`): every product and sum rounded to float32 where torch runs
  its baseline kernels; the first product of each sum fused into the addition (one rounding,
  an FMA instruction) where it runs its AVX2 or AVX-512 kernels, i.e. on every x86-64 CPU with
  AVX2 and FMA unless `ATEN_CPU_CAPABILITY=default`.
Elsewhere (another architecture or operating system) torch's own kernel runs.
"""

from __future__ import annotations

import os
import platform
from functools import cache
from pathlib import Path

import numpy as np

#: Torch's kernel for outputs with height + width at most this mixes the four corners at once.
CORNER_MIX_LIMIT = 128
FUSED, ROUNDED = "fused", "rounded"
# float64 bit patterns: the sign cleared; the 29 fraction bits float32 drops, and their value
# halfway between two float32s; the smallest normal float32 (2**-126).
MAGNITUDE_BITS = np.int64(0x7FFF_FFFF_FFFF_FFFF)
FLOAT32_DROPPED_BITS = np.int64(0x1FFF_FFFF)
FLOAT32_HALFWAY_BITS = np.int64(0x1000_0000)
FLOAT32_NORMAL_BITS = np.float64(2.0**-126).view(np.int64)


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
    """Bilinear upsampling to `size` x `size` with align_corners=True, clipped to [0, 1]: the
    bits torch's CPU kernel gives, as the authors upsample (module docstring)."""
    source = np.ascontiguousarray(score_map, dtype=np.float32)
    if source.ndim != 2:
        raise ValueError(f"score map: expected one 2-D map, got shape {source.shape}")
    rounding = torch_rounding()
    if rounding is None:
        return _torch_upsample(source, size)
    fused = rounding == FUSED
    rows, columns = _linear_weights(source.shape[0], size), _linear_weights(source.shape[1], size)
    if size + size <= CORNER_MIX_LIMIT:
        resized = _mix_corners(source, rows, columns, fused)
    else:
        resized = _rows_then_columns(source, rows, columns, fused)
    return np.clip(resized, 0.0, 1.0, out=resized)


def score_map(activation: np.ndarray, size: int) -> np.ndarray:
    """The map the protocol thresholds: normalised, then upsampled to the crop."""
    return upsample_map(normalize_map(activation), size)


@cache
def torch_rounding() -> str | None:
    """How torch's CPU kernels round on this machine (`rounding_of`), read once."""
    return rounding_of(
        platform.system(),
        platform.machine(),
        os.environ.get("ATEN_CPU_CAPABILITY", ""),
        _cpu_flags(Path("/proc/cpuinfo")),
    )


def rounding_of(
    system: str, machine: str, capability: str, cpu_flags: set[str] | None
) -> str | None:
    """FUSED where torch runs its AVX2 or AVX-512 kernels (an x86-64 CPU with AVX2 and FMA),
    ROUNDED where it runs its baseline ones (no AVX2, or `ATEN_CPU_CAPABILITY=default`), None
    where this module does not know (another system or architecture, no CPU flags)."""
    if system != "Linux" or machine not in ("x86_64", "AMD64"):
        return None
    if capability.lower() == "default":
        return ROUNDED
    if cpu_flags is None:
        return None
    return FUSED if {"avx2", "fma"} <= cpu_flags else ROUNDED


def _cpu_flags(cpuinfo: Path) -> set[str] | None:
    """The first processor's flags in /proc/cpuinfo, or None when they cannot be read."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return None


def _torch_upsample(source: np.ndarray, size: int) -> np.ndarray:
    import torch

    resized = torch.nn.functional.interpolate(
        torch.from_numpy(source)[None, None], size=(size, size), mode="bilinear", align_corners=True
    )
    return resized[0, 0].clamp_(0.0, 1.0).numpy()


def _linear_weights(
    input_size: int, output_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per output index: the two input indices and their float32 weights, computed as torch
    does with align_corners=True (scale (in - 1) / (out - 1) and source index scale * i in
    float32; an equal size copies)."""
    if input_size == output_size:
        index = np.arange(output_size)
        return index, index, np.ones(output_size, np.float32), np.zeros(output_size, np.float32)
    scale = np.float32(input_size - 1) / np.float32(output_size - 1) if output_size > 1 else 0.0
    source = np.float32(scale) * np.arange(output_size, dtype=np.float32)
    first = np.minimum(np.floor(source).astype(np.int64), input_size - 1)
    second_weight = np.clip(source - first.astype(np.float32), np.float32(0), np.float32(1))
    second = first + (first < input_size - 1)
    return first, second, np.float32(1) - second_weight, second_weight


def _rows_then_columns(source, rows, columns, fused: bool) -> np.ndarray:
    """Each input row interpolated along the width, then each output row mixed from two of them."""
    first_column, second_column, first_column_weight, second_column_weight = columns
    along_width = _weighted_sum(
        [source[:, first_column], source[:, second_column]],
        [first_column_weight[None], second_column_weight[None]],
        fused,
    )
    first_row, second_row, first_row_weight, second_row_weight = rows
    return _weighted_sum(
        [along_width.take(first_row, axis=0), along_width.take(second_row, axis=0)],
        [first_row_weight[:, None], second_row_weight[:, None]],
        fused,
    )


def _mix_corners(source, rows, columns, fused: bool) -> np.ndarray:
    """Each output pixel from its four corners, weighted by the products of their row and
    column weights (float32), summed top left, top right, bottom left, bottom right."""
    first_row, second_row, first_row_weight, second_row_weight = rows
    first_column, second_column, first_column_weight, second_column_weight = columns
    corners, weights = [], []
    for row, row_weight in ((first_row, first_row_weight), (second_row, second_row_weight)):
        for column, column_weight in (
            (first_column, first_column_weight),
            (second_column, second_column_weight),
        ):
            corners.append(source[row][:, column])
            weights.append(row_weight[:, None] * column_weight[None])
    return _weighted_sum(corners, weights, fused)


def _weighted_sum(values: list[np.ndarray], weights: list[np.ndarray], fused: bool) -> np.ndarray:
    """`v0 * w0 + v1 * w1 + ...` in float32, left to right: every product and sum rounded, or
    (`fused`) as a compiler contracting it into FMAs writes it: `fma(v0, w0, v1 * w1)`, then
    `fma(v2, w2, .)` and so on."""
    if not fused:
        total = values[0] * weights[0]
        for value, weight in zip(values[1:], weights[1:], strict=True):
            total = total + value * weight
        return total
    total = fused_multiply_add(values[0], weights[0], values[1] * weights[1])
    for value, weight in zip(values[2:], weights[2:], strict=True):
        total = fused_multiply_add(value, weight, total)
    return total


def fused_multiply_add(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 `a * b + c` rounded once, as an FMA instruction. The product is exact in float64
    and the sum rounded there; rounding that to float32 is the correct rounding of the exact
    value unless the float64 sum fell on a float32 halfway point or below float32's normal
    range. Those few are rounded to odd in float64 first (their exact error from TwoSum),
    which makes the second rounding correct."""
    product = a.astype(np.float64) * b
    total = product + c
    bits = total.view(np.int64).ravel()
    magnitude = bits & MAGNITUDE_BITS
    halfway = (bits & FLOAT32_DROPPED_BITS) == FLOAT32_HALFWAY_BITS
    suspect = np.flatnonzero(halfway | ((magnitude != 0) & (magnitude < FLOAT32_NORMAL_BITS)))
    if suspect.size:
        exact_product = np.broadcast_to(product, total.shape).ravel()[suspect]
        addend = np.broadcast_to(c, total.shape).ravel()[suspect].astype(np.float64)
        rounded = bits[suspect].view(np.float64)
        addend_part = rounded - exact_product
        error = (exact_product - (rounded - addend_part)) + (addend - addend_part)
        inexact_even = (error != 0) & ((bits[suspect] & 1) == 0)
        toward_error = np.where((error > 0) == (rounded > 0), 1, -1)
        bits[suspect] += np.where(inexact_even, toward_error, 0)
    return total.astype(np.float32)
