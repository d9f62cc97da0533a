rule corloc:
    """CorLoc of one box per image (the object-discovery protocol of LOST and TokenCut): the
    boxes stage's first box, or a box-only method's own; and BoxAcc at a box-only method's own
    box (rpsloc.metrics.corloc)."""
    input:
        unpack(get_corloc_boxes),
        maps=paths.MAPS,
        manifest=get_manifest,
    output:
        paths.CORLOC,
    params:
        iou_thresholds=EVALUATION["iou_thresholds"],
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.CORLOC),
    benchmark:
        paths.benchmark_of(paths.CORLOC)
    script:
        "../scripts/corloc.py"
