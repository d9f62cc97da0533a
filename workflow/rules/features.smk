rule features:
    """Backbone features of one shard of one split (METHOD.md section 1)."""
    input:
        manifest=get_shard_manifest,
        checkpoint=get_backbone_checkpoint,
        checkpoint_record=checkpoint_record_of(paths.FEATURE_SHARD),
    output:
        paths.FEATURE_SHARD,
    params:
        backbone=get_backbone_model,
        role=get_split_role,
        geometry=get_split_geometry,
        features=FEATURES,
        format_version=FORMAT_VERSION,
    resources:
        gpu=1,
    threads: 2
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.FEATURE_SHARD),
    benchmark:
        paths.benchmark_of(paths.FEATURE_SHARD)
    script:
        "../scripts/features.py"
