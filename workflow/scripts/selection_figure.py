from rpsloc.logging import to_log
from rpsloc.report import plot_selection_curves

with to_log(snakemake.log[0]):
    plot_selection_curves(dict(snakemake.input.items()), snakemake.output[0])
