rule training_ranking:
    """Training images ranked by representer value r_n . w* (which define "foreground")."""
    input:
        lambda wildcards: representer_path(wildcards.dataset, wildcards.backbone),
    output:
        "results/{dataset}/{backbone}/explanations/training_images.csv",
    conda:
        "../../environment.yml"
    log:
        "logs/{dataset}/{backbone}/explanations/training_images.log",
    benchmark:
        "benchmarks/{dataset}/{backbone}/explanations/training_images.tsv"
    script:
        "../scripts/training_ranking.py"


rule test_explanations:
    """Per test image, the training images that support and oppose its foreground most."""
    input:
        representer=lambda wildcards: representer_path(wildcards.dataset, wildcards.backbone),
        shards=eval_shards,
    output:
        "results/{dataset}/{backbone}/explanations/{split}.h5",
    params:
        top_k=config["explanations"]["top_k"],
    conda:
        "../../environment.yml"
    log:
        "logs/{dataset}/{backbone}/explanations/{split}.log",
    benchmark:
        "benchmarks/{dataset}/{backbone}/explanations/{split}.tsv"
    script:
        "../scripts/test_explanations.py"


rule selection_curve:
    """MaxBoxAccV2 of w* rebuilt from only the top-m training images, for a sweep of m."""
    input:
        representer=lambda wildcards: representer_path(wildcards.dataset, wildcards.backbone),
        shards=eval_shards,
    output:
        "results/{dataset}/{backbone}/explanations/selection-{split}.csv",
    params:
        sizes=config["explanations"]["selection_sizes"],
        interval=config["evaluation"]["cam_curve_interval"],
        iou_thresholds=config["evaluation"]["iou_thresholds"],
    conda:
        "../../environment.yml"
    log:
        "logs/{dataset}/{backbone}/explanations/selection-{split}.log",
    benchmark:
        "benchmarks/{dataset}/{backbone}/explanations/selection-{split}.tsv"
    script:
        "../scripts/selection_curve.py"


rule selection_figure:
    """The representer-selection curves of every backbone of a dataset."""
    input:
        unpack(selection_curves),
    output:
        report(
            "results/{dataset}/figures/selection.png",
            caption="../report/selection.rst",
            category="5. Representer points",
            subcategory="{dataset}",
            labels={"figure": "selection curve"},
        ),
    conda:
        "../../environment.yml"
    log:
        "logs/{dataset}/figures/selection.log",
    benchmark:
        "benchmarks/{dataset}/figures/selection.tsv"
    script:
        "../scripts/selection_figure.py"


rule representer_values_figure:
    """Per-position representer values alpha_{n,p} of the most and least supportive training
    images of the first backbone."""
    input:
        representer=lambda wildcards: representer_path(
            wildcards.dataset, dataset_config(wildcards)["backbones"][0]
        ),
        manifest=lambda wildcards: (
            f"results/{wildcards.dataset}/manifest/{dataset_config(wildcards)['train_split']}.csv"
        ),
    output:
        report(
            "results/{dataset}/figures/representer_values.png",
            caption="../report/representer_values.rst",
            category="5. Representer points",
            subcategory="{dataset}",
            labels={"figure": "training images and their values"},
        ),
    params:
        images=config["explanations"]["gallery_images"],
    conda:
        "../../environment.yml"
    log:
        "logs/{dataset}/figures/representer_values.log",
    benchmark:
        "benchmarks/{dataset}/figures/representer_values.tsv"
    script:
        "../scripts/representer_values_figure.py"


rule representer_gallery_figure:
    """Test images (the best and worst by IoU) beside the training images that support and
    oppose their foreground most, with the contributions."""
    input:
        unpack(representer_gallery_inputs),
    output:
        report(
            "results/{dataset}/figures/representer_gallery.png",
            caption="../report/representer_gallery.rst",
            category="5. Representer points",
            subcategory="{dataset}",
            labels={"figure": "test images and their representers"},
        ),
    params:
        images=config["explanations"]["gallery_images"],
        per_side=min(3, config["explanations"]["top_k"]),
    conda:
        "../../environment.yml"
    log:
        "logs/{dataset}/figures/representer_gallery.log",
    benchmark:
        "benchmarks/{dataset}/figures/representer_gallery.tsv"
    script:
        "../scripts/representer_gallery_figure.py"
