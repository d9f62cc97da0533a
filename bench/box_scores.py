"""How well the boxes stage's scores and ground-truth-free threshold work (docs/boxes.md).

Runs the workflow once on three datasets and prints the numbers docs/boxes.md quotes:

- `mosaic`: the demo's synthetic set (style mosaic) with the demo's pretrained small ResNet and
  the colourfulness test fixture; `cubshaped`: CUB-200-2011's real image sizes and boxes
  (../shared/wsol-metadata/CUB) with a textured object in each box (tests/cub_shaped.py).
  For each: the box threshold the benchmark protocol chooses on val (`labelled`, read from the
  metrics' BoxAcc table), Otsu's threshold of the test maps (no ground truth), their distance,
  BoxAcc at IoU 50 at both on test, and COCO AP50 of the test boxes at the labelled threshold.
- `photos`: a folder of mosaic photos, a quarter of them empty (`generate_synthetic_folder`):
  the ROC AUC of objectness, empty against object images, for both backbones.

    PYTHONPATH=tests/plugins .venv/bin/python bench/box_scores.py --out /tmp/box-scores
"""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from _common import machine
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from rpsloc import paths
from rpsloc.boxes.predicted import otsu_threshold
from rpsloc.protocols import chosen_threshold
from rpsloc.readers import read_box_accuracy, read_maps
from rpsloc.scoremaps import score_map
from rpsloc.synthetic import generate_synthetic_folder

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from cub_shaped import write_cub_shaped  # noqa: E402

BACKBONES = ("small-pretrained", "fixture")


def config(root: Path) -> dict:
    """The demo's mosaic set and pretrained network, the CUB-shaped set and the photos."""
    common = {"backbones": list(BACKBONES), "variants": ["rps"]}
    return {
        "datasets": {
            "mosaic": {
                "adapter": "synthetic",
                "synthetic": {
                    "splits": {"train": 64, "val": 32, "test": 32},
                    "classes": 4,
                    "seed": 0,
                    "max_side": 320,
                    "style": "mosaic",
                },
                "train_split": "train",
                "eval_splits": ["val", "test"],
                "threshold_split": "val",
                "image_size": 224,
                "crop_size": 224,
                **common,
            },
            "cubshaped": {
                "adapter": "cub",
                "root": str(root / "cub"),
                "metadata": str(root / "cub" / "metadata"),
                "train_split": "train",
                "eval_splits": ["val", "test"],
                "image_size": 256,
                "crop_size": 224,
                **common,
            },
            "photos": {
                "adapter": "folder",
                "root": str(root / "photos"),
                "folders": {"train": "train", "photos": "photos"},
                "train_split": "train",
                "eval_splits": ["photos"],
                **common,
            },
        },
        "backbones": {
            "small-pretrained": {
                "arch": "resnet_small",
                "width": 32,
                "depth": 1,
                "weights": "pretrain",
                "pretrain": {
                    "dataset": "mosaic",
                    "steps": 200,
                    "batch_size": 64,
                    "lr": 0.001,
                    "temperature": 0.1,
                    "image_size": 64,
                },
            },
            "fixture": {"arch": "fixture-colourfulness", "weights": "none"},
        },
        "features": {"shard_size": 64, "batch_size": 16, "num_workers": 0, "device": "cpu"},
    }


def files(root: Path, dataset: str, backbone: str, split: str) -> dict[str, Path]:
    names = {"dataset": dataset, "backbone": backbone, "variant": "rps", "split": split}
    return {
        "table": root / paths.METRICS_TABLE.format(**names),
        "maps": root / paths.MAPS.format(**names),
        "coco": root / paths.BOXES_COCO.format(**names),
        "images": root / paths.BOXES_IMAGES.format(**names),
    }


def box_acc_50(table: pd.DataFrame, threshold: float) -> float:
    rows = table[(table.protocol == "benchmark") & (table.iou == 50)]
    return float(rows.loc[(rows.threshold - threshold).abs().idxmin(), "box_acc"])


def ap50(coco: Path) -> float:
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(coco))
        evaluation = COCOeval(truth, truth.loadRes(truth.dataset["detections"]), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return 100 * float(evaluation.stats[1])


def threshold_row(root: Path, dataset: str, backbone: str) -> dict:
    val, test = files(root, dataset, backbone, "val"), files(root, dataset, backbone, "test")
    labelled = chosen_threshold(read_box_accuracy(val["table"]), "benchmark")
    maps = read_maps(test["maps"])
    crop = int(maps.attrs["crop_size"])
    otsu = otsu_threshold(score_map(activation, crop) for activation in maps.maps)
    table = read_box_accuracy(test["table"])
    oracle = chosen_threshold(table, "benchmark")
    return {
        "dataset": dataset,
        "backbone": backbone,
        "labelled (val)": labelled,
        "otsu (test)": round(otsu, 3),
        "distance": round(abs(otsu - labelled), 3),
        "best on test": oracle,
        "BoxAcc50 labelled": box_acc_50(table, labelled),
        "BoxAcc50 otsu": box_acc_50(table, otsu),
        "AP50 labelled": round(ap50(test["coco"]), 1),
    }


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    above = (positive[:, None] > negative[None, :]).mean()
    return float(above + 0.5 * (positive[:, None] == negative[None, :]).mean())


def objectness_row(root: Path, backbone: str) -> dict:
    images = pd.read_csv(files(root, "photos", backbone, "photos")["images"])
    truth = pd.read_csv(root / "photos" / "dataset.csv")
    truth = (
        truth[truth.split == "photos"]
        .groupby("image_path")["x0"]
        .apply(lambda boxes: boxes.notna().any())
    )
    has_object = truth.loc[images["image_id"]].to_numpy()
    scores = images["objectness"].to_numpy()
    return {
        "backbone": backbone,
        "object images": int(has_object.sum()),
        "empty images": int((~has_object).sum()),
        "ROC AUC": round(roc_auc(scores[has_object], scores[~has_object]), 3),
        "mean objectness (object / empty)": f"{scores[has_object].mean():.3f} / "
        f"{scores[~has_object].mean():.3f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="work folder (kept)")
    parser.add_argument("--cores", type=int, default=2)
    arguments = parser.parse_args()
    root = arguments.out.absolute()
    root.mkdir(parents=True, exist_ok=True)
    metadata = REPO.parent / "shared" / "wsol-metadata" / "CUB"
    if not (root / "cub").is_dir():
        write_cub_shaped(root / "cub", metadata, {"train": 64, "val": 32, "test": 32})
    if not (root / "photos").is_dir():
        splits = {"train": 64, "photos": 48}
        generate_synthetic_folder(root / "photos", splits, empty=0.25, style="mosaic")
    (root / "config").mkdir(exist_ok=True)
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config(root)))
    subprocess.run(
        [
            str(Path(sys.executable).with_name("snakemake")),
            "mosaic",
            "cubshaped",
            "photos",
            "--snakefile",
            str(REPO / "workflow" / "Snakefile"),
            "--directory",
            str(root),
            "--cores",
            str(arguments.cores),
            "--configfile",
            str(root / "config" / "config.yaml"),
        ],
        check=True,
    )
    print(f"machine: {machine()}")
    rows = [threshold_row(root, d, b) for d in ("mosaic", "cubshaped") for b in BACKBONES]
    print(pd.DataFrame(rows).to_markdown(index=False))
    print(pd.DataFrame([objectness_row(root, b) for b in BACKBONES]).to_markdown(index=False))


if __name__ == "__main__":
    main()
