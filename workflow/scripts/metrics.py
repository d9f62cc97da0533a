from rpsloc.evaluation import write_split_metrics
from rpsloc.logging import to_log

with to_log(snakemake.log[0]):
    write_split_metrics(
        maps=snakemake.input.maps,
        eval_shards=list(snakemake.input.shards),
        manifest=snakemake.input.manifest,
        out_table=snakemake.output.table,
        out_summary=snakemake.output.summary,
        out_images=snakemake.output.images,
        out_curve=snakemake.output.curve,
        interval=snakemake.params.interval,
        iou_thresholds=snakemake.params.iou_thresholds,
        workers=snakemake.threads,
        predictions=snakemake.input.predictions or None,
    )
