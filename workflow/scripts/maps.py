from rpsloc.logging import to_log
from rpsloc.maps import write_maps

with to_log(snakemake.log[0]):
    write_maps(
        variant=snakemake.wildcards.variant,
        eval_shards=list(snakemake.input.shards),
        out=snakemake.output[0],
        representer=snakemake.input.representer or None,
        predictions=snakemake.input.predictions or None,
        provenance={"split": snakemake.wildcards.split},
    )
