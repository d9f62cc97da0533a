rule representer:
    """w* (global or per class, from all or a sampled subset of the training images) and every
    kept training image's representer vector and values (METHOD.md section 1)."""
    input:
        shards=get_train_shards,
        checkpoint_record=checkpoint_record_of(paths.REPRESENTER),
        predictions=get_training_predictions,
    output:
        paths.REPRESENTER,
    params:
        settings=get_representer_settings,
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.REPRESENTER),
    benchmark:
        paths.benchmark_of(paths.REPRESENTER)
    script:
        "../scripts/representer.py"
