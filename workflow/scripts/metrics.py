from rpsloc.metrics import write_split_metrics
from rpsloc.logging import to_log

with to_log(snakemake.log[0]):
    evaluation = snakemake.params.evaluation
    write_split_metrics(
        maps=snakemake.input.maps,
        eval_shards=list(snakemake.input.shards),
        manifest=snakemake.input.manifest,
        out_table=snakemake.output.table,
        out_summary=snakemake.output.summary,
        out_images=snakemake.output.images,
        out_curve=snakemake.output.curve,
        interval=evaluation["interval"],
        iou_thresholds=evaluation["iou_thresholds"],
        workers=snakemake.threads,
        predictions=snakemake.input.predictions or None,
        mask_resize=snakemake.params.mask_resize,
    )
