"""Activation maps become score maps: normalised per image, upsampled to the crop
(METHOD.md sections 1 and 3)."""

import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from rpsloc import scoremaps
from rpsloc.scoremaps import (
    FUSED,
    ROUNDED,
    fused_multiply_add,
    normalize_map,
    rounding_of,
    score_map,
    torch_rounding,
    upsample_map,
)


def test_normalize_maps_the_range_onto_zero_to_one():
    normalised = normalize_map(np.array([[2.0, 4.0], [3.0, 6.0]]))
    assert np.allclose(normalised, [[0.0, 0.5], [0.25, 1.0]])


@pytest.mark.parametrize("value", [0.0, 3.5])
def test_a_constant_map_normalises_to_zeros_not_nan(value):
    normalised = normalize_map(np.full((4, 4), value))
    assert np.array_equal(normalised, np.zeros((4, 4), dtype=np.float32))


def test_a_map_with_nan_is_refused():
    with pytest.raises(ValueError, match="non-finite"):
        normalize_map(np.array([[0.0, np.nan]]))


def test_upsampling_aligns_corners():
    small = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    large = upsample_map(small, 5)
    assert large.shape == (5, 5)
    assert large[0, 0] == 0.0 and large[0, -1] == 1.0 and large[-1, 0] == 1.0
    assert large[2, 2] == pytest.approx(0.5)
    assert large[0, 2] == pytest.approx(0.5)


def test_score_map_stays_in_the_unit_interval():
    scores = score_map(np.random.default_rng(2).normal(size=(7, 7)), 224)
    assert scores.shape == (224, 224)
    assert scores.min() >= 0.0 and scores.max() <= 1.0


def _torch_bits(source: np.ndarray, size: int) -> np.ndarray:
    """What the authors compute: torch's bilinear kernel, align_corners=True, clipped."""
    import torch

    resized = torch.nn.functional.interpolate(
        torch.from_numpy(source)[None, None], size=(size, size), mode="bilinear", align_corners=True
    )
    return resized[0, 0].clamp(0.0, 1.0).numpy()


# (input height, width, output size): torch's corner-mixing kernel below 65 px, its
# rows-then-columns one above; equal sizes copy; a one-pixel output and input.
UPSAMPLINGS = [
    (2, 2, 5),
    (7, 7, 37),
    (14, 14, 64),
    (14, 14, 65),
    (7, 7, 224),
    (14, 14, 224),
    (14, 14, 448),
    (28, 28, 448),
    (13, 13, 500),
    (14, 5, 100),
    (32, 32, 32),
    (1, 1, 224),
    (3, 3, 1),
]


@pytest.mark.parametrize(("height", "width", "size"), UPSAMPLINGS)
def test_upsampling_gives_the_bits_of_torchs_kernel(height, width, size):
    rng = np.random.default_rng(height * 1000 + width * 10 + size)
    for source in (
        rng.random((height, width), dtype=np.float32),
        normalize_map(rng.normal(size=(height, width))),
        np.round(rng.random((height, width), dtype=np.float32) * 8) / 8,
    ):
        assert np.array_equal(upsample_map(source, size), _torch_bits(source, size))


COMPARE_WITH_TORCH = """
import numpy as np
from rpsloc.scoremaps import torch_rounding, upsample_map
import torch
assert torch.backends.cpu.get_cpu_capability() == "DEFAULT"
assert torch_rounding() == "rounded", torch_rounding()
rng = np.random.default_rng(0)
for size in (37, 64, 65, 224, 448):
    source = rng.random((14, 14), dtype=np.float32)
    resized = torch.nn.functional.interpolate(
        torch.from_numpy(source)[None, None], size=(size, size), mode="bilinear", align_corners=True
    )[0, 0].clamp(0.0, 1.0).numpy()
    assert np.array_equal(upsample_map(source, size), resized), size
"""


def test_upsampling_gives_the_bits_of_torchs_baseline_kernels_too():
    environment = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    result = subprocess.run(
        [sys.executable, "-c", COMPARE_WITH_TORCH], env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_the_rounding_read_off_the_machine_is_the_one_torch_runs():
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    expected = {"DEFAULT": ROUNDED, "AVX2": FUSED, "AVX512": FUSED}.get(capability)
    assert torch_rounding() in (expected, None)


@pytest.mark.parametrize(
    ("system", "machine", "capability", "flags", "rounding"),
    [
        ("Linux", "x86_64", "", {"sse2", "avx", "avx2", "fma"}, FUSED),
        ("Linux", "x86_64", "avx512", {"avx2", "fma", "avx512f"}, FUSED),
        ("Linux", "x86_64", "", {"sse2", "avx"}, ROUNDED),
        ("Linux", "x86_64", "default", {"avx2", "fma"}, ROUNDED),
        ("Linux", "x86_64", "", None, None),
        ("Linux", "aarch64", "", {"fp", "asimd"}, None),
        ("Darwin", "x86_64", "", None, None),
    ],
)
def test_the_rounding_follows_torchs_choice_of_kernels(
    system, machine, capability, flags, rounding
):
    assert rounding_of(system, machine, capability, flags) == rounding


def test_where_the_rounding_is_unknown_torch_upsamples(monkeypatch):
    monkeypatch.setattr(scoremaps, "torch_rounding", lambda: None)
    source = np.random.default_rng(4).random((7, 7), dtype=np.float32)
    assert np.array_equal(upsample_map(source, 448), _torch_bits(source, 448))


NO_TORCH = """
import sys
import numpy as np
from rpsloc.scoremaps import score_map
score_map(np.random.default_rng(0).normal(size=(14, 14)), 448)
score_map(np.random.default_rng(0).normal(size=(7, 7)), 64)
assert "torch" not in sys.modules
"""


@pytest.mark.skipif(torch_rounding() is None, reason="torch upsamples on this platform")
def test_score_maps_are_made_without_importing_torch():
    result = subprocess.run([sys.executable, "-c", NO_TORCH], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _correctly_rounded(exact: Fraction) -> np.float32:
    """The float32 nearest `exact` (ties to even), by exact comparison with its neighbours."""
    guess = np.float32(float(exact))
    candidates = [
        guess,
        np.nextafter(guess, np.float32(-np.inf)),
        np.nextafter(guess, np.float32(np.inf)),
    ]

    def distance(candidate):
        return abs(Fraction(float(candidate)) - exact)

    best = min(distance(candidate) for candidate in candidates)
    nearest = [candidate for candidate in candidates if distance(candidate) == best]
    return min(nearest, key=lambda candidate: int(np.array(candidate).view(np.int32)) & 1)


def test_fused_multiply_add_rounds_once():
    rng = np.random.default_rng(5)
    a = rng.random(2000, dtype=np.float32)
    b = rng.random(2000, dtype=np.float32)
    c = rng.random(2000, dtype=np.float32)
    # (1 + 2**-12)**2 is halfway between two float32s: 2**-80 more rounds it up, but in
    # float64 the sum lands on the halfway point and would then round to even (down)
    a[:2] = b[:2] = np.float32(1 + 2**-12)
    c[:2] = np.float32(2**-80), np.float32(-(2**-80))
    # results below float32's normal range
    a[2], b[2], c[2] = np.float32(3 * 2**-75), np.float32(2**-75), np.float32(2**-149)
    twice_rounded = (a[:3].astype(np.float64) * b[:3] + c[:3]).astype(np.float32)
    assert twice_rounded[0] == np.float32(1 + 2**-11)  # the case is one where it matters
    fused = fused_multiply_add(a, b, c)
    for index in range(len(a)):
        exact = Fraction(float(a[index])) * Fraction(float(b[index])) + Fraction(float(c[index]))
        assert fused[index] == _correctly_rounded(exact), index


@pytest.mark.parametrize("shape", [(14,), (2, 14, 14)])
def test_upsampling_a_map_that_is_not_2d_is_an_error_naming_its_shape(shape):
    with pytest.raises(ValueError, match=r"2-D map, got shape"):
        upsample_map(np.zeros(shape, dtype=np.float32), 64)
