rule features:
    """Backbone features of one shard of one split (METHOD.md section 1)."""
    input:
        manifest="results/{dataset}/manifest/{split}.csv",
        checkpoint=backbone_checkpoint,
    output:
        "results/{dataset}/{backbone}/features/{split}/shard-{shard}.h5",
    params:
        backbone=backbone_settings,
        role=split_role,
        shard_size=config["features"]["shard_size"],
        image_size=lambda wildcards: dataset_config(wildcards)["image_size"],
        crop_size=lambda wildcards: dataset_config(wildcards)["crop_size"],
        output_stride=lambda wildcards: dataset_config(wildcards)["output_stride"],
    resources:
        gpu=1,
    threads: 2
    conda:
        "../../environment.yml"
    log:
        "logs/{dataset}/{backbone}/features/{split}/shard-{shard}.log",
    benchmark:
        "benchmarks/{dataset}/{backbone}/features/{split}/shard-{shard}.tsv"
    script:
        "../scripts/extract_features.py"
