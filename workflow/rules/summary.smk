rule summary:
    """One row per backbone, variant and split, every number labelled with its protocol;
    the images every split left out (`on_bad_image: skip`) gathered in skipped.csv."""
    input:
        summary_inputs,
        skipped=skipped_lists,
    output:
        "results/{dataset}/summary.csv",
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
        "results/{dataset}/figures/box_accuracy.png",
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
        "results/{dataset}/figures/overlays.png",
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


rule tables:
    """The paper-style table across every configured experiment: rows backbone x variant,
    columns dataset x metric, on each dataset's last evaluated split."""
    input:
        all_summaries,
    output:
        csv="results/tables/summary.csv",
        markdown="results/tables/summary.md",
    conda:
        "../../environment.yml"
    log:
        "logs/tables.log",
    benchmark:
        "benchmarks/tables.tsv"
    script:
        "../scripts/tables.py"
