rule maps:
    """Activation maps of one split at feature resolution, for one variant or baseline."""
    input:
        shards=get_eval_shards,
        representer=get_variant_representer,
        predictions=get_variant_predictions,
    output:
        paths.MAPS,
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.MAPS),
    benchmark:
        paths.benchmark_of(paths.MAPS)
    script:
        "../scripts/maps.py"
