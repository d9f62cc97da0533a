import importlib

from rpsloc.io import read_csv
from rpsloc.logging import to_log


def curves():
    """rpsloc.figures.curves, imported by the plots of numbers only (no torch)."""
    return importlib.import_module("rpsloc.figures.curves")


def galleries():
    """rpsloc.figures.galleries, imported by the pictures of images only (torch, OpenCV)."""
    return importlib.import_module("rpsloc.figures.galleries")


def predicted(draw, count):
    """A figure of the boxes stage's predictions (`galleries.plot_predictions`, ...)."""
    draw(
        boxes=snakemake.input.boxes,
        images=snakemake.input.images,
        coco=snakemake.input.coco,
        manifest=snakemake.input.manifest,
        out=snakemake.output[0],
        count=count,
    )


FIGURES = {
    "box_accuracy_figure": lambda: curves().plot_box_accuracy(
        snakemake.params.results, snakemake.params.split, snakemake.output[0]
    ),
    "precision_recall_figure": lambda: curves().plot_precision_recall(
        snakemake.params.results, snakemake.params.split, snakemake.output[0]
    ),
    "selection_figure": lambda: curves().plot_selection_curves(
        dict(snakemake.input.items()), snakemake.output[0]
    ),
    "pretrain_loss_figure": lambda: curves().plot_pretraining_loss(
        read_csv(snakemake.input[0]), snakemake.output[0]
    ),
    "overlay_figure": lambda: galleries().plot_overlays(
        maps=snakemake.input.maps,
        summary=snakemake.input.summary,
        eval_shard=snakemake.input.shard,
        manifest=snakemake.input.manifest,
        out=snakemake.output[0],
        count=snakemake.params.images,
    ),
    "best_and_worst_figure": lambda: galleries().plot_best_and_worst(
        maps=snakemake.input.maps,
        images=snakemake.input.images,
        eval_shards=list(snakemake.input.shards),
        manifest=snakemake.input.manifest,
        out=snakemake.output[0],
        count=max(1, (snakemake.params.images + 1) // 2),
    ),
    "representer_values_figure": lambda: galleries().plot_representer_values(
        representer=snakemake.input.representer,
        manifest=snakemake.input.manifest,
        out=snakemake.output[0],
        count=snakemake.params.images,
    ),
    "representer_gallery_figure": lambda: galleries().plot_representer_gallery(
        explanations=snakemake.input.explanations,
        maps=snakemake.input.maps,
        images=snakemake.input.images,
        eval_shards=list(snakemake.input.shards),
        manifest=snakemake.input.manifest,
        train_manifest=snakemake.input.train_manifest,
        out=snakemake.output[0],
        count=snakemake.params.images,
        per_side=snakemake.params.per_side,
    ),
    "predictions_figure": lambda: predicted(galleries().plot_predictions, snakemake.params.images),
    "objectness_figure": lambda: predicted(
        galleries().plot_objectness, max(1, (snakemake.params.images + 1) // 2)
    ),
}

with to_log(snakemake.log[0]):
    FIGURES[snakemake.rule]()
