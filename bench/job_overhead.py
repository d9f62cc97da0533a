"""The fixed cost of a workflow job: what each job pays before it does its work.

Each measured in a fresh Python process, best of `--repeats`: the interpreter's start-up,
Snakemake's script preamble (`from snakemake import script`, which unpickles the job), the
imports of every stage script (workflow/scripts/<stage>.py, read with `ast`), and for the
features stage building ResNet-50 (random init, and from a checkpoint: reading, fitting,
SHA-256), hashing the checkpoint alone and reading a manifest. These are the costs paid once
per job, so once per shard and split; bench/RESULTS.md says which were cut. A features job
that the warm process serves pays only the preamble and its script's imports (no torch); one
in its own process (`features.warm_process: false`, or a run's first job, through the server
it starts) pays torch's import and the model too.

    .venv/bin/python bench/job_overhead.py [--repeats 3] [--checkpoint FILE]
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import machine, result_row, synthetic_split, write_json

from rpsloc.backbones.build import build_backbone

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow" / "scripts"


def script_imports(script: Path) -> str:
    """The import statements of a stage script, as one line of Python."""
    tree = ast.parse(script.read_text())
    lines = [
        ast.unparse(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    return "; ".join(lines) or "pass"


def fresh_seconds(code: str, repeats: int) -> float:
    """Best wall seconds of a fresh `python -c code`."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def timed(statement: str) -> str:
    """Code that runs `statement` after its imports and prints only its own seconds."""
    return (
        "import time, torch\n"
        "from rpsloc.backbones.build import build_backbone\n"
        "from rpsloc.hashing import file_sha256\n"
        "from rpsloc.datasets.records import read_manifest\n"
        "start = time.perf_counter()\n"
        f"{statement}\n"
        "print(time.perf_counter() - start)"
    )


def own_seconds(statement: str, repeats: int) -> float:
    """Best seconds of `statement` alone, each time in a fresh process (its first call)."""
    best = float("inf")
    for _ in range(repeats):
        result = subprocess.run(
            [sys.executable, "-c", timed(statement)], check=True, capture_output=True, text=True
        )
        best = min(best, float(result.stdout.split()[-1]))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint", type=Path, help="a ResNet-50 checkpoint (else one is made)")
    parser.add_argument("--json", type=Path, help="write the table rows for run_all.py here")
    arguments = parser.parse_args()
    repeats = arguments.repeats
    print(f"machine: {machine()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="rpsloc-bench-") as name:
        folder = Path(name)
        checkpoint = arguments.checkpoint
        if checkpoint is None:
            model = build_backbone({"arch": "resnet50", "weights": "random", "seed": 0}, 32)
            checkpoint = folder / "resnet50.pth"
            torch.save({"state_dict": model.state_dict()}, checkpoint)
        manifest = synthetic_split(folder, 300)
        start_up = fresh_seconds("pass", repeats)
        preamble = fresh_seconds("from snakemake import script", repeats)
        print(f"python start-up {start_up:.2f} s; Snakemake's script preamble {preamble:.2f} s")
        print("imports of each stage script (fresh process, start-up included):")
        for script in sorted(SCRIPTS.glob("*.py")):
            seconds = fresh_seconds(script_imports(script), repeats)
            print(f"  {script.stem:14s} {seconds:5.2f} s")
            if script.stem == "features":
                features_imports = seconds
        # A features job in its own process imports what the warm process has imported.
        own_imports = fresh_seconds(
            f"{script_imports(SCRIPTS / 'features.py')}; import torch; import rpsloc.features",
            repeats,
        )
        print(f"  features, extracting in its own process {own_imports:5.2f} s")
        config = f"{{'arch': 'resnet50', 'weights': {str(checkpoint)!r}}}"
        steps = {
            "build ResNet-50, random init": (
                "build_backbone({'arch': 'resnet50', 'weights': 'random', 'seed': 0}, 32)"
            ),
            "build ResNet-50 from its checkpoint": f"build_backbone({config}, 32)",
            "SHA-256 of the checkpoint alone": f"file_sha256({str(checkpoint)!r})",
            "read a 300-image manifest": f"read_manifest({str(manifest)!r})",
        }
        measured = {label: own_seconds(code, repeats) for label, code in steps.items()}
        for label, seconds in measured.items():
            print(f"{label:38s} {seconds:5.2f} s")
    own = preamble + own_imports + measured["build ResNet-50 from its checkpoint"]
    warm = preamble + features_imports
    print(
        f"fixed cost of a features job in its own process (preamble, imports, model): {own:.2f} s"
    )
    print(
        f"its own process's part of a job the warm process serves (preamble, imports): {warm:.2f} s"
    )
    for measure, seconds in (
        ("fixed seconds of a features job in its own process, with a checkpoint", own),
        ("seconds of a features job's own process when the warm process serves it", warm),
    ):
        rows.append(result_row("job overhead", measure, seconds, "", None))
    rows.append(
        result_row(
            "job overhead",
            "seconds to hash ResNet-50's checkpoint",
            measured["SHA-256 of the checkpoint alone"],
            "",
            None,
        )
    )
    write_json(arguments.json, rows)


if __name__ == "__main__":
    main()
