"""Every benchmark in one command, and bench/RESULTS.md's summary table rewritten from them.

Runs, each in its own process on this machine: (1) the fidelity workload against the authors'
code (fidelity_workload.py), (2) the bare forward per architecture and memory format
(forward_efficiency.py) and what channels-last and folded BatchNorms change in the numbers
(numerics_agreement.py), (3) the features rule against the bare forward
(extraction_throughput.py), (4) the demo workflow (demo_workflow.py), (5) `rpsloc evaluate`
against the WSOL benchmark's evaluator (wsol_evaluator.py), the decode-bound ceiling of
the cores (decode_ceiling.py), the fixed cost per job
(job_overhead.py) and the accelerator benchmark (accelerator.py; it says so when there is no
CUDA device). Each hands back its rows; the table between the markers of RESULTS.md is
replaced by them, with the machine and the date. `--quick` runs every benchmark at a tiny size
to check that it works end to end; it prints the table and leaves RESULTS.md alone.

    .venv/bin/python bench/run_all.py --authors-code UOLwRPS --authors-python PY
        --wsolevaluation CHECKOUT [--wsol-python PY] (--prepared DIR | --wsol-metadata CUB)
        [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from _common import machine

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "RESULTS.md"
START, END = "<!-- run_all.py: table start -->", "<!-- run_all.py: table end -->"
#: The fidelity-shaped set the issue measures when no prepared set is given.
FIDELITY_COUNTS = ("100", "40", "160")


def tiny_demo_config(folder: Path) -> Path:
    """The demo configuration cut down for `--quick`: 16 images, the random small ResNet only
    (no pretraining), the method's maps only."""
    config = yaml.safe_load((BENCH.parent / "config" / "config.yaml").read_text())
    demo = config["datasets"]["demo"]
    demo["synthetic"]["splits"] = {"train": 8, "val": 4, "test": 4}
    demo["backbones"], demo["variants"] = ["small-random"], ["rps"]
    path = folder / "tiny-demo.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def commands(arguments: argparse.Namespace, folder: Path) -> dict[str, list[str]]:
    """Each benchmark's command line (without --json), full size or quick."""
    quick = arguments.quick
    if arguments.prepared and not quick:
        image_source = ["--prepared", str(arguments.prepared)]
        fidelity_set = image_source
    else:
        image_source = ["--wsol-metadata", str(arguments.wsol_metadata)]
        fidelity_set = [
            "--generate",
            *(["6", "4", "6"] if quick else FIDELITY_COUNTS),
            *image_source,
        ]
    return {
        "fidelity_workload": [
            "--authors-code",
            str(arguments.authors_code),
            "--authors-python",
            arguments.authors_python,
            *fidelity_set,
        ],
        "forward_efficiency": ["--images", "4", "--batch-size", "4", "--rounds", "1"]
        if quick
        else [],
        "numerics_agreement": ["--images", "2", "--train-images", "2"] if quick else [],
        "extraction_throughput": ["--images", "4", "--shards", "2", "--batch-size", "2"]
        if quick
        else [],
        "demo_workflow": ["--configfile", str(tiny_demo_config(folder))] if quick else [],
        "wsol_evaluator": [
            "--wsolevaluation",
            str(arguments.wsolevaluation),
            "--python",
            arguments.wsol_python,
            *(["--images", "20", "--mask-images", "10"] if quick else []),
        ],
        "decode_ceiling": [
            *(["--images", "8"] if quick else []),
            *image_source,
        ],
        "job_overhead": ["--repeats", "1"] if quick else [],
        "accelerator": ["--images", "20"] if quick else [],
    }


def markdown_table(rows: list[dict]) -> str:
    lines = ["| benchmark | measured | value | goal | met |", "|---|---|---|---|---|"]
    for row in rows:
        met = {True: "yes", False: "**no**", None: ""}[row["met"]]
        value = f"{row['value']:.3g}" if isinstance(row["value"], float) else row["value"]
        lines.append(f"| {row['benchmark']} | {row['measure']} | {value} | {row['goal']} | {met} |")
    return "\n".join(lines)


def rewrite_results(table: str) -> None:
    """Replace the table between the markers of RESULTS.md."""
    text = RESULTS.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{RESULTS} has no {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    RESULTS.write_text(f"{head}{START}\n{table}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors-code", type=Path, required=True, help="UOLwRPS checkout")
    parser.add_argument("--authors-python", required=True, help="the python for their code")
    parser.add_argument("--wsolevaluation", type=Path, required=True, help="its checkout")
    parser.add_argument("--wsol-python", default=sys.executable, help="the python for it")
    parser.add_argument("--prepared", type=Path, help="the fidelity-shaped set, prepared")
    parser.add_argument("--wsol-metadata", type=Path, help="CUB's WSOL metadata, to generate it")
    parser.add_argument("--only", nargs="*", help="run only these benchmarks (script names)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes; RESULTS.md untouched")
    arguments = parser.parse_args()
    if (arguments.quick or not arguments.prepared) and arguments.wsol_metadata is None:
        parser.error("without --prepared (or with --quick) --wsol-metadata is needed")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(BENCH.parent / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    rows, failed = [], []
    with tempfile.TemporaryDirectory(prefix="rpsloc-bench-") as name:
        for script, extra in commands(arguments, Path(name)).items():
            if arguments.only and script not in arguments.only:
                continue
            out = Path(name) / f"{script}.json"
            command = [sys.executable, str(BENCH / f"{script}.py"), *extra, "--json", str(out)]
            print(f"$ {' '.join(command)}", flush=True)
            result = subprocess.run(command, env=env)
            if result.returncode or not out.exists():
                failed.append(script)
                continue
            rows += json.loads(out.read_text())
    table = markdown_table(rows)
    stamp = f"{datetime.date.today().isoformat()}, {machine()}, load average " + " ".join(
        f"{load:.1f}" for load in os.getloadavg()
    )
    print(f"\n{stamp}\n{table}")
    if failed:
        raise SystemExit(f"benchmarks that failed: {failed}; RESULTS.md left alone")
    if not arguments.quick:
        rewrite_results(f"Measured {stamp} (after the run).\n\n{table}")
        print(f"rewrote the table in {RESULTS}")


if __name__ == "__main__":
    main()
