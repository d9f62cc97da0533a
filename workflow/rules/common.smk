# The configuration resolved once (rpsloc.settings), wildcard constraints and the input
# functions of every stage. File names come from rpsloc.paths; no rule spells a path out.
import functools
import os
import re
from dataclasses import asdict
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import validate

from rpsloc import paths
from rpsloc.backbones import architecture
from rpsloc.datasets.records import MANIFEST_COLUMNS
from rpsloc.io import FORMAT_VERSION
from rpsloc.datasets import source_files
from rpsloc.readers import manifest_has_ground_truth, shard_count
from rpsloc.settings import classifier_checkpoints, require_checkpoint_files, resolve_settings
from rpsloc.tracking import (
    checkpoint_sha256,
    create_change_record,
    record_image_changes,
    shard_images_digest,
    stale_value,
)
from rpsloc.variants import SELECTION_WILDCARD, WILDCARD, parse_selection, parse_variant

validate(config, "../schemas/config.schema.yaml")
SETTINGS = resolve_settings(config)
require_checkpoint_files(SETTINGS)


def _alternatives(names):
    return "|".join(re.escape(name) for name in names) or "(?!)"


wildcard_constraints:
    dataset=_alternatives(SETTINGS.datasets),
    backbone=_alternatives(SETTINGS.backbones),
    classifier=_alternatives(SETTINGS.classifiers),
    variant=WILDCARD,
    selection=SELECTION_WILDCARD,
    split="[A-Za-z0-9_]+",
    shard=r"\d+",


# --------------------------------------------------------------------------- settings
# Params are plain dicts and values: Snakemake tracks those, and reruns a job when they change.

#: The sections every job of a kind reads.
FEATURES = asdict(SETTINGS.features)
EVALUATION = asdict(SETTINGS.evaluation)
EXPLANATIONS = asdict(SETTINGS.explanations)
BOXES = asdict(SETTINGS.boxes)


def get_dataset(wildcards):
    """The dataset's resolved settings."""
    return SETTINGS.datasets[wildcards.dataset]


def get_backbone(wildcards):
    """The backbone's resolved settings."""
    return SETTINGS.backbones[wildcards.backbone]


def get_backbone_model(wildcards):
    """The backbone entry as rpsloc.backbones.build.build_backbone reads it."""
    return get_backbone(wildcards).model_config()


def get_pretrain_settings(wildcards):
    """The training settings of a `weights: pretrain` backbone, on the features' device."""
    return asdict(get_backbone(wildcards).pretrain_settings(SETTINGS.features.device))


def get_classifier(wildcards):
    """The classifier's config entry with its per-arch defaults."""
    return SETTINGS.classifiers[wildcards.classifier].config


def get_split_geometry(wildcards):
    """Resize and crop of a split's images and the backbone's effective output stride."""
    dataset = get_dataset(wildcards)
    image_size, crop_size = dataset.geometry(wildcards.split)
    return {
        "image_size": image_size,
        "crop_size": crop_size,
        "output_stride": dataset.output_strides[wildcards.backbone],
    }


def get_split_role(wildcards):
    return get_dataset(wildcards).role(wildcards.split)


def get_discovery_inputs(wildcards):
    """What the dataset's peers read from a ViT's last block, stored beside an evaluated
    split's features by the same pass (`rpsloc.readers.DISCOVERY_INPUTS`); none for a
    training split or a CNN, so adding a peer there reruns no features job."""
    dataset = get_dataset(wildcards)
    vit = architecture(get_backbone(wildcards).arch).patch_grid
    if dataset.role(wildcards.split) != "eval" or not vit:
        return []
    return sorted({v.discovery_input for v in dataset.variants if v.discovery_input})


def get_representer_settings(wildcards):
    spec = parse_selection(wildcards.selection)
    seed = get_dataset(wildcards).sampling_seed
    return {"classwise": spec.classwise, "sampling_ratio": spec.sampling_ratio, "seed": seed}


# --------------------------------------------------------------------------- inputs


def get_synthetic_root(wildcards):
    """The generated dataset folder, for synthetic datasets only."""
    if get_dataset(wildcards).adapter == "synthetic":
        return paths.SYNTHETIC.format(dataset=wildcards.dataset)
    return []


def get_metadata_files(wildcards):
    """The metadata files of one split, so an edit to them rebuilds the manifest."""
    return source_files(get_dataset(wildcards).layout, wildcards.split)


def get_manifest(wildcards):
    return paths.MANIFEST.format(dataset=wildcards.dataset, split=wildcards.split)


def get_backbone_checkpoint(wildcards):
    """The checkpoint file a backbone loads (the pretrain stage's for `weights: pretrain`), or
    nothing for a random init or a model without weights. A file of the user's is `ancient`:
    its content is tracked by its SHA-256 (get_checkpoint_record), not its modification time."""
    backbone = get_backbone(wildcards)
    if backbone.weights.kind == "file":
        return ancient(backbone.checkpoint)
    return backbone.checkpoint or []


# --------------------------------------------------------------------------- tracked inputs
# What Snakemake's modification times miss (rpsloc.tracking, docs/reliability.md): images
# replaced in place and checkpoints replaced with their modification time kept. Only the main
# process compares and writes; a job's own process (on a cluster) takes the inputs as named.


def _log_tracking(sentences):
    for sentence in sentences:
        _warn_once(f"rpsloc: {sentence}")


@functools.cache
def _warn_once(sentence):
    """Input functions may run more than once per job; each finding is said once."""
    logger.warning(sentence)


@functools.cache
def _image_changes(manifest, record, fingerprint, manifest_mtime_ns):
    _log_tracking(record_image_changes(Path(manifest), Path(record), fingerprint))


def pretrain_split(backbone):
    """The (dataset, split) a `weights: pretrain` backbone is trained on."""
    dataset = backbone.pretrain["dataset"]
    return dataset, backbone.pretrain.get("split", SETTINGS.datasets[dataset].train_split)


def manifest_splits():
    """Every (dataset, split) whose manifest the configuration asks for: each dataset's
    splits and those backbones are pretrained on."""
    splits = {(name, split) for name, entry in SETTINGS.datasets.items() for split in entry.splits}
    splits |= {pretrain_split(b) for b in SETTINGS.backbones.values() if b.pretrain}
    return sorted(splits)


if workflow.is_main_process:
    for dataset_name, split_name in manifest_splits():
        create_change_record(paths.MANIFEST_CHANGES.format(dataset=dataset_name, split=split_name))


def get_manifest_changes(wildcards):
    """The record of the split's image and mask files that changed since its manifest was
    written; rewritten when one did, so the manifest is rebuilt."""
    record = paths.MANIFEST_CHANGES.format(dataset=wildcards.dataset, split=wildcards.split)
    manifest = Path(get_manifest(wildcards))
    if workflow.is_main_process:
        mtime_ns = manifest.stat().st_mtime_ns if manifest.exists() else None
        _image_changes(str(manifest), record, get_dataset(wildcards).fingerprint, mtime_ns)
    return record


def _tracked(output, attribute, current, source, computed_from):
    """`source` as an input of `output`: `ancient` while `output` records `attribute` =
    `current`, else plain and newer than `output`, which is then recomputed (and says why)."""
    if not workflow.is_main_process:
        return source
    recorded = stale_value(Path(output), attribute, current, Path(source))
    if recorded is None:
        return ancient(source)
    _log_tracking([f"{output} was computed {computed_from(recorded)}: it is recomputed"])
    return source


def get_shard_manifest(wildcards):
    """The manifest a feature shard is cut from, tracked by the digest of the shard's rows: a
    rebuilt manifest reruns only the shards whose images, sizes, labels or boxes changed."""
    manifest = get_manifest(wildcards)
    if not Path(manifest).exists():
        return manifest
    shard = paths.FEATURE_SHARD.format(**dict(wildcards.items()))
    digest = shard_images_digest(Path(manifest), int(wildcards.shard), SETTINGS.features.shard_size)
    return _tracked(
        shard,
        "images_sha256",
        digest,
        manifest,
        lambda recorded: "from other manifest rows: an image or mask file, a size, label or box "
        "of the shard changed" if recorded else "before rpsloc recorded its manifest rows",
    )


@functools.cache
def _checkpoint_sha256(backbone):
    record = paths.CHECKPOINT_RECORD.format(backbone=backbone)
    sha, sentences = checkpoint_sha256(Path(SETTINGS.backbones[backbone].checkpoint), Path(record))
    _log_tracking(sentences)
    return sha


def checkpoint_record_of(template):
    """The input function giving the outputs of `template` (feature shards, representers) the
    record of their backbone checkpoint's SHA-256, tracked against the SHA-256 each output
    records: a checkpoint replaced with its modification time kept reruns them, one copied
    again with the same bytes does not. Nothing for backbones without a checkpoint file."""

    def get_checkpoint_record(wildcards):
        backbone = get_backbone(wildcards)
        if backbone.weights.kind != "file":
            return []
        record = paths.CHECKPOINT_RECORD.format(backbone=backbone.name)
        if not workflow.is_main_process:
            return record
        sha = _checkpoint_sha256(backbone.name)
        return _tracked(
            template.format(**dict(wildcards.items())),
            "backbone_checkpoint_sha256",
            sha,
            record,
            lambda recorded: f"with checkpoint sha256 {recorded[:16] or 'unknown'}..., but "
            f"{backbone.checkpoint} now has {sha[:16]}...",
        )

    return get_checkpoint_record


def get_pretrain_manifest(wildcards):
    """The manifest whose images a backbone is pretrained on (only their paths are read)."""
    dataset, split = pretrain_split(get_backbone(wildcards))
    return paths.MANIFEST.format(dataset=dataset, split=split)


def related_datasets(dataset):
    """A dataset and, transitively, the base datasets whose w* its variants transfer."""
    found = [dataset]
    for name in found:
        bases = {variant.base_dataset for variant in SETTINGS.datasets[name].variants}
        found += sorted(bases - {None} - set(found))
    return found


def manifest_of(dataset, split):
    """A split's manifest, once it exists (the manifest is a checkpoint).

    Every manifest that the dataset's jobs read is asked for first, always in the same order.
    Snakemake re-evaluates the input function that asked for a missing checkpoint output, but
    not the jobs created by that re-evaluation: a manifest first asked for by one of those
    would leave it planned without its real inputs, and a changed setting would not rerun it.
    """
    for name in related_datasets(dataset):
        for each in SETTINGS.datasets[name].splits:
            checkpoints.manifest.get(dataset=name, split=each)
    return checkpoints.manifest.get(dataset=dataset, split=split).output[0]


def feature_shards(dataset, backbone, split):
    """All feature shards of a split; their number is known once the manifest exists."""
    manifest = manifest_of(dataset, split)
    with open(manifest) as stream:
        n_images = sum(1 for _ in stream) - 1
    count = shard_count(n_images, SETTINGS.features.shard_size)
    return [
        paths.FEATURE_SHARD.format(dataset=dataset, backbone=backbone, split=split, shard=shard)
        for shard in range(count)
    ]


def get_train_shards(wildcards):
    split = get_dataset(wildcards).train_split
    return feature_shards(wildcards.dataset, wildcards.backbone, split)


def get_eval_shards(wildcards):
    return feature_shards(wildcards.dataset, wildcards.backbone, wildcards.split)


def representer_path(dataset, backbone, selection="global"):
    return paths.REPRESENTER.format(dataset=dataset, backbone=backbone, selection=selection)


def get_global_representer(wildcards):
    return representer_path(wildcards.dataset, wildcards.backbone)


def get_variant_representer(wildcards):
    """The w* a map variant uses: its own dataset's, or a base dataset's for transfer;
    baselines never wait for one."""
    variant = parse_variant(wildcards.variant)
    if not variant.needs_representer:
        return []
    source = variant.base_dataset or wildcards.dataset
    return representer_path(source, wildcards.backbone, variant.representer_selection)


def get_classifier_predictions(wildcards):
    """The dataset's classifier's top-5 predictions for a split (Top-1/Top-5 Loc), or nothing
    for a dataset without a classifier."""
    classifier = get_dataset(wildcards).classifier
    if classifier is None:
        return []
    return paths.PREDICTIONS.format(
        dataset=wildcards.dataset, classifier=classifier, split=wildcards.split
    )


def get_variant_predictions(wildcards):
    """A classifier's top-5 predictions, for the variant that picks w*_k by top-1."""
    if parse_variant(wildcards.variant).class_source != "top1":
        return []
    return get_classifier_predictions(wildcards)


def get_training_predictions(wildcards):
    """The classifier's predictions on the training split, for w*_k built from the classes
    it predicts (`rps_classwise_pred`)."""
    if not parse_selection(wildcards.selection).predicted_classes:
        return []
    dataset = get_dataset(wildcards)
    return paths.PREDICTIONS.format(
        dataset=dataset.name, classifier=dataset.classifier, split=dataset.train_split
    )


def get_classifier_checkpoints(wildcards):
    """The checkpoint files a classifier reads (weights, and a DINO linear head)."""
    return classifier_checkpoints(SETTINGS.classifiers[wildcards.classifier])


# --------------------------------------------------------------------------- ground truth


@functools.cache
def _has_ground_truth(manifest, modified):
    return manifest_has_ground_truth(manifest)


def split_has_ground_truth(dataset, split):
    """Whether any image of a split has a ground-truth box or mask, known once its manifest
    exists (the manifest is a checkpoint). A split without is a prediction split: maps, boxes
    and their figures, no metrics (docs/boxes.md)."""
    manifest = manifest_of(dataset, split)
    return _has_ground_truth(manifest, os.stat(manifest).st_mtime_ns)


def labelled_splits(dataset):
    """The evaluated splits of a dataset that have ground truth, in order."""
    return [
        split
        for split in SETTINGS.datasets[dataset].eval_splits
        if split_has_ground_truth(dataset, split)
    ]


# --------------------------------------------------------------------------- results


def dataset_results(dataset, labelled_only=True):
    """Every (backbone, variant, evaluated split) of a dataset with the files it leaves; only
    the splits with ground truth (which have metrics) unless `labelled_only` is False."""
    settings = SETTINGS.datasets[dataset]
    splits = labelled_splits(dataset) if labelled_only else settings.eval_splits
    return [
        paths.result_files(dataset, backbone, variant, split)
        for backbone in settings.backbones
        for variant in settings.variant_names
        for split in splits
    ]


def headline_results(dataset):
    """The results on the dataset's headline split, which the figures show."""
    split = SETTINGS.datasets[dataset].headline_split
    return [result for result in dataset_results(dataset) if result.split == split]


def get_summary_inputs(wildcards):
    """Every result's maps, and the metrics of those with ground truth."""
    return [
        *(str(result.maps) for result in dataset_results(wildcards.dataset, False)),
        *(
            str(path)
            for result in dataset_results(wildcards.dataset)
            for path in (result.table, result.summary, result.corloc)
        ),
    ]


def get_corloc_boxes(wildcards):
    """The boxes stage's files whose first box per image a map method's CorLoc scores; none
    for a box-only method (LOST, TokenCut), whose own box counts."""
    if parse_variant(wildcards.variant).box_only:
        return {}
    names = dict(wildcards)
    return {
        "boxes": paths.BOXES.format(**names),
        "box_images": paths.BOXES_IMAGES.format(**names),
        "box_coco": paths.BOXES_COCO.format(**names),
    }


def get_threshold_rule(wildcards):
    """How the boxes of a result get their threshold (`BoxSettings.threshold_rule`)."""
    dataset = get_dataset(wildcards)
    return SETTINGS.boxes.threshold_rule(dataset, wildcards.split, labelled_splits(dataset.name))


def get_threshold_table(wildcards):
    """The BoxAcc table a labelled threshold is read from: the metrics of the same backbone
    and variant on the rule's split; nothing for the other rules."""
    choice = get_threshold_rule(wildcards)
    if choice["rule"] != "labelled":
        return []
    return paths.METRICS_TABLE.format(**{**wildcards, "split": choice["split"]})


def box_outputs(dataset):
    """The boxes of every backbone and evaluated split, of the method's maps (or of every
    variant, `boxes: {variants: all}`), masks when configured."""
    templates = [paths.BOXES, paths.BOXES_IMAGES, paths.BOXES_COCO]
    if SETTINGS.boxes.masks:
        templates.append(paths.BOX_MASKS)
    variants = SETTINGS.boxes.variants_of(SETTINGS.datasets[dataset])
    return [
        template.format(dataset=dataset, backbone=r.backbone, variant=r.variant, split=r.split)
        for r in dataset_results(dataset, labelled_only=False)
        if r.variant in variants
        for template in templates
    ]


def get_headline_inputs(wildcards):
    """Every result's BoxAcc table, precision-recall points and headline numbers on the
    headline split."""
    return [
        str(path)
        for result in headline_results(wildcards.dataset)
        for path in (result.table, result.curve, result.summary)
    ]


def get_skipped_lists(wildcards):
    """The images each manifest left out, for the training and evaluated splits in order."""
    return [
        paths.MANIFEST_SKIPPED.format(dataset=wildcards.dataset, split=split)
        for split in get_dataset(wildcards).splits
    ]


def pictured_result(dataset):
    """The result the figures picture: the first backbone's method maps (or its first
    variant's) on the headline split."""
    settings = SETTINGS.datasets[dataset]
    return paths.result_files(
        dataset, settings.backbones[0], settings.pictured_variant, settings.headline_split
    )


def get_overlay_inputs(wildcards):
    """The pictured maps with the first features shard and manifest of their split."""
    result = pictured_result(wildcards.dataset)
    return {
        "maps": str(result.maps),
        "summary": str(result.summary),
        "shard": feature_shards(wildcards.dataset, result.backbone, result.split)[0],
        "manifest": paths.MANIFEST.format(dataset=wildcards.dataset, split=result.split),
    }


def get_gallery_inputs(wildcards):
    """The pictured maps with their per-image IoUs, every features shard and the manifest of
    their split, for the best-and-worst gallery."""
    result = pictured_result(wildcards.dataset)
    return {
        "maps": str(result.maps),
        "images": str(result.images),
        "shards": feature_shards(wildcards.dataset, result.backbone, result.split),
        "manifest": paths.MANIFEST.format(dataset=wildcards.dataset, split=result.split),
    }


def get_prediction_inputs(wildcards):
    """The pictured result's boxes, their images and COCO file, and the split's manifest."""
    result = pictured_result(wildcards.dataset)
    names = {
        "dataset": wildcards.dataset,
        "backbone": result.backbone,
        "variant": result.variant,
        "split": result.split,
    }
    return {
        "boxes": paths.BOXES.format(**names),
        "images": paths.BOXES_IMAGES.format(**names),
        "coco": paths.BOXES_COCO.format(**names),
        "manifest": paths.MANIFEST.format(dataset=wildcards.dataset, split=result.split),
    }


def get_representer_gallery_inputs(wildcards):
    """The gallery inputs with the split's explanations and the training manifest."""
    result = pictured_result(wildcards.dataset)
    dataset = get_dataset(wildcards)
    return {
        **get_gallery_inputs(wildcards),
        "explanations": paths.EXPLANATIONS.format(
            dataset=dataset.name, backbone=result.backbone, split=result.split
        ),
        "train_manifest": paths.MANIFEST.format(dataset=dataset.name, split=dataset.train_split),
    }


def get_representer_values_inputs(wildcards):
    """The first backbone's global w* and the training manifest."""
    dataset = get_dataset(wildcards)
    return {
        "representer": representer_path(dataset.name, dataset.backbones[0]),
        "manifest": paths.MANIFEST.format(dataset=dataset.name, split=dataset.train_split),
    }


def get_selection_curves(wildcards):
    dataset = get_dataset(wildcards)
    return {
        backbone: paths.SELECTION_CURVE.format(
            dataset=dataset.name, backbone=backbone, split=dataset.headline_split
        )
        for backbone in dataset.backbones
    }


def get_all_summaries(wildcards):
    return [
        paths.SUMMARY.format(dataset=name)
        for name, settings in SETTINGS.datasets.items()
        if settings.eval_splits
    ]


# --------------------------------------------------------------------------- targets

#: The figures every evaluated dataset gets, those of a headline split with ground truth, and
#: those of explained datasets (the last two with ground truth only).
PREDICTION_FIGURES = ("predictions", "objectness")
FIGURES = ("box_accuracy", "overlays", "precision_recall", "best_and_worst")
EXPLANATION_FIGURES = ("representer_values",)
LABELLED_EXPLANATION_FIGURES = ("selection", "representer_gallery")


def figures(dataset, names):
    return [paths.figure(name).format(dataset=dataset) for name in names]


def explanation_outputs(dataset):
    settings = SETTINGS.datasets[dataset]
    if not (settings.explained and SETTINGS.explanations.enabled):
        return []
    outputs = figures(dataset, EXPLANATION_FIGURES)
    if split_has_ground_truth(dataset, settings.headline_split):
        outputs += figures(dataset, LABELLED_EXPLANATION_FIGURES)
    for backbone in settings.backbones:
        names = {"dataset": dataset, "backbone": backbone, "split": settings.headline_split}
        outputs += [paths.TRAINING_RANKING.format(**names), paths.EXPLANATIONS.format(**names)]
    return outputs


def pretraining_outputs(dataset):
    """The loss figures of the dataset's backbones that are pretrained here."""
    return [
        paths.PRETRAIN_LOSS_FIGURE.format(backbone=backbone)
        for backbone in SETTINGS.datasets[dataset].backbones
        if backbone in SETTINGS.pretrained
    ]


def dataset_outputs(dataset):
    """What a dataset's target builds: its summary, boxes, figures and explanations (the
    metrics' figures where the headline split has ground truth), or, for a dataset that only
    serves as a base for w* (no evaluated splits), its w*."""
    settings = SETTINGS.datasets[dataset]
    if not settings.eval_splits:
        return [representer_path(dataset, backbone) for backbone in settings.backbones]
    labelled = split_has_ground_truth(dataset, settings.headline_split)
    return [
        paths.SUMMARY.format(dataset=dataset),
        *box_outputs(dataset),
        *figures(dataset, PREDICTION_FIGURES),
        *(figures(dataset, FIGURES) if labelled else []),
        *explanation_outputs(dataset),
        *pretraining_outputs(dataset),
    ]


def dataset_numbers(dataset):
    """What a dataset's numbers-only target builds: its summary table (no figure, explanation
    or selection curve), or a base dataset's w*."""
    if not SETTINGS.datasets[dataset].eval_splits:
        return dataset_outputs(dataset)
    return [paths.SUMMARY.format(dataset=dataset)]


def dataset_target(dataset):
    """The input function of a dataset's target rule (its outputs depend on its manifests)."""
    return lambda wildcards: dataset_outputs(dataset)


def get_every_output(wildcards):
    """What the default target builds: every dataset's outputs and the cross-dataset table."""
    outputs = [path for name in SETTINGS.datasets for path in dataset_outputs(name)]
    return [*outputs, paths.TABLES_CSV]
