from rpsloc.logging import to_log
from rpsloc.metrics.corloc import write_split_corloc

with to_log(snakemake.log[0]):
    write_split_corloc(
        maps=snakemake.input.maps,
        manifest=snakemake.input.manifest,
        out=snakemake.output[0],
        iou_thresholds=snakemake.params.iou_thresholds,
        boxes=snakemake.input.get("boxes"),
        box_images=snakemake.input.get("box_images"),
        box_coco=snakemake.input.get("box_coco"),
    )
