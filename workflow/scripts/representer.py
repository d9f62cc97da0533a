from rpsloc.logging import to_log
from rpsloc.representer import write_representer

with to_log(snakemake.log[0]):
    write_representer(
        train_shards=list(snakemake.input.shards),
        out=snakemake.output[0],
        predictions=snakemake.input.predictions or None,
        **snakemake.params.settings,
    )
