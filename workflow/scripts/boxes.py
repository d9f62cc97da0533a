from rpsloc.boxes.predicted import write_split_boxes, write_split_masks
from rpsloc.logging import to_log


def boxes():
    write_split_boxes(
        maps=snakemake.input.maps,
        manifest=snakemake.input.manifest,
        out_boxes=snakemake.output.boxes,
        out_images=snakemake.output.images,
        out_coco=snakemake.output.coco,
        threshold_rule=snakemake.params.threshold,
        min_area=snakemake.params.min_area,
        table=snakemake.input.table or None,
    )


def box_masks():
    write_split_masks(
        maps=snakemake.input.maps,
        manifest=snakemake.input.manifest,
        coco=snakemake.input.coco,
        out=snakemake.output[0],
    )


with to_log(snakemake.log[0]):
    {"boxes": boxes, "box_masks": box_masks}[snakemake.rule]()
