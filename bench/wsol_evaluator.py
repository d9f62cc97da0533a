"""Benchmark 5: `rpsloc evaluate` versus the WSOL benchmark's own evaluator.

Writes smooth random 224 x 224 score maps and their metadata (one CUB-style split, random
image sizes and 1-3 boxes each), evaluates them with clovaai/wsolevaluation's `evaluation.py`
(run unmodified from the checkout given, in the python given, with multi-contour boxes and the
mean over IoU 30/50/70: MaxBoxAccV2) and with the `rpsloc evaluate` command (whole commands,
start-up included), at the benchmark's default interval 0.001 and at 0.01. Checks that the two
give the same MaxBoxAccV2 and prints the time ratio at each interval.

    .venv/bin/python bench/wsol_evaluator.py --wsolevaluation PATH [--python PY]
        [--images 500] [--workers 2]

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
from pathlib import Path

from _common import machine, result_row, write_json
from reference_evaluation import write_random_box_split

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


def wsol_max_box_acc_v2(
    python: str, checkout: Path, env: dict, metadata_root: Path, scoremaps: Path, interval: float
) -> tuple[float, float]:
    """MaxBoxAccV2 printed by the benchmark's evaluation.py, and the command's wall seconds."""
    command = [python, str(checkout / "evaluation.py"), "--scoremap_root", f"{scoremaps}/"]
    command += ["--metadata_root", str(metadata_root), "--dataset_name", "CUB", "--split", "val"]
    command += ["--cam_curve_interval", str(interval), "--multi_contour_eval", "True"]
    command += ["--multi_iou_eval", "True", "--mask_root", str(metadata_root)]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=checkout)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"evaluation.py failed:\n{result.stderr[-3000:]}")
    found = re.findall(r"localization: ([0-9.eE+-]+)", result.stdout)
    if not found:
        raise SystemExit(f"evaluation.py printed no 'localization:' line:\n{result.stdout[-2000:]}")
    return float(found[-1]), seconds


def rpsloc_max_box_acc_v2(
    metadata: Path, scoremaps: Path, interval: float, workers: int, out: Path
) -> tuple[float, float]:
    command = [str(RPSLOC), "evaluate", "--metadata", str(metadata), "--scoremaps", str(scoremaps)]
    command += ["--out", str(out), "--contours", "multi", "--cam-curve-interval", str(interval)]
    command += ["--workers", str(workers)]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    return float(json.loads(out.read_text())["max_box_acc_v2"]), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wsolevaluation", type=Path, required=True, help="its checkout")
    parser.add_argument("--python", default=sys.executable, help="the python to run it with")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the table rows for run_all.py here")
    arguments = parser.parse_args()
    print(f"machine: {machine()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="rpsloc-bench-") as name:
        folder = Path(name)
        metadata, scoremaps = write_random_box_split(folder, arguments.images, seed=1)
        metadata_root = folder / "wsol-metadata"
        shutil.copytree(metadata, metadata_root / "CUB" / "val")
        env = evaluator_environment(arguments.python, arguments.wsolevaluation.resolve(), folder)
        for interval in INTERVALS:
            theirs, their_seconds = wsol_max_box_acc_v2(
                arguments.python,
                arguments.wsolevaluation.resolve(),
                env,
                metadata_root,
                scoremaps,
                interval,
            )
            ours, our_seconds = rpsloc_max_box_acc_v2(
                metadata, scoremaps, interval, arguments.workers, folder / f"{interval}.json"
            )
            same = abs(ours - theirs) <= 1e-9
            ratio = their_seconds / our_seconds
            print(
                f"interval {interval}, {arguments.images} maps: evaluation.py {their_seconds:.1f} s"
                f" (MaxBoxAccV2 {theirs!r}), rpsloc evaluate ({arguments.workers} workers) "
                f"{our_seconds:.1f} s (MaxBoxAccV2 {ours!r}): "
                f"{'identical' if same else 'DIFFERENT'} numbers, {ratio:.2f}x"
            )
            rows.append(
                result_row(
                    "5. evaluation",
                    f"evaluation.py / rpsloc evaluate at interval {interval}, "
                    f"{arguments.images} maps, {arguments.workers} workers",
                    ratio,
                    "identical numbers, > 1",
                    same and ratio > 1,
                )
            )
            if not same:
                write_json(arguments.json, rows)
                raise SystemExit(f"interval {interval}: MaxBoxAccV2 {ours} versus {theirs}")
    write_json(arguments.json, rows)


if __name__ == "__main__":
    main()
