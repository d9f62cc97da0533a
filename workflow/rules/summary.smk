rule summary:
    """One row per backbone, variant and split, every number labelled with its protocol;
    the images every split left out (`on_bad_image: skip`) gathered in skipped.csv."""
    input:
        summary_inputs,
        skipped=skipped_lists,
    output:
        report(
            "results/{dataset}/summary.csv",
            caption="../report/summary.rst",
            category="1. Summary tables",
            subcategory="{dataset}",
            labels={"table": "summary.csv"},
        ),
        skipped="results/{dataset}/skipped.csv",
    params:
        results=lambda wildcards: split_results(wildcards.dataset),
        threshold_split=lambda wildcards: dataset_config(wildcards).get("threshold_split"),
        splits=manifest_splits,
    conda:
        "../../environment.yml"
    log:
        "logs/{dataset}/summary.log",
    benchmark:
        "benchmarks/{dataset}/summary.tsv"
    script:
        "../scripts/summary.py"


rule box_accuracy_figure:
    """BoxAcc versus threshold per IoU on the last evaluated split."""
    input:
        summary_inputs,
    output:
        report(
            "results/{dataset}/figures/box_accuracy.png",
            caption="../report/box_accuracy.rst",
            category="2. Box accuracy",
            subcategory="{dataset}",
            labels={"figure": "BoxAcc versus threshold"},
        ),
    params:
        results=lambda wildcards: split_results(wildcards.dataset),
        split=lambda wildcards: dataset_config(wildcards)["eval_splits"][-1],
    conda:
        "../../environment.yml"
    log:
        "logs/{dataset}/figures/box_accuracy.log",
    benchmark:
        "benchmarks/{dataset}/figures/box_accuracy.tsv"
    script:
        "../scripts/box_accuracy_figure.py"


rule overlay_figure:
    """Heatmaps with predicted and ground-truth boxes for the first images of a split."""
    input:
        unpack(overlay_inputs),
    output:
        report(
            "results/{dataset}/figures/overlays.png",
            caption="../report/overlays.rst",
            category="4. Galleries",
            subcategory="{dataset}",
            labels={"figure": "first images"},
        ),
    params:
        images=config["evaluation"]["overlay_images"],
    conda:
        "../../environment.yml"
    log:
        "logs/{dataset}/figures/overlays.log",
    benchmark:
        "benchmarks/{dataset}/figures/overlays.tsv"
    script:
        "../scripts/overlay_figure.py"


rule precision_recall_figure:
    """Pixel precision-recall curves behind PxAP on the last evaluated split."""
    input:
        curve_inputs,
    output:
        report(
            "results/{dataset}/figures/precision_recall.png",
            caption="../report/precision_recall.rst",
            category="3. Pixel precision-recall",
            subcategory="{dataset}",
            labels={"figure": "precision versus recall"},
        ),
    params:
        results=lambda wildcards: split_results(wildcards.dataset),
        split=lambda wildcards: dataset_config(wildcards)["eval_splits"][-1],
    conda:
        "../../environment.yml"
    log:
        "logs/{dataset}/figures/precision_recall.log",
    benchmark:
        "benchmarks/{dataset}/figures/precision_recall.tsv"
    script:
        "../scripts/precision_recall_figure.py"


rule best_and_worst_figure:
    """The best and the worst images of the last evaluated split by IoU, IoU in the corner."""
    input:
        unpack(gallery_inputs),
    output:
        report(
            "results/{dataset}/figures/best_and_worst.png",
            caption="../report/best_and_worst.rst",
            category="4. Galleries",
            subcategory="{dataset}",
            labels={"figure": "best and worst by IoU"},
        ),
    params:
        images=config["evaluation"]["overlay_images"],
    conda:
        "../../environment.yml"
    log:
        "logs/{dataset}/figures/best_and_worst.log",
    benchmark:
        "benchmarks/{dataset}/figures/best_and_worst.tsv"
    script:
        "../scripts/best_and_worst_figure.py"


rule tables:
    """The paper-style table across every configured experiment: rows backbone x variant,
    columns dataset x metric, on each dataset's last evaluated split."""
    input:
        all_summaries,
    output:
        csv=report(
            "results/tables/summary.csv",
            caption="../report/tables.rst",
            category="1. Summary tables",
            subcategory="all datasets",
            labels={"table": "paper-style table"},
        ),
        markdown="results/tables/summary.md",
    conda:
        "../../environment.yml"
    log:
        "logs/tables.log",
    benchmark:
        "benchmarks/tables.tsv"
    script:
        "../scripts/tables.py"
