# Configuration checks, wildcard constraints and input functions shared by every stage.
import re
from pathlib import Path

from snakemake.utils import validate

from rpsloc.backbones.classifiers import checkpoint_files, classifier_settings
from rpsloc.config import check_checkpoint_files, check_config
from rpsloc.datasets import dataset_settings, manifest_settings, source_files
from rpsloc.readers import shard_count
from rpsloc.pretrain import check_pretrain_config
from rpsloc.variants import WILDCARD as VARIANT_PATTERN, parse_selection, parse_variant

validate(config, "../../config/schema.yaml")
config["datasets"] = {name: dataset_settings(d) for name, d in config["datasets"].items()}
check_config(config)
check_checkpoint_files(config)
check_pretrain_config(config)


def _alternatives(names):
    return "|".join(re.escape(name) for name in names)


#: Backbones the pretrain stage trains (`weights: pretrain`).
PRETRAINED_BACKBONES = _alternatives(
    name for name, entry in config["backbones"].items() if entry["weights"] == "pretrain"
)


wildcard_constraints:
    dataset=_alternatives(config["datasets"]),
    backbone=_alternatives(config["backbones"]),
    classifier=_alternatives(config["classifiers"]),
    variant=VARIANT_PATTERN,
    selection=r"(global|classwise)(-r[0-9.]+)?",
    split="[A-Za-z0-9_]+",
    shard=r"\d+",


def dataset_config(wildcards):
    return config["datasets"][wildcards.dataset]


def adapter_settings(wildcards):
    """Only the keys that decide a manifest, so changing e.g. the output stride keeps it."""
    return manifest_settings(dataset_config(wildcards))


def synthetic_root(wildcards):
    """The generated dataset folder, for synthetic datasets only."""
    if dataset_config(wildcards)["adapter"] == "synthetic":
        return f"results/{wildcards.dataset}/synthetic"
    return []


def metadata_files(wildcards):
    """The metadata files of one split, so an edit to them rebuilds the manifest."""
    return source_files(dataset_config(wildcards), wildcards.split)


def backbone_checkpoint(wildcards):
    """The checkpoint file of a backbone (the pretrain stage's for `weights: pretrain`), or
    nothing for a random init."""
    weights = config["backbones"][wildcards.backbone]["weights"]
    if weights == "pretrain":
        return pretrain_checkpoint(wildcards.backbone)
    return [] if weights == "random" else weights


def pretrain_checkpoint(backbone):
    return f"results/pretrain/{backbone}/checkpoint.pth"


def backbone_settings(wildcards):
    """A backbone's config entry as the features stage reads it: `weights: pretrain` becomes the
    pretrain stage's checkpoint, and the training settings are left out."""
    entry = config["backbones"][wildcards.backbone]
    settings = {key: value for key, value in entry.items() if key != "pretrain"}
    if entry["weights"] == "pretrain":
        settings["weights"] = pretrain_checkpoint(wildcards.backbone)
    return settings


def pretrain_manifest(wildcards):
    """The manifest whose images a backbone is pretrained on (only their paths are read)."""
    block = config["backbones"][wildcards.backbone]["pretrain"]
    split = block.get("split", config["datasets"][block["dataset"]]["train_split"])
    return f"results/{block['dataset']}/manifest/{split}.csv"


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
    """The w* a map variant uses: its own dataset's, or a base dataset's for transfer;
    baselines never wait for one."""
    variant = parse_variant(wildcards.variant)
    if not variant.needs_representer:
        return []
    source = variant.base_dataset or wildcards.dataset
    return representer_path(source, wildcards.backbone, variant.representer_selection)


def representer_path(dataset, backbone, selection="global"):
    return f"results/{dataset}/{backbone}/representer/{selection}.h5"


def representer_settings(wildcards):
    classwise, ratio = parse_selection(wildcards.selection)
    seed = dataset_config(wildcards).get("sampling_seed", 0)
    return {"classwise": classwise, "sampling_ratio": ratio, "seed": seed}


def predictions_file(wildcards):
    """A classifier's top-5 predictions, for the variant that picks w*_k by top-1."""
    if parse_variant(wildcards.variant).class_source != "top1":
        return []
    return classifier_predictions(wildcards)


def classifier_predictions(wildcards):
    """The dataset's classifier's top-5 predictions for a split (Top-1/Top-5 Loc), or nothing
    for a dataset without a classifier."""
    classifier = dataset_config(wildcards).get("classifier")
    if classifier is None:
        return []
    return f"results/{wildcards.dataset}/classifiers/{classifier}/{wildcards.split}.h5"


def classifier_config(wildcards):
    """A classifier's config entry with its per-arch defaults filled in."""
    return classifier_settings(config["classifiers"][wildcards.classifier])


def classifier_checkpoints(wildcards):
    """The checkpoint files a classifier reads (weights, and a DINO linear head)."""
    where = f"classifiers.{wildcards.classifier}"
    return checkpoint_files(classifier_config(wildcards), where)


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
                    "images": f"{prefix}/metrics/{split}-images.csv",
                    "curve": f"{prefix}/metrics/{split}-pr.csv",
                })
    return results


def manifest_splits(wildcards):
    settings = dataset_config(wildcards)
    return [settings["train_split"], *settings["eval_splits"]]


def skipped_lists(wildcards):
    """The images each manifest left out, for the training and evaluated splits in order."""
    return [
        f"results/{wildcards.dataset}/manifest/{split}.skipped.csv"
        for split in manifest_splits(wildcards)
    ]


def summary_inputs(wildcards):
    return [
        result[key]
        for result in split_results(wildcards.dataset)
        for key in ("maps", "table", "summary")
    ]


def pictured_result(wildcards):
    """The result the figures picture: the first backbone's method maps (or its first
    variant's) on the last evaluated split."""
    settings = dataset_config(wildcards)
    split = settings["eval_splits"][-1]
    backbone = settings["backbones"][0]
    variant = "rps" if "rps" in settings["variants"] else settings["variants"][0]
    return next(
        r
        for r in split_results(wildcards.dataset)
        if (r["backbone"], r["variant"], r["split"]) == (backbone, variant, split)
    )


def overlay_inputs(wildcards):
    """The pictured maps with the first features shard and manifest of their split."""
    result = pictured_result(wildcards)
    return {
        "maps": result["maps"],
        "summary": result["summary"],
        "shard": feature_shards(wildcards.dataset, result["backbone"], result["split"])[0],
        "manifest": f"results/{wildcards.dataset}/manifest/{result['split']}.csv",
    }


def gallery_inputs(wildcards):
    """The pictured maps with their per-image IoUs, every features shard and the manifest of
    their split, for the best-and-worst gallery."""
    result = pictured_result(wildcards)
    return {
        "maps": result["maps"],
        "images": result["images"],
        "shards": feature_shards(wildcards.dataset, result["backbone"], result["split"]),
        "manifest": f"results/{wildcards.dataset}/manifest/{result['split']}.csv",
    }


def representer_gallery_inputs(wildcards):
    """gallery_inputs with the split's explanations and the training manifest."""
    result = pictured_result(wildcards)
    dataset = wildcards.dataset
    train_split = dataset_config(wildcards)["train_split"]
    return {
        **gallery_inputs(wildcards),
        "explanations": f"results/{dataset}/{result['backbone']}/explanations/{result['split']}.h5",
        "train_manifest": f"results/{dataset}/manifest/{train_split}.csv",
    }


def curve_inputs(wildcards):
    """Every result's precision-recall points and headline numbers on the last split."""
    split = dataset_config(wildcards)["eval_splits"][-1]
    return [
        result[key]
        for result in split_results(wildcards.dataset)
        if result["split"] == split
        for key in ("curve", "summary")
    ]


def explained(dataset):
    """Explanations exist for datasets whose variants include the method's global w*."""
    settings = config["datasets"][dataset]
    return "rps" in settings["variants"] and bool(settings["eval_splits"])


def explanation_outputs(dataset):
    settings = config["datasets"][dataset]
    if not explained(dataset):
        return []
    split = settings["eval_splits"][-1]
    outputs = [
        f"results/{dataset}/figures/selection.png",
        f"results/{dataset}/figures/representer_values.png",
        f"results/{dataset}/figures/representer_gallery.png",
    ]
    for backbone in settings["backbones"]:
        folder = f"results/{dataset}/{backbone}/explanations"
        outputs += [f"{folder}/training_images.csv", f"{folder}/{split}.h5"]
    return outputs


def selection_curves(wildcards):
    settings = dataset_config(wildcards)
    split = settings["eval_splits"][-1]
    return {
        backbone: f"results/{wildcards.dataset}/{backbone}/explanations/selection-{split}.csv"
        for backbone in settings["backbones"]
    }


def dataset_outputs(dataset):
    """What a dataset's target builds: its summary, figures and explanations, or, for a
    dataset that only serves as a base for w* (no evaluated splits), its w*."""
    settings = config["datasets"][dataset]
    if not settings["eval_splits"]:
        return [representer_path(dataset, backbone) for backbone in settings["backbones"]]
    return [
        f"results/{dataset}/summary.csv",
        f"results/{dataset}/figures/box_accuracy.png",
        f"results/{dataset}/figures/overlays.png",
        f"results/{dataset}/figures/precision_recall.png",
        f"results/{dataset}/figures/best_and_worst.png",
        *explanation_outputs(dataset),
    ]


def all_summaries(wildcards):
    return [
        f"results/{name}/summary.csv"
        for name, settings in config["datasets"].items()
        if settings["eval_splits"]
    ]
