from rpsloc.logging import to_log
from rpsloc.report import plot_precision_recall, split_results

with to_log(snakemake.log[0]):
    plot_precision_recall(
        split_results(snakemake.params.results), snakemake.params.split, snakemake.output[0]
    )
