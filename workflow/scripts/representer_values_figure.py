from rpsloc.logging import to_log
from rpsloc.report import plot_representer_values

with to_log(snakemake.log[0]):
    plot_representer_values(
        representer=snakemake.input.representer,
        manifest=snakemake.input.manifest,
        out=snakemake.output[0],
        count=snakemake.params.images,
    )
