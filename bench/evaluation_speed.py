"""Benchmark 3: `rpsloc evaluate` versus the straightforward per-threshold loop.

Writes a WSOL metadata folder and smooth random 224 x 224 score maps, evaluates them with the
benchmark's own loop (bench/reference_evaluation.py: every image, every threshold, one
cv2.threshold + findContours each) and with the `rpsloc evaluate` command (whole command,
start-up included), in both contour modes, checks that the numbers are identical and prints
the speed-up (goal: at least 3x on 2 cores). Wall times mean little on a machine that others
load, so the script also prints CPU seconds of the loop and of one in-process evaluation.

    .venv/bin/python bench/evaluation_speed.py [--images 300] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine
from reference_evaluation import reference_evaluate_folder, write_random_box_split

from rpsloc.metrics.folder import evaluate_scoremap_folder

RPSLOC = Path(sys.executable).with_name("rpsloc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    arguments = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="rpsloc-bench-") as folder:
        metadata, scoremaps = write_random_box_split(Path(folder), arguments.images, seed=1)
        for contours in ("multi", "largest"):
            start, cpu = time.perf_counter(), time.process_time()
            expected = reference_evaluate_folder(metadata, scoremaps, contours)
            reference, reference_cpu = time.perf_counter() - start, time.process_time() - cpu
            cpu = time.process_time()
            evaluate_scoremap_folder(metadata, scoremaps, contours)
            fast_cpu = time.process_time() - cpu
            timings = {}
            for workers in (1, arguments.workers):
                out = Path(folder) / f"{contours}-{workers}.json"
                command = [str(RPSLOC), "evaluate", "--metadata", str(metadata)]
                command += ["--scoremaps", str(scoremaps), "--out", str(out)]
                command += ["--contours", contours, "--workers", str(workers)]
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                timings[workers] = time.perf_counter() - start
                if json.loads(out.read_text()) != expected:
                    raise SystemExit(f"{contours}, {workers} worker(s): numbers differ")
            print(
                f"{contours:8s} {arguments.images} maps: per-threshold loop {reference:6.1f} s, "
                f"rpsloc evaluate {timings[1]:5.1f} s (1 worker), "
                f"{timings[arguments.workers]:5.1f} s ({arguments.workers} workers); "
                f"identical numbers (MaxBoxAccV2 {expected['max_box_acc_v2']:.4f})"
            )
            print(
                f"ratio loop / rpsloc evaluate ({contours}, {arguments.workers} workers): "
                f"{reference / timings[arguments.workers]:.2f}x (goal >= 3x); "
                f"1 worker: {reference / timings[1]:.2f}x"
            )
            print(
                f"CPU seconds ({contours}): loop {reference_cpu:.2f}, one in-process evaluation "
                f"{fast_cpu:.2f}: {reference_cpu / fast_cpu:.2f}x per core; load average "
                f"{os.getloadavg()[0]:.1f}"
            )


if __name__ == "__main__":
    main()
