checkpoint manifest:
    """One table per split: image id, path, size, label, boxes, masks (docs/architecture.md),
    and the images left out under `on_bad_image: skip` with their reasons (docs/datasets.md)."""
    input:
        synthetic=synthetic_root,
        metadata=metadata_files,
    output:
        "results/{dataset}/manifest/{split}.csv",
        skipped="results/{dataset}/manifest/{split}.skipped.csv",
    params:
        dataset=adapter_settings,
        work_dir="results/{dataset}",
    conda:
        "../../environment.yml"
    log:
        "logs/{dataset}/manifest/{split}.log",
    benchmark:
        "benchmarks/{dataset}/manifest/{split}.tsv"
    script:
        "../scripts/manifest.py"
