rule boxes:
    """Predicted boxes of one split in original pixels, ranked by a confidence score, with each
    image's objectness, at one explicit threshold; also as a COCO file (docs/boxes.md)."""
    input:
        maps=paths.MAPS,
        manifest=get_manifest,
        table=get_threshold_table,
    output:
        boxes=paths.BOXES,
        images=paths.BOXES_IMAGES,
        coco=paths.BOXES_COCO,
    params:
        threshold=get_threshold_rule,
        min_area=BOXES["min_area"],
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.BOXES),
    benchmark:
        paths.benchmark_of(paths.BOXES)
    script:
        "../scripts/boxes.py"


rule box_masks:
    """Each image's binary mask of its predicted boxes' regions, at its original size, as PNG
    (`boxes: {masks: true}`)."""
    input:
        maps=paths.MAPS,
        manifest=get_manifest,
        coco=paths.BOXES_COCO,
    output:
        directory(paths.BOX_MASKS),
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.BOX_MASKS),
    benchmark:
        paths.benchmark_of(paths.BOX_MASKS)
    script:
        "../scripts/boxes.py"
