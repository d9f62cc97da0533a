# Configuration checks, wildcard constraints and input functions shared by every stage.
import re
from pathlib import Path

from snakemake.utils import validate

from rpsloc.config import check_config
from rpsloc.features import shard_count

validate(config, "../../config/schema.yaml")
check_config(config)


def _alternatives(names):
    return "|".join(re.escape(name) for name in names)


wildcard_constraints:
    dataset=_alternatives(config["datasets"]),
    backbone=_alternatives(config["backbones"]),
    variant="rps|caam|centre_gaussian",
    split="[A-Za-z0-9_]+",
    shard=r"\d+",


def dataset_config(wildcards):
    return config["datasets"][wildcards.dataset]


def adapter_settings(wildcards):
    """Only the keys that decide a manifest, so changing e.g. the output stride keeps it."""
    dataset = dataset_config(wildcards)
    return {key: dataset[key] for key in ("adapter", "metadata", "images", "masks") if key in dataset}


def synthetic_root(wildcards):
    """The generated dataset folder, for synthetic datasets only."""
    if dataset_config(wildcards)["adapter"] == "synthetic":
        return f"results/{wildcards.dataset}/synthetic"
    return []


def metadata_files(wildcards):
    """The WSOL metadata files of one split, so an edit to them rebuilds the manifest."""
    dataset = dataset_config(wildcards)
    if dataset["adapter"] != "wsol":
        return []
    folder = Path(dataset["metadata"]) / wildcards.split
    return sorted(str(path) for path in folder.glob("*.txt"))


def backbone_checkpoint(wildcards):
    """The checkpoint file of a backbone, or nothing for a random init."""
    weights = config["backbones"][wildcards.backbone]["weights"]
    return [] if weights == "random" else weights


def split_role(wildcards):
    return "train" if wildcards.split == dataset_config(wildcards)["train_split"] else "eval"


def feature_shards(dataset, backbone, split):
    """All feature shards of a split; their number is known once the manifest exists."""
    manifest = checkpoints.manifest.get(dataset=dataset, split=split).output[0]
    with open(manifest) as stream:
        n_images = sum(1 for _ in stream) - 1
    count = shard_count(n_images, config["features"]["shard_size"])
    return [
        f"results/{dataset}/{backbone}/features/{split}/shard-{shard}.h5"
        for shard in range(count)
    ]


def train_shards(wildcards):
    split = dataset_config(wildcards)["train_split"]
    return feature_shards(wildcards.dataset, wildcards.backbone, split)


def eval_shards(wildcards):
    return feature_shards(wildcards.dataset, wildcards.backbone, wildcards.split)


def representer_file(wildcards):
    """w* is an input of the method's maps only; baselines never wait for it."""
    if wildcards.variant == "rps":
        return f"results/{wildcards.dataset}/{wildcards.backbone}/representer.h5"
    return []


def split_results(dataset):
    """Every (backbone, variant, evaluated split) of a dataset with the files it leaves."""
    settings = config["datasets"][dataset]
    results = []
    for backbone in settings["backbones"]:
        for variant in settings["variants"]:
            for split in settings["eval_splits"]:
                prefix = f"results/{dataset}/{backbone}/{variant}"
                results.append({
                    "backbone": backbone,
                    "variant": variant,
                    "split": split,
                    "maps": f"{prefix}/maps/{split}.h5",
                    "table": f"{prefix}/metrics/{split}.csv",
                    "summary": f"{prefix}/metrics/{split}.json",
                })
    return results


def summary_inputs(wildcards):
    return [
        result[key]
        for result in split_results(wildcards.dataset)
        for key in ("maps", "table", "summary")
    ]


def overlay_inputs(wildcards):
    """The method's maps (or the first variant's) on the last evaluated split, with its
    first features shard and manifest, for the overlay figure."""
    settings = dataset_config(wildcards)
    split = settings["eval_splits"][-1]
    backbone = settings["backbones"][0]
    variant = "rps" if "rps" in settings["variants"] else settings["variants"][0]
    result = next(
        r
        for r in split_results(wildcards.dataset)
        if (r["backbone"], r["variant"], r["split"]) == (backbone, variant, split)
    )
    return {
        "maps": result["maps"],
        "summary": result["summary"],
        "shard": feature_shards(wildcards.dataset, backbone, split)[0],
        "manifest": f"results/{wildcards.dataset}/manifest/{split}.csv",
    }


def dataset_outputs(dataset):
    return [
        f"results/{dataset}/summary.csv",
        f"results/{dataset}/figures/box_accuracy.png",
        f"results/{dataset}/figures/overlays.png",
    ]
