checkpoint manifest:
    """One table per split: image id, path, size, label, boxes, masks and the fingerprints of
    their files (docs/architecture.md), and the images left out under `on_bad_image: skip`
    with their reasons (docs/datasets.md). Rebuilt when a file's fingerprint changes."""
    input:
        synthetic=get_synthetic_root,
        metadata=get_metadata_files,
        changes=get_manifest_changes,
    output:
        paths.MANIFEST,
        skipped=paths.MANIFEST_SKIPPED,
    params:
        dataset=lambda wildcards: get_dataset(wildcards).layout,
        fingerprint=lambda wildcards: get_dataset(wildcards).fingerprint,
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
