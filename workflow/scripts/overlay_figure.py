from rpsloc.logging import to_log
from rpsloc.report import plot_overlays

with to_log(snakemake.log[0]):
    plot_overlays(
        maps=snakemake.input.maps,
        summary=snakemake.input.summary,
        eval_shard=snakemake.input.shard,
        manifest=snakemake.input.manifest,
        out=snakemake.output[0],
        count=snakemake.params.images,
    )
