"""Benchmark 5: `rpsloc evaluate` versus the WSOL benchmark's own evaluator.

Writes smooth random 224 x 224 score maps and their metadata (one CUB-style split, random
image sizes and 1-3 boxes each), evaluates them with clovaai/wsolevaluation's `evaluation.py`
(run unmodified from the checkout given, in the python given, with multi-contour boxes and the
mean over IoU 30/50/70: MaxBoxAccV2) and with the `rpsloc evaluate` command (whole commands,
start-up included), at the benchmark's default interval 0.001 and at 0.01. Checks that the two
give the same MaxBoxAccV2 and prints the time ratio at each interval.

Then the same for PxAP on an OpenImages-shaped split (`--mask-images` maps, 1-2 instance
masks and an ignore region each, at random image sizes, every third map on the 0.01 grid and
every third on the 0.001 grid, where a bin edge decides): evaluation.py's `MaskEvaluator`
against `rpsloc evaluate --mask-root`; the numbers must be identical, the time ratio is shown.

    .venv/bin/python bench/wsol_evaluator.py --wsolevaluation PATH [--python PY]
        [--images 500] [--mask-images 200] [--workers 2]

The evaluator was written for NumPy < 1.24 and imports `munch`: for the run, a
`sitecustomize` on its path gives NumPy back the aliases `np.float` and `np.int` (the builtins
`float` and `int`, as they were) where they are gone, and where its python lacks `munch`, a
one-class stand-in (a dict with attribute access) is put beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from _common import machine, result_row, write_json
from reference_evaluation import random_score_map, write_random_box_split

RPSLOC = Path(sys.executable).with_name("rpsloc")
INTERVALS = (0.001, 0.01)
MUNCH = (
    "class Munch(dict):\n    __getattr__ = dict.__getitem__\n    __setattr__ = dict.__setitem__\n"
)
NUMPY_ALIASES = (
    "import numpy\n"
    "for name, value in (('float', float), ('int', int)):\n"
    "    if name not in numpy.__dict__:\n"
    "        setattr(numpy, name, value)\n"
)


def evaluator_environment(python: str, checkout: Path, folder: Path) -> dict[str, str]:
    """PYTHONPATH with the checkout, NumPy's old aliases and the `munch` stand-in where
    `python` has none."""
    shims = folder / "shims"
    shims.mkdir()
    (shims / "sitecustomize.py").write_text(NUMPY_ALIASES)
    if subprocess.run([python, "-c", "import munch"], capture_output=True).returncode:
        (shims / "munch.py").write_text(MUNCH)
    paths = [str(shims), str(checkout)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def write_random_mask_split(folder: Path, n_images: int, seed: int = 0) -> tuple[Path, Path, Path]:
    """An OpenImages-shaped split: metadata (`image_id,mask,ignore` lines, sizes left empty as
    OpenImages' are), its mask PNGs under a mask root, and float64 224 x 224 score maps (the
    benchmark's `MaskEvaluator` refuses any other dtype)."""
    rng = np.random.default_rng(seed)
    metadata, masks, scoremaps = folder / "mask-metadata", folder / "masks", folder / "mask-maps"
    for path in (metadata, masks / "val", scoremaps / "val"):
        path.mkdir(parents=True)
    ids, lines = [], []
    for index in range(n_images):
        name = f"val/random_{index:06d}"
        ids.append(f"{name}.jpg")
        height, width = (int(v) for v in rng.integers(120, 500, size=2))
        ys, xs = np.mgrid[0:height, 0:width]
        for instance in range(int(rng.integers(1, 3))):
            cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
            ry, rx = rng.uniform(0.05, 0.3) * height, rng.uniform(0.05, 0.3) * width
            mask = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1
            cv2.imwrite(str(masks / f"{name}_m{instance}.png"), mask.astype(np.uint8) * 255)
            ignore = ""
            if instance == 0:
                region = np.zeros((height, width), np.uint8)
                top, left = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
                region[top : top + height // 2, left : left + width // 2] = 255
                cv2.imwrite(str(masks / f"{name}_ignore.png"), region)
                ignore = f"{name}_ignore.png"
            lines.append(f"{name}.jpg,{name}_m{instance}.png,{ignore}")
        score_map = random_score_map(rng)
        grid = (None, 100, 1000)[index % 3]
        if grid:
            score_map = np.round(score_map * grid) / grid
        np.save(scoremaps / f"{name}.jpg.npy", score_map)
    (metadata / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    (metadata / "class_labels.txt").write_text("".join(f"{i},0\n" for i in ids))
    (metadata / "image_sizes.txt").write_text("")
    (metadata / "localization.txt").write_text("\n".join(lines) + "\n")
    return metadata, masks, scoremaps


def wsol_number(
    python: str,
    checkout: Path,
    env: dict,
    metadata_root: Path,
    scoremaps: Path,
    interval: float,
    dataset: str = "CUB",
    mask_root: Path | None = None,
) -> tuple[float, float]:
    """The number the benchmark's evaluation.py prints (MaxBoxAccV2 for CUB, PxAP for
    OpenImages, whose masks it reads under `mask_root/OpenImages`), and its wall seconds."""
    command = [python, str(checkout / "evaluation.py"), "--scoremap_root", f"{scoremaps}/"]
    command += ["--metadata_root", str(metadata_root), "--dataset_name", dataset, "--split", "val"]
    command += ["--cam_curve_interval", str(interval), "--multi_contour_eval", "True"]
    command += ["--multi_iou_eval", "True", "--mask_root", str(mask_root or metadata_root)]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=checkout)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"evaluation.py failed:\n{result.stderr[-3000:]}")
    found = re.findall(r"localization: ([0-9.eE+-]+)", result.stdout)
    if not found:
        raise SystemExit(f"evaluation.py printed no 'localization:' line:\n{result.stdout[-2000:]}")
    return float(found[-1]), seconds


def rpsloc_number(
    metadata: Path,
    scoremaps: Path,
    interval: float,
    workers: int,
    out: Path,
    mask_root: Path | None = None,
) -> tuple[float, float]:
    """MaxBoxAccV2 from `rpsloc evaluate` (PxAP with `mask_root`), and its wall seconds."""
    command = [str(RPSLOC), "evaluate", "--metadata", str(metadata), "--scoremaps", str(scoremaps)]
    command += ["--out", str(out), "--contours", "multi", "--cam-curve-interval", str(interval)]
    command += ["--workers", str(workers)]
    if mask_root is not None:
        command += ["--mask-root", str(mask_root)]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    key = "max_box_acc_v2" if mask_root is None else "pxap"
    return float(json.loads(out.read_text())[key]), seconds


@dataclass(frozen=True)
class Split:
    """One generated split as both evaluators take it."""

    number: str  # what they compute: MaxBoxAccV2 or PxAP
    shape: str  # the split in words, for the table
    dataset: str  # evaluation.py's --dataset_name
    metadata: Path  # the split's metadata folder, for rpsloc
    metadata_root: Path  # <root>/<dataset>/val, for evaluation.py
    scoremaps: Path
    wsol_mask_root: Path | None = None  # <root>/OpenImages/<mask paths>
    rpsloc_mask_root: Path | None = None
    faster: bool = True  # whether the goal asks rpsloc to be faster too


def compare(arguments: argparse.Namespace, env: dict, split: Split, rows: list[dict]) -> None:
    """One split evaluated by both at each interval: the numbers must be identical; the time
    ratio goes into `rows`."""
    for interval in INTERVALS:
        theirs, their_seconds = wsol_number(
            arguments.python,
            arguments.wsolevaluation.resolve(),
            env,
            split.metadata_root,
            split.scoremaps,
            interval,
            dataset=split.dataset,
            mask_root=split.wsol_mask_root,
        )
        ours, our_seconds = rpsloc_number(
            split.metadata,
            split.scoremaps,
            interval,
            arguments.workers,
            split.metadata.parent / f"{split.dataset}-{interval}.json",
            mask_root=split.rpsloc_mask_root,
        )
        same = abs(ours - theirs) <= 1e-9
        ratio = their_seconds / our_seconds
        number, shape, faster = split.number, split.shape, split.faster
        print(
            f"interval {interval}, {shape}: evaluation.py {their_seconds:.1f} s ({number} "
            f"{theirs!r}), rpsloc evaluate ({arguments.workers} workers) {our_seconds:.1f} s "
            f"({number} {ours!r}): {'identical' if same else 'DIFFERENT'} numbers, {ratio:.2f}x"
        )
        rows.append(
            result_row(
                "5. evaluation",
                f"{'' if faster else number + ': '}evaluation.py / rpsloc evaluate at interval "
                f"{interval}, {shape}, {arguments.workers} workers",
                ratio,
                "identical numbers, > 1" if faster else "identical numbers",
                same and (ratio > 1 or not faster),
            )
        )
        if not same:
            write_json(arguments.json, rows)
            raise SystemExit(f"interval {interval}: {number} {ours} versus {theirs}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wsolevaluation", type=Path, required=True, help="its checkout")
    parser.add_argument("--python", default=sys.executable, help="the python to run it with")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--mask-images", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the table rows for run_all.py here")
    arguments = parser.parse_args()
    print(f"machine: {machine()}")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="rpsloc-bench-") as name:
        folder = Path(name)
        env = evaluator_environment(arguments.python, arguments.wsolevaluation.resolve(), folder)
        metadata_root = folder / "wsol-metadata"
        metadata, scoremaps = write_random_box_split(folder, arguments.images, seed=1)
        shutil.copytree(metadata, metadata_root / "CUB" / "val")
        boxes = Split(
            "MaxBoxAccV2", f"{arguments.images} maps", "CUB", metadata, metadata_root, scoremaps
        )
        compare(arguments, env, boxes, rows)
        metadata, masks, scoremaps = write_random_mask_split(folder, arguments.mask_images, seed=2)
        shutil.copytree(metadata, metadata_root / "OpenImages" / "val")
        (folder / "mask-root").mkdir()
        (folder / "mask-root" / "OpenImages").symlink_to(masks)
        pixels = Split(
            "PxAP",
            f"{arguments.mask_images} OpenImages-shaped maps",
            "OpenImages",
            metadata,
            metadata_root,
            scoremaps,
            wsol_mask_root=folder / "mask-root",
            rpsloc_mask_root=masks,
            faster=False,
        )
        compare(arguments, env, pixels, rows)
    write_json(arguments.json, rows)


if __name__ == "__main__":
    main()
