"""Benchmark 1: rpsloc versus the authors' released code on the same CUB-shaped work.

Both sides get the same prepared set (a `CUB/` folder with CUB's layout and a `metadata/<split>/`
folder, and a ResNet-50 checkpoint `resnet50-random.pth` with torchvision's names, as
tests/cub_shaped.py and a seeded random init make it) and the fine-grained protocol (resize
480, crop 448, output stride 32, global `w*`, training images at 224 x 224):

- the authors' code (yeonghwansong/UOLwRPS, from the checkout given, unmodified, run with the
  python given, as the parity test ran it: `main.py --dataset CUB --loc_network mocov2
  --image_size 480 --crop_size 448 --resnet_downscale 32 --batch_size 16 --workers 0` in a
  copy of the checkout, `.cuda()` made a no-op so it runs on the CPU);
- rpsloc's numbers-only target `cub_numbers` (manifest, features, `w*`, maps, metrics,
  `summary.csv`: the same numbers the authors' code prints), `snakemake --cores N`.

Prints both wall times and the ratio rpsloc / authors (goal <= 0.5), in one run.

    .venv/bin/python bench/fidelity_workload.py --authors-code PATH --authors-python PY
        (--prepared DIR | --generate TRAIN VAL TEST --wsol-metadata CUB_METADATA) [--cores 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import yaml
from _common import machine, result_row, write_json

from rpsloc import paths
from rpsloc.backbones.build import build_backbone

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
#: Where the authors' code looks for its MoCo v2 checkpoint (models/, `--loc_network mocov2`).
AUTHORS_CHECKPOINT = "moco_r50_v2-e3b0c442.pth"
AUTHORS_ARGUMENTS = [
    "main.py",
    "--data_dir",
    "data",
    "--dataset",
    "CUB",
    "--loc_network",
    "mocov2",
    "--image_size",
    "480",
    "--crop_size",
    "448",
    "--resnet_downscale",
    "32",
    "--batch_size",
    "16",
    "--workers",
    "0",
]
CPU_ONLY = (
    "import torch\n"
    "torch.Tensor.cuda = lambda self, *args, **kwargs: self\n"
    "torch.nn.Module.cuda = lambda self, *args, **kwargs: self\n"
)


def generate(folder: Path, counts: dict[str, int], wsol_metadata: Path) -> Path:
    """A CUB-shaped set (tests/cub_shaped.py) and a seeded random ResNet-50 checkpoint."""
    sys.path.insert(0, str(REPO / "tests"))
    from cub_shaped import write_cub_shaped

    write_cub_shaped(folder / "CUB", wsol_metadata, counts, 0)
    model = build_backbone({"arch": "resnet50", "weights": "random", "seed": 0}, 32)
    torch.save({"state_dict": model.state_dict()}, folder / "resnet50-random.pth")
    return folder


def authors_seconds(code: Path, python: str, prepared: Path, workdir: Path) -> tuple[float, dict]:
    """Wall seconds of the authors' main.py on the prepared set, and the numbers it wrote."""
    shutil.copytree(code, workdir, ignore=shutil.ignore_patterns(".git"))
    shutil.copytree(prepared / "CUB" / "metadata", workdir / "datasets" / "metadata" / "CUB")
    (workdir / "data").mkdir()
    (workdir / "data" / "CUB").symlink_to(prepared / "CUB" / "images")
    (workdir / AUTHORS_CHECKPOINT).symlink_to(prepared / "resnet50-random.pth")
    shim = workdir / "cpu-only"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(CPU_ONLY)
    start = time.perf_counter()
    result = subprocess.run(
        [python, *AUTHORS_ARGUMENTS],
        cwd=workdir,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(shim), "HOME": str(workdir)},
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"the authors' main.py failed:\n{result.stderr[-3000:]}")
    numbers = {
        path.stem: json.loads(path.read_text()) for path in workdir.glob("results/*/result*.json")
    }
    return seconds, numbers


def rpsloc_seconds(prepared: Path, workdir: Path, cores: int) -> tuple[float, pd.DataFrame]:
    """Wall seconds of `snakemake cub_numbers` from nothing, and its summary.csv."""
    workdir.mkdir()
    sys.path.insert(0, str(REPO / "tests"))
    from cub_shaped import fidelity_config

    config = fidelity_config(
        prepared / "CUB", prepared / "resnet50-random.pth", {"batch_size": 16, "device": "cpu"}
    )
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    command = [str(SNAKEMAKE), "--snakefile", str(REPO / "workflow" / "Snakefile")]
    command += ["--directory", str(workdir), "--configfile", str(workdir / "config.yaml")]
    command += ["--cores", str(cores), "cub_numbers"]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"rpsloc's workflow failed:\n{result.stderr[-3000:]}")
    return seconds, pd.read_csv(workdir / paths.SUMMARY.format(dataset="cub"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors-code", type=Path, required=True, help="UOLwRPS checkout")
    parser.add_argument("--authors-python", required=True, help="a python with torchvision")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prepared", type=Path, help="a prepared set (CUB/, the checkpoint)")
    source.add_argument("--generate", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--wsol-metadata", type=Path, help="CUB's WSOL metadata, to --generate")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the table rows for run_all.py here")
    arguments = parser.parse_args()
    if arguments.generate and arguments.wsol_metadata is None:
        parser.error("--generate needs --wsol-metadata (the CUB folder of the WSOL metadata)")
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="rpsloc-bench-") as name:
        folder = Path(name)
        if arguments.prepared:
            prepared = arguments.prepared.resolve()
        else:
            counts = dict(zip(("train", "val", "test"), arguments.generate, strict=True))
            prepared = generate(folder / "prepared", counts, arguments.wsol_metadata)
        sizes = "/".join(
            str(len((prepared / "CUB/metadata" / split / "image_ids.txt").read_text().split()))
            for split in ("train", "val", "test")
        )
        theirs, their_numbers = authors_seconds(
            arguments.authors_code.resolve(), arguments.authors_python, prepared, folder / "authors"
        )
        ours, summary = rpsloc_seconds(prepared, folder / "rpsloc", arguments.cores)
    ratio = ours / theirs
    print(f"train/val/test images: {sizes}")
    print(f"authors' code (main.py): {theirs:.1f} s; numbers {json.dumps(their_numbers)}")
    columns = ["split", "authors_box_acc_mean", "authors_threshold"]
    print(f"rpsloc cub_numbers ({arguments.cores} cores): {ours:.1f} s")
    print(summary[[c for c in columns if c in summary]].to_string(index=False))
    print(f"ratio rpsloc / authors: {ratio:.3f} (goal <= 0.5)")
    write_json(
        arguments.json,
        [
            result_row(
                "1. fidelity workload",
                f"rpsloc to summary.csv / the authors' code ({sizes} images)",
                ratio,
                "<= 0.5",
                ratio <= 0.5,
            )
        ],
    )


if __name__ == "__main__":
    main()
