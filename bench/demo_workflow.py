"""Benchmark 4: the wall time of `make demo`'s workflow, and where it goes.

Runs `snakemake --cores N demo` (the demo configuration, config/config.yaml) from nothing in a
temporary directory, then the numbers-only target `demo_numbers` from nothing in another, and
prints both wall times with the seconds of each stage's jobs (their benchmark files) and the
number of jobs, so the fixed cost per job shows next to the work.

    .venv/bin/python bench/demo_workflow.py [--cores 2] [--configfile config/config.yaml]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pandas as pd
from _common import machine, result_row, write_json

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def run_target(workdir: Path, configfile: Path, target: str, cores: int) -> float:
    """Wall seconds of `snakemake <target>` in an empty `workdir`."""
    workdir.mkdir()
    command = [str(SNAKEMAKE), "--snakefile", str(REPO / "workflow" / "Snakefile")]
    command += ["--directory", str(workdir), "--configfile", str(configfile)]
    command += ["--cores", str(cores), target]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"snakemake {target} failed:\n{result.stderr[-3000:]}")
    return seconds


def job_seconds(workdir: Path) -> tuple[Counter, Counter]:
    """Seconds and job count per stage (the first folder under the dataset, or the file)."""
    seconds, jobs = Counter(), Counter()
    for path in (workdir / "benchmarks").rglob("*.tsv"):
        parts = path.relative_to(workdir / "benchmarks").parts
        stage = next((p for p in parts if p in STAGES), parts[-1].removesuffix(".tsv"))
        seconds[stage] += float(pd.read_csv(path, sep="\t")["s"].sum())
        jobs[stage] += 1
    return seconds, jobs


#: The folder names that tell a job's stage in its benchmark path (rpsloc.paths).
STAGES = (
    "synthetic",
    "manifest",
    "pretrain",
    "features",
    "representer",
    "maps",
    "metrics",
    "explanations",
    "figures",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--configfile", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--json", type=Path, help="write the table rows for run_all.py here")
    arguments = parser.parse_args()
    print(f"machine: {machine()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="rpsloc-bench-") as name:
        for target in (arguments.dataset, f"{arguments.dataset}_numbers"):
            workdir = Path(name) / target
            wall = run_target(workdir, arguments.configfile.resolve(), target, arguments.cores)
            seconds, jobs = job_seconds(workdir)
            print(
                f"snakemake --cores {arguments.cores} {target}: {wall:.1f} s, "
                f"{sum(jobs.values())} jobs"
            )
            for stage, total in seconds.most_common():
                print(f"  {stage:14s} {jobs[stage]:3d} jobs {total:7.1f} s")
            rows.append(result_row("4. demo", f"snakemake {target}: wall seconds", wall, "", None))
    write_json(arguments.json, rows)


if __name__ == "__main__":
    main()
