from rpsloc.gallery import plot_best_and_worst
from rpsloc.logging import to_log

with to_log(snakemake.log[0]):
    plot_best_and_worst(
        maps=snakemake.input.maps,
        images=snakemake.input.images,
        eval_shards=list(snakemake.input.shards),
        manifest=snakemake.input.manifest,
        out=snakemake.output[0],
        count=max(1, (snakemake.params.images + 1) // 2),
    )
