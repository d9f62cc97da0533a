"""Every file the workflow writes under `results/`, as one template each (README "Stages and
their files", docs/hdf5-layout.md).

The rules take their outputs from these templates, input functions and readers format them,
and the logs and benchmark files of a rule follow its output's template (`log_of`,
`benchmark_of`), so a file's place is written down exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RESULTS = "results"

SYNTHETIC = "results/{dataset}/synthetic"
MANIFEST = "results/{dataset}/manifest/{split}.csv"
MANIFEST_SKIPPED = "results/{dataset}/manifest/{split}.skipped.csv"
MANIFEST_CHANGES = "results/{dataset}/manifest/{split}.changes.csv"  # rpsloc.tracking

CHECKPOINT_RECORD = "results/backbones/{backbone}/checkpoint.json"  # rpsloc.tracking

PRETRAIN_CHECKPOINT = "results/pretrain/{backbone}/checkpoint.pth"
PRETRAIN_LOSSES = "results/pretrain/{backbone}/loss.csv"
PRETRAIN_LOSS_FIGURE = "results/pretrain/{backbone}/loss.png"

FEATURE_SHARD = "results/{dataset}/{backbone}/features/{split}/shard-{shard}.h5"
REPRESENTER = "results/{dataset}/{backbone}/representer/{selection}.h5"
PREDICTIONS = "results/{dataset}/classifiers/{classifier}/{split}.h5"

MAPS = "results/{dataset}/{backbone}/{variant}/maps/{split}.h5"
METRICS_TABLE = "results/{dataset}/{backbone}/{variant}/metrics/{split}.csv"
METRICS_SUMMARY = "results/{dataset}/{backbone}/{variant}/metrics/{split}.json"
METRICS_IMAGES = "results/{dataset}/{backbone}/{variant}/metrics/{split}-images.csv"
METRICS_CURVE = "results/{dataset}/{backbone}/{variant}/metrics/{split}-pr.csv"

BOXES = "results/{dataset}/{backbone}/{variant}/boxes/{split}.csv"
BOXES_IMAGES = "results/{dataset}/{backbone}/{variant}/boxes/{split}-images.csv"
BOXES_COCO = "results/{dataset}/{backbone}/{variant}/boxes/{split}.coco.json"
BOX_MASKS = "results/{dataset}/{backbone}/{variant}/boxes/{split}-masks"

TRAINING_RANKING = "results/{dataset}/{backbone}/explanations/training_images.csv"
EXPLANATIONS = "results/{dataset}/{backbone}/explanations/{split}.h5"
SELECTION_CURVE = "results/{dataset}/{backbone}/explanations/selection-{split}.csv"

SUMMARY = "results/{dataset}/summary.csv"
SKIPPED = "results/{dataset}/skipped.csv"
FIGURE = "results/{dataset}/figures/{figure}.png"
TABLES_CSV = "results/tables/summary.csv"
TABLES_MARKDOWN = "results/tables/summary.md"


def figure(name: str) -> str:
    """The template of one of a dataset's figures, e.g. `figure("overlays")`."""
    return FIGURE.replace("{figure}", name)


def log_of(template: str) -> str:
    """The log file of the rule writing `template`: `logs/` + the path after `results/`, with
    the extension `.log`."""
    return f"logs/{_stem(template)}.log"


def benchmark_of(template: str) -> str:
    """The Snakemake benchmark file of the rule writing `template` (`benchmarks/...tsv`)."""
    return f"benchmarks/{_stem(template)}.tsv"


def _stem(template: str) -> str:
    relative = template.removeprefix(f"{RESULTS}/")
    return relative.rsplit(".", 1)[0] if "." in relative.rsplit("/", 1)[-1] else relative


@dataclass(frozen=True)
class ResultFiles:
    """Where one evaluated (backbone, variant, split) of a dataset leaves its files."""

    backbone: str
    variant: str
    split: str
    maps: Path
    table: Path  # BoxAcc per protocol, IoU and threshold
    summary: Path  # headline numbers (JSON)
    images: Path  # per-image best IoUs
    curve: Path  # pixel precision-recall points (no rows without masks)


def result_files(
    dataset: str, backbone: str, variant: str, split: str, root: str | Path = "."
) -> ResultFiles:
    """The files of one evaluated result, under `root` (the workflow's working directory)."""
    names = {"dataset": dataset, "backbone": backbone, "variant": variant, "split": split}
    root = Path(root)
    return ResultFiles(
        backbone,
        variant,
        split,
        maps=root / MAPS.format(**names),
        table=root / METRICS_TABLE.format(**names),
        summary=root / METRICS_SUMMARY.format(**names),
        images=root / METRICS_IMAGES.format(**names),
        curve=root / METRICS_CURVE.format(**names),
    )
