rule metrics:
    """BoxAcc per protocol, IoU and threshold; MaxBoxAccV2, MaxBoxAcc, PxAP (METHOD.md 3);
    per-image best IoUs and the pixel precision-recall curve, for the report's figures."""
    input:
        maps=paths.MAPS,
        shards=get_eval_shards,
        manifest=get_manifest,
        predictions=get_classifier_predictions,
    output:
        table=paths.METRICS_TABLE,
        summary=paths.METRICS_SUMMARY,
        images=paths.METRICS_IMAGES,
        curve=paths.METRICS_CURVE,
    params:
        evaluation=EVALUATION,
        mask_resize=lambda wildcards: get_dataset(wildcards).mask_resize,
    threads: 2
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.METRICS_TABLE),
    benchmark:
        paths.benchmark_of(paths.METRICS_TABLE)
    script:
        "../scripts/metrics.py"
