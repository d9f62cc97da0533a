# Every figure of the report, one rule each, drawn by rpsloc.figures from the stage files.


rule box_accuracy_figure:
    """BoxAcc versus threshold per IoU on the headline split."""
    input:
        get_headline_inputs,
    output:
        report(
            paths.figure("box_accuracy"),
            caption="../report/box_accuracy.rst",
            category="2. Box accuracy",
            subcategory="{dataset}",
            labels={"figure": "BoxAcc versus threshold"},
        ),
    params:
        results=lambda wildcards: headline_results(wildcards.dataset),
        split=lambda wildcards: get_dataset(wildcards).headline_split,
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.figure("box_accuracy")),
    benchmark:
        paths.benchmark_of(paths.figure("box_accuracy"))
    script:
        "../scripts/figures.py"


rule overlay_figure:
    """Heatmaps with predicted and ground-truth boxes for the first images of a split."""
    input:
        unpack(get_overlay_inputs),
    output:
        report(
            paths.figure("overlays"),
            caption="../report/overlays.rst",
            category="4. Galleries",
            subcategory="{dataset}",
            labels={"figure": "first images"},
        ),
    params:
        images=SETTINGS.evaluation.overlay_images,
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.figure("overlays")),
    benchmark:
        paths.benchmark_of(paths.figure("overlays"))
    script:
        "../scripts/figures.py"


rule precision_recall_figure:
    """Pixel precision-recall curves behind PxAP on the headline split."""
    input:
        get_headline_inputs,
    output:
        report(
            paths.figure("precision_recall"),
            caption="../report/precision_recall.rst",
            category="3. Pixel precision-recall",
            subcategory="{dataset}",
            labels={"figure": "precision versus recall"},
        ),
    params:
        results=lambda wildcards: headline_results(wildcards.dataset),
        split=lambda wildcards: get_dataset(wildcards).headline_split,
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.figure("precision_recall")),
    benchmark:
        paths.benchmark_of(paths.figure("precision_recall"))
    script:
        "../scripts/figures.py"


rule best_and_worst_figure:
    """The best and the worst images of the headline split by IoU, IoU in the corner."""
    input:
        unpack(get_gallery_inputs),
    output:
        report(
            paths.figure("best_and_worst"),
            caption="../report/best_and_worst.rst",
            category="4. Galleries",
            subcategory="{dataset}",
            labels={"figure": "best and worst by IoU"},
        ),
    params:
        images=SETTINGS.evaluation.overlay_images,
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.figure("best_and_worst")),
    benchmark:
        paths.benchmark_of(paths.figure("best_and_worst"))
    script:
        "../scripts/figures.py"


rule selection_figure:
    """The representer-selection curves of every backbone of a dataset."""
    input:
        unpack(get_selection_curves),
    output:
        report(
            paths.figure("selection"),
            caption="../report/selection.rst",
            category="5. Representer points",
            subcategory="{dataset}",
            labels={"figure": "selection curve"},
        ),
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.figure("selection")),
    benchmark:
        paths.benchmark_of(paths.figure("selection"))
    script:
        "../scripts/figures.py"


rule representer_values_figure:
    """Per-position representer values alpha_{n,p} of the most and least supportive training
    images of the first backbone."""
    input:
        unpack(get_representer_values_inputs),
    output:
        report(
            paths.figure("representer_values"),
            caption="../report/representer_values.rst",
            category="5. Representer points",
            subcategory="{dataset}",
            labels={"figure": "training images and their values"},
        ),
    params:
        images=SETTINGS.explanations.gallery_images,
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.figure("representer_values")),
    benchmark:
        paths.benchmark_of(paths.figure("representer_values"))
    script:
        "../scripts/figures.py"


rule representer_gallery_figure:
    """Test images (the best and worst by IoU) beside the training images that support and
    oppose their foreground most, with the contributions."""
    input:
        unpack(get_representer_gallery_inputs),
    output:
        report(
            paths.figure("representer_gallery"),
            caption="../report/representer_gallery.rst",
            category="5. Representer points",
            subcategory="{dataset}",
            labels={"figure": "test images and their representers"},
        ),
    params:
        images=SETTINGS.explanations.gallery_images,
        per_side=min(3, SETTINGS.explanations.top_k),
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.figure("representer_gallery")),
    benchmark:
        paths.benchmark_of(paths.figure("representer_gallery"))
    script:
        "../scripts/figures.py"


rule pretrain_loss_figure:
    """The InfoNCE loss per step of a backbone pretrained here (docs/pretraining.md)."""
    input:
        paths.PRETRAIN_LOSSES,
    output:
        paths.PRETRAIN_LOSS_FIGURE,
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.PRETRAIN_LOSS_FIGURE),
    benchmark:
        paths.benchmark_of(paths.PRETRAIN_LOSS_FIGURE)
    script:
        "../scripts/figures.py"


rule predictions_figure:
    """The first images of the headline split in their original pixels with their predicted
    boxes and scores (and the ground truth where there is)."""
    input:
        unpack(get_prediction_inputs),
    output:
        report(
            paths.figure("predictions"),
            caption="../report/predictions.rst",
            category="6. Predicted boxes",
            subcategory="{dataset}",
            labels={"figure": "first images"},
        ),
    params:
        images=SETTINGS.evaluation.overlay_images,
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.figure("predictions")),
    benchmark:
        paths.benchmark_of(paths.figure("predictions"))
    script:
        "../scripts/figures.py"


rule objectness_figure:
    """The images of the headline split with the highest and the lowest objectness, with their
    predicted boxes and scores."""
    input:
        unpack(get_prediction_inputs),
    output:
        report(
            paths.figure("objectness"),
            caption="../report/objectness.rst",
            category="6. Predicted boxes",
            subcategory="{dataset}",
            labels={"figure": "highest and lowest objectness"},
        ),
    params:
        images=SETTINGS.evaluation.overlay_images,
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.figure("objectness")),
    benchmark:
        paths.benchmark_of(paths.figure("objectness"))
    script:
        "../scripts/figures.py"
