from rpsloc.gallery import plot_representer_gallery
from rpsloc.logging import to_log

with to_log(snakemake.log[0]):
    plot_representer_gallery(
        explanations=snakemake.input.explanations,
        maps=snakemake.input.maps,
        images=snakemake.input.images,
        eval_shards=list(snakemake.input.shards),
        manifest=snakemake.input.manifest,
        train_manifest=snakemake.input.train_manifest,
        out=snakemake.output[0],
        count=snakemake.params.images,
        per_side=snakemake.params.per_side,
    )
