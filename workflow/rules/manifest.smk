checkpoint manifest:
    """One table per split: image id, path, size, label, boxes, masks (docs/architecture.md)."""
    input:
        synthetic=synthetic_root,
        metadata=metadata_files,
    output:
        "results/{dataset}/manifest/{split}.csv",
    params:
        dataset=adapter_settings,
    conda:
        "../../environment.yml"
    log:
        "logs/{dataset}/manifest/{split}.log",
    benchmark:
        "benchmarks/{dataset}/manifest/{split}.tsv"
    script:
        "../scripts/manifest.py"
