from rpsloc.explanations import write_selection_curve
from rpsloc.logging import to_log

with to_log(snakemake.log[0]):
    write_selection_curve(
        representer=snakemake.input.representer,
        eval_shards=list(snakemake.input.shards),
        out=snakemake.output[0],
        sizes=snakemake.params.sizes,
        interval=snakemake.params.interval,
        iou_thresholds=snakemake.params.iou_thresholds,
    )
