checkpoint manifest:
    """One table per split: image id, path, size, label, boxes, masks (docs/architecture.md),
    and the images left out under `on_bad_image: skip` with their reasons (docs/datasets.md)."""
    input:
        synthetic=get_synthetic_root,
        metadata=get_metadata_files,
    output:
        paths.MANIFEST,
        skipped=paths.MANIFEST_SKIPPED,
    params:
        dataset=lambda wildcards: get_dataset(wildcards).layout,
        columns=MANIFEST_COLUMNS,
        work_dir=lambda wildcards: f"{paths.RESULTS}/{wildcards.dataset}",
        evaluated=lambda wildcards: wildcards.split in get_dataset(wildcards).eval_splits,
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.MANIFEST),
    benchmark:
        paths.benchmark_of(paths.MANIFEST)
    script:
        "../scripts/manifest.py"
